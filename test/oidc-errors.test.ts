import { describe, expect, it } from 'vitest'
import { decodeJwt, generateKeyPair, SignJWT } from 'jose'
import { SELF, env } from 'cloudflare:test'
import { ISSUER, api, auditLog, createUser, login } from './support/api'
import { createOidcApp, disableApp, mapUser, updateMapping, type AppSettings, setAppColumnsInD1 } from './support/apps'
import { Browser, csrfFrom, inputValue, location } from './support/browser'
import { POST_LOGOUT, REDIRECT, authorizeThrough, codeFlow, oauthPost, pkce } from './support/oidc'

/** A signed-in browser, a mapped user and a confidential client, ready for the code flow. */
async function setup(appInput: AppSettings = {}) {
  const oidc = await createOidcApp({ first_party: true, ...appInput })
  const user = await createUser()
  const { mappingId } = await mapUser(oidc.app_id, user, { mappedKey: `m-${user.id.slice(0, 8)}@rp.example.com` })
  const b = new Browser()
  const { sessionId } = await b.loginOnPage(user)
  return { ...oidc, user, mappingId, b, sessionId }
}

/** What an error_description may hold (RFC 6749 §5.2, §4.1.2.1; RFC 6750 §3). */
const OAUTH_TEXT = /^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/

