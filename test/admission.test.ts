import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { adminToken, api, appLogin, appLoginRequest, createUser, signedApi, uniqueMobile } from './support/api'
import { createApp, createOidcApp, mapUser, updateMapping } from './support/apps'
import { Browser } from './support/browser'
import { REDIRECT, authorizeThrough, oauthPost, pkce } from './support/oidc'
import { addMembers, createGroup, groupType, revokeGrant, setAccessPolicy, setGrant } from './support/directory'

// The `permission` access policy (docs/permissions.md), enforced at every entry point: an
// active mapping is not enough, the app's `access` permission must resolve to allow.

const auditActions = (userId: string, prefix: string) =>
  env.DB.prepare('SELECT action, details FROM audit_logs WHERE (actor_id = ? OR target_id = ?) AND action LIKE ? ORDER BY id')
    .bind(userId, userId, `${prefix}%`)
    .all<{ action: string; details: string | null }>()
    .then((r) => r.results.map((x) => ({ action: x.action, details: x.details ? JSON.parse(x.details) : null })))

const familyStatuses = (userId: string) =>
  env.DB.prepare('SELECT status FROM refresh_tokens WHERE user_id = ?').bind(userId).all<{ status: string }>().then((r) => r.results.map((x) => x.status))

/** Access through a group: the user in a group, the group allowed `access`. Returns the grant id. */
async function grantAccessViaGroup(appId: string, userId: string) {
  const g = await createGroup(await groupType(), 'Allowed')
  await addMembers(g, [userId])
  return (await setGrant(appId, { permission: 'access', subject: { type: 'group', id: g }, effect: 'allow' })).grant_id as string
}

async function codeFor(b: Browser, clientId: string, scope = 'openid offline_access') {
  const { verifier, challenge } = await pkce()
  const q = new URLSearchParams({ client_id: clientId, redirect_uri: REDIRECT, response_type: 'code', scope, state: 'st', code_challenge: challenge, code_challenge_method: 'S256' })
  return { callback: await authorizeThrough(b, `/oauth2/authorize?${q}`), verifier }
}

