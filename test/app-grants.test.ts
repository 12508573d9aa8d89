import { describe, expect, it } from 'vitest'
import * as client from 'openid-client'
import { decodeJwt } from 'jose'
import { api, adminToken, createUser } from './support/api'
import { Browser } from './support/browser'
import { REDIRECT, authorizeThrough, discover, oauthPost, pkce } from './support/oidc'

// Every grant the discovery document lists must be registrable through the admin API and
// then work at the token endpoint. Apps here are made with POST /api/v1/admin/apps, never
// with the service helper.

const base = '/api/v1/admin/apps'

async function register(token: string, body: Record<string, unknown>) {
  return api(base, { method: 'POST', token, json: { app_name: 'Grants', protocol_type: 'OIDC', ...body } })
}

describe('grant_types through the admin API', () => {
  it('an app registered with every grant of the discovery document uses each of them', async () => {
    const admin = await adminToken()
    const discovery = await api('/.well-known/openid-configuration')
    const grants = discovery.body.grant_types_supported as string[]
    expect(grants).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token', 'client_credentials']))

    const created = await register(admin, { grant_types: grants, redirect_uris: [REDIRECT], first_party: true })
    expect(created.status, JSON.stringify(created.body)).toBe(201)
    expect(created.body.app.grant_types).toEqual(grants)
    expect(created.body.app.response_types).toEqual(['code'])
    const clientId = created.body.app_id as string
    const secret = created.body.app_secret as string
    const basic = { app_id: clientId, app_secret: secret }

    // client_credentials
    const cc = await oauthPost('/oauth2/token', { grant_type: 'client_credentials' }, basic)
    expect(cc.status, JSON.stringify(cc.body)).toBe(200)
    expect(decodeJwt(cc.body.access_token)).toMatchObject({ sub: clientId, client_id: clientId })
    expect(cc.body.refresh_token).toBeUndefined()

    // authorization_code, for a user mapped with the admin mapping API
    const user = await createUser()
    const mapped = await api(`${base}/${clientId}/mappings`, { method: 'POST', token: admin, json: { mobile: user.mobile, mapped_key: `grants-${user.id.slice(0, 8)}` } })
    expect(mapped.status).toBe(201)
    const config = await discover(clientId, client.ClientSecretBasic(secret))
    const b = new Browser()
    await b.loginOnPage(user)
    const { verifier, challenge } = await pkce()
    const callback = await authorizeThrough(b, client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid offline_access', code_challenge: challenge, code_challenge_method: 'S256' }))
    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier })
    expect(tokens.claims()!.sub).toBe(user.id)
    expect(tokens.refresh_token).toBeTruthy()

    // refresh_token
    const refreshed = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token! }, basic)
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200)
    expect(refreshed.body.refresh_token).not.toBe(tokens.refresh_token)
  })

  it('a machine client with only client_credentials needs no redirect URI and gets no response type', async () => {
    const admin = await adminToken()
    for (const method of ['client_secret_basic', 'client_secret_post']) {
      const created = await register(admin, { grant_types: ['client_credentials'], token_endpoint_auth_method: method })
      expect(created.status, JSON.stringify(created.body)).toBe(201)
      expect(created.body.app).toMatchObject({ grant_types: ['client_credentials'], response_types: [], redirect_uris: [] })
      const id = created.body.app_id as string
      const secret = created.body.app_secret as string
      const r = method === 'client_secret_basic' ? await oauthPost('/oauth2/token', { grant_type: 'client_credentials' }, { app_id: id, app_secret: secret }) : await oauthPost('/oauth2/token', { grant_type: 'client_credentials', client_id: id, client_secret: secret })
      expect(r.status, JSON.stringify(r.body)).toBe(200)
      // the grants it did not register stay refused
      const code = await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT, ...(method === 'client_secret_post' ? { client_id: id, client_secret: secret } : {}) }, method === 'client_secret_basic' ? { app_id: id, app_secret: secret } : undefined)
      expect(code.body.error).toBe('unauthorized_client')
    }
  })

  it('PATCH adds client_credentials to an existing app, and it works at once', async () => {
    const admin = await adminToken()
    const created = await register(admin, { redirect_uris: [REDIRECT] })
    expect(created.body.app.grant_types).toEqual(['authorization_code', 'refresh_token'])
    const basic = { app_id: created.body.app_id as string, app_secret: created.body.app_secret as string }
    expect((await oauthPost('/oauth2/token', { grant_type: 'client_credentials' }, basic)).body.error).toBe('unauthorized_client')
    const patched = await api(`${base}/${basic.app_id}`, { method: 'PATCH', token: admin, json: { grant_types: ['authorization_code', 'refresh_token', 'client_credentials'] } })
    expect(patched.status, JSON.stringify(patched.body)).toBe(200)
    expect(patched.body.response_types).toEqual(['code'])
    expect((await oauthPost('/oauth2/token', { grant_type: 'client_credentials' }, basic)).status).toBe(200)
    // dropping the code flow drops its response type with it
    const machine = await api(`${base}/${basic.app_id}`, { method: 'PATCH', token: admin, json: { grant_types: ['client_credentials'] } })
    expect(machine.status, JSON.stringify(machine.body)).toBe(200)
    expect(machine.body).toMatchObject({ grant_types: ['client_credentials'], response_types: [] })
  })

  it('refuses combinations that could never work, naming the field', async () => {
    const admin = await adminToken()
    const refused: [Record<string, unknown>, RegExp][] = [
      [{ grant_types: ['authorization_code', 'client_credentials'], token_endpoint_auth_method: 'none', redirect_uris: [REDIRECT] }, /^grant_types: client_credentials is for confidential clients/],
      [{ grant_types: ['refresh_token'], redirect_uris: [REDIRECT] }, /^grant_types: refresh_token needs authorization_code/],
      [{ grant_types: ['client_credentials', 'refresh_token'] }, /^grant_types: refresh_token needs authorization_code/],
      [{ grant_types: ['client_credentials'], response_types: ['code'] }, /^response_types: /],
      [{ grant_types: ['authorization_code'], response_types: [], redirect_uris: [REDIRECT] }, /^response_types: /],
      [{ grant_types: ['authorization_code'] }, /^redirect_uris: /],
      [{ grant_types: ['client_credentials', 'client_credentials'] }, /^grant_types: must not contain duplicates/],
      [{ grant_types: ['password'] }, /^grant_types\.0: /],
      [{ grant_types: ['implicit'] }, /^grant_types\.0: /],
      [{ grant_types: [] }, /^grant_types: /],
    ]
    for (const [body, message] of refused) {
      const r = await register(admin, body)
      expect(r.status, JSON.stringify(body)).toBe(400)
      expect(r.body.error.code, JSON.stringify(body)).toBe('invalid_request')
      expect(r.body.error.message, JSON.stringify(body)).toMatch(message)
    }
    // a PATCH that would break an app is refused and changes nothing
    const ok = await register(admin, { grant_types: ['client_credentials'] })
    const bad = await api(`${base}/${ok.body.app_id}`, { method: 'PATCH', token: admin, json: { token_endpoint_auth_method: 'none' } })
    expect(bad.status).toBe(400)
    expect(bad.body.error.message).toMatch(/^grant_types: client_credentials is for confidential clients/)
    expect((await api(`${base}/${ok.body.app_id}`, { token: admin })).body.token_endpoint_auth_method).toBe('client_secret_basic')
  })

  it('the OpenAPI document offers every grant of the discovery document', async () => {
    const spec = (await api('/docs/admin/openapi.json')).body
    const create = spec.components.schemas.CreateApplication
    const grantEnum = create.properties.grant_types.items.enum
    const discovery = await api('/.well-known/openid-configuration')
    expect([...grantEnum].sort()).toEqual([...discovery.body.grant_types_supported].sort())
  })
})
