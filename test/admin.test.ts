import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { ADMIN, adminToken, api, appLogin, createUser, login, uniqueMobile } from './support/api'
import { createApp, mapUser } from './support/apps'
import { ensureBootstrapAdmin } from '../src/users/service'

const ADMIN_ROUTES: [string, string, unknown?][] = [
  ['GET', '/api/v1/admin/users'],
  ['POST', '/api/v1/admin/users', { mobile: '+8613700000001', password: 'long-enough-password' }],
  ['GET', '/api/v1/admin/users/some-id'],
  ['PATCH', '/api/v1/admin/users/some-id', { name: 'x' }],
  ['PUT', '/api/v1/admin/users/some-id/password', { password: 'long-enough-password' }],
  ['GET', '/api/v1/admin/audit'],
  ['POST', '/api/v1/admin/keys/rotate'],
]

/** The audit row a request wrote (the audit API filters by action and target, not by request id: read D1). */
async function auditRow(requestId: string) {
  return env.DB.prepare('SELECT * FROM audit_logs WHERE request_id = ?').bind(requestId).first<Record<string, any>>()
}

const adminId = async () => (await api('/api/v1/auth/me', { token: await adminToken() })).body.id as string

describe('admin routes refuse non-admins', () => {
  it('no token → 401 with WWW-Authenticate, on every admin route', async () => {
    for (const [method, path, json] of ADMIN_ROUTES) {
      const r = await api(path, { method, json })
      expect(r.status, `${method} ${path}`).toBe(401)
      expect(r.body.error.code).toBe('unauthorized')
      expect(r.headers.get('WWW-Authenticate')).toMatch(/^Bearer/)
    }
  })

  it("a normal user's token → 403, on every admin route", async () => {
    const u = await createUser()
    const { access_token } = await login(u.mobile, u.password)
    for (const [method, path, json] of ADMIN_ROUTES) {
      const r = await api(path, { method, json, token: access_token })
      expect(r.status, `${method} ${path}`).toBe(403)
      expect(r.body.error.code).toBe('forbidden')
    }
  })

  it("even the admin's token → 403 when it was issued for an app (aud = app_id)", async () => {
    const app = await createApp()
    await mapUser(app.app_id, ADMIN)
    const appToken = await appLogin(app, ADMIN.mobile, ADMIN.password)
    const [, payload] = appToken.access_token.split('.')
    expect(JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))).aud).toBe(app.app_id)
    for (const [method, path, json] of ADMIN_ROUTES) {
      const r = await api(path, { method, json, token: appToken.access_token })
      expect(r.status, `${method} ${path}`).toBe(403)
    }
  })

  it('a garbage bearer → 401 invalid_token', async () => {
    const r = await api('/api/v1/admin/users', { token: 'not.a.jwt' })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('invalid_token')
  })
})

