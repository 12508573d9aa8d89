import { describe, expect, it } from 'vitest'
import * as client from 'openid-client'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { env } from 'cloudflare:test'
import { api, createUser } from './support/api'
import { createOidcApp, mapUser } from './support/apps'
import { Browser, csrfFrom, inputValue, location } from './support/browser'
import { POST_LOGOUT, REDIRECT, authorizeThrough, codeFlow, discover, oauthPost, pkce } from './support/oidc'

describe('OIDC flow driven by openid-client (certified RP library)', () => {
  it('discovery → code + PKCE → consent → tokens → userinfo → refresh → introspection → revocation → end_session', async () => {
    const { app_id: clientId, app_secret: secret } = await createOidcApp()
    const user = await createUser({ name: 'Li Lei' })
    await mapUser(clientId, user, { mappedKey: `lilei.${user.id.slice(0, 8)}@rp.example.com` })
    const config = await discover(clientId, client.ClientSecretBasic(secret))
    expect(config.serverMetadata().issuer).toBe('http://localhost')

    const { verifier, challenge } = await pkce()
    const nonce = client.randomNonce()
    const state = client.randomState()
    const authUrl = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT,
      scope: 'openid profile email offline_access',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      nonce,
      state,
    })

    // Not signed in: off to the hosted login page, with a way back.
    const b = new Browser()
    const first = await b.get(authUrl.href)
    expect(first.status).toBe(302)
    const login = location(first)
    expect(login.pathname).toBe('/page/login')
    const returnTo = login.searchParams.get('return_to')!
    expect(returnTo).toMatch(/^\/oauth2\/authorize\?request_id=[A-Za-z0-9_-]{43}$/)

    // The real hosted login page: GET the form (CSRF cookie + the same value in the hidden
    // field, return_to carried along), POST it, and land back on the authorization endpoint.
    const form = await b.get(login.pathname + login.search)
    expect(form.status).toBe(200)
    const formHtml = form.html
    const csrf = csrfFrom(formHtml)
    expect(b.cookies.get('__Host-uap_csrf')).toBe(csrf)
    expect(inputValue(formHtml, 'return_to')).toBe(returnTo)
    const wrong = await b.post('/page/login', { csrf_token: csrf, mobile: user.mobile, password: 'not-the-password', return_to: returnTo, step: 'login' })
    expect(wrong.status).toBe(401)
    expect(b.cookies.has('__Host-AUTH_SESSION_ID')).toBe(false)
    const signedIn = await b.post('/page/login', { csrf_token: csrf, mobile: user.mobile, password: user.password, return_to: returnTo, step: 'login' })
    expect(signedIn.status).toBe(303)
    expect(signedIn.headers.get('Location')).toBe(returnTo)
    expect(b.cookies.get('__Host-AUTH_SESSION_ID')).toBeTruthy()
    const sessionId = await b.sessionId()
    const signedInAt = Date.now()

    const back = await b.get(signedIn.headers.get('Location')!)
    expect(back.status).toBe(302)
    const consentUrl = location(back)
    expect(consentUrl.pathname).toBe('/page/consent')

    // The consent page names the app, shows its icon and the scopes, and carries a CSRF token.
    const page = await b.get(consentUrl.pathname + consentUrl.search)
    expect(page.status).toBe(200)
    expect(page.headers.get('Content-Type')).toMatch(/text\/html/)
    expect(page.headers.get('X-Frame-Options')).toBe('DENY')
    const html = page.html
    expect(html).toContain('Reporting Portal')
    expect(html).toContain('https://rp.example.com/icon.png')
    expect(html).toContain('Your email address')
    expect(html).toContain('rp.example.com')
    expect(b.cookies.get('__Host-uap_csrf')).toMatch(/^[A-Za-z0-9_-]{43}$/)

    const callback = await authorizeThrough(b, consentUrl)
    expect(callback.origin + callback.pathname).toBe(REDIRECT)
    expect(callback.searchParams.get('state')).toBe(state)
    expect(callback.searchParams.get('iss')).toBe('http://localhost')

    // The library validates the ID token (signature via JWKS, iss, aud, exp, nonce) and the iss parameter.
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true })
    const claims = tokens.claims()!
    expect(claims.sub).toBe(user.id)
    expect(claims.aud).toBe(clientId)
    expect(claims.nonce).toBe(nonce)
    expect(claims.sid).toBe(sessionId)
    expect(claims.email).toBe(`lilei.${user.id.slice(0, 8)}@rp.example.com`)
    // auth_time is the page sign-in just now (seconds)
    expect(Math.abs(claims.auth_time! - signedInAt / 1000)).toBeLessThan(30)
    expect(claims.at_hash).toMatch(/^[A-Za-z0-9_-]{22}$/)
    expect(decodeProtectedHeader(tokens.id_token!).alg).toBe('ES256')
    expect(tokens.token_type).toBe('bearer')
    expect(tokens.scope?.split(' ').sort()).toEqual(['email', 'offline_access', 'openid', 'profile'])
    expect(tokens.refresh_token).toMatch(/^rt_/)
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: user.id, aud: clientId, client_id: clientId, sid: sessionId })

    const info = await client.fetchUserInfo(config, tokens.access_token, user.id)
    expect(info).toMatchObject({ sub: user.id, email: claims.email, name: 'Li Lei' })
    expect(typeof info.updated_at).toBe('number')

    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!)
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token)
    expect(refreshed.access_token).not.toBe(tokens.access_token)

    const introAccess = await client.tokenIntrospection(config, refreshed.access_token)
    expect(introAccess).toMatchObject({ active: true, client_id: clientId, sub: user.id, token_type: 'Bearer' })
    expect(introAccess.scope?.split(' ')).toContain('openid')
    const introRefresh = await client.tokenIntrospection(config, refreshed.refresh_token!)
    expect(introRefresh).toMatchObject({ active: true, client_id: clientId, sub: user.id })

    // Revoking the refresh token kills its family; revoking the access token denies it at once.
    await client.tokenRevocation(config, refreshed.refresh_token!)
    expect((await client.tokenIntrospection(config, refreshed.refresh_token!)).active).toBe(false)
    await expect(client.refreshTokenGrant(config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' })
    await client.tokenRevocation(config, refreshed.access_token)
    expect((await client.tokenIntrospection(config, refreshed.access_token)).active).toBe(false)
    await expect(client.fetchUserInfo(config, refreshed.access_token, user.id)).rejects.toBeDefined()
    expect((await api('/api/v1/auth/me', { token: refreshed.access_token })).status).toBe(401)
    // Revoking the refresh token also cut off the access token the code exchange issued (RFC 7009 §2.1, docs/oidc.md).
    expect((await client.tokenIntrospection(config, tokens.access_token)).active).toBe(false)

    // RP-initiated logout with id_token_hint: no confirmation, back to the registered URI with state.
    const endUrl = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: POST_LOGOUT, state: 'bye-state' })
    const end = await b.get(endUrl.href)
    expect(end.status).toBe(302)
    expect(location(end).href).toBe(`${POST_LOGOUT}?state=bye-state`)
    expect(b.cookies.has('__Host-AUTH_SESSION_ID')).toBe(false)
    // The session is over: its tokens are dead and the next authorization needs a sign-in.
    expect((await client.tokenIntrospection(config, tokens.access_token)).active).toBe(false)
    const again = await b.get(authUrl.href)
    expect(location(again).pathname).toBe('/page/login')
  })

  it('remembers consent per user and app; a first-party app never asks; prompt=consent asks again', async () => {
    const { app_id: clientId, app_secret: secret } = await createOidcApp()
    const user = await createUser()
    await mapUser(clientId, user, { mappedKey: `u-${user.id.slice(0, 8)}@rp.example.com` })
    const config = await discover(clientId, client.ClientSecretBasic(secret))
    const b = new Browser()
    await b.loginOnPage(user)
    const params = async (extra: Record<string, string> = {}) => {
      const { challenge } = await pkce()
      return client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid email', code_challenge: challenge, code_challenge_method: 'S256', ...extra })
    }
    const first = await b.get((await params()).href)
    expect(location(first).pathname).toBe('/page/consent')
    await authorizeThrough(b, location(first))
    const row = await env.DB.prepare('SELECT scope FROM oidc_consents WHERE user_id = ? AND client_id = ?').bind(user.id, clientId).first<{ scope: string }>()
    expect(row!.scope).toBe('email openid')

    const second = await b.get((await params()).href)
    expect(location(second).origin + location(second).pathname).toBe(REDIRECT)
    expect(location(second).searchParams.get('code')).toBeTruthy()

    // More scopes than granted: asks again.
    const wider = await b.get((await params({ scope: 'openid email phone' })).href)
    expect(location(wider).pathname).toBe('/page/consent')

    const forced = await b.get((await params({ prompt: 'consent' })).href)
    expect(location(forced).pathname).toBe('/page/consent')

    const fp = await createOidcApp({ first_party: true })
    await mapUser(fp.app_id, user, { mappedKey: `fp-${user.id.slice(0, 8)}@rp.example.com` })
    const fpConfig = await discover(fp.app_id, client.ClientSecretBasic(fp.app_secret))
    const { challenge } = await pkce()
    const direct = await b.get(client.buildAuthorizationUrl(fpConfig, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' }).href)
    expect(location(direct).searchParams.get('code')).toBeTruthy()
  })

  it('public client: PKCE with auth method none, the mapped claim as preferred_username', async () => {
    const { app_id: clientId } = await createOidcApp({ token_endpoint_auth_method: 'none', id_token_claim: 'preferred_username', first_party: true })
    const user = await createUser()
    await mapUser(clientId, user, { mappedKey: `user_${user.id.slice(0, 6)}` })
    const config = await discover(clientId, client.None())
    const b = new Browser()
    await b.loginOnPage(user)
    const { verifier, challenge } = await pkce()
    const nonce = client.randomNonce()
    const callback = await authorizeThrough(
      b,
      client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid profile', code_challenge: challenge, code_challenge_method: 'S256', nonce }),
    )
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce })
    expect(tokens.claims()!.preferred_username).toBe(`user_${user.id.slice(0, 6)}`)
    expect(tokens.claims()!.email).toBeUndefined()
    // no offline_access requested: no refresh token
    expect(tokens.refresh_token).toBeUndefined()
    const info = await client.fetchUserInfo(config, tokens.access_token, user.id)
    expect(info.preferred_username).toBe(`user_${user.id.slice(0, 6)}`)
  })

  it('client_secret_post and client_credentials', async () => {
    const { app_id: clientId, app_secret: secret } = await createOidcApp({ token_endpoint_auth_method: 'client_secret_post', grant_types: ['authorization_code', 'refresh_token', 'client_credentials'], first_party: true })
    const config = await discover(clientId, client.ClientSecretPost(secret))
    const cc = await client.clientCredentialsGrant(config)
    expect(cc.refresh_token).toBeUndefined()
    expect(decodeJwt(cc.access_token)).toMatchObject({ sub: clientId, client_id: clientId, aud: clientId })
    const intro = await client.tokenIntrospection(config, cc.access_token)
    expect(intro).toMatchObject({ active: true, sub: clientId, client_id: clientId })
    // a client token is not a user token: userinfo refuses it
    await expect(client.fetchUserInfo(config, cc.access_token, clientId)).rejects.toBeDefined()

    const user = await createUser()
    await mapUser(clientId, user, { mappedKey: `post-${user.id.slice(0, 8)}@rp.example.com` })
    const b = new Browser()
    await b.loginOnPage(user)
    const { verifier, challenge } = await pkce()
    const callback = await authorizeThrough(b, client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' }))
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier })
    expect(tokens.claims()!.sub).toBe(user.id)
  })
})

