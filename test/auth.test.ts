import { describe, expect, it } from 'vitest'
import { createRemoteJWKSet, jwtVerify, decodeProtectedHeader, createLocalJWKSet } from 'jose'
import { SELF } from 'cloudflare:test'
import { api, appLogin, appLoginRequest, createUser, login, adminToken, uniqueMobile, env } from './helpers'
import { solvedCaptcha } from './flows'

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

  it('after 5 failures asks for a captcha, and locks at 20 with 429 and Retry-After, even for the right password', async () => {
    const { LOGIN_LIMITS } = await import('../src/auth/login-attempts')
    const u = await createUser()
    const attempt = (password: string, i: number, captcha?: { captcha_id: string; captcha_code: string }) =>
      api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password, ...captcha }, headers: { 'CF-Connecting-IP': `10.9.${i}.1` } })
    for (let i = 0; i < LOGIN_LIMITS.mobile.captchaAfter; i++) expect((await attempt('wrong-password', i)).status).toBe(401)
    const needsCaptcha = await attempt(u.password, 98)
    expect(needsCaptcha.status).toBe(401)
    expect(needsCaptcha.body.error.code).toBe('captcha_required')
    for (let i = LOGIN_LIMITS.mobile.captchaAfter; i < LOGIN_LIMITS.mobile.lockAt; i++) {
      const r = await attempt('wrong-password', i, await solvedCaptcha())
      expect(r.body.error.code).toBe('invalid_credentials')
    }
    const r = await attempt(u.password, 99, await solvedCaptcha())
    expect(r.status).toBe(429)
    expect(r.body.error.code).toBe('too_many_attempts')
    expect(Number(r.headers.get('Retry-After'))).toBeGreaterThan(0)
  })

  it('asks a client IP that tries many mobiles for a captcha, then locks it', async () => {
    const { LOGIN_LIMITS } = await import('../src/auth/login-attempts')
    const ip = '10.77.0.' + Math.floor(Math.random() * 200)
    const attempt = async (captcha?: { captcha_id: string; captcha_code: string }) =>
      api('/api/v1/auth/login', { method: 'POST', json: { mobile: uniqueMobile(), password: 'x', ...captcha }, headers: { 'CF-Connecting-IP': ip } })
    for (let i = 0; i < LOGIN_LIMITS.ip.captchaAfter; i++) expect((await attempt()).body.error.code).toBe('invalid_credentials')
    expect((await attempt()).body.error.code).toBe('captcha_required')
    // with captchas, up to the hard limit (sent in parallel batches: the count is exact either way)
    for (let done = LOGIN_LIMITS.ip.captchaAfter; done < LOGIN_LIMITS.ip.lockAt; ) {
      const n = Math.min(15, LOGIN_LIMITS.ip.lockAt - done)
      const results = await Promise.all(Array.from({ length: n }, async () => attempt(await solvedCaptcha())))
      for (const r of results) expect(r.body.error.code).toBe('invalid_credentials')
      done += n
    }
    const last = await attempt(await solvedCaptcha())
    expect(last.status).toBe(429)
    expect(last.body.error.code).toBe('too_many_attempts')
    expect((await attempt()).status).toBe(429) // without a captcha too
  }, 120_000)

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
    const { app, app_secret } = await createApp()
    const creds = { appId: app.appId, secret: app_secret }
    const u = await createUser()
    const wrong = await appLoginRequest(creds, u.mobile, 'wrong-password')
    expect(wrong.status).toBe(401)
    expect(wrong.body.error.code).toBe('invalid_credentials')
    const unmapped = await appLoginRequest(creds, u.mobile, u.password)
    expect(unmapped.status).toBe(403)
    expect(unmapped.body.error.code).toBe('user_not_mapped')
    await mapUser(app.appId, u.id, { isActive: false })
    expect((await appLoginRequest(creds, u.mobile, u.password)).status).toBe(403)
    await env.DB.prepare('UPDATE app_user_mappings SET is_active = 1 WHERE app_id = ? AND user_id = ?').bind(app.appId, u.id).run()
    for (const via of ['basic', 'signed'] as const) {
      const ok = await appLogin(creds, u.mobile, u.password, via)
      const [, payload] = ok.access_token.split('.')
      expect(JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))).aud, via).toBe(app.appId)
    }
  })

  it("is only for the app's server: without the app's signature or secret it is 401 app_auth_required", async () => {
    const { createApp, mapUser } = await import('./helpers')
    const { app, app_secret } = await createApp()
    const u = await createUser()
    await mapUser(app.appId, u.id)
    // the right password and mapping are not enough: anyone can send those
    const bare = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: u.password, app_id: app.appId } })
    expect(bare.status).toBe(401)
    expect(bare.body.error.code).toBe('app_auth_required')
    expect(bare.headers.get('WWW-Authenticate')).toMatch(/^Basic/)
    const sessions = await env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?').bind(u.id).first<{ n: number }>()
    expect(sessions!.n).toBe(0)
    // and first-party sign-in stays as it was
    expect((await login(u.mobile, u.password)).access_token).toBeTruthy()
  })

  it('refuses a wrong secret, another app\'s credentials, a forged signature and a malformed header; audits a wrong secret of a known app only', async () => {
    const { createApp, mapUser } = await import('./helpers')
    const { app, app_secret } = await createApp()
    const other = await createApp()
    const u = await createUser()
    await mapUser(app.appId, u.id)
    const body = { mobile: u.mobile, password: u.password, app_id: app.appId }
    const basic = (id: string, secret: string) => ({ Authorization: 'Basic ' + btoa(`${id}:${secret}`) })
    const ip = `10.66.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`
    const send = (headers: Record<string, string>, json: Record<string, unknown> = body) => api('/api/v1/auth/login', { method: 'POST', json, headers: { ...headers, 'CF-Connecting-IP': ip } })

    const wrongSecret = await send(basic(app.appId, app_secret + 'x'))
    expect(wrongSecret.status).toBe(401)
    expect(wrongSecret.body.error.code).toBe('invalid_app_credentials')
    const unknownApp = await send(basic('app_0000000000000000', app_secret))
    expect(unknownApp.status).toBe(401)
    expect({ ...unknownApp.body.error, request_id: 0 }).toEqual({ ...wrongSecret.body.error, request_id: 0 }) // no probing for app ids
    // another app's own credentials do not sign in for this app
    const otherApp = await send(basic(other.app.appId, other.app_secret))
    expect(otherApp.status).toBe(401)
    expect(otherApp.body.error.code).toBe('invalid_app_credentials')
    const signedByOther = await appLoginRequest({ appId: other.app.appId, secret: other.app_secret }, u.mobile, u.password, { via: 'signed', extra: { app_id: app.appId } })
    expect(signedByOther.status).toBe(401)
    expect(signedByOther.body.error.code).toBe('invalid_app_credentials')
    const forged = await appLoginRequest({ appId: app.appId, secret: 'sk_forged' }, u.mobile, u.password, { via: 'signed' })
    expect(forged.status).toBe(401)
    expect(forged.body.error.code).toBe('signature_invalid')
    expect((await send({ Authorization: `Bearer ${app_secret}` })).body.error.code).toBe('invalid_app_credentials')
    // app credentials without app_id: the token would not be for the app that authenticated
    const noAppId = await send(basic(app.appId, app_secret), { mobile: u.mobile, password: u.password })
    expect(noAppId.status).toBe(400)
    expect(noAppId.body.error.code).toBe('invalid_request')
    // none of that signed anyone in
    const sessions = await env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?').bind(u.id).first<{ n: number }>()
    expect(sessions!.n).toBe(0)

    const audited = await env.DB.prepare("SELECT actor_id FROM audit_logs WHERE action = 'login.app_auth_failed' AND ip = ?").bind(ip).all<{ actor_id: string }>()
    expect(audited.results).toEqual([{ actor_id: app.appId }])
    expect((await appLoginRequest({ appId: app.appId, secret: app_secret }, u.mobile, u.password)).status).toBe(200)
  })

  it('a disabled app is refused even with its right secret', async () => {
    const { createApp, mapUser } = await import('./helpers')
    const { app, app_secret } = await createApp()
    const u = await createUser()
    await mapUser(app.appId, u.id)
    await env.DB.prepare("UPDATE applications SET status = 'DISABLED' WHERE app_id = ?").bind(app.appId).run()
    const r = await appLoginRequest({ appId: app.appId, secret: app_secret }, u.mobile, u.password)
    expect(r.status).toBe(400)
    expect(r.body.error.code).toBe('invalid_app')
  })
})