/** Every client must send PKCE unless opted out: a fixed valid S256 challenge, unless the params set their own or `noPkce`. */
// RFC 7636 Appendix B's example pair
const SOME_CHALLENGE = { code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' }
const SOME_VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk'
function authorizeUrl(clientId: string, params: Record<string, string> = {}, opts: { noPkce?: boolean } = {}) {
  const pkceParams = opts.noPkce || 'code_challenge' in params || 'code_challenge_method' in params ? {} : SOME_CHALLENGE
  const q = new URLSearchParams({ client_id: clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', ...pkceParams, ...params })
  return `/oauth2/authorize?${q}`
}

/** A code issued to the signed-in browser (PKCE S256 unless noPkce). */
async function getCode(s: Awaited<ReturnType<typeof setup>>, opts: { scope?: string; noPkce?: boolean } = {}) {
  const { verifier, challenge } = await pkce()
  const params: Record<string, string> = { scope: opts.scope ?? 'openid offline_access', state: 'st' }
  if (!opts.noPkce) Object.assign(params, { code_challenge: challenge, code_challenge_method: 'S256' })
  const callback = await authorizeThrough(s.b, authorizeUrl(s.app_id, params, { noPkce: opts.noPkce }))
  return { code: callback.searchParams.get('code')!, verifier }
}

const exchange = (client: { app_id: string; app_secret: string }, form: Record<string, string>) =>
  oauthPost('/oauth2/token', { grant_type: 'authorization_code', redirect_uri: REDIRECT, ...form }, client)

describe('authorization endpoint errors', () => {
  it('an unregistered redirect_uri gets an error page, never a redirect', async () => {
    const s = await setup()
    const res = await s.b.get(authorizeUrl(s.app_id, { redirect_uri: 'https://evil.example.com/cb', state: 'x' }))
    expect(res.status).toBe(400)
    expect(res.headers.get('Location')).toBeNull()
    expect(res.headers.get('Content-Type')).toMatch(/text\/html/)
    expect(res.html).toContain('redirect_uri is not registered')
    // not even a prefix or a trailing-slash variant matches
    expect((await s.b.get(authorizeUrl(s.app_id, { redirect_uri: REDIRECT + '/' }))).status).toBe(400)
  })

  it('an unknown, disabled or non-OIDC client gets an error page', async () => {
    const b = new Browser()
    expect((await b.get(authorizeUrl('app_nope'))).status).toBe(400)
    expect((await b.get('/oauth2/authorize?response_type=code')).status).toBe(400)
    const disabled = await createOidcApp()
    await disableApp(disabled.app_id)
    expect((await b.get(authorizeUrl(disabled.app_id))).status).toBe(400)
    const simple = await createOidcApp({ protocol_type: 'SIMPLE_API' })
    expect((await b.get(authorizeUrl(simple.app_id))).status).toBe(400)
  })

  it('implicit and hybrid response types are unsupported_response_type, sent back with state and iss', async () => {
    const s = await setup()
    for (const rt of ['token', 'id_token token', 'code id_token']) {
      const res = await s.b.get(authorizeUrl(s.app_id, { response_type: rt, state: 'st-1' }))
      expect(res.status).toBe(302)
      const to = location(res)
      expect(to.origin + to.pathname).toBe(REDIRECT)
      expect(to.searchParams.get('error')).toBe('unsupported_response_type')
      expect(to.searchParams.get('error_description')).toContain('RFC 9700 section 2.1.2')
      expect(to.searchParams.get('error_description')).toMatch(OAUTH_TEXT)
      expect(to.searchParams.get('state')).toBe('st-1')
      expect(to.searchParams.get('iss')).toBe(ISSUER)
      expect(to.searchParams.get('code')).toBeNull()
    }
  })

  it('a public client without PKCE, and plain PKCE, are invalid_request', async () => {
    const pub = await setup({ token_endpoint_auth_method: 'none' })
    const res = await pub.b.get(authorizeUrl(pub.app_id, { state: 'p' }, { noPkce: true }))
    const to = location(res)
    expect(to.searchParams.get('error')).toBe('invalid_request')
    expect(to.searchParams.get('error_description')).toMatch(/PKCE/)
    expect(to.searchParams.get('state')).toBe('p')

    const plain = await pub.b.get(authorizeUrl(pub.app_id, { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }))
    expect(location(plain).searchParams.get('error')).toBe('invalid_request')
    expect(location(plain).searchParams.get('error_description')).toMatch(/plain is not supported/)
    const noMethod = await pub.b.get(authorizeUrl(pub.app_id, { code_challenge: 'a'.repeat(43) }))
    expect(location(noMethod).searchParams.get('error')).toBe('invalid_request')
  })

  it('unknown scopes, missing openid, unknown prompt values and request objects are refused to the client', async () => {
    const s = await setup()
    const err = async (params: Record<string, string>) => location(await s.b.get(authorizeUrl(s.app_id, params))).searchParams.get('error')
    expect(await err({ scope: 'openid admin' })).toBe('invalid_scope')
    expect(await err({ scope: 'profile' })).toBe('invalid_scope')
    expect(await err({ prompt: 'select_account' })).toBe('invalid_request')
    expect(await err({ prompt: 'none login' })).toBe('invalid_request')
    expect(await err({ max_age: '-1' })).toBe('invalid_request')
    expect(await err({ request: 'eyJ...' })).toBe('request_not_supported')
    expect(await err({ request_uri: 'https://x' })).toBe('request_uri_not_supported')
    expect(await err({ response_mode: 'fragment' })).toBe('invalid_request')
  })

  it('accepts the request as a form POST, and forwards login_hint to the login page', async () => {
    const s = await setup()
    const { challenge } = await pkce()
    const res = await s.b.post('/oauth2/authorize', { client_id: s.app_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', state: 'form', code_challenge: challenge, code_challenge_method: 'S256' })
    expect(res.status).toBe(302)
    expect(location(res).searchParams.get('code')).toBeTruthy()
    expect(location(res).searchParams.get('state')).toBe('form')
    const anon = new Browser()
    const login = location(await anon.get(authorizeUrl(s.app_id, { login_hint: '+8613800138000' })))
    expect(login.pathname).toBe('/page/login')
    expect(login.searchParams.get('login_hint')).toBe('+8613800138000')
    expect(login.searchParams.get('prompt')).toBeNull()
    // the login page fills it in
    expect(inputValue((await anon.get(login.pathname + login.search)).html, 'mobile')).toBe('+8613800138000')
  })

  it('prompt=none without a session answers login_required to the client', async () => {
    const { app_id: clientId } = await createOidcApp()
    const b = new Browser()
    const res = await b.get(authorizeUrl(clientId, { prompt: 'none', state: 'silent' }))
    expect(res.status).toBe(302)
    const to = location(res)
    expect(to.origin + to.pathname).toBe(REDIRECT)
    expect(to.searchParams.get('error')).toBe('login_required')
    expect(to.searchParams.get('state')).toBe('silent')
    expect(to.searchParams.get('iss')).toBe(ISSUER)
  })

  it('id_token_hint: only the user it names is answered; another signed-in user gets login_required under prompt=none, the sign-in form otherwise', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const hintOfA = (await exchange(s, { code, code_verifier: verifier })).body.id_token as string
    // the same browser, now signed in as B (mapped in the app too)
    const userB = await createUser()
    await mapUser(s.app_id, userB, { mappedKey: `b-${userB.id.slice(0, 8)}@rp.example.com` })
    const b = new Browser()
    await b.loginOnPage(userB)
    const silent = location(await b.get(authorizeUrl(s.app_id, { prompt: 'none', state: 'h1', id_token_hint: hintOfA })))
    expect(silent.searchParams.get('code')).toBeNull()
    expect(silent.searchParams.get('error')).toBe('login_required')
    expect(silent.searchParams.get('state')).toBe('h1')
    // without prompt=none the user is asked to sign in (as A, the form shown even though B's session is live)
    const asked = location(await b.get(authorizeUrl(s.app_id, { id_token_hint: hintOfA })))
    expect(asked.pathname).toBe('/page/login')
    expect(asked.searchParams.get('prompt')).toBe('login')
    // A's own browser gets its code silently
    const own = location(await s.b.get(authorizeUrl(s.app_id, { prompt: 'none', id_token_hint: hintOfA })))
    expect(own.searchParams.get('code')).toBeTruthy()
    // a hint that is not an ID token of this server for this client is refused
    const other = await createOidcApp()
    await mapUser(other.app_id, s.user)
    for (const bad of [hintOfA.slice(0, -4) + 'AAAA', 'not-a-jwt']) {
      expect(location(await s.b.get(authorizeUrl(s.app_id, { id_token_hint: bad }))).searchParams.get('error')).toBe('invalid_request')
    }
    expect(location(await s.b.get(authorizeUrl(other.app_id, { id_token_hint: hintOfA }))).searchParams.get('error')).toBe('invalid_request')
  })

  it('prompt=none with a session but no consent answers consent_required; with consent it issues a code silently', async () => {
    const s = await setup({ first_party: false })
    const res = await s.b.get(authorizeUrl(s.app_id, { prompt: 'none' }))
    expect(location(res).searchParams.get('error')).toBe('consent_required')
    await authorizeThrough(s.b, authorizeUrl(s.app_id, {}))
    const silent = await s.b.get(authorizeUrl(s.app_id, { prompt: 'none' }))
    expect(location(silent).searchParams.get('code')).toBeTruthy()
  })

  it('a user with no active account in the app gets access_denied', async () => {
    // a name outside ASCII: error_description may not carry it (RFC 6749 §4.1.2.1)
    const { app_id: clientId } = await createOidcApp({ first_party: true, app_name: '报表门户' })
    const user = await createUser()
    const b = new Browser()
    await b.loginOnPage(user)
    const res = await b.get(authorizeUrl(clientId, { state: 'nm' }))
    const to = location(res)
    expect(to.searchParams.get('error')).toBe('access_denied')
    expect(to.searchParams.get('error_description')).toMatch(/no active user in this application/)
    expect(to.searchParams.get('error_description')).toMatch(OAUTH_TEXT)
    expect(to.searchParams.get('state')).toBe('nm')
    // an inactive mapping counts as none
    await mapUser(clientId, user, { mappedKey: `inactive-${user.id.slice(0, 8)}`, isActive: false })
    expect(location(await b.get(authorizeUrl(clientId))).searchParams.get('error')).toBe('access_denied')
  })

  it('prompt=login: the real login page shows its form to a signed-in user, and a fresh sign-in gets the code', async () => {
    const s = await setup()
    // another app this browser signed into: a re-authentication must not sign the user out of it
    const other = await createOidcApp({ first_party: true, grant_types: ['authorization_code', 'refresh_token'] })
    await mapUser(other.app_id, s.user, { mappedKey: `o-${s.user.id.slice(0, 8)}` })
    const otherTokens = await codeFlow(s.b, other, 'openid offline_access')
    const oldCookie = s.b.cookies.get('__Host-AUTH_SESSION_ID')!
    const res = await s.b.get(authorizeUrl(s.app_id, { prompt: 'login' }))
    const login = location(res)
    expect(login.pathname).toBe('/page/login')
    expect(login.searchParams.get('prompt')).toBe('login')
    const returnTo = login.searchParams.get('return_to')!
    // returning without signing in again loops back to the login page
    const still = location(await s.b.get(returnTo))
    expect(still.pathname).toBe('/page/login')
    expect(still.searchParams.get('prompt')).toBe('login')
    // Without prompt=login the page lets a signed-in browser straight through; with it, it shows the form.
    const through = await s.b.get(`/page/login?return_to=${encodeURIComponent(returnTo)}`)
    expect(through.status).toBe(303)
    expect(through.headers.get('Location')).toBe(returnTo)

    const before = Date.now()
    const { res: signedIn, sessionId } = await s.b.loginOnPage(s.user, still.pathname + still.search)
    // the same user: the session lives on (OIDC Core §3.1.2.1 asks to re-authenticate, not to sign out), under a new cookie
    expect(sessionId).toBe(s.sessionId)
    expect(s.b.cookies.get('__Host-AUTH_SESSION_ID')).not.toBe(oldCookie)
    const stale = new Browser()
    stale.cookies.set('__Host-AUTH_SESSION_ID', oldCookie)
    expect(location(await stale.get(authorizeUrl(s.app_id))).pathname).toBe('/page/login')
    expect(signedIn.headers.get('Location')).toBe(returnTo)
    const done = location(await s.b.get(returnTo))
    const code = done.searchParams.get('code')!
    expect(code).toBeTruthy()
    // the code row is bound to the new session (no API shows a code's session)
    const row = await env.DB.prepare('SELECT session_id FROM oidc_codes WHERE user_id = ? ORDER BY created_at DESC LIMIT 1').bind(s.user.id).first<{ session_id: string }>()
    expect(row!.session_id).toBe(sessionId)
    const claims = decodeJwt((await exchange(s, { code, code_verifier: SOME_VERIFIER })).body.id_token)
    expect(claims.sid).toBe(sessionId)
    expect(claims.auth_time as number).toBeGreaterThanOrEqual(Math.floor(before / 1000))
    // the other app is still signed in: its refresh token works
    const refreshed = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: otherTokens.refresh_token! }, other)
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200)
    const audit = await env.DB.prepare("SELECT details FROM audit_logs WHERE action = 'login.succeeded' AND target_id = ? ORDER BY id DESC LIMIT 1").bind(sessionId).first<{ details: string }>()
    expect(JSON.parse(audit!.details)).toMatchObject({ via: 'page', reauthenticated: true })
  })

  it('max_age: a session older than max_age goes through the real login page, a young enough one does not', async () => {
    const s = await setup()
    // An hour-old session cannot be made through the page without a clock: inserted directly.
    const old = new Browser()
    await old.fakeOldSession(s.user.id, Date.now() - 3_600_000)
    expect(location(await old.get(authorizeUrl(s.app_id, { max_age: '7200' }))).searchParams.get('code')).toBeTruthy()

    const login = location(await old.get(authorizeUrl(s.app_id, { max_age: '60', state: 'ma' })))
    expect(login.pathname).toBe('/page/login')
    // the session is live but too old: the page must show the form, not pass through
    expect(login.searchParams.get('prompt')).toBe('login')
    const before = Date.now()
    const { res: signedIn, sessionId } = await old.loginOnPage(s.user, login.pathname + login.search)
    const done = location(await old.get(signedIn.headers.get('Location')!))
    expect(done.searchParams.get('state')).toBe('ma')
    const claims = decodeJwt((await exchange(s, { code: done.searchParams.get('code')!, code_verifier: SOME_VERIFIER })).body.id_token)
    expect(claims.sid).toBe(sessionId)
    expect(claims.auth_time as number).toBeGreaterThanOrEqual(Math.floor(before / 1000))
  })

  it('after three trips to the login page without signing in, the client gets login_required', async () => {
    const { app_id: clientId } = await createOidcApp()
    const b = new Browser()
    let to = location(await b.get(authorizeUrl(clientId, { state: 'loop' })))
    for (let i = 0; i < 2; i++) to = location(await b.get(to.searchParams.get('return_to')!))
    expect(to.pathname).toBe('/page/login')
    const final = location(await b.get(to.searchParams.get('return_to')!))
    expect(final.searchParams.get('error')).toBe('login_required')
    expect(final.searchParams.get('state')).toBe('loop')
  })

  it('the consent page refuses a missing or wrong CSRF token, and Deny sends access_denied', async () => {
    const s = await setup({ first_party: false })
    const consent = location(await s.b.get(authorizeUrl(s.app_id, { state: 'c1' })))
    const html = (await s.b.get(consent.pathname + consent.search)).html
    const requestId = consent.searchParams.get('request_id')!
    const forged = await s.b.post('/page/consent', { request_id: requestId, csrf_token: 'A'.repeat(43), decision: 'allow' })
    expect(forged.status).toBe(403)
    const cookieless = new Browser()
    cookieless.cookies.set('__Host-AUTH_SESSION_ID', s.b.cookies.get('__Host-AUTH_SESSION_ID')!)
    expect((await cookieless.post('/page/consent', { request_id: requestId, csrf_token: csrfFrom(html), decision: 'allow' })).status).toBe(403)

    const denied = await s.b.post('/page/consent', { request_id: requestId, csrf_token: csrfFrom(html), decision: 'deny' })
    const to = location(denied)
    expect(to.searchParams.get('error')).toBe('access_denied')
    expect(to.searchParams.get('state')).toBe('c1')
    // nothing remembered (no API lists consents)
    const consentRow = await env.DB.prepare('SELECT 1 FROM oidc_consents WHERE user_id = ? AND client_id = ?').bind(s.user.id, s.app_id).first()
    expect(consentRow).toBeNull()
    // the request is spent
    expect((await s.b.get(consent.pathname + consent.search)).status).toBe(400)
  })

  /** A sign-in of a third-party app stopped at its consent page, with `change` made while the page is open; `answer` sends the decision. */
  async function changedAtConsent(state: string, change: (s: Awaited<ReturnType<typeof setup>>) => Promise<unknown>) {
    const s = await setup({ first_party: false })
    const consent = location(await s.b.get(authorizeUrl(s.app_id, { state })))
    const html = (await s.b.get(consent.pathname + consent.search)).html
    await change(s)
    return { s, answer: (decision: 'allow' | 'deny') => s.b.post('/page/consent', { request_id: consent.searchParams.get('request_id')!, csrf_token: csrfFrom(html), decision }) }
  }

  it('Deny checks the client again: its redirect URI removed, or the app disabled, since the request means an error page, no redirect', async () => {
    for (const change of ['redirect_uri removed', 'app disabled'] as const) {
      const { answer } = await changedAtConsent('c2', (s) => (change === 'app disabled' ? disableApp(s.app_id) : setAppColumnsInD1(s.app_id, { redirectUris: ['https://elsewhere.example.com/cb'] })))
      const denied = await answer('deny')
      expect(denied.status, change).toBe(400)
      expect(denied.headers.get('Location'), change).toBeNull()
    }
  })

  it('Allow checks the client and the user\'s access again before the consent is kept: nothing recorded when the app was disabled or the mapping removed meanwhile', async () => {
    for (const change of ['app disabled', 'mapping disabled'] as const) {
      const { s, answer } = await changedAtConsent('c3', (s) => (change === 'app disabled' ? disableApp(s.app_id) : updateMapping(s.app_id, s.mappingId, { is_active: false })))
      const allowed = await answer('allow')
      expect(allowed.headers.get('Location') ?? '', change).not.toContain('code=')
      expect(await env.DB.prepare('SELECT 1 FROM oidc_consents WHERE user_id = ? AND client_id = ?').bind(s.user.id, s.app_id).first(), change).toBeNull()
      expect(await auditLog({ action: 'oidc.consent.granted', target_id: s.app_id }), change).toEqual([])
    }
  })

  it('another browser session cannot answer the consent request', async () => {
    const s = await setup({ first_party: false })
    const consent = location(await s.b.get(authorizeUrl(s.app_id)))
    const other = new Browser()
    await other.loginOnPage(s.user)
    const res = await other.get(consent.pathname + consent.search)
    expect(res.status).toBe(302)
    expect(location(res).pathname).toBe('/oauth2/authorize')
  })
})

describe('token endpoint errors', () => {
  it('PKCE: a missing or wrong verifier is invalid_grant and does not burn the code', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const missing = await exchange(s, { code })
    expect(missing.status).toBe(400)
    expect(missing.body).toMatchObject({ error: 'invalid_grant' })
    expect(missing.headers.get('Cache-Control')).toBe('no-store')
    const wrong = await exchange(s, { code, code_verifier: (await pkce()).verifier })
    expect(wrong.body.error).toBe('invalid_grant')
    expect(wrong.body.error_description).toMatch(/does not match/)
    const ok = await exchange(s, { code, code_verifier: verifier })
    expect(ok.status).toBe(200)
  })

  it('a verifier without a challenge is refused (PKCE downgrade)', async () => {
    // a confidential client an admin exempted from PKCE
    const s = await setup({ require_pkce: false })
    const { code } = await getCode(s, { noPkce: true })
    const r = await exchange(s, { code, code_verifier: (await pkce()).verifier })
    expect(r.body.error).toBe('invalid_grant')
    expect((await exchange(s, { code })).status).toBe(200)
  })

  it('code reuse fails and revokes the tokens of the first exchange', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const first = await exchange(s, { code, code_verifier: verifier })
    expect(first.status).toBe(200)
    const introspect = (token: string) => oauthPost('/oauth2/introspect', { token }, s)
    expect((await introspect(first.body.access_token)).body.active).toBe(true)

    const second = await exchange(s, { code, code_verifier: verifier })
    expect(second.status).toBe(400)
    expect(second.body.error).toBe('invalid_grant')
    expect(second.body.error_description).toMatch(/already used/)
    expect((await introspect(first.body.access_token)).body.active).toBe(false)
    expect((await introspect(first.body.refresh_token)).body.active).toBe(false)
    const refresh = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: first.body.refresh_token }, s)
    expect(refresh.body.error).toBe('invalid_grant')
    const userinfo = await SELF.fetch(`${ISSUER}/oauth2/userinfo`, { headers: { Authorization: `Bearer ${first.body.access_token}` } })
    expect(userinfo.status).toBe(401)
    expect(await auditLog({ action: 'oidc.code_reuse_detected', target_id: s.user.id })).toHaveLength(1)
  })

  it('two concurrent exchanges of one code: exactly one wins', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const results = await Promise.all([exchange(s, { code, code_verifier: verifier }), exchange(s, { code, code_verifier: verifier })])
    expect(results.map((r) => r.status).sort()).toEqual([200, 400])
  })

  it('an expired code is invalid_grant', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    // a code past its expiry, without waiting out its lifetime
    await env.DB.prepare('UPDATE oidc_codes SET expires_at = ? WHERE used_at IS NULL AND user_id = ?').bind(Date.now() - 1, s.user.id).run()
    const r = await exchange(s, { code, code_verifier: verifier })
    expect(r.body).toMatchObject({ error: 'invalid_grant', error_description: 'The authorization code has expired' })
  })

  it('redirect_uri must match the authorization request; codes are bound to their client', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    expect((await exchange(s, { code, code_verifier: verifier, redirect_uri: 'https://rp.example.com/other' })).body.error).toBe('invalid_grant')
    expect((await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code, code_verifier: verifier }, s)).body.error).toBe('invalid_request')
    const other = await createOidcApp()
    const stolen = await exchange(other, { code, code_verifier: verifier })
    expect(stolen.body.error).toBe('invalid_grant')
    expect((await exchange(s, { code, code_verifier: verifier })).status).toBe(200)
  })

  it('a wrong client secret is invalid_client, 401 with WWW-Authenticate; the registered method is enforced', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const wrong = await exchange({ ...s, app_secret: s.app_secret + 'x' }, { code, code_verifier: verifier })
    expect(wrong.status).toBe(401)
    expect(wrong.body).toMatchObject({ error: 'invalid_client' })
    expect(wrong.headers.get('WWW-Authenticate')).toMatch(/^Basic/)
    // client_secret_post for a client registered for client_secret_basic
    const post = await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: s.app_id, client_secret: s.app_secret })
    expect(post.status).toBe(401)
    expect(post.body.error_description).toMatch(/client_secret_basic/)
    // no authentication at all
    const none = await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: s.app_id })
    expect(none.status).toBe(401)
    // two methods at once
    const both = await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code, client_secret: s.app_secret }, s)
    expect(both.body.error).toBe('invalid_request')
    const audit = await auditLog({ action: 'oidc.client_auth_failed', target_id: s.app_id })
    expect(audit.length).toBeGreaterThanOrEqual(3)
    // the code survived all of that
    expect((await exchange(s, { code, code_verifier: verifier })).status).toBe(200)
  })

  it('Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1)', async () => {
    const s = await setup({ grant_types: ['authorization_code', 'client_credentials'] })
    // Percent-encode every character, as a form encoder may: the server must decode before comparing.
    const pct = (v: string) => [...v].map((ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')).join('')
    const send = (user: string, pass: string) =>
      SELF.fetch(`${ISSUER}/oauth2/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: 'Basic ' + btoa(`${user}:${pass}`) },
        body: 'grant_type=client_credentials',
      })
    expect((await send(pct(s.app_id), pct(s.app_secret))).status).toBe(200)
    expect((await send(pct(s.app_id), pct(s.app_secret + 'x'))).status).toBe(401)
  })

  it('password and implicit grants are unsupported_grant_type, explained with RFC 9700', async () => {
    const s = await setup()
    const pw = await oauthPost('/oauth2/token', { grant_type: 'password', username: 'u', password: 'p' }, s)
    expect(pw.status).toBe(400)
    expect(pw.body.error).toBe('unsupported_grant_type')
    expect(pw.body.error_description).toMatch(/RFC 9700/)
    const implicit = await oauthPost('/oauth2/token', { grant_type: 'implicit' }, s)
    expect(implicit.body.error).toBe('unsupported_grant_type')
    expect((await oauthPost('/oauth2/token', {}, s)).body.error).toBe('invalid_request')
  })

  it('client_credentials needs a confidential client that registered the grant', async () => {
    const s = await setup()
    expect((await oauthPost('/oauth2/token', { grant_type: 'client_credentials' }, s)).body.error).toBe('unauthorized_client')
    // the admin API refuses such a public client; one stored before that rule is still refused at the token endpoint
    const pub = await createOidcApp({ token_endpoint_auth_method: 'none' })
    await setAppColumnsInD1(pub.app_id, { grantTypes: ['authorization_code', 'client_credentials'] })
    const r = await oauthPost('/oauth2/token', { grant_type: 'client_credentials', client_id: pub.app_id })
    expect(r.body.error).toBe('unauthorized_client')
  })

  it('OAuth errors for wrong content type and repeated parameters', async () => {
    const s = await setup()
    const json = await SELF.fetch(`${ISSUER}/oauth2/token`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"grant_type":"client_credentials"}' })
    expect(json.status).toBe(400)
    expect(await json.json()).toMatchObject({ error: 'invalid_request' })
    const dup = await SELF.fetch(`${ISSUER}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: 'Basic ' + btoa(`${s.app_id}:${s.app_secret}`) },
      body: 'grant_type=authorization_code&code=a&code=b',
    })
    const body = (await dup.json()) as { error: string; error_description: string }
    expect(body.error).toBe('invalid_request')
    expect(body.error_description).toMatch(/code/)
  })

  it('a refresh token only works for the client it was issued to', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const t = (await exchange(s, { code, code_verifier: verifier })).body
    const other = await createOidcApp()
    const r = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token }, other)
    expect(r.body.error).toBe('invalid_grant')
    const ok = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token }, s)
    expect(ok.status).toBe(200)
    expect(ok.body.scope).toBe('offline_access openid')
  })

  it('refresh stops once the user has no active account in the app', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const t = (await exchange(s, { code, code_verifier: verifier })).body
    await updateMapping(s.app_id, s.mappingId, { is_active: false })
    const r = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token }, s)
    expect(r.body.error).toBe('invalid_grant')
  })
})

