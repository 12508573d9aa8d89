import { describe, expect, it } from 'vitest'
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader, createLocalJWKSet } from 'jose'
import { SELF } from 'cloudflare:test'
import { api, createUser, login, adminToken, uniqueMobile, env } from './helpers'

describe('login', () => {
  it('returns an ES256 access token that verifies against the served JWKS, and a refresh token', async () => {
    const u = await createUser()
    const r = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: u.password } })
    expect(r.status).toBe(200)
    expect(r.body.token_type).toBe('Bearer')
    expect(r.body.expires_in).toBe(900)
    expect(r.body.refresh_token).toMatch(/^rt_[A-Za-z0-9_-]{43}$/)
    expect(r.headers.get('X-Request-Id')).toBeTruthy()
    const jwks = (await api('/.well-known/jwks.json')).body
    const { payload, protectedHeader } = await jwtVerify(r.body.access_token, createLocalJWKSet(jwks), { issuer: 'http://localhost', audience: 'uap-edge' })
    expect(protectedHeader.alg).toBe('ES256')
    expect(protectedHeader.kid).toBeTruthy()
    expect(payload.sub).toBe(u.id)
    for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'sid']) expect(payload[claim], claim).toBeDefined()
  })

  it('accepts national-format mobiles (normalised to E.164)', async () => {
    const u = await createUser()
    await expect(login(u.mobile.replace('+86', ''), u.password)).resolves.toHaveProperty('access_token')
  })

  it('answers an unknown mobile exactly like a wrong password', async () => {
    const u = await createUser()
    const wrong = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: 'nope-nope-nope' } })
    const unknown = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: uniqueMobile(), password: 'nope-nope-nope' } })
    expect(wrong.status).toBe(401)
    expect(unknown.status).toBe(401)
    const strip = (b: any) => ({ ...b.error, request_id: undefined })
    expect(strip(unknown.body)).toEqual(strip(wrong.body))
    expect(wrong.body.error.code).toBe('invalid_credentials')
  })

  it('locks a mobile after repeated failures with 429 and Retry-After, even for the right password', async () => {
    const u = await createUser()
    for (let i = 0; i < 5; i++) {
      const r = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: 'wrong-password' }, headers: { 'CF-Connecting-IP': `10.9.${i}.1` } })
      expect(r.status).toBe(401)
    }
    const r = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: u.password }, headers: { 'CF-Connecting-IP': '10.9.99.1' } })
    expect(r.status).toBe(429)
    expect(r.body.error.code).toBe('too_many_attempts')
    expect(Number(r.headers.get('Retry-After'))).toBeGreaterThan(0)
  })

  it('locks a client IP that tries many mobiles', async () => {
    const ip = '10.77.0.' + Math.floor(Math.random() * 200)
    let last
    for (let i = 0; i < 31; i++) last = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: uniqueMobile(), password: 'x' }, headers: { 'CF-Connecting-IP': ip } })
    expect(last!.status).toBe(429)
  })

  it('refuses a disabled user, and disabling ends their sessions', async () => {
    const u = await createUser()
    const tokens = await login(u.mobile, u.password)
    const admin = await adminToken()
    expect((await api(`/api/v1/admin/users/${u.id}`, { method: 'PATCH', token: admin, json: { status: 'DISABLED' } })).status).toBe(200)
    const r = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: u.password } })
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('account_disabled')
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: tokens.refresh_token } })).status).toBe(401)
    expect((await api('/api/v1/auth/me', { token: tokens.access_token })).status).toBe(401)
  })
})

describe('refresh', () => {
  it('rotates: the new token works, the old one is spent', async () => {
    const u = await createUser()
    const t0 = await login(u.mobile, u.password)
    const r1 = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: t0.refresh_token } })
    expect(r1.status).toBe(200)
    expect(r1.body.refresh_token).not.toBe(t0.refresh_token)
    expect((await api('/api/v1/auth/me', { token: r1.body.access_token })).body.id).toBe(u.id)
    const r2 = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: r1.body.refresh_token } })
    expect(r2.status).toBe(200)
  })

  it('reuse of a rotated token after the grace window revokes the whole family and is audited', async () => {
    const u = await createUser()
    const t0 = await login(u.mobile, u.password)
    const r1 = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: t0.refresh_token } })
    // age the rotation past the grace window
    await env.DB.prepare('UPDATE refresh_tokens SET rotated_at = rotated_at - 60000 WHERE user_id = ?').bind(u.id).run()
    const reuse = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: t0.refresh_token } })
    expect(reuse.status).toBe(401)
    expect(reuse.body.error.code).toBe('invalid_grant')
    // the legitimate successor is dead too
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: r1.body.refresh_token } })).status).toBe(401)
    const audit = await env.DB.prepare("SELECT action FROM audit_logs WHERE action = 'refresh_token.reuse_detected' AND target_id = ?").bind(u.id).all()
    expect(audit.results.length).toBe(1)
  })

  it('two concurrent refreshes of one token yield one successor, not two families', async () => {
    const u = await createUser()
    const t0 = await login(u.mobile, u.password)
    const [a, b] = await Promise.all([
      api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: t0.refresh_token } }),
      api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: t0.refresh_token } }),
    ])
    expect(a.status).toBe(200)
    expect(b.status).toBe(200)
    expect(a.body.refresh_token).toBe(b.body.refresh_token)
    const live = await env.DB.prepare("SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ? AND status = 'ACTIVE'").bind(u.id).first<{ n: number }>()
    expect(live!.n).toBe(1)
    // and the shared successor keeps working
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: a.body.refresh_token } })).status).toBe(200)
  })

  it('rejects unknown refresh tokens', async () => {
    const r = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: 'rt_nope' } })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('invalid_grant')
  })
})