describe('POST /api/v1/auth/login in the OpenAPI documents', () => {
  it('documents the captcha tier, the lock and the app authentication of app_id, in the partner spec too', async () => {
    for (const doc of ['/docs/admin/openapi.json', '/docs/open/openapi.json']) {
      const spec = (await api(doc)).body
      const op = spec.paths['/api/v1/auth/login'].post
      expect(op.security, doc).toEqual([{}, { appSignature: [] }, { appBasic: [] }])
      expect(spec.components.securitySchemes.appBasic, doc).toMatchObject({ type: 'http', scheme: 'basic' })
      expect(op.description, doc).toMatch(/captcha_required/)
      expect(op.description, doc).toMatch(/only the app's server may make the call/)
      for (const [status, code] of [['401', 'captcha_required'], ['401', 'app_auth_required'], ['401', 'invalid_app_credentials'], ['401', 'signature_invalid'], ['400', 'invalid_captcha'], ['429', 'too_many_attempts'], ['403', 'user_not_mapped']]) {
        expect(op.responses[status].description, `${doc} ${status} ${code}`).toContain(`\`${code}\``)
      }
      const body = op.requestBody.content['application/json'].schema
      const props = body.$ref ? spec.components.schemas[body.$ref.split('/').pop()].properties : body.properties
      expect(Object.keys(props), doc).toEqual(expect.arrayContaining(['mobile', 'password', 'app_id', 'captcha_id', 'captcha_code']))
    }
  })
})