describe('userinfo, introspection and revocation boundaries', () => {
  it('userinfo without a token is 401 with WWW-Authenticate: Bearer; POST accepts a form access_token', async () => {
    const r = await SELF.fetch(`${ISSUER}/oauth2/userinfo`)
    expect(r.status).toBe(401)
    expect(r.headers.get('WWW-Authenticate')).toMatch(/^Bearer/)
    const s = await setup()
    const { code, verifier } = await getCode(s, { scope: 'openid phone' })
    const t = (await exchange(s, { code, code_verifier: verifier })).body
    const post = await oauthPost('/oauth2/userinfo', { access_token: t.access_token })
    expect(post.status).toBe(200)
    expect(post.body).toMatchObject({ sub: s.user.id, email: `m-${s.user.id.slice(0, 8)}@rp.example.com`, phone_number: s.user.mobile })
    // an API access token (no openid scope) is not enough
    const apiToken = (await login(s.user.mobile, s.user.password)).access_token
    const insufficient = await SELF.fetch(`${ISSUER}/oauth2/userinfo`, { headers: { Authorization: `Bearer ${apiToken}` } })
    expect(insufficient.status).toBe(403)
    expect(insufficient.headers.get('WWW-Authenticate')).toMatch(/insufficient_scope/)
    // the token twice (RFC 6750 §2): the description cites the section in ASCII, in the header too
    const twice = await SELF.fetch(`${ISSUER}/oauth2/userinfo`, { method: 'POST', headers: { Authorization: `Bearer ${t.access_token}`, 'Content-Type': 'application/x-www-form-urlencoded' }, body: `access_token=${t.access_token}` })
    expect(twice.status).toBe(400)
    const header = twice.headers.get('WWW-Authenticate')!
    expect(header).toContain('error_description="Send the access token once (RFC 6750 section 2)"')
    expect(((await twice.json()) as { error_description: string }).error_description).toMatch(OAUTH_TEXT)
  })

  it("introspection says active=false for another client's token, and needs a confidential client", async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const t = (await exchange(s, { code, code_verifier: verifier })).body
    const other = await createOidcApp()
    const r = await oauthPost('/oauth2/introspect', { token: t.access_token }, other)
    expect(r.body).toEqual({ active: false })
    expect((await oauthPost('/oauth2/introspect', { token: 'garbage' }, s)).body).toEqual({ active: false })
    const pub = await createOidcApp({ token_endpoint_auth_method: 'none' })
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token, client_id: pub.app_id })).status).toBe(401)
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token })).status).toBe(401)
  })

  it("revocation answers 200 for unknown tokens and leaves another client's tokens alone", async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const t = (await exchange(s, { code, code_verifier: verifier })).body
    const other = await createOidcApp()
    const o = other
    expect((await oauthPost('/oauth2/revoke', { token: t.refresh_token }, o)).status).toBe(200)
    expect((await oauthPost('/oauth2/revoke', { token: t.access_token, token_type_hint: 'access_token' }, o)).status).toBe(200)
    expect((await oauthPost('/oauth2/revoke', { token: 'rt_unknown' }, s)).status).toBe(200)
    expect((await oauthPost('/oauth2/introspect', { token: t.refresh_token }, s)).body.active).toBe(true)
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token }, s)).body.active).toBe(true)
    expect((await oauthPost('/oauth2/revoke', { token: t.refresh_token }, { ...s, app_secret: 'wrong' })).status).toBe(401)
  })
})

