import { describe, expect, it } from 'vitest'
import { adminToken, api, createUser } from './support/api'
import { createOidcApp, mapUser } from './support/apps'
import { Browser, location } from './support/browser'
import { REDIRECT, authorizeThrough, oauthPost, pkce } from './support/oidc'

// Client rules of issue 9: PKCE for every client unless an admin exempts a confidential one;
// public clients with loopback redirects always see consent (RFC 8252 §8.6).

async function signedIn(app: { app_id: string }) {
  const user = await createUser()
  await mapUser(app.app_id, user, { mappedKey: `c-${user.id.slice(0, 8)}` })
  const b = new Browser()
  await b.loginOnPage(user)
  return b
}

const authorize = (clientId: string, redirectUri: string, extra: Record<string, string> = {}) =>
  `/oauth2/authorize?${new URLSearchParams({ client_id: clientId, redirect_uri: redirectUri, response_type: 'code', scope: 'openid', state: 'st', ...extra })}`

describe('PKCE is required by default', () => {
  it('a confidential client without code_challenge gets invalid_request, with PKCE a code', async () => {
    const app = await createOidcApp({ first_party: true })
    const b = await signedIn(app)
    const refused = location(await b.get(authorize(app.app_id, REDIRECT)))
    expect(refused.searchParams.get('error')).toBe('invalid_request')
    expect(refused.searchParams.get('error_description')).toMatch(/PKCE/)
    expect(refused.searchParams.get('state')).toBe('st')
    const { challenge } = await pkce()
    const ok = location(await b.get(authorize(app.app_id, REDIRECT, { code_challenge: challenge, code_challenge_method: 'S256' })))
    expect(ok.searchParams.get('code')).toBeTruthy()
  })

  it('an admin may exempt a confidential client (require_pkce false), never a public one', async () => {
    const token = await adminToken()
    const created = await api('/api/v1/admin/apps', { method: 'POST', token, json: { app_name: 'Legacy RP', protocol_type: 'OIDC', redirect_uris: [REDIRECT], first_party: true } })
    expect(created.status).toBe(201)
    expect(created.body.app.require_pkce).toBe(true)
    const clientId = created.body.app_id as string
    const exempt = await api(`/api/v1/admin/apps/${clientId}`, { method: 'PATCH', token, json: { require_pkce: false } })
    expect(exempt.status).toBe(200)
    expect(exempt.body.require_pkce).toBe(false)
    const b = await signedIn(created.body)
    const callback = await authorizeThrough(b, authorize(clientId, REDIRECT))
    const code = callback.searchParams.get('code')!
    expect(code).toBeTruthy()
    expect((await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT }, created.body)).status).toBe(200)

    const pub = await api(`/api/v1/admin/apps/${clientId}`, { method: 'PATCH', token, json: { token_endpoint_auth_method: 'none' } })
    expect(pub.status).toBe(400)
    expect(pub.body.error.message).toMatch(/require_pkce/)
    const pubCreate = await api('/api/v1/admin/apps', { method: 'POST', token, json: { app_name: 'SPA', protocol_type: 'OIDC', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', require_pkce: false } })
    expect(pubCreate.status).toBe(400)
  })
})

describe('loopback redirects of public clients', () => {
  const LOOPBACK = 'http://127.0.0.1:53682/callback'

  it('always show the consent page, even for a first-party client the user already consented to', async () => {
    const app = await createOidcApp({ first_party: true, token_endpoint_auth_method: 'none', redirect_uris: [LOOPBACK, REDIRECT] })
    const b = await signedIn(app)
    const { challenge } = await pkce()
    const pk = { code_challenge: challenge, code_challenge_method: 'S256' }
    // the same client on its https redirect: first-party, no consent page
    expect(location(await b.get(authorize(app.app_id, REDIRECT, pk))).searchParams.get('code')).toBeTruthy()
    for (let i = 0; i < 2; i++) {
      const to = location(await b.get(authorize(app.app_id, LOOPBACK, pk)))
      expect(to.pathname).toBe('/page/consent')
      const callback = await authorizeThrough(b, to.pathname + to.search)
      expect(callback.origin + callback.pathname).toBe(LOOPBACK)
      expect(callback.searchParams.get('code')).toBeTruthy()
    }
  })

  it('a confidential client on a loopback redirect authenticates at the token endpoint, so first-party skips consent as usual', async () => {
    const app = await createOidcApp({ first_party: true, redirect_uris: [LOOPBACK] })
    const b = await signedIn(app)
    const { challenge } = await pkce()
    expect(location(await b.get(authorize(app.app_id, LOOPBACK, { code_challenge: challenge, code_challenge_method: 'S256' }))).searchParams.get('code')).toBeTruthy()
  })

  it('a native app registered on http://127.0.0.1/callback signs in on whatever port it listens on (RFC 8252 §7.3)', async () => {
    const app = await createOidcApp({ first_party: true, token_endpoint_auth_method: 'none', redirect_uris: ['http://127.0.0.1/callback'] })
    const b = await signedIn(app)
    const { verifier, challenge } = await pkce()
    const onPort = 'http://127.0.0.1:49152/callback'
    const callback = await authorizeThrough(b, authorize(app.app_id, onPort, { code_challenge: challenge, code_challenge_method: 'S256' }))
    expect(callback.origin + callback.pathname).toBe(onPort)
    const t = await oauthPost('/oauth2/token', { grant_type: 'authorization_code', client_id: app.app_id, code: callback.searchParams.get('code')!, code_verifier: verifier, redirect_uri: onPort })
    expect(t.status, JSON.stringify(t.body)).toBe(200)
    // only the port is free: another path or host is still unregistered (an error page, no redirect)
    for (const other of ['http://127.0.0.1:49152/other', 'http://127.0.0.2:49152/callback']) {
      const r = await b.get(authorize(app.app_id, other, { code_challenge: challenge, code_challenge_method: 'S256' }))
      expect(r.status, other).toBe(400)
    }
  })
})
