import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { api, createUser, type ApiInit } from './support/api'
import { createOidcApp, disableApp, mapUser } from './support/apps'
import { Browser, randomIp } from './support/browser'
import { codeFlow, oauthPost } from './support/oidc'

const hex4 = () => Math.floor(Math.random() * 0x10000).toString(16)
/** A client key no other test uses, even by chance: a tiny oauth_ip budget must be this test's alone. */
const uniqueIp = () => `192.0.2.${1 + Math.floor(Math.random() * 250)}-${crypto.randomUUID().slice(0, 8)}`
const tiny = { RATE_LIMITS: JSON.stringify({ oauth_ip: { limit: 3, windowS: 60 } }) }
/** The Worker with the tiny oauth_ip budget (or other variables), waitUntil work awaited. */
const call = (path: string, init: ApiInit = {}, vars: ApiInit['env'] = tiny) => api(path, { ...init, env: vars })

const form = (ip: string, fields: Record<string, string>, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'CF-Connecting-IP': ip, ...headers },
  body: new URLSearchParams(fields).toString(),
})

describe('/oauth2/* per-IP limit (oauth_ip)', () => {
  it('answers 429 with Retry-After: the OAuth error body on the JSON endpoints, an HTML page on the browser ones', async () => {
    const ip = uniqueIp()
    for (let i = 0; i < 3; i++) {
      const r = await call('/oauth2/token', form(ip, { grant_type: 'client_credentials', client_id: 'app_nope', client_secret: 'x' }))
      expect(r.status).toBe(401)
      expect(r.headers.get('X-RateLimit-Limit')).toBe('3')
    }
    const limited = await call('/oauth2/token', form(ip, { grant_type: 'client_credentials', client_id: 'app_nope', client_secret: 'x' }))
    expect(limited.status).toBe(429)
    const retry = Number(limited.headers.get('Retry-After'))
    expect(retry).toBeGreaterThan(0)
    expect(retry).toBeLessThanOrEqual(60)
    expect(limited.headers.get('Cache-Control')).toBe('no-store')
    // the refusal stays readable cross-origin (the endpoint's CORS header is kept)
    expect(limited.headers.get('Access-Control-Allow-Origin')).toBe('*')
    const body = limited.body as Record<string, string>
    expect(Object.keys(body).sort()).toEqual(['error', 'error_description'])
    expect(body.error).toBe('temporarily_unavailable')
    // every /oauth2 endpoint shares the budget
    for (const path of ['/oauth2/userinfo', '/oauth2/introspect', '/oauth2/revoke']) {
      const r = await call(path, form(ip, { token: 'x' }))
      expect(r.status, path).toBe(429)
      expect(r.body.error, path).toBe('temporarily_unavailable')
    }
    for (const path of ['/oauth2/authorize?client_id=app_nope&response_type=code', '/oauth2/end_session']) {
      const r = await call(path, { headers: { 'CF-Connecting-IP': ip } })
      expect(r.status, path).toBe(429)
      expect(r.headers.get('Content-Type'), path).toMatch(/^text\/html/)
      expect(r.headers.get('Content-Security-Policy'), path).toContain("default-src 'none'")
      expect(Number(r.headers.get('Retry-After')), path).toBeGreaterThan(0)
      expect(r.body, path).toMatch(/role="alert"[^>]*>Too many requests from your network\. Try again in \d+ seconds\./)
    }
    // another client is not affected; CORS preflights are not counted
    expect((await call('/oauth2/token', form(uniqueIp(), { grant_type: 'client_credentials', client_id: 'app_nope', client_secret: 'x' }))).status).toBe(401)
    const preflight = await call('/oauth2/token', { method: 'OPTIONS', headers: { 'CF-Connecting-IP': ip, Origin: 'https://spa.example.com', 'Access-Control-Request-Method': 'POST' } })
    expect(preflight.status).toBe(204)
  })

  it('a refused request writes nothing: a revocation while limited leaves the token alone', async () => {
    const app = await createOidcApp({ first_party: true })
    const user = await createUser()
    await mapUser(app.app_id, user)
    const b = new Browser()
    await b.loginOnPage(user)
    const token = (await codeFlow(b, app, 'openid offline_access')).refresh_token!
    // the token's state as its client sees it (the default budget: this lookup is not what is limited)
    const status = async () => ((await oauthPost('/oauth2/introspect', { token }, app)).body.active ? 'ACTIVE' : 'REVOKED')
    const basic = { Authorization: 'Basic ' + btoa(`${app.app_id}:${app.app_secret}`) }
    const ip = uniqueIp()
    for (let i = 0; i < 3; i++) expect((await call('/oauth2/userinfo', { headers: { 'CF-Connecting-IP': ip } })).status).toBe(401)
    const limited = await call('/oauth2/revoke', form(ip, { token, token_type_hint: 'refresh_token' }, basic))
    expect(limited.status).toBe(429)
    expect(limited.headers.get('WWW-Authenticate')).toBeNull()
    expect(await status()).toBe('ACTIVE')
    // the same request from a network within its budget revokes it
    expect((await call('/oauth2/revoke', form(uniqueIp(), { token, token_type_hint: 'refresh_token' }, basic))).status).toBe(200)
    expect(await status()).toBe('REVOKED')
  })

  it('UserInfo and introspection count only what they refuse: valid tokens cost no limiter call, a limited network is refused at once', async () => {
    const app = await createOidcApp({ first_party: true })
    const user = await createUser()
    await mapUser(app.app_id, user)
    const b = new Browser()
    await b.loginOnPage(user)
    const access = (await codeFlow(b, app, 'openid')).access_token
    const basic = { Authorization: 'Basic ' + btoa(`${app.app_id}:${app.app_secret}`) }
    const ip = uniqueIp()
    const userinfo = (token: string) => call('/oauth2/userinfo', { headers: { 'CF-Connecting-IP': ip, Authorization: `Bearer ${token}` } })
    const introspect = (token: string, from = ip) => call('/oauth2/introspect', form(from, { token }, basic))
    // far more valid calls than the budget of 3: none is counted
    for (let i = 0; i < 5; i++) {
      const r = await userinfo(access)
      expect(r.status).toBe(200)
      expect(r.headers.get('X-RateLimit-Limit')).toBeNull()
      expect((await introspect(access)).body.active).toBe(true)
    }
    // refusals are: three fit, the fourth is the 429
    for (let i = 0; i < 3; i++) expect((await userinfo('x')).status).toBe(401)
    expect((await userinfo('x')).status).toBe(429)
    // from then on the network is refused before any work, valid token or not
    const limited = await userinfo(access)
    expect(limited.status).toBe(429)
    expect(limited.body.error).toBe('temporarily_unavailable')
    expect(Number(limited.headers.get('Retry-After'))).toBeGreaterThan(0)
    expect((await introspect(access)).status).toBe(429)
    // an inactive answer is a refusal too: an authenticated client guessing tokens is counted
    const other = uniqueIp()
    for (let i = 0; i < 3; i++) expect((await introspect('x', other)).body).toEqual({ active: false })
    expect((await introspect('x', other)).status).toBe(429)
    // the token endpoint still counts every request, valid or not
    const third = uniqueIp()
    for (let i = 0; i < 3; i++) expect((await call('/oauth2/token', form(third, { grant_type: 'client_credentials' }, basic))).headers.get('X-RateLimit-Limit')).toBe('3')
    expect((await call('/oauth2/token', form(third, { grant_type: 'client_credentials' }, basic))).status).toBe(429)
  })

  it('counts an IPv6 client by its /64', async () => {
    const prefix = `2001:db8:${hex4()}:${hex4()}`
    const get = (iid: string) => call('/oauth2/userinfo', { headers: { 'CF-Connecting-IP': `${prefix}:${iid}` } })
    for (const iid of ['0:0:0:1', 'aaaa:bbbb:cccc:dddd', '1:2:3:4']) expect((await get(iid)).status).toBe(401)
    expect((await get('ffff:ffff:ffff:fffe')).status).toBe(429)
  })

  it('is documented as a 429 of every /oauth2 operation', async () => {
    const spec = (await call('/docs/admin/openapi.json', {}, {})).body as { paths: Record<string, Record<string, { responses: Record<string, any> }>> }
    const ops = Object.entries(spec.paths).filter(([p]) => p.startsWith('/oauth2/')).flatMap(([p, item]) => Object.entries(item).map(([m, op]) => ({ key: `${m} ${p}`, p, op })))
    expect(ops.length).toBeGreaterThanOrEqual(8)
    for (const { key, p, op } of ops) {
      const r = op.responses['429']
      expect(r, key).toBeTruthy()
      expect(Object.keys(r.content), key).toEqual([p === '/oauth2/authorize' || p === '/oauth2/end_session' ? 'text/html' : 'application/json'])
      expect(r.headers['Retry-After'], key).toBeTruthy()
    }
  })
})

