import { describe, expect, it } from 'vitest'
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test'
import bcrypt from 'bcryptjs'
import worker from '../src/index'
import type { Env } from '../src/env'
import { adminApi, api, auditLog, createUser, url } from './support/api'
import { Browser, csrfFrom } from './support/browser'
import { interleaved } from './support/interleave'

// A password sign-in checks the password against the hash it read, then writes: the upgraded
// hash (needsRehash) and the session. A reset or an admin's new password that lands in
// between must win: the old password's sign-in is refused like a wrong password, its new
// hash does not overwrite the new password, and no session of it survives "signed out
// everywhere". The interleaving is made deterministic by a D1 binding that runs the other
// change right before the sign-in's first matching statement.

const REHASH = /^update "users" set "password_hash"/i
const SESSION_INSERT = /^insert into "sessions"/i
const REAUTHENTICATE = /^update "sessions" set "cookie_hash"/i

/** The Worker's fetch handler with this env (waitUntil work awaited). */
async function fetchWith(e: Env, request: Request) {
  const ctx = createExecutionContext()
  const res = await worker.fetch(request, e, ctx)
  await waitOnExecutionContext(ctx)
  return res
}

const apiLogin = (mobile: string, password: string) => api('/api/v1/auth/login', { method: 'POST', json: { mobile, password } })

/** A user whose stored hash is a bcrypt one (an imported account): the next sign-in upgrades it. */
async function importedUser(password: string) {
  const user = await createUser({ password })
  await env.DB.prepare('UPDATE users SET password_hash = ? WHERE id = ?').bind(bcrypt.hashSync(password, 4), user.id).run()
  return user
}

const liveSessions = async (userId: string) =>
  (await env.DB.prepare('SELECT count(*) AS n FROM sessions WHERE user_id = ? AND revoked_at IS NULL').bind(userId).first<{ n: number }>())!.n

const setPassword = (userId: string, password: string) => adminApi('PUT', `/api/v1/admin/users/${userId}/password`, { password })

/** After the race: the new password signs in, the old one is refused, and nothing of the raced sign-in lives on. */
async function newPasswordWon(user: { id: string; mobile: string }, oldPassword: string, newPassword: string) {
  expect(await liveSessions(user.id)).toBe(0)
  expect((await apiLogin(user.mobile, oldPassword)).status).toBe(401)
  expect((await apiLogin(user.mobile, newPassword)).status).toBe(200)
  const failed = await auditLog({ action: 'login.failed', target_id: user.mobile })
  expect(failed.some((r) => r.details?.reason === 'password_changed')).toBe(true)
}

describe('a password sign-in racing a new password', () => {
  async function pageSignIn(e: Env, b: Browser, mobile: string, password: string) {
    await b.get('/page/login')
    const body = new URLSearchParams({ csrf_token: b.csrf, mobile, password, step: 'login' }).toString()
    const res = await fetchWith(e, new Request(url('/page/login'), { method: 'POST', headers: b.headers({ 'Content-Type': 'application/x-www-form-urlencoded' }), body, redirect: 'manual' }))
    return { status: res.status, cookies: res.headers.getSetCookie().join('\n'), html: await res.text() }
  }

  // where the sign-in is made × when the admin's new password lands: while an imported hash is
  // verified (the upgrade must not undo it) or right before the session is written
  const moments = [
    { when: 'while an imported hash is verified', match: REHASH, user: (password: string) => importedUser(password) },
    { when: 'right before the session is written', match: SESSION_INSERT, user: (password: string) => createUser({ password }) },
  ] as const
  for (const [i, m] of moments.entries()) {
    it(`API login: an admin sets a new password ${m.when}; no session for the old one`, async () => {
      const [oldPassword, newPassword] = [`old-password-api-${i}`, `new-password-api-${i}`]
      const user = await m.user(oldPassword)
      const race = interleaved(m.match, () => setPassword(user.id, newPassword))
      const r = await fetchWith(race.env, new Request(url('/api/v1/auth/login'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ mobile: user.mobile, password: oldPassword }) }))
      expect(race.fired()).toBe(true)
      expect(r.status).toBe(401)
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('invalid_credentials')
      await newPasswordWon(user, oldPassword, newPassword)
    })

    it(`hosted login page: an admin sets a new password ${m.when}; no session cookie for the old one`, async () => {
      const [oldPassword, newPassword] = [`old-password-page-${i}`, `new-password-page-${i}`]
      const user = await m.user(oldPassword)
      const race = interleaved(m.match, () => setPassword(user.id, newPassword))
      const r = await pageSignIn(race.env, new Browser(), user.mobile, oldPassword)
      expect(race.fired()).toBe(true)
      expect(r.status).toBe(401)
      expect(r.html).toContain('The mobile number or password is wrong.')
      expect(r.cookies).not.toContain('__Host-AUTH_SESSION_ID=')
      await newPasswordWon(user, oldPassword, newPassword)
    })
  }

  it('hosted login page, signing in again on a signed-in browser: a password changed meanwhile refuses the re-authentication', async () => {
    const user = await createUser({ password: 'old-password-5' })
    const b = new Browser()
    const { sessionId } = await b.loginOnPage(user)
    const authTime = async () => (await env.DB.prepare('SELECT auth_time FROM sessions WHERE id = ?').bind(sessionId).first<{ auth_time: number }>())!.auth_time
    const before = await authTime()
    // the portal's change keeps this browser's session (no "sign out every other session")
    const change = async () => {
      const page = await b.get('/page/home/security')
      const r = await b.post('/page/home/security/password', { csrf_token: csrfFrom(page.html), current_password: 'old-password-5', new_password: 'new-password-5', new_password_confirm: 'new-password-5' })
      expect(r.status).toBe(200)
    }
    const race = interleaved(REAUTHENTICATE, change)
    const r = await pageSignIn(race.env, b, user.mobile, 'old-password-5')
    expect(race.fired()).toBe(true)
    expect(r.status).toBe(401)
    expect(r.html).toContain('The mobile number or password is wrong.')
    expect(await authTime()).toBe(before) // no fresh auth_time from the old password
    expect((await apiLogin(user.mobile, 'old-password-5')).status).toBe(401)
    expect((await apiLogin(user.mobile, 'new-password-5')).status).toBe(200)
  })
})

describe("the portal's password change racing an admin's new password", () => {
  it('the admin wins: the change writes nothing, and whoever held the session cannot set a password after it ended', async () => {
    const user = await createUser({ password: 'old-password-6' })
    const b = new Browser()
    await b.loginOnPage(user)
    const page = await b.get('/page/home/security')
    const body = new URLSearchParams({ csrf_token: csrfFrom(page.html), current_password: 'old-password-6', new_password: 'portal-password-6', new_password_confirm: 'portal-password-6', sign_out_others: 'yes' }).toString()
    // the admin's new password ends every session, this browser's included, just before the portal writes
    const race = interleaved(REHASH, () => setPassword(user.id, 'admin-password-6'))
    const r = await fetchWith(race.env, new Request(url('/page/home/security/password'), { method: 'POST', headers: b.headers({ 'Content-Type': 'application/x-www-form-urlencoded' }), body, redirect: 'manual' }))
    expect(race.fired()).toBe(true)
    expect(r.status).toBe(400) // answered as a current password that is no longer right
    expect((await apiLogin(user.mobile, 'portal-password-6')).status).toBe(401)
    expect((await apiLogin(user.mobile, 'admin-password-6')).status).toBe(200)
    expect(await auditLog({ action: 'portal.password_changed', target_id: user.id })).toEqual([])
  })
})