describe('admin user writes are audited (actor, action, target, request id, IP)', () => {
  it('create, update, disable and set-password each write one audit row in the same request', async () => {
    const token = await adminToken()
    const actor = await adminId()
    const ip = '198.51.100.7'
    const send = async (method: string, path: string, json: unknown) => {
      const requestId = `audit-${crypto.randomUUID()}`
      const r = await api(path, { method, json, token, headers: { 'CF-Connecting-IP': ip, 'X-Request-Id': requestId } })
      expect(r.headers.get('X-Request-Id')).toBe(requestId)
      return { r, row: await auditRow(requestId) }
    }
    const mobile = uniqueMobile()
    const created = await send('POST', '/api/v1/admin/users', { mobile, password: 'first-password-1', name: 'Audit Me' })
    expect(created.r.status).toBe(201)
    const id = created.r.body.id
    expect(created.row).toMatchObject({ action: 'admin.user.create', actor_type: 'admin', actor_id: actor, target_type: 'user', target_id: id, ip })
    expect(JSON.parse(created.row!.details)).toEqual({ mobile, role: 'USER' })
    expect(created.row!.at).toBeGreaterThan(Date.now() - 60_000)

    const updated = await send('PATCH', `/api/v1/admin/users/${id}`, { name: 'Audited', email: 'a@example.com' })
    expect(updated.r.status).toBe(200)
    expect(updated.r.body).toMatchObject({ name: 'Audited', email: 'a@example.com' })
    expect(updated.row).toMatchObject({ action: 'admin.user.update', actor_id: actor, target_id: id, ip })

    const disabled = await send('PATCH', `/api/v1/admin/users/${id}`, { status: 'DISABLED' })
    expect(disabled.r.body.status).toBe('DISABLED')
    expect(disabled.row).toMatchObject({ action: 'admin.user.disable', actor_id: actor, target_id: id, ip })

    const pw = await send('PUT', `/api/v1/admin/users/${id}/password`, { password: 'second-password-2' })
    expect(pw.r.status).toBe(200)
    expect(pw.row).toMatchObject({ action: 'admin.user.set_password', actor_id: actor, target_id: id, ip })
    // the new password is never in the audit log
    expect(JSON.stringify(pw.row)).not.toContain('second-password-2')
  })

  it('a refused write (duplicate mobile) leaves no audit row and no second user', async () => {
    const token = await adminToken()
    const u = await createUser()
    const requestId = `dup-${crypto.randomUUID()}`
    // same number in national format: normalised to the same E.164 value
    const r = await api('/api/v1/admin/users', { method: 'POST', token, headers: { 'X-Request-Id': requestId }, json: { mobile: u.mobile.replace('+86', ''), password: 'whatever-password' } })
    expect(r.status).toBe(409)
    expect(r.body.error.code).toBe('mobile_taken')
    expect(await auditRow(requestId)).toBeNull()
    const same = await api(`/api/v1/admin/users?q=${encodeURIComponent(u.mobile)}`, { token })
    expect(same.body.total).toBe(1)
  })

  it('the audit log is readable by admins, filtered by target', async () => {
    const token = await adminToken()
    const u = await createUser()
    const r = await api(`/api/v1/admin/audit?target_id=${u.id}`, { token })
    expect(r.status).toBe(200)
    expect(r.body.items.map((i: any) => i.action)).toContain('admin.user.create')
  })
})