describe('failed client authentication and the audit log', () => {
  // by IP: the audit API filters by action and target, not by address
  const failures = (ip: string) =>
    env.DB.prepare("SELECT actor_id, target_id, details FROM audit_logs WHERE action = 'oidc.client_auth_failed' AND ip = ? ORDER BY id").bind(ip).all<{ actor_id: string; target_id: string | null; details: string }>().then((r) => r.results)

  it('unknown client ids are audited once per window per network, not one row per request', async () => {
    const ip = randomIp()
    for (let i = 0; i < 6; i++) {
      const r = await call('/oauth2/token', form(ip, { grant_type: 'client_credentials' }, { Authorization: 'Basic ' + btoa(`app_made_up_${i}:secret`) }), {})
      expect(r.status).toBe(401)
      expect(r.body.error).toBe('invalid_client')
    }
    const rows = await failures(ip)
    expect(rows).toHaveLength(1)
    expect(rows[0].actor_id).toBe('app_made_up_0')
    expect(rows[0].target_id).toBeNull()
    expect(JSON.parse(rows[0].details)).toMatchObject({ reason: 'unknown_client', method: 'client_secret_basic' })
    // the same /64 is the same network
    const v6 = `2001:db8:${hex4()}:${hex4()}`
    for (const iid of ['::1', '::2', ':1:2:3:4']) await call('/oauth2/introspect', form(`${v6}${iid}`, { token: 'x', client_id: 'app_nope', client_secret: 'y' }), {})
    const v6Rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_logs WHERE action = 'oidc.client_auth_failed' AND ip LIKE ?").bind(`${v6}%`).first<{ n: number }>()
    expect(v6Rows!.n).toBe(1)
  })

  it('failures for a known client stay audited, each one', async () => {
    const app = await createOidcApp({ grant_types: ['authorization_code', 'client_credentials'] })
    const ip = randomIp()
    for (let i = 0; i < 3; i++) {
      const r = await call('/oauth2/token', form(ip, { grant_type: 'client_credentials' }, { Authorization: 'Basic ' + btoa(`${app.app_id}:${app.app_secret}x`) }), {})
      expect(r.status).toBe(401)
    }
    await disableApp(app.app_id)
    const disabled = await call('/oauth2/token', form(ip, { grant_type: 'client_credentials' }, { Authorization: 'Basic ' + btoa(`${app.app_id}:${app.app_secret}`) }), {})
    expect(disabled.status).toBe(401)
    const rows = await failures(ip)
    expect(rows.map((r) => [r.target_id, JSON.parse(r.details).reason])).toEqual([
      [app.app_id, 'wrong_secret'],
      [app.app_id, 'wrong_secret'],
      [app.app_id, 'wrong_secret'],
      [app.app_id, 'inactive_client'],
    ])
    // and the caller cannot tell a disabled client from an unknown one
    const unknown = await oauthPost('/oauth2/token', { grant_type: 'client_credentials' }, { app_id: 'app_nobody_knows', app_secret: 'x' })
    expect(disabled.body.error_description).toBe(unknown.body.error_description)
  })
})
