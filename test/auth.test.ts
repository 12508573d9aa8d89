import { describe, expect, it } from 'vitest'
import { jwtVerify, createLocalJWKSet } from 'jose'
import { env } from 'cloudflare:test'
import { adminApi, adminToken, api, appLogin, appLoginRequest, auditLog, createUser, login, uniqueMobile } from './support/api'
import { createApp, createOidcApp, disableApp, mapUser, updateMapping } from './support/apps'
import { Browser, randomIp } from './support/browser'
import { solvedCaptcha } from './support/captcha'
import { codeFlow, oauthPost } from './support/oidc'

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
    expect(await auditLog({ action: 'refresh_token.reuse_detected', target_id: u.id })).toHaveLength(1)
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
    // no API lists a user's refresh tokens
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
    const app = await createOidcApp({ first_party: true })
    const u = await createUser()
    await mapUser(app.app_id, u)
    const b = new Browser()
    await b.loginOnPage(u)
    const token = (await codeFlow(b, app, 'openid offline_access')).refresh_token!
    const r = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: token } })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('invalid_grant')
    // the refused attempt left the client's token alone
    const still = await oauthPost('/oauth2/introspect', { token }, app)
    expect(still.body.active).toBe(true)
  })

  it("a sign-in API token issued for an app is not refreshed at the token endpoint, even by that app's own client", async () => {
    const app = await createOidcApp({ first_party: true, grant_types: ['authorization_code', 'refresh_token'], partner_api_enabled: true })
    const u = await createUser()
    await mapUser(app.app_id, u)
    const { refresh_token: token } = await appLogin(app, u.mobile, u.password)
    const confidential = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: token }, app)
    expect(confidential.status).toBe(400)
    expect(confidential.body.error).toBe('invalid_grant')
    // a public client would authenticate with its client_id alone: no way around the app's authentication
    await env.DB.prepare("UPDATE applications SET token_endpoint_auth_method = 'none' WHERE app_id = ?").bind(app.app_id).run()
    const pub = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: token, client_id: app.app_id })
    expect(pub.status).toBe(400)
    expect(pub.body.error).toBe('invalid_grant')
    // the token is untouched and refreshes where it belongs, with the app's authentication
    const r = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: token }, headers: { Authorization: 'Basic ' + btoa(`${app.app_id}:${app.app_secret}`) } })
    expect(r.status).toBe(200)
  })
})