describe('end_session', () => {
  it('without id_token_hint the user confirms on a CSRF-protected page first', async () => {
    const s = await setup()
    const page = await s.b.get(`/oauth2/end_session?client_id=${s.app_id}&post_logout_redirect_uri=${encodeURIComponent(POST_LOGOUT)}&state=s9`)
    expect(page.status).toBe(200)
    const html = page.html
    expect(html).toContain('Sign out of UAP Edge?')
    // still signed in until confirmed
    expect(location(await s.b.get(authorizeUrl(s.app_id))).searchParams.get('code')).toBeTruthy()
    expect((await s.b.post('/oauth2/end_session', { csrf_token: 'B'.repeat(43), confirm: 'yes' })).status).toBe(403)
    const done = await s.b.post('/oauth2/end_session', { csrf_token: csrfFrom(html), confirm: 'yes', client_id: s.app_id, post_logout_redirect_uri: POST_LOGOUT, state: 's9' })
    expect(done.status).toBe(302)
    expect(location(done).href).toBe(`${POST_LOGOUT}?state=s9`)
    const session = await env.DB.prepare('SELECT revoked_at FROM sessions WHERE id = ?').bind(s.sessionId).first<{ revoked_at: number | null }>()
    expect(session!.revoked_at).not.toBeNull()
  })

  it("someone else's id_token_hint does not sign this browser out without confirmation", async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const idToken = (await exchange(s, { code, code_verifier: verifier })).body.id_token
    const other = new Browser()
    const otherUser = await createUser()
    await other.loginOnPage(otherUser)
    const r = await other.get(`/oauth2/end_session?id_token_hint=${idToken}`)
    expect(r.status).toBe(200)
    expect(r.html).toContain('Sign out of UAP Edge?')
  })

  it('refuses unregistered post_logout_redirect_uri and mismatched or forged hints with an error page', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const t = (await exchange(s, { code, code_verifier: verifier })).body
    const idToken = t.id_token as string
    const bad = await s.b.get(`/oauth2/end_session?id_token_hint=${idToken}&post_logout_redirect_uri=${encodeURIComponent('https://evil.example.com/')}`)
    expect(bad.status).toBe(400)
    expect(bad.headers.get('Location')).toBeNull()
    const noClient = await s.b.get(`/oauth2/end_session?post_logout_redirect_uri=${encodeURIComponent(POST_LOGOUT)}`)
    expect(noClient.status).toBe(400)
    const other = await createOidcApp()
    expect((await s.b.get(`/oauth2/end_session?id_token_hint=${idToken}&client_id=${other.app_id}`)).status).toBe(400)
    const [h, p] = idToken.split('.')
    expect((await s.b.get(`/oauth2/end_session?id_token_hint=${h}.${p}.AAAA`)).status).toBe(400)
    // an access token is not an ID token
    expect((await s.b.get(`/oauth2/end_session?id_token_hint=${t.access_token}`)).status).toBe(400)
    // the session is untouched by all of that
    expect(decodeJwt(idToken).sid).toBe(s.sessionId)
    const session = await env.DB.prepare('SELECT revoked_at FROM sessions WHERE id = ?').bind(s.sessionId).first<{ revoked_at: number | null }>()
    expect(session!.revoked_at).toBeNull()
  })

  it('a hint signed by a key no longer published names its client but vouches for nobody: the user confirms, then goes to the registered URI', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const claims = decodeJwt((await exchange(s, { code, code_verifier: verifier })).body.id_token)
    // what an RP holds after the key that signed its sign-in left the JWKS (an hour after its successor took over)
    const { privateKey } = await generateKeyPair('ES256')
    const retired = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'retired-key' }).sign(privateKey)
    const page = await s.b.get(`/oauth2/end_session?id_token_hint=${retired}&post_logout_redirect_uri=${encodeURIComponent(POST_LOGOUT)}&state=r1`)
    expect(page.status).toBe(200)
    expect(page.html).toContain('Sign out of UAP Edge?')
    const session = () => env.DB.prepare('SELECT revoked_at FROM sessions WHERE id = ?').bind(s.sessionId).first<{ revoked_at: number | null }>()
    expect((await session())!.revoked_at).toBeNull()
    const done = await s.b.post('/oauth2/end_session', { csrf_token: csrfFrom(page.html), confirm: 'yes', client_id: s.app_id, post_logout_redirect_uri: POST_LOGOUT, state: 'r1' })
    expect(done.status).toBe(302)
    expect(location(done).href).toBe(`${POST_LOGOUT}?state=r1`)
    expect((await session())!.revoked_at).not.toBeNull()
    // it still names one client only: not a redirect URI of another, not another issuer's token
    const other = await createOidcApp()
    expect((await s.b.get(`/oauth2/end_session?id_token_hint=${retired}&client_id=${other.app_id}`)).status).toBe(400)
    const foreign = await new SignJWT({ ...claims, iss: 'https://other.example.com' }).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'retired-key' }).sign(privateKey)
    expect((await s.b.get(`/oauth2/end_session?id_token_hint=${foreign}`)).status).toBe(400)
    // one anybody can make with no audience is no ID token: an error page, not a 500
    const { aud: _aud, ...noAud } = claims
    const forged = await new SignJWT(noAud).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'retired-key' }).sign(privateKey)
    const refused = await s.b.get(`/oauth2/end_session?id_token_hint=${forged}`)
    expect(refused.status).toBe(400)
    expect(refused.html).toContain('<html')
    // a disabled app's registered URI is not followed
    await disableApp(s.app_id)
    expect((await s.b.get(`/oauth2/end_session?id_token_hint=${retired}&post_logout_redirect_uri=${encodeURIComponent(POST_LOGOUT)}`)).status).toBe(400)
    expect((await s.b.get(`/oauth2/end_session?client_id=${s.app_id}&post_logout_redirect_uri=${encodeURIComponent(POST_LOGOUT)}`)).status).toBe(400)
  })

  it('without a redirect URI shows a signed-out page', async () => {
    const s = await setup()
    const { code, verifier } = await getCode(s)
    const idToken = (await exchange(s, { code, code_verifier: verifier })).body.id_token
    const r = await s.b.get(`/oauth2/end_session?id_token_hint=${idToken}`)
    expect(r.status).toBe(200)
    expect(r.html).toContain('You are signed out')
  })
})