describe('admin users API', () => {
  it('lists with pagination and searches by name (with literal % and _) and by mobile', async () => {
    const token = await adminToken()
    const tag = `Pg${crypto.randomUUID().slice(0, 8)}`
    const made = []
    for (let i = 0; i < 3; i++) made.push(await createUser({ name: `${tag} 100%_${i}` }))
    const p1 = await api(`/api/v1/admin/users?q=${encodeURIComponent(tag)}&page_size=2&page=1`, { token })
    const p2 = await api(`/api/v1/admin/users?q=${encodeURIComponent(tag)}&page_size=2&page=2`, { token })
    expect(p1.status).toBe(200)
    expect(p1.body).toMatchObject({ page: 1, page_size: 2, total: 3 })
    expect(p1.body.items).toHaveLength(2)
    expect(p2.body.items).toHaveLength(1)
    const ids = [...p1.body.items, ...p2.body.items].map((u: any) => u.id)
    expect(new Set(ids)).toEqual(new Set(made.map((u) => u.id)))
    // newest first
    expect(p1.body.items[0].id).toBe(made[2].id)
    expect(JSON.stringify(p1.body)).not.toMatch(/\$argon2id\$|\$scrypt\$|password/)

    // % and _ match themselves, not "anything"
    const literal = await api(`/api/v1/admin/users?q=${encodeURIComponent(`${tag} 100%_1`)}`, { token })
    expect(literal.body.items.map((u: any) => u.id)).toEqual([made[1].id])
    const wildcard = await api(`/api/v1/admin/users?q=${encodeURIComponent(`${tag}%1`)}`, { token })
    expect(wildcard.body.total).toBe(0)

    const byMobile = await api(`/api/v1/admin/users?q=${encodeURIComponent(made[0].mobile.slice(3))}`, { token })
    expect(byMobile.body.items.map((u: any) => u.id)).toEqual([made[0].id])
  })

  it('filters by status and validates paging parameters', async () => {
    const token = await adminToken()
    const u = await createUser({ name: `St${crypto.randomUUID().slice(0, 8)}` })
    await api(`/api/v1/admin/users/${u.id}`, { method: 'PATCH', token, json: { status: 'DISABLED' } })
    const r = await api(`/api/v1/admin/users?status=DISABLED&q=${encodeURIComponent(u.mobile)}`, { token })
    expect(r.body.items.map((x: any) => x.id)).toEqual([u.id])
    const active = await api(`/api/v1/admin/users?status=ACTIVE&q=${encodeURIComponent(u.mobile)}`, { token })
    expect(active.body.total).toBe(0)
    const bad = await api('/api/v1/admin/users?page_size=1000', { token })
    expect(bad.status).toBe(400)
    expect(bad.body.error.details.issues[0].path).toBe('page_size')
  })

  it('gets one user, 404 for an unknown id', async () => {
    const token = await adminToken()
    const u = await createUser({ name: 'Get Me' })
    const r = await api(`/api/v1/admin/users/${u.id}`, { token })
    expect(r.body).toMatchObject({ id: u.id, mobile: u.mobile, name: 'Get Me', role: 'USER', status: 'ACTIVE' })
    const missing = await api(`/api/v1/admin/users/${crypto.randomUUID()}`, { token })
    expect(missing.status).toBe(404)
    expect(missing.body.error.code).toBe('not_found')
    const patchMissing = await api(`/api/v1/admin/users/${crypto.randomUUID()}`, { method: 'PATCH', token, json: { name: 'x' } })
    expect(patchMissing.status).toBe(404)
  })

  it('set-password ends every session of the user; only the new password works', async () => {
    const token = await adminToken()
    const u = await createUser()
    const s1 = await login(u.mobile, u.password)
    const s2 = await login(u.mobile, u.password)
    const r = await api(`/api/v1/admin/users/${u.id}/password`, { method: 'PUT', token, json: { password: 'brand-new-password' } })
    expect(r.status).toBe(200)
    for (const s of [s1, s2]) {
      expect((await api('/api/v1/auth/me', { token: s.access_token })).status).toBe(401)
      expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: s.refresh_token } })).status).toBe(401)
    }
    const old = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: u.password }, headers: { 'CF-Connecting-IP': '10.200.0.1' } })
    expect(old.status).toBe(401)
    await expect(login(u.mobile, 'brand-new-password')).resolves.toHaveProperty('access_token')
  })

  it('refuses a too-short password and an empty patch with invalid_request', async () => {
    const token = await adminToken()
    const u = await createUser()
    const short = await api(`/api/v1/admin/users/${u.id}/password`, { method: 'PUT', token, json: { password: 'short' } })
    expect(short.status).toBe(400)
    expect(short.body.error.details.issues[0].path).toBe('password')
    const empty = await api(`/api/v1/admin/users/${u.id}`, { method: 'PATCH', token, json: {} })
    expect(empty.status).toBe(400)
    expect(empty.body.error.code).toBe('invalid_request')
  })

  it('an admin created through the API can use the admin API', async () => {
    const token = await adminToken()
    const mobile = uniqueMobile()
    const r = await api('/api/v1/admin/users', { method: 'POST', token, json: { mobile, password: 'second-admin-pass', role: 'ADMIN' } })
    expect(r.body.role).toBe('ADMIN')
    const t = await login(mobile, 'second-admin-pass')
    expect((await api('/api/v1/admin/users?page_size=1', { token: t.access_token })).status).toBe(200)
  })
})

describe('the bootstrap admin', () => {
  it('is created once for a free number, audited as a security event in the same batch; an existing one writes nothing', async () => {
    const mobile = uniqueMobile()
    // a fresh isolate's view: its own config and bootstrap check, the same D1
    const isolate = () => ({ ...env, BOOTSTRAP_ADMIN_MOBILE: mobile, DB: Object.create(env.DB) as D1Database })
    await ensureBootstrapAdmin(isolate())
    await ensureBootstrapAdmin(isolate())
    const user = await env.DB.prepare('SELECT id, role FROM users WHERE mobile = ?').bind(mobile).first<{ id: string; role: string }>()
    expect(user).toMatchObject({ role: 'ADMIN' })
    const rows = await env.DB.prepare("SELECT actor_type, target_id, details FROM audit_logs WHERE action = 'user.bootstrap_admin_created' AND target_id = ?").bind(user!.id).all<{ actor_type: string; target_id: string; details: string }>()
    expect(rows.results).toHaveLength(1)
    expect(rows.results[0].actor_type).toBe('system')
    expect(JSON.parse(rows.results[0].details)).toEqual({ mobile })
  })
})
