import { describe, expect, it } from 'vitest'
import { api, appLogin, createUser, env, login } from './helpers'
import { Browser, REDIRECT, authorizeThrough, createOidcApp, mapUser, oauthPost, pkce } from './oidc-helpers'

/** Signs the browser's user into an OIDC app with the code flow (scope as given) and returns its tokens. */
async function codeFlow(b: Browser, app: { clientId: string; secret: string }, scope: string) {
  const { verifier, challenge } = await pkce()
  const q = new URLSearchParams({ client_id: app.clientId, redirect_uri: REDIRECT, response_type: 'code', scope, code_challenge: challenge, code_challenge_method: 'S256' })
  const callback = await authorizeThrough(b, `/oauth2/authorize?${q}`)
  const r = await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code: callback.searchParams.get('code')!, code_verifier: verifier, redirect_uri: REDIRECT }, { id: app.clientId, secret: app.secret })
  expect(r.status).toBe(200)
  return r.body as { access_token: string; refresh_token?: string; id_token: string }
}

describe('UAP Edge API and OAuth client access tokens', () => {
  it('an access token an OIDC client got with scope openid cannot read the full profile or sign the user out everywhere', async () => {
    const app = await createOidcApp({ firstParty: true })
    const user = await createUser({ name: 'Scoped Only' })
    await mapUser(app.clientId, user.id, `s-${user.id.slice(0, 8)}`)
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
    const app = await createOidcApp()
    const user = await createUser()
    const plain = await login(user.mobile, user.password)
    expect((await api('/api/v1/auth/me', { token: plain.access_token })).status).toBe(200)
    await mapUser(app.clientId, user.id, `me-${crypto.randomUUID().slice(0, 8)}`)
    const forApp = await appLogin({ appId: app.clientId, secret: app.secret }, user.mobile, user.password)
    const me = await api('/api/v1/auth/me', { token: forApp.access_token })
    expect(me.status).toBe(401)
    expect(me.body.error.code).toBe('invalid_token')
    expect((await api('/api/v1/auth/logout-all', { method: 'POST', token: forApp.access_token })).status).toBe(401)
    // the same user's first-party session is untouched
    expect((await api('/api/v1/auth/me', { token: plain.access_token })).status).toBe(200)
  })
})

describe('revocation (RFC 7009 §2.1)', () => {
  it('revoking a refresh token also cuts off the access token issued with the code of its grant (docs/oidc.md)', async () => {
    const app = await createOidcApp({ firstParty: true, grantTypes: ['authorization_code', 'refresh_token'] })
    const user = await createUser()
    await mapUser(app.clientId, user.id, `r-${user.id.slice(0, 8)}`)
    const b = new Browser()
    await b.loginOnPage(user)
    const t = await codeFlow(b, app, 'openid offline_access')
    expect(t.refresh_token).toBeTruthy()
    const basic = { id: app.clientId, secret: app.secret }
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token }, basic)).body.active).toBe(true)

    expect((await oauthPost('/oauth2/revoke', { token: t.refresh_token!, token_type_hint: 'refresh_token' }, basic)).status).toBe(200)
    expect((await oauthPost('/oauth2/introspect', { token: t.refresh_token! }, basic)).body.active).toBe(false)
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token }, basic)).body.active).toBe(false)
    expect((await api('/oauth2/userinfo', { token: t.access_token })).status).toBe(401)
  })
})

describe('access tokens and the session they belong to', () => {
  it('an access token of an expired session is refused, as introspection already says', async () => {
    const user = await createUser()
    const t = await login(user.mobile, user.password)
    expect((await api('/api/v1/auth/me', { token: t.access_token })).status).toBe(200)
    const sid = JSON.parse(atob(t.access_token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sid as string
    await env.DB.prepare('UPDATE sessions SET expires_at = ? WHERE id = ?').bind(Date.now() - 1000, sid).run()
    const r = await api('/api/v1/auth/me', { token: t.access_token })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('invalid_token')
  })
})
