import { describe, expect, it } from 'vitest'
import * as client from 'openid-client'
import { createUser } from './support/api'
import { createOidcApp, mapUser } from './support/apps'
import { Browser, location } from './support/browser'
import { REDIRECT, authorizeThrough, discover, pkce } from './support/oidc'
import { addMembers, buildPaths, definePermission, groupType, setGrant } from './support/directory'
import { measureStorage } from './support/storage'

// The `groups` and `permissions` scopes (docs/permissions.md), through openid-client.

async function world() {
  const { app_id: clientId, app_secret: secret } = await createOidcApp({ app_name: 'Claims RP' })
  const user = await createUser({ name: 'Han Meimei' })
  await mapUser(clientId, user, { mappedKey: `hmm.${user.id.slice(0, 8)}@rp.example.com` })
  const type = await groupType()
  const ids = await buildPaths(type, ['Sales ▸ East', 'Managers'])
  await addMembers(ids.get('Sales ▸ East')!, [user.id])
  await addMembers(ids.get('Managers')!, [user.id])
  for (const key of ['orders:read', 'orders:write', 'reports:read']) await definePermission(clientId, key)
  await setGrant(clientId, { permission: 'orders:read', subject: { type: 'group', id: ids.get('Sales')! }, effect: 'allow' })
  await setGrant(clientId, { permission: 'orders:write', subject: { type: 'group', id: ids.get('Sales')! }, effect: 'allow' })
  await setGrant(clientId, { permission: 'orders:write', subject: { type: 'group', id: ids.get('Sales ▸ East')! }, effect: 'deny' })
  await setGrant(clientId, { permission: 'reports:read', subject: { type: 'user', id: user.id }, effect: 'allow', scope: { type: 'region', id: 'east' } })
  await setGrant(clientId, { permission: 'access', subject: { type: 'user', id: user.id }, effect: 'allow' })
  return { clientId, secret, user, type }
}

async function signIn(config: client.Configuration, user: { mobile: string; password: string }, scope: string) {
  const b = new Browser()
  await b.loginOnPage(user)
  const { verifier, challenge } = await pkce()
  const nonce = client.randomNonce()
  const url = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope, code_challenge: challenge, code_challenge_method: 'S256', nonce })
  const consent = await b.get(url.href)
  const consentUrl = location(consent)
  const page = consentUrl.pathname === '/page/consent' ? (await b.get(consentUrl.pathname + consentUrl.search)).html : ''
  const callback = await authorizeThrough(b, consentUrl)
  return { tokens: await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce, idTokenExpected: true }), consentPage: page }
}

describe('OIDC scopes groups and permissions', () => {
  it('discovery lists the scopes and the claims', async () => {
    const { app_id: clientId, app_secret: secret } = await createOidcApp()
    const meta = (await discover(clientId, client.ClientSecretBasic(secret))).serverMetadata()
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(['groups', 'permissions']))
    expect(meta.claims_supported).toEqual(expect.arrayContaining(['groups', 'permissions']))
  })

  it('the ID token and userinfo carry the group paths and the granted keys; the consent page says so', async () => {
    const { clientId, secret, user, type } = await world()
    const config = await discover(clientId, client.ClientSecretBasic(secret))
    const { tokens, consentPage } = await signIn(config, user, 'openid email groups permissions')
    expect(consentPage).toContain('The groups you are in')
    expect(consentPage).toContain('What you are allowed to do in this app')
    const claims = tokens.claims()!
    expect(claims.sub).toBe(user.id)
    expect(claims.groups).toEqual([`${type}/Managers`, `${type}/Sales/East`])
    // orders:write is denied by the nearer group; reports:read is only granted at a scope; access is implied
    expect(claims.permissions).toEqual(['orders:read'])
    expect(tokens.scope?.split(' ').sort()).toEqual(['email', 'groups', 'openid', 'permissions'])

    const info = await client.fetchUserInfo(config, tokens.access_token, user.id)
    expect(info.groups).toEqual(claims.groups)
    expect(info.permissions).toEqual(['orders:read'])

    // the claims ride along userinfo's one joined read: still one storage stage, one D1 query
    const req = () => measureStorage('/oauth2/userinfo', { headers: { Authorization: `Bearer ${tokens.access_token}` } })
    await req()
    const m = await req()
    expect(m.response.status).toBe(200)
    expect(((await m.response.json()) as { permissions: string[] }).permissions).toEqual(['orders:read'])
    expect(m.stages).toBe(1)
    expect(m.calls.d1).toBe(1)
  })

  it('without the scopes there are no such claims', async () => {
    const { clientId, secret, user } = await world()
    const config = await discover(clientId, client.ClientSecretBasic(secret))
    const { tokens } = await signIn(config, user, 'openid groups')
    expect(tokens.claims()!.groups).toHaveLength(2)
    expect(tokens.claims()!.permissions).toBeUndefined()
    const info = await client.fetchUserInfo(config, tokens.access_token, user.id)
    expect(info.groups).toHaveLength(2)
    expect(info.permissions).toBeUndefined()
    const plain = await signIn(config, user, 'openid')
    expect(plain.tokens.claims()!.groups).toBeUndefined()
    expect((await client.fetchUserInfo(config, plain.tokens.access_token, user.id)).groups).toBeUndefined()
  })
})
