import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { api, auditLog, createUser, login } from './support/api'
import { createOidcApp, mapUser } from './support/apps'
import { Browser, csrfFrom } from './support/browser'
import { codeFlow } from './support/oidc'

// "Sign out every other session" (the portal's sessions page and its password change) ends
// every other session of the user, however many there are: an attacker who signed in with a
// stolen password and then piled up more sign-ins must not keep the first one alive.

const refresh = (token: string) => api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: token } })
const me = (token: string) => api('/api/v1/auth/me', { token })

async function submit(b: Browser, page: string, action: string, fields: Record<string, string> = {}) {
  const html = (await b.get(page)).html
  return b.post(action, { csrf_token: csrfFrom(html), ...fields })
}

/**
 * A signed-in browser, a second browser signed in to an OIDC app, then the attacker's session
 * S, then `more` API sign-ins after it.
 */
async function buriedSession(more: number) {
  const user = await createUser()
  const b = new Browser()
  await b.loginOnPage(user)
  const app = await createOidcApp({ first_party: true })
  await mapUser(app.app_id, user)
  const other = new Browser()
  const { sessionId: otherSession } = await other.loginOnPage(user)
  await codeFlow(other, app)
  const s = await login(user.mobile, user.password)
  // One after another: parallel sign-ins of one number reserve failure counts before their
  // passwords are checked (src/auth/login-attempts.ts). LOG_LEVEL=warn: every logged line
  // crosses to vitest's console, which makes each later request of the file slower.
  for (let i = 0; i < more; i++) {
    const r = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: user.mobile, password: user.password }, env: { LOG_LEVEL: 'warn' } })
    expect(r.status).toBe(200)
  }
  return { user, b, s, otherSession }
}

/** When the OIDC app was told (back-channel logout, src/oidc/logout.ts) that the session ended; null: not yet. */
const notifiedAt = async (sessionId: string) =>
  (await env.DB.prepare('SELECT notified_at FROM oidc_session_clients WHERE session_id = ?').bind(sessionId).first<{ notified_at: number | null }>())!.notified_at


describe('signing every other session out, past the first 200', () => {
  it('"Sign out of all other sessions" ends a session signed in before 200 more', async () => {
    const { user, b, s, otherSession } = await buriedSession(200)
    expect(await notifiedAt(otherSession)).toBeNull()
    const r = await submit(b, '/page/home/sessions', '/page/home/sessions/end-others')
    expect(r.status).toBe(200)
    expect((await refresh(s.refresh_token)).status).toBe(401)
    expect((await me(s.access_token)).status).toBe(401)
    expect(await notifiedAt(otherSession)).not.toBeNull() // the session-end hooks ran for it too
    expect(r.html).toContain('202 other sessions were signed out')
    expect((await b.get('/page/home')).status).toBe(200) // this browser stays signed in
    expect((await auditLog({ action: 'portal.other_sessions_ended', target_id: user.id }))[0].details).toMatchObject({ sessions: 202 })
  })

  it('a password change with "sign out every other session" ends a session signed in before 200 more', async () => {
    const { user, b, s, otherSession } = await buriedSession(200)
    const r = await submit(b, '/page/home/security', '/page/home/security/password', { current_password: user.password, new_password: 'brand-new-password-9', new_password_confirm: 'brand-new-password-9', sign_out_others: 'yes' })
    expect(r.status).toBe(200)
    expect((await refresh(s.refresh_token)).status).toBe(401)
    expect((await me(s.access_token)).status).toBe(401)
    expect(await notifiedAt(otherSession)).not.toBeNull()
    expect(r.html).toContain('every other session was signed out')
    expect((await b.get('/page/home')).status).toBe(200)
    expect((await auditLog({ action: 'portal.password_changed', target_id: user.id }))[0].details).toEqual({ other_sessions_ended: 202 })
  })

  it('"Sign out this session" ends one of the user\'s sessions the list does not show', async () => {
    const { user, b, s } = await buriedSession(200)
    const sid = JSON.parse(atob(s.access_token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sid as string
    const r = await submit(b, '/page/home/sessions', '/page/home/sessions/end', { session_id: sid })
    expect(r.status).toBe(200)
    expect((await refresh(s.refresh_token)).status).toBe(401)
    expect((await me(s.access_token)).status).toBe(401)
    expect((await auditLog({ action: 'portal.session_ended', target_id: sid }))[0]).toMatchObject({ actor_id: user.id })
  })
})