describe('access policy `permission`', () => {
  it('OIDC: authorize refuses until access is granted; a grant revoked between authorize and token fails the code; revoked later it stops refresh, userinfo and introspection', async () => {
    const app = await createOidcApp({ first_party: true, access_policy: 'permission' })
    const user = await createUser()
    await mapUser(app.app_id, user, { mappedKey: `p-${user.id.slice(0, 8)}@rp.example.com` })
    const b = new Browser()
    await b.loginOnPage(user)

    const refused = await codeFor(b, app.app_id)
    expect(refused.callback.searchParams.get('error')).toBe('access_denied')
    expect(refused.callback.searchParams.get('error_description')).toMatch(/not allowed/)
    expect(await auditActions(user.id, 'oidc.denied')).toEqual([expect.objectContaining({ action: 'oidc.denied_no_access' })])

    // granted: a code; revoked before the code is redeemed: invalid_grant
    const grantId = await grantAccessViaGroup(app.app_id, user.id)
    const raced = await codeFor(b, app.app_id)
    expect(raced.callback.searchParams.get('code')).toBeTruthy()
    await revokeGrant(app.app_id, grantId)
    const basic = app
    const late = await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code: raced.callback.searchParams.get('code')!, code_verifier: raced.verifier, redirect_uri: REDIRECT }, basic)
    expect(late.status).toBe(400)
    expect(late.body).toMatchObject({ error: 'invalid_grant', error_description: expect.stringMatching(/not allowed/) })

    // granted directly this time: tokens; then revoked: refresh, userinfo and introspection stop
    const direct = await setGrant(app.app_id, { permission: 'access', subject: { type: 'user', id: user.id }, effect: 'allow' })
    const ok = await codeFor(b, app.app_id)
    const tokens = await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code: ok.callback.searchParams.get('code')!, code_verifier: ok.verifier, redirect_uri: REDIRECT }, basic)
    expect(tokens.status).toBe(200)
    expect((await api('/oauth2/userinfo', { token: tokens.body.access_token })).status).toBe(200)
    expect((await oauthPost('/oauth2/introspect', { token: tokens.body.refresh_token }, basic)).body.active).toBe(true)
    // a user's own deny beats any group allow
    await setGrant(app.app_id, { permission: 'access', subject: { type: 'user', id: user.id }, effect: 'deny' })
    expect(direct.grant_id).toBeTruthy()
    expect((await api('/oauth2/userinfo', { token: tokens.body.access_token })).status).toBe(401)
    expect((await oauthPost('/oauth2/introspect', { token: tokens.body.access_token }, basic)).body).toEqual({ active: false })
    expect((await oauthPost('/oauth2/introspect', { token: tokens.body.refresh_token }, basic)).body).toEqual({ active: false })
    const refresh = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: tokens.body.refresh_token }, basic)
    expect(refresh.status).toBe(400)
    expect(refresh.body.error).toBe('invalid_grant')
    expect(await familyStatuses(user.id)).toEqual(['REVOKED'])
    expect((await auditActions(user.id, 'refresh_token.offboarded')).map((a) => a.details.reason)).toEqual(['access_revoked'])
  })

  it('login with app_id: 403 no_access without access, tokens with it; refresh stops once it is revoked', async () => {
    // the sign-in API takes the app's secret only with its partner API on (docs/apps.md)
    const app = await createOidcApp({ first_party: true, access_policy: 'permission', partner_api_enabled: true })
    const user = await createUser()
    await mapUser(app.app_id, user, { mappedKey: `l-${user.id.slice(0, 8)}` })
    const creds = app
    const refused = await appLoginRequest(creds, user.mobile, user.password)
    expect(refused.status).toBe(403)
    expect(refused.body.error.code).toBe('no_access')
    expect((await auditActions(user.id, 'login.refused')).map((a) => a.action)).toEqual(['login.refused_no_access'])

    const grantId = await grantAccessViaGroup(app.app_id, user.id)
    const t = await appLogin(creds, user.mobile, user.password)
    // the app's server refreshes its token, authenticated as the app (docs/security.md)
    const refresh = (token: string) => api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: token }, headers: { Authorization: 'Basic ' + btoa(`${creds.app_id}:${creds.app_secret}`) } })
    const rotated = await refresh(t.refresh_token)
    expect(rotated.status).toBe(200)
    await revokeGrant(app.app_id, grantId)
    const stopped = await refresh(rotated.body.refresh_token)
    expect(stopped.status).toBe(401)
    expect(stopped.body.error.message).toMatch(/access permission/)
    expect(await familyStatuses(user.id)).toEqual(['REVOKED', 'REVOKED'])
  })

  it('simple SSO: exchange refused for a target without access; a ticket whose access was revoked is refused at redemption', async () => {
    const target = await createApp({ app_name: 'Target', redirect_uris: ['https://target.example.com/sso/callback'], access_policy: 'permission' })
    const source = await createApp({ app_name: 'Source', sso_targets: [target.app_id] })
    const user = await createUser()
    await mapUser(source.app_id, user)
    const { mappedKey } = await mapUser(target.app_id, user)
    const exchange = () => signedApi(source, 'POST', '/api/v1/simple/ticket/exchange', { json: { target_app_id: target.app_id, user_mobile: user.mobile } })

    const refused = await exchange()
    expect(refused.status).toBe(403)
    expect(refused.body.error.code).toBe('no_access')

    const grantId = await grantAccessViaGroup(target.app_id, user.id)
    const issued = await exchange()
    expect(issued.status).toBe(200)
    const second = await exchange()
    const ok = await signedApi(target, 'POST', '/api/v1/simple/ticket/verify', { json: { ticket: issued.body.ticket } })
    expect(ok.status).toBe(200)
    expect(ok.body.user.mapped_key).toBe(mappedKey)

    await revokeGrant(target.app_id, grantId)
    const late = await signedApi(target, 'POST', '/api/v1/simple/ticket/verify', { json: { ticket: second.body.ticket } })
    expect(late.status).toBe(403)
    expect(late.body.error.code).toBe('no_access')
  })

  it("ticket exchange: the access policy adds to the partner rules, it replaces none (sso_targets, the source's mapping)", async () => {
    const target = await createApp({ app_name: 'Target', redirect_uris: ['https://target.example.com/sso/callback'], access_policy: 'permission' })
    const listed = await createApp({ app_name: 'Listed source', sso_targets: [target.app_id] })
    const unlisted = await createApp({ app_name: 'Unlisted source' })
    const user = await createUser()
    const { mappingId: sourceMapping } = await mapUser(listed.app_id, user)
    await mapUser(unlisted.app_id, user)
    await mapUser(target.app_id, user)
    await grantAccessViaGroup(target.app_id, user.id)
    const exchange = (from: typeof listed) => signedApi(from, 'POST', '/api/v1/simple/ticket/exchange', { json: { target_app_id: target.app_id, user_mobile: user.mobile } })

    expect((await exchange(listed)).status).toBe(200)
    const notListed = await exchange(unlisted)
    expect(notListed.status).toBe(403)
    expect(notListed.body.error.code).toBe('target_not_allowed')
    await updateMapping(listed.app_id, sourceMapping, { is_active: false })
    const notHeld = await exchange(listed)
    expect(notHeld.status).toBe(404)
    expect(notHeld.body.error.code).toBe('user_not_found')
  })

  it("users/query: under `permission` a mapped user without access reads like an unknown number; with access the mapping shows, a disabled one included", async () => {
    const app = await createApp({ access_policy: 'permission' })
    const [user, disabled] = [await createUser({ name: 'Queried' }), await createUser()]
    await mapUser(app.app_id, user)
    await mapUser(app.app_id, disabled, { isActive: false })
    const query = (mobile: string) => api(`/api/v1/apps/${app.app_id}/users/query?mobile=${encodeURIComponent(mobile)}`, { headers: { 'X-App-Access-Token': app.access_token } })

    const hidden = await query(user.mobile)
    const unknown = await query(uniqueMobile())
    expect(hidden.status).toBe(404)
    expect({ ...hidden.body.error, request_id: null }).toEqual({ ...unknown.body.error, request_id: null })
    expect(hidden.body.error.code).toBe('user_not_found')

    const grantId = await grantAccessViaGroup(app.app_id, user.id)
    await setGrant(app.app_id, { permission: 'access', subject: { type: 'user', id: disabled.id }, effect: 'allow' })
    const shown = await query(user.mobile)
    expect(shown.status).toBe(200)
    expect(shown.body.user).toMatchObject({ user_id: user.id, name: 'Queried' })
    expect((await query(disabled.mobile)).body.mapping.is_active).toBe(false)

    await setGrant(app.app_id, { permission: 'access', subject: { type: 'user', id: user.id }, effect: 'deny' })
    expect((await query(user.mobile)).status).toBe(404)
    await revokeGrant(app.app_id, grantId)
    await setAccessPolicy(app.app_id, 'mapping')
    expect((await query(user.mobile)).status).toBe(200)
  })

  it('the hosted ticket hop (/page/sso/simple) sends a signed-in user on only with access', async () => {
    const uri = 'https://hop.example.com/sso/callback'
    const target = await createApp({ app_name: 'Hop target', redirect_uris: [uri], access_policy: 'permission' })
    const user = await createUser()
    await mapUser(target.app_id, user)
    const b = new Browser()
    await b.loginOnPage(user)
    const hop = () => b.get(`/page/sso/simple?${new URLSearchParams({ app_id: target.app_id, redirect_uri: uri })}`)
    const refused = await hop()
    expect(refused.status).toBe(403)
    expect(refused.headers.get('Location')).toBeNull()
    await grantAccessViaGroup(target.app_id, user.id)
    const sent = await hop()
    expect(sent.status).toBe(302)
    expect(sent.headers.get('Location')).toMatch(/^https:\/\/hop\.example\.com\/sso\/callback\?ticket=tk_/)
  })

  it('access alone is not enough: the mapping is still needed; `mapping` policy ignores access grants', async () => {
    const app = await createOidcApp({ first_party: true, access_policy: 'permission', partner_api_enabled: true })
    const user = await createUser()
    await setGrant(app.app_id, { permission: 'access', subject: { type: 'user', id: user.id }, effect: 'allow' })
    const creds = app
    const unmapped = await appLoginRequest(creds, user.mobile, user.password)
    expect(unmapped.body.error.code).toBe('user_not_mapped')

    await mapUser(app.app_id, user, { mappedKey: `m-${user.id.slice(0, 8)}` })
    await setGrant(app.app_id, { permission: 'access', subject: { type: 'user', id: user.id }, effect: 'deny' })
    expect((await appLoginRequest(creds, user.mobile, user.password, { via: 'signed' })).status).toBe(403)
        const denied = await api(`/api/v1/admin/apps/${app.app_id}/users/${user.id}/permissions`, { token: await adminToken() })
    expect(denied.body).toMatchObject({ access_policy: 'permission', admitted: false })
    const back = await setAccessPolicy(app.app_id, 'mapping')
    expect(back.access_policy).toBe('mapping')
    expect((await appLoginRequest(creds, user.mobile, user.password)).status).toBe(200)
    const snap = await api(`/api/v1/admin/apps/${app.app_id}/users/${user.id}/permissions`, { token: await adminToken() })
    expect(snap.body).toMatchObject({ access_policy: 'mapping', admitted: true, permissions: [expect.objectContaining({ key: 'access', allowed: false, source: expect.objectContaining({ type: 'direct', effect: 'deny' }) })] })
  })

  it('the policy is an app setting: default mapping, listed in the admin view, validated', async () => {
    const app = await createApp()
    const token = await adminToken()
    expect((await api(`/api/v1/admin/apps/${app.app_id}`, { token })).body.access_policy).toBe('mapping')
    expect((await api(`/api/v1/admin/apps/${app.app_id}`, { method: 'PATCH', token, json: { access_policy: 'everyone' } })).status).toBe(400)
    const created = await api('/api/v1/admin/apps', { method: 'POST', token, json: { app_name: 'Policy app', protocol_type: 'SIMPLE_API', access_policy: 'permission' } })
    expect(created.body.app.access_policy).toBe('permission')
  })
})