describe('revocation (RFC 7009 §2.1)', () => {
  it('revoking a refresh token also cuts off the access token issued with the code of its grant (docs/oidc.md)', async () => {
    const app = await createOidcApp({ first_party: true, grant_types: ['authorization_code', 'refresh_token'] })
    const user = await createUser()
    await mapUser(app.app_id, user, { mappedKey: `r-${user.id.slice(0, 8)}` })
    const b = new Browser()
    await b.loginOnPage(user)
    const t = await codeFlow(b, app, 'openid offline_access')
    expect(t.refresh_token).toBeTruthy()
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token }, app)).body.active).toBe(true)

    expect((await oauthPost('/oauth2/revoke', { token: t.refresh_token!, token_type_hint: 'refresh_token' }, app)).status).toBe(200)
    expect((await oauthPost('/oauth2/introspect', { token: t.refresh_token! }, app)).body.active).toBe(false)
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token }, app)).body.active).toBe(false)
    expect((await api('/oauth2/userinfo', { token: t.access_token })).status).toBe(401)
  })

  it('revoking an access token refuses it at once at userinfo and introspection; the grant and its other tokens keep working', async () => {
    const app = await createOidcApp({ first_party: true, grant_types: ['authorization_code', 'refresh_token'] })
    const user = await createUser()
    await mapUser(app.app_id, user, { mappedKey: `a-${user.id.slice(0, 8)}` })
    const b = new Browser()
    await b.loginOnPage(user)
    const t = await codeFlow(b, app, 'openid offline_access')
    const next = (await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token! }, app)).body
    expect(next.access_token).toBeTruthy()

    expect((await oauthPost('/oauth2/revoke', { token: t.access_token, token_type_hint: 'access_token' }, app)).status).toBe(200)
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token }, app)).body).toEqual({ active: false })
    const refused = await api('/oauth2/userinfo', { token: t.access_token })
    expect(refused.status).toBe(401)
    expect(refused.headers.get('WWW-Authenticate')).toContain('invalid_token')
    expect((await api('/oauth2/userinfo', { token: next.access_token })).status).toBe(200)
    expect((await oauthPost('/oauth2/introspect', { token: next.refresh_token }, app)).body.active).toBe(true)

    // on the D1 denylist (read by the session query itself) with its audit row, until the token's exp
    const jti = decodeJwt(t.access_token).jti!
    const row = await env.DB.prepare('SELECT expires_at FROM revoked_access_tokens WHERE jti = ?').bind(jti).first<{ expires_at: number }>()
    expect(row!.expires_at).toBeGreaterThan(Date.now())
    expect(await env.DB.prepare("SELECT 1 AS x FROM audit_logs WHERE action = 'oidc.token_revoked' AND target_id = ?").bind(jti).first()).not.toBeNull()
  })
  it("revoking a client's own token (client_credentials, no session) makes it inactive at introspection; a fresh one stays active", async () => {
    const app = await createOidcApp({ first_party: true, grant_types: ['authorization_code', 'client_credentials'] })
    const mint = async () => {
      const r = await oauthPost('/oauth2/token', { grant_type: 'client_credentials' }, app)
      expect(r.status).toBe(200)
      return r.body.access_token as string
    }
    const [revoked, kept] = [await mint(), await mint()]
    expect(decodeJwt(revoked).sid).toBeUndefined()
    expect((await oauthPost('/oauth2/introspect', { token: revoked }, app)).body.active).toBe(true)
    expect((await oauthPost('/oauth2/revoke', { token: revoked, token_type_hint: 'access_token' }, app)).status).toBe(200)
    expect((await oauthPost('/oauth2/introspect', { token: revoked }, app)).body).toEqual({ active: false })
    expect((await oauthPost('/oauth2/introspect', { token: kept }, app)).body).toMatchObject({ active: true, client_id: app.app_id, sub: app.app_id })
  })
})