describe('discovery and docs', () => {
  it('publishes exactly what is supported', async () => {
    const r = await api('/.well-known/openid-configuration')
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({
      issuer: ISSUER,
      authorization_endpoint: `${ISSUER}/oauth2/authorize`,
      token_endpoint: `${ISSUER}/oauth2/token`,
      userinfo_endpoint: `${ISSUER}/oauth2/userinfo`,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      revocation_endpoint: `${ISSUER}/oauth2/revoke`,
      introspection_endpoint: `${ISSUER}/oauth2/introspect`,
      end_session_endpoint: `${ISSUER}/oauth2/end_session`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['ES256'],
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
      backchannel_logout_supported: true,
      backchannel_logout_session_supported: true,
      prompt_values_supported: ['none', 'login', 'consent'],
    })
    expect(r.body.scopes_supported).toEqual(['openid', 'profile', 'email', 'phone', 'offline_access', 'groups', 'permissions'])
    expect(r.body.claims_supported).toEqual(expect.arrayContaining(['groups', 'permissions']))
    expect(r.body.grant_types_supported).not.toContain('password')
    expect(r.body.grant_types_supported).not.toContain('implicit')
  })

  it('each issuer gets its own document (the text is kept per issuer)', async () => {
    const other = 'https://id.other.example'
    for (const issuer of [other, ISSUER, other]) {
      const r = issuer === ISSUER ? await api('/.well-known/openid-configuration') : await api('/.well-known/openid-configuration', { env: { ISSUER: issuer } })
      expect(r.status).toBe(200)
      expect(r.body.issuer).toBe(issuer)
      expect(r.body.token_endpoint).toBe(`${issuer}/oauth2/token`)
      expect(r.body.service_documentation).toBe(`${issuer}/docs/open`)
    }
  })

  it('answers CORS preflights for browser-based clients', async () => {
    const r = await SELF.fetch(`${ISSUER}/oauth2/token`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://spa.example.com', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    })
    expect(r.status).toBe(204)
    expect(r.headers.get('Access-Control-Allow-Origin')).toBe('*')
    expect(r.headers.get('Access-Control-Allow-Methods')).toContain('POST')
  })

  it('/docs/open lists the OIDC endpoints; the consent page stays out of it', async () => {
    const doc = (await api('/docs/open/openapi.json')).body
    for (const p of ['/.well-known/openid-configuration', '/oauth2/authorize', '/oauth2/token', '/oauth2/userinfo', '/oauth2/revoke', '/oauth2/introspect', '/oauth2/end_session']) {
      expect(doc.paths[p], p).toBeDefined()
    }
    expect(doc.paths['/page/consent']).toBeUndefined()
    expect(doc.components.securitySchemes.clientBasic).toMatchObject({ type: 'http', scheme: 'basic' })
  })
})
