import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { adminToken, api, appLogin, auditLog, createUser, login } from './support/api'
import { createOidcApp, mapUser } from './support/apps'
import { Browser } from './support/browser'
import { codeFlow, oauthPost } from './support/oidc'

// Offboarding (issue 9): a token issued for an app stops working, and its refresh-token
// family is revoked, once the app is disabled or the user's mapping in it is inactive.

async function disableMapping(appId: string, mappingId: string) {
  const r = await api(`/api/v1/admin/apps/${appId}/mappings/${mappingId}/disable`, { method: 'POST', token: await adminToken() })
  expect(r.status).toBe(200)
}

/** The user's refresh tokens (no API lists them). */
const familyStatuses = (userId: string) =>
  env.DB.prepare('SELECT status FROM refresh_tokens WHERE user_id = ?').bind(userId).all<{ status: string }>().then((r) => r.results.map((x) => x.status))

const offboardedAudit = async (userId: string) => (await auditLog({ action: 'refresh_token.offboarded', target_id: userId })).reverse().map((x) => x.details)

/** The first-party refresh API, authenticated as the app the token was issued for (HTTP Basic; the app has its partner API on, as the sign-in API asks). */
const appRefresh = (app: { app_id: string; app_secret: string }, refreshToken: string, auth: 'basic' | 'none' = 'basic') =>
  api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: refreshToken }, headers: auth === 'basic' ? { Authorization: 'Basic ' + btoa(`${app.app_id}:${app.app_secret}`) } : {} })

describe('refreshing a token from a login with app_id', () => {
  it("needs the app's own authentication, like the login; another app or a first-party token is refused", async () => {
    const appA = await createOidcApp({ first_party: true, partner_api_enabled: true })
    const b = await createOidcApp({ first_party: true, partner_api_enabled: true })
    const user = await createUser()
    await mapUser(appA.app_id, user, { mappedKey: `ra-${user.id.slice(0, 8)}` })
    const t = await appLogin(appA, user.mobile, user.password)
    const bare = await appRefresh(appA, t.refresh_token, 'none')
    expect(bare.status).toBe(401)
    expect(bare.body.error.code).toBe('app_auth_required')
    const wrongApp = await appRefresh(b, t.refresh_token)
    expect(wrongApp.status).toBe(401)
    expect(wrongApp.body.error.code).toBe('invalid_grant')
    const wrongSecret = await appRefresh({ app_id: appA.app_id, app_secret: b.app_secret }, t.refresh_token)
    expect(wrongSecret.body.error.code).toBe('invalid_app_credentials')
    // the refused attempts spent nothing: the app itself still refreshes
    const ok = await appRefresh(appA, t.refresh_token)
    expect(ok.status).toBe(200)
    // a first-party token is not an app's to refresh
    const plain = await login(user.mobile, user.password)
    expect((await appRefresh(appA, plain.refresh_token)).body.error.code).toBe('invalid_grant')
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: plain.refresh_token } })).status).toBe(200)
  })
})

describe('app-bound refresh tokens after offboarding', () => {
  it('a login for an app: refresh refused once the mapping is disabled, the family revoked and audited; re-enabling does not revive it', async () => {
    const app = await createOidcApp({ first_party: true, partner_api_enabled: true })
    const clientId = app.app_id
    const user = await createUser()
    const { mappingId } = await mapUser(clientId, user, { mappedKey: `off-${user.id.slice(0, 8)}` })
    const t = await appLogin(app, user.mobile, user.password)
    const rotated = await appRefresh(app, t.refresh_token)
    expect(rotated.status).toBe(200)

    await disableMapping(clientId, mappingId)
    const refused = await appRefresh(app, rotated.body.refresh_token)
    expect(refused.status).toBe(401)
    expect(refused.body.error.code).toBe('invalid_grant')
    expect(await familyStatuses(user.id)).toEqual(['REVOKED', 'REVOKED'])
    expect(await offboardedAudit(user.id)).toEqual([expect.objectContaining({ reason: 'mapping_inactive', client_id: clientId })])

    // mapped again: the old family stays dead, a new sign-in is needed
    const enable = await api(`/api/v1/admin/apps/${clientId}/mappings/${mappingId}`, { method: 'PATCH', token: await adminToken(), json: { is_active: true } })
    expect(enable.status).toBe(200)
    expect((await appRefresh(app, rotated.body.refresh_token)).status).toBe(401)
  })

  it('a login for an app: refresh refused once the app is disabled, even after it is enabled again', async () => {
    const app = await createOidcApp({ first_party: true, partner_api_enabled: true })
    const clientId = app.app_id
    const user = await createUser()
    await mapUser(clientId, user, { mappedKey: `dis-${user.id.slice(0, 8)}` })
    const t = await appLogin(app, user.mobile, user.password)
    const token = await adminToken()
    expect((await api(`/api/v1/admin/apps/${clientId}/disable`, { method: 'POST', token })).status).toBe(200)
    const refused = await appRefresh(app, t.refresh_token)
    expect(refused.status).toBe(401)
    expect(await offboardedAudit(user.id)).toEqual([expect.objectContaining({ reason: 'app_disabled' })])
    expect((await api(`/api/v1/admin/apps/${clientId}`, { method: 'PATCH', token, json: { status: 'ACTIVE' } })).status).toBe(200)
    expect((await appRefresh(app, t.refresh_token)).status).toBe(401)
  })

  it('a first-party login (no app) is not affected by any app', async () => {
    const user = await createUser()
    const t = await login(user.mobile, user.password)
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: t.refresh_token! } })).status).toBe(200)
  })

  it('OIDC: once the mapping is disabled, refresh is invalid_grant, introspection says inactive for both tokens and userinfo refuses the access token', async () => {
    const app = await createOidcApp({ first_party: true })
    const user = await createUser()
    const { mappingId } = await mapUser(app.app_id, user, { mappedKey: `oidc-off-${user.id.slice(0, 8)}` })
    const b = new Browser()
    await b.loginOnPage(user)
    const t = await codeFlow(b, app, 'openid offline_access')
    const basic = app
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token }, basic)).body.active).toBe(true)
    expect((await oauthPost('/oauth2/introspect', { token: t.refresh_token! }, basic)).body.active).toBe(true)
    expect((await api('/oauth2/userinfo', { token: t.access_token })).status).toBe(200)

    await disableMapping(app.app_id, mappingId)
    expect((await oauthPost('/oauth2/introspect', { token: t.access_token }, basic)).body).toEqual({ active: false })
    expect((await oauthPost('/oauth2/introspect', { token: t.refresh_token! }, basic)).body).toEqual({ active: false })
    const ui = await api('/oauth2/userinfo', { token: t.access_token })
    expect(ui.status).toBe(401)
    expect(ui.body.error).toBe('invalid_token')
    const refresh = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token! }, basic)
    expect(refresh.status).toBe(400)
    expect(refresh.body.error).toBe('invalid_grant')
    expect(await familyStatuses(user.id)).toEqual(['REVOKED'])
  })
})
