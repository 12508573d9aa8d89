import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { ADMIN, api, createUser, login } from './support/api'
import { Browser } from './support/browser'
import { subAdminWith } from './support/delegation'

const sidOf = (accessToken: string) => JSON.parse(atob(accessToken.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sid as string
const row = (sid: string) => env.DB.prepare('SELECT created_at, last_seen_at, revoked_at FROM sessions WHERE id = ?').bind(sid).first<{ created_at: number; last_seen_at: number | null; revoked_at: number | null }>()
// The clock cannot be moved in workerd: age the row instead.
const age = (sid: string, set: { lastSeenAgoMs?: number; createdAgoMs?: number }) => {
  const now = Date.now()
  return env.DB.prepare('UPDATE sessions SET last_seen_at = COALESCE(?, last_seen_at), created_at = COALESCE(?, created_at) WHERE id = ?')
    .bind(set.lastSeenAgoMs === undefined ? null : now - set.lastSeenAgoMs, set.createdAgoMs === undefined ? null : now - set.createdAgoMs, sid)
    .run()
}
const H = 3600_000
const D = 24 * H

describe('session lifetimes', () => {
  it('a session unused for longer than SESSION_IDLE_TIMEOUT (7 days) ends: its access tokens and refresh token are refused', async () => {
    const u = await createUser()
    const t = await login(u.mobile, u.password)
    const sid = sidOf(t.access_token)
    await age(sid, { lastSeenAgoMs: 6 * D })
    expect((await api('/api/v1/auth/me', { token: t.access_token })).status).toBe(200)
    await age(sid, { lastSeenAgoMs: 7 * D + 1000 })
    expect((await api('/api/v1/auth/me', { token: t.access_token })).status).toBe(401)
    const r = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: t.refresh_token } })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('invalid_grant')
  })

  it('a refresh marks the session used, so an active session does not idle out', async () => {
    const u = await createUser()
    const t = await login(u.mobile, u.password)
    const sid = sidOf(t.access_token)
    await age(sid, { lastSeenAgoMs: 6 * D })
    const r = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: t.refresh_token } })
    expect(r.status).toBe(200)
    expect((await row(sid))!.last_seen_at!).toBeGreaterThan(Date.now() - 60_000)
  })

  it('admins have shorter limits: idle 1 hour (ADMIN_SESSION_IDLE_TIMEOUT), absolute 12 hours (ADMIN_SESSION_TTL)', async () => {
    const idle = await login(ADMIN.mobile, ADMIN.password)
    await age(sidOf(idle.access_token), { lastSeenAgoMs: H - 60_000 })
    expect((await api('/api/v1/admin/users', { token: idle.access_token })).status).toBe(200)
    await age(sidOf(idle.access_token), { lastSeenAgoMs: H + 1000 })
    expect((await api('/api/v1/admin/users', { token: idle.access_token })).status).toBe(401)

    const old = await login(ADMIN.mobile, ADMIN.password)
    await age(sidOf(old.access_token), { createdAgoMs: 12 * H + 1000, lastSeenAgoMs: 0 })
    expect((await api('/api/v1/admin/users', { token: old.access_token })).status).toBe(401)
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: old.refresh_token } })).status).toBe(401)

    // the same ages do not end a user's session
    const u = await createUser()
    const t = await login(u.mobile, u.password)
    await age(sidOf(t.access_token), { createdAgoMs: 12 * H + 1000, lastSeenAgoMs: H + 1000 })
    expect((await api('/api/v1/auth/me', { token: t.access_token })).status).toBe(200)
  })
})

describe('sub-admin sessions', () => {
  it('are held to the admin lifetimes on the admin API (admin_session_expired) and keep the user lifetimes everywhere else', async () => {
    const sub = await subAdminWith(['users.read'])
    const sid = sidOf(sub.token)
    const adminCall = () => api('/api/v1/admin/users', { token: sub.token })
    expect((await adminCall()).status).toBe(200)
    // idle past ADMIN_SESSION_IDLE_TIMEOUT (1 h), well within the user's 7 days
    await age(sid, { lastSeenAgoMs: H + 1000 })
    const idle = await adminCall()
    expect(idle.status).toBe(401)
    expect(idle.body.error.code).toBe('admin_session_expired')
    expect((await api('/api/v1/auth/me', { token: sub.token })).status).toBe(200)
    // used again (the /me call above touched it), but older than ADMIN_SESSION_TTL (12 h)
    await age(sid, { createdAgoMs: 12 * H + 1000, lastSeenAgoMs: 0 })
    expect((await adminCall()).body.error.code).toBe('admin_session_expired')
    // a refresh keeps the session and so its age; a new sign-in gives an admin-grade session again
    const again = await login(sub.mobile, sub.password)
    expect((await api('/api/v1/admin/users', { token: again.access_token })).status).toBe(200)
  })
})

describe('browser sessions', () => {
  it('the cookie is __Host-AUTH_SESSION_ID: Secure, HttpOnly, Path=/, no Domain', async () => {
    const u = await createUser()
    const b = new Browser()
    const { res } = await b.loginOnPage(u)
    const sc = res.headers.getSetCookie().find((c) => c.startsWith('__Host-AUTH_SESSION_ID='))!
    expect(sc).toBeTruthy()
    expect(sc).toMatch(/; Secure/i)
    expect(sc).toMatch(/; HttpOnly/i)
    expect(sc).toMatch(/; Path=\//i)
    expect(sc).not.toMatch(/Domain=/i)
    // a cookie under the old name is not a session (anyone on a sibling subdomain could have planted it)
    const planted = new Browser()
    planted.cookies.set('AUTH_SESSION_ID', b.cookies.get('__Host-AUTH_SESSION_ID')!)
    const page = await planted.get('/page/login')
    expect(page.html).not.toContain('Signed in as')
  })

  it("signing in again on a browser ends that browser's previous session (and its refresh tokens)", async () => {
    const first = await createUser({ name: 'First Person' })
    const second = await createUser({ name: 'Second Person' })
    const b = new Browser()
    await b.loginOnPage(first)
    const oldCookie = b.cookies.get('__Host-AUTH_SESSION_ID')!
    const oldSession = await env.DB.prepare('SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL').bind(first.id).first<{ id: string }>()
    expect(oldSession).toBeTruthy()
    await b.loginOnPage(second, '/page/login?prompt=login')
    expect(b.cookies.get('__Host-AUTH_SESSION_ID')).not.toBe(oldCookie)
    expect((await row(oldSession!.id))!.revoked_at).not.toBeNull()
    // by actor: the audit API filters by action and target (here the new session), not by actor
    const audit = await env.DB.prepare("SELECT details FROM audit_logs WHERE action = 'login.succeeded' AND actor_id = ? ORDER BY id DESC LIMIT 1").bind(second.id).first<{ details: string }>()
    expect(JSON.parse(audit!.details)).toMatchObject({ previous_session_ended: oldSession!.id })
    // the old cookie no longer signs anyone in
    const replay = new Browser()
    replay.cookies.set('__Host-AUTH_SESSION_ID', oldCookie)
    expect((await replay.get('/page/login')).html).not.toContain('Signed in as')
  })

  it('a hosted page visit marks the session used', async () => {
    const u = await createUser()
    const b = new Browser()
    await b.loginOnPage(u)
    const s = await env.DB.prepare('SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL').bind(u.id).first<{ id: string }>()
    await age(s!.id, { lastSeenAgoMs: 3 * D })
    expect((await b.get('/page/login')).html).toContain('Signed in as')
    expect((await row(s!.id))!.last_seen_at!).toBeGreaterThan(Date.now() - 60_000)
  })
})