describe('logout', () => {
  it('logout ends this session only: its access and refresh tokens stop working', async () => {
    const u = await createUser()
    const s1 = await login(u.mobile, u.password)
    const s2 = await login(u.mobile, u.password)
    expect((await api('/api/v1/auth/logout', { method: 'POST', token: s1.access_token })).status).toBe(200)
    expect((await api('/api/v1/auth/me', { token: s1.access_token })).status).toBe(401)
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: s1.refresh_token } })).status).toBe(401)
    expect((await api('/api/v1/auth/me', { token: s2.access_token })).status).toBe(200)
  })

  it('logout-all ends every session of the user', async () => {
    const u = await createUser()
    const s1 = await login(u.mobile, u.password)
    const s2 = await login(u.mobile, u.password)
    expect((await api('/api/v1/auth/logout-all', { method: 'POST', token: s1.access_token })).status).toBe(200)
    for (const s of [s1, s2]) {
      expect((await api('/api/v1/auth/me', { token: s.access_token })).status).toBe(401)
      expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: s.refresh_token } })).status).toBe(401)
    }
  })
})

describe('me', () => {
  it('returns the profile without the password hash', async () => {
    const u = await createUser({ name: 'Han Meimei' })
    const t = await login(u.mobile, u.password)
    const r = await api('/api/v1/auth/me', { token: t.access_token })
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ id: u.id, mobile: u.mobile, name: 'Han Meimei', status: 'ACTIVE', role: 'USER' })
    expect(JSON.stringify(r.body)).not.toMatch(/\$argon2id\$|\$scrypt\$|password/)
  })

  it('refuses a missing or forged token', async () => {
    expect((await api('/api/v1/auth/me')).status).toBe(401)
    const u = await createUser()
    const t = await login(u.mobile, u.password)
    const [h, p, s] = t.access_token.split('.')
    const forged = [h, p, s.slice(0, -4) + (s.endsWith('AAAA') ? 'BBBB' : 'AAAA')].join('.')
    const r = await api('/api/v1/auth/me', { token: forged })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('invalid_token')
  })
})

describe('refresh tokens of OAuth clients', () => {
  it('cannot be refreshed through the first-party API (that would skip client authentication)', async () => {
    const { refreshTokenRow } = await import('../src/auth/tokens')
    const u = await createUser()
    await login(u.mobile, u.password)
    const session = await env.DB.prepare('SELECT id FROM sessions WHERE user_id = ? LIMIT 1').bind(u.id).first<{ id: string }>()
    const token = 'rt_' + crypto.randomUUID().replace(/-/g, '') + 'abcdefghijk'
    const row = await refreshTokenRow(env, { userId: u.id, sessionId: session!.id, clientId: 'app_oauth_client', scope: 'openid offline_access', token, now: Date.now() })
    await env.DB.prepare('INSERT INTO refresh_tokens (id, token_hash, family_id, session_id, user_id, client_id, audience, scope, status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .bind(row.id, row.tokenHash, row.familyId, row.sessionId, row.userId, row.clientId, row.audience, row.scope, row.status, row.createdAt, row.expiresAt)
      .run()
    const r = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: token } })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('invalid_grant')
    const still = await env.DB.prepare('SELECT status FROM refresh_tokens WHERE id = ?').bind(row.id).first<{ status: string }>()
    expect(still!.status).toBe('ACTIVE')
  })
})

describe('login for an app (app_id)', () => {
  it('needs an active mapping of the user in that app; says so only after the password is right', async () => {
    const { createApp, mapUser } = await import('./helpers')
    const { app } = await createApp()
    const u = await createUser()
    const wrong = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: 'wrong-password', app_id: app.appId } })
    expect(wrong.status).toBe(401)
    const unmapped = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: u.password, app_id: app.appId } })
    expect(unmapped.status).toBe(403)
    expect(unmapped.body.error.code).toBe('user_not_mapped')
    await mapUser(app.appId, u.id, { isActive: false })
    expect((await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: u.password, app_id: app.appId } })).status).toBe(403)
    await env.DB.prepare('UPDATE app_user_mappings SET is_active = 1 WHERE app_id = ? AND user_id = ?').bind(app.appId, u.id).run()
    const ok = await login(u.mobile, u.password, { app_id: app.appId })
    const [, payload] = ok.access_token.split('.')
    expect(JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))).aud).toBe(app.appId)
  })
})