describe('login for an app (app_id)', () => {
  it('needs an active mapping of the user in that app; says so only after the password is right', async () => {
    const app = await createApp()
    const u = await createUser()
    const wrong = await appLoginRequest(app, u.mobile, 'wrong-password')
    expect(wrong.status).toBe(401)
    expect(wrong.body.error.code).toBe('invalid_credentials')
    const unmapped = await appLoginRequest(app, u.mobile, u.password)
    expect(unmapped.status).toBe(403)
    expect(unmapped.body.error.code).toBe('user_not_mapped')
    const { mappingId } = await mapUser(app.app_id, u, { isActive: false })
    expect((await appLoginRequest(app, u.mobile, u.password)).status).toBe(403)
    await updateMapping(app.app_id, mappingId, { is_active: true })
    for (const via of ['basic', 'signed'] as const) {
      const ok = await appLogin(app, u.mobile, u.password, via)
      const [, payload] = ok.access_token.split('.')
      expect(JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))).aud, via).toBe(app.app_id)
    }
  })

  it('an OIDC client (partner API off) cannot sign users in with its secret over HTTP Basic, as it cannot by signature: 403 partner_api_disabled, audited', async () => {
    const rp = await createOidcApp()
    const u = await createUser()
    await mapUser(rp.app_id, u)
    for (const via of ['basic', 'signed'] as const) {
      const r = await appLoginRequest(rp, u.mobile, u.password, { via })
      expect(r.status, via).toBe(403)
      expect(r.body.error.code, via).toBe('partner_api_disabled')
    }
    const audited = await env.DB.prepare("SELECT details FROM audit_logs WHERE action = 'login.app_auth_failed' AND actor_id = ?").bind(rp.app_id).all<{ details: string }>()
    expect(audited.results.map((r) => JSON.parse(r.details))).toEqual([{ method: 'basic', reason: 'partner_api_disabled' }])
    expect((await env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?').bind(u.id).first<{ n: number }>())!.n).toBe(0)
    // switched on, the same secret signs in
    await adminApi('PATCH', `/api/v1/admin/apps/${rp.app_id}`, { partner_api_enabled: true })
    expect((await appLoginRequest(rp, u.mobile, u.password)).status).toBe(200)
  })

  it("is only for the app's server: without the app's signature or secret it is 401 app_auth_required", async () => {
    const app = await createApp()
    const u = await createUser()
    await mapUser(app.app_id, u)
    // the right password and mapping are not enough: anyone can send those
    const bare = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: u.password, app_id: app.app_id } })
    expect(bare.status).toBe(401)
    expect(bare.body.error.code).toBe('app_auth_required')
    expect(bare.headers.get('WWW-Authenticate')).toMatch(/^Basic/)
    // no API lists a user's sessions
    const sessions = await env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?').bind(u.id).first<{ n: number }>()
    expect(sessions!.n).toBe(0)
    // and first-party sign-in stays as it was
    expect((await login(u.mobile, u.password)).access_token).toBeTruthy()
  })

  it('refuses a wrong secret, another app\'s credentials, a forged signature and a malformed header; audits a wrong secret of a known app only', async () => {
    const app = await createApp()
    const other = await createApp()
    const u = await createUser()
    await mapUser(app.app_id, u)
    const body = { mobile: u.mobile, password: u.password, app_id: app.app_id }
    const basic = (id: string, secret: string) => ({ Authorization: 'Basic ' + btoa(`${id}:${secret}`) })
    const ip = randomIp()
    const send = (headers: Record<string, string>, json: Record<string, unknown> = body) => api('/api/v1/auth/login', { method: 'POST', json, headers: { ...headers, 'CF-Connecting-IP': ip } })

    const wrongSecret = await send(basic(app.app_id, app.app_secret + 'x'))
    expect(wrongSecret.status).toBe(401)
    expect(wrongSecret.body.error.code).toBe('invalid_app_credentials')
    const unknownApp = await send(basic('app_0000000000000000', app.app_secret))
    expect(unknownApp.status).toBe(401)
    expect({ ...unknownApp.body.error, request_id: 0 }).toEqual({ ...wrongSecret.body.error, request_id: 0 }) // no probing for app ids
    // another app's own credentials do not sign in for this app
    const otherApp = await send(basic(other.app_id, other.app_secret))
    expect(otherApp.status).toBe(401)
    expect(otherApp.body.error.code).toBe('invalid_app_credentials')
    const signedByOther = await appLoginRequest(other, u.mobile, u.password, { via: 'signed', extra: { app_id: app.app_id } })
    expect(signedByOther.status).toBe(401)
    expect(signedByOther.body.error.code).toBe('invalid_app_credentials')
    const forged = await appLoginRequest({ ...app, app_secret: 'sk_forged' }, u.mobile, u.password, { via: 'signed' })
    expect(forged.status).toBe(401)
    expect(forged.body.error.code).toBe('signature_invalid')
    expect((await send({ Authorization: `Bearer ${app.app_secret}` })).body.error.code).toBe('invalid_app_credentials')
    // app credentials without app_id: the token would not be for the app that authenticated
    const noAppId = await send(basic(app.app_id, app.app_secret), { mobile: u.mobile, password: u.password })
    expect(noAppId.status).toBe(400)
    expect(noAppId.body.error.code).toBe('invalid_request')
    // none of that signed anyone in
    // no API lists a user's sessions
    const sessions = await env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?').bind(u.id).first<{ n: number }>()
    expect(sessions!.n).toBe(0)

    // by IP: the audit API filters by action and target, not by address
    const audited = await env.DB.prepare("SELECT actor_id FROM audit_logs WHERE action = 'login.app_auth_failed' AND ip = ?").bind(ip).all<{ actor_id: string }>()
    expect(audited.results).toEqual([{ actor_id: app.app_id }])
    expect((await appLoginRequest(app, u.mobile, u.password)).status).toBe(200)
  })

  it('a disabled app is refused even with its right secret', async () => {
    const app = await createApp()
    const u = await createUser()
    await mapUser(app.app_id, u)
    await disableApp(app.app_id)
    const r = await appLoginRequest(app, u.mobile, u.password)
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

describe('UAP Edge API and OAuth client access tokens', () => {
  it('an access token an OIDC client got with scope openid cannot read the full profile or sign the user out everywhere', async () => {
    const app = await createOidcApp({ first_party: true })
    const user = await createUser({ name: 'Scoped Only' })
    await mapUser(app.app_id, user, { mappedKey: `s-${user.id.slice(0, 8)}` })
    const b = new Browser()
    await b.loginOnPage(user)
    const t = await codeFlow(b, app, 'openid')

    // userinfo honours the consented scope: no phone_number, no name
    const ui = await api('/oauth2/userinfo', { token: t.access_token })
    expect(ui.status).toBe(200)
    expect(ui.body.phone_number).toBeUndefined()

    // UAP Edge's own API is not a way around the scope (RFC 9068 §4: the audience is the client)
    const me = await api('/api/v1/auth/me', { token: t.access_token })
    expect(me.status).toBe(401)
    expect(me.body.error.code).toBe('invalid_token')
    const other = await login(user.mobile, user.password)
    expect((await api('/api/v1/auth/logout-all', { method: 'POST', token: t.access_token })).status).toBe(401)
    expect((await api('/api/v1/auth/me', { token: other.access_token })).status).toBe(200)
  })

  it('only first-party tokens reach /api/v1/auth/me: a token issued for an app (login with app_id) is refused', async () => {
    const app = await createOidcApp({ partner_api_enabled: true })
    const user = await createUser()
    const plain = await login(user.mobile, user.password)
    expect((await api('/api/v1/auth/me', { token: plain.access_token })).status).toBe(200)
    await mapUser(app.app_id, user, { mappedKey: `me-${crypto.randomUUID().slice(0, 8)}` })
    const forApp = await appLogin(app, user.mobile, user.password)
    const me = await api('/api/v1/auth/me', { token: forApp.access_token })
    expect(me.status).toBe(401)
    expect(me.body.error.code).toBe('invalid_token')
    expect((await api('/api/v1/auth/logout-all', { method: 'POST', token: forApp.access_token })).status).toBe(401)
    // the same user's first-party session is untouched
    expect((await api('/api/v1/auth/me', { token: plain.access_token })).status).toBe(200)
  })
})

describe('access tokens and the session they belong to', () => {
  it('an access token of an expired session is refused, as introspection already says', async () => {
    const user = await createUser()
    const t = await login(user.mobile, user.password)
    expect((await api('/api/v1/auth/me', { token: t.access_token })).status).toBe(200)
    const sid = JSON.parse(atob(t.access_token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sid as string
    // a session past its expiry, without waiting REFRESH_TOKEN_TTL
    await env.DB.prepare('UPDATE sessions SET expires_at = ? WHERE id = ?').bind(Date.now() - 1000, sid).run()
    const r = await api('/api/v1/auth/me', { token: t.access_token })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('invalid_token')
  })
})
