import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { adminToken, api, auditLog, createUser, login, signedApi } from './support/api'
import { createApp } from './support/apps'
import { isRegisteredRedirectUri, redirectUriProblem } from '../src/lib/redirect-uri'
import { findApplication, getAppSecret } from '../src/apps/service'
import { sha256Hex } from '../src/lib/crypto'

const base = '/api/v1/admin/apps'

describe('redirect URI rules (lib/redirect-uri.ts)', () => {
  it('accepts https and loopback http, refuses the rest with a reason', () => {
    for (const ok of ['https://app.example.com/cb', 'https://app.example.com:8443/cb?x=1', 'http://127.0.0.1:3000/cb', 'http://127.0.0.1/cb', 'http://127.8.9.10/cb', 'http://[::1]:8080/cb']) {
      expect(redirectUriProblem(ok), ok).toBeNull()
    }
    const bad: [string, RegExp][] = [
      ['http://app.example.com/cb', /https/],
      ['/relative/cb', /absolute/],
      ['app.example.com/cb', /absolute/],
      ['https://app.example.com/cb#frag', /fragment/],
      ['https://user:pw@app.example.com/cb', /userinfo/],
      ['https://@app.example.com/cb', /userinfo/],
      ['https://*.example.com/cb', /wildcard/],
      ['com.example.app:/cb', /absolute/],
      ['javascript://alert(1)', /https/],
      ['http://localhost.evil.com/cb', /https/],
      ['http://localhost:3000/cb', /127\.0\.0\.1.*RFC 8252 §8\.3/],
      ['http://128.0.0.1/cb', /https/],
      ['https://app.example.com/c b', /whitespace/],
      ['', /non-empty/],
    ]
    for (const [uri, why] of bad) expect(redirectUriProblem(uri), uri).toMatch(why)
  })

  it('isRegisteredRedirectUri is an exact string match', () => {
    const app = { redirectUris: ['https://app.example.com/cb', 'http://127.0.0.1:8080/cb'] }
    expect(isRegisteredRedirectUri(app, 'https://app.example.com/cb')).toBe(true)
    for (const v of ['https://app.example.com/cb/', 'https://app.example.com/cb?x=1', 'https://APP.example.com/cb', 'https://app.example.com/c', 'http://127.0.0.1:8081/cb', 'https://app.example.com/cb#x']) {
      expect(isRegisteredRedirectUri(app, v), v).toBe(false)
    }
  })

  it('in an authorization request, a loopback IP literal matches on any port and nothing else (RFC 8252 §7.3)', () => {
    const app = { redirectUris: ['https://app.example.com/cb', 'http://127.0.0.1/cb', 'http://[::1]:8080/native?x=1'] }
    const any = { anyLoopbackPort: true }
    for (const v of ['http://127.0.0.1:53211/cb', 'http://127.0.0.1/cb', 'http://[::1]:61000/native?x=1', 'http://[::1]/native?x=1']) expect(isRegisteredRedirectUri(app, v, any), v).toBe(true)
    for (const v of [
      'http://127.0.0.1:53211/cb/',
      'http://127.0.0.1:53211/cb?x=1',
      'http://127.0.0.2:53211/cb',
      'http://127.0.0.1:53211/cb#f',
      'http://u@127.0.0.1:53211/cb',
      'http://127.0.0.1:53211/a/../cb', // not in normal form: no match by normalising
      'https://127.0.0.1:53211/cb',
      'https://app.example.com:8443/cb', // not loopback: exact only
      'http://localhost:53211/cb',
    ])
      expect(isRegisteredRedirectUri(app, v, any), v).toBe(false)
    // without the option (tickets, federation) the port is exact as before
    expect(isRegisteredRedirectUri(app, 'http://127.0.0.1:53211/cb')).toBe(false)
  })
})

describe('admin applications API', () => {
  it('create returns the credentials once; they work; get and list never show them', async () => {
    const admin = await adminToken()
    const r = await api(base, { method: 'POST', token: admin, json: { app_name: 'HR', protocol_type: 'SIMPLE_API', redirect_uris: ['https://hr.example.com/cb'], notification_url: 'https://hr.example.com/hook' } })
    expect(r.status).toBe(201)
    const created = r.body
    expect(created.app_id).toMatch(/^app_[0-9a-f]{16}$/)
    expect(created.app_secret).toMatch(/^sk_/)
    expect(created.access_token).toMatch(/^at_/)
    expect(created.app).toMatchObject({ app_id: created.app_id, app_name: 'HR', protocol_type: 'SIMPLE_API', status: 'ACTIVE', id_token_claim: 'preferred_username', token_endpoint_auth_method: 'client_secret_basic', first_party: false })

    // stored encrypted / hashed, never in clear
    const row = await findApplication(env, created.app_id)
    expect(row!.appSecretEnc).not.toContain(created.app_secret)
    expect(await getAppSecret(env, row!)).toBe(created.app_secret)
    expect(row!.accessTokenHash).toBe(await sha256Hex(created.access_token))

    const got = await api(`${base}/${created.app_id}`, { token: admin })
    expect(got.status).toBe(200)
    const list = await api(`${base}?q=${created.app_id}`, { token: admin })
    expect(list.body.items.map((a: any) => a.app_id)).toEqual([created.app_id])
    for (const body of [got.body, list.body]) {
      const text = JSON.stringify(body)
      expect(text).not.toContain(created.app_secret)
      expect(text).not.toContain(created.access_token)
    }
    for (const view of [got.body, list.body.items[0]]) {
      expect(Object.keys(view).filter((k) => /secret|token_hash|access_token/.test(k))).toEqual([])
    }
    expect((await signedApi(created, 'GET', '/api/v1/open/ping')).status).toBe(200)
    expect((await api(`/api/v1/apps/${created.app_id}/users/changes`, { headers: { 'X-App-Access-Token': created.access_token } })).status).toBe(200)
    expect(await auditLog({ target_id: created.app_id, action: 'admin.app.create' })).toHaveLength(1)
  })

  it('validates URIs and OIDC requirements', async () => {
    const admin = await adminToken()
    const bad = await api(base, { method: 'POST', token: admin, json: { app_name: 'X', protocol_type: 'OIDC', redirect_uris: ['http://evil.example.com/cb'] } })
    expect(bad.status).toBe(400)
    expect(bad.body.error.message).toMatch(/^redirect_uris\.0: must use https/)
    expect((await api(base, { method: 'POST', token: admin, json: { app_name: 'X', protocol_type: 'OIDC' } })).body.error.message).toMatch(/at least one redirect URI/)
    expect((await api(base, { method: 'POST', token: admin, json: { app_name: 'X', protocol_type: 'SIMPLE_API', notification_url: 'https://h.example.com/#x' } })).status).toBe(400)
    expect((await api(base, { method: 'POST', token: admin, json: { app_name: 'X', protocol_type: 'OIDC', redirect_uris: ['https://a.example.com/cb', 'https://a.example.com/cb'] } })).status).toBe(400)
    expect((await api(base, { method: 'POST', token: admin, json: { app_name: '', protocol_type: 'OIDC' } })).status).toBe(400)
    expect((await api(base, { method: 'POST', token: admin, json: { app_name: 'X', protocol_type: 'SAML' } })).status).toBe(400)
  })

  it('updates every OIDC-relevant field and records the change', async () => {
    const admin = await adminToken()
    const { app_id } = await createApp({ app_name: 'HR' })
    const patch = {
      app_name: 'HR 2',
      icon_url: 'https://hr.example.com/icon.png',
      protocol_type: 'OIDC',
      redirect_uris: ['https://hr.example.com/oidc/cb', 'http://127.0.0.1:5173/cb'],
      post_logout_redirect_uris: ['https://hr.example.com/bye'],
      notification_url: 'https://hr.example.com/hook',
      backchannel_logout_uri: 'https://hr.example.com/bcl',
      id_token_claim: 'email',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      first_party: true,
    }
    const r = await api(`${base}/${app_id}`, { method: 'PATCH', token: admin, json: patch })
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject(patch)
    expect((await api(`${base}/${app_id}`, { token: admin })).body).toMatchObject(patch)
    const row = await findApplication(env, app_id)
    expect(row).toMatchObject({ idTokenClaim: 'email', tokenEndpointAuthMethod: 'none', firstParty: true, backchannelLogoutUri: 'https://hr.example.com/bcl' })
    expect(isRegisteredRedirectUri(row!, 'http://127.0.0.1:5173/cb')).toBe(true)

    expect((await api(`${base}/${app_id}`, { method: 'PATCH', token: admin, json: { icon_url: null } })).body.icon_url).toBeNull()
    expect((await api(`${base}/${app_id}`, { method: 'PATCH', token: admin, json: { redirect_uris: [] } })).status).toBe(400) // OIDC needs one
    expect((await api(`${base}/${app_id}`, { method: 'PATCH', token: admin, json: { id_token_claim: 'sub' } })).status).toBe(400)
    expect((await api(`${base}/${app_id}`, { method: 'PATCH', token: admin, json: {} })).status).toBe(400)
    expect((await api(`${base}/app_0000000000000000`, { method: 'PATCH', token: admin, json: { app_name: 'x' } })).status).toBe(404)
    const audits = (await auditLog({ target_id: app_id })).reverse()
    expect(audits.map((a) => a.action)).toEqual(['admin.app.create', 'admin.app.update', 'admin.app.update'])
  })

  it('lists with pagination and filters', async () => {
    const admin = await adminToken()
    const tag = crypto.randomUUID().slice(0, 8)
    for (let i = 0; i < 3; i++) await createApp({ app_name: `page-${tag}-${i}` })
    const p1 = await api(`${base}?q=page-${tag}&page_size=2`, { token: admin })
    expect(p1.body).toMatchObject({ total: 3, page: 1, page_size: 2 })
    expect(p1.body.items.map((a: any) => a.app_name)).toEqual([`page-${tag}-2`, `page-${tag}-1`])
    const p2 = await api(`${base}?q=page-${tag}&page_size=2&page=2`, { token: admin })
    expect(p2.body.items.map((a: any) => a.app_name)).toEqual([`page-${tag}-0`])
    expect((await api(`${base}?q=page-${tag}&protocol_type=OIDC`, { token: admin })).body.total).toBe(0)
  })

  it('rotating the access token refuses the old one at once; rotations are audited', async () => {
    const admin = await adminToken()
    const a = await createApp({ app_name: 'HR' })
    const r = await api(`${base}/${a.app_id}/access-token/rotate`, { method: 'POST', token: admin })
    expect(r.status).toBe(200)
    expect(r.headers.get('Cache-Control')).toBe('no-store')
    const path = `/api/v1/apps/${a.app_id}/users/changes`
    expect((await api(path, { headers: { 'X-App-Access-Token': a.access_token } })).status).toBe(401)
    expect((await api(path, { headers: { 'X-App-Access-Token': r.body.access_token } })).status).toBe(200)
    await api(`${base}/${a.app_id}/secret/rotate`, { method: 'POST', token: admin })
    const audits = (await auditLog({ target_id: a.app_id })).reverse().filter((x) => x.action.startsWith('admin.app.rotate'))
    expect(audits.map((x) => x.action)).toEqual(['admin.app.rotate_access_token', 'admin.app.rotate_secret'])
  })

  it('delete removes the app and its mappings, writing a DELETE event per mapping', async () => {
    const admin = await adminToken()
    const a = await createApp({ app_name: 'HR' })
    const users = [await createUser(), await createUser(), await createUser()]
    const sync = await api('/api/v1/apps/mapping/sync', {
      method: 'POST',
      headers: { 'X-App-Access-Token': a.access_token },
      json: { items: users.map((u, i) => ({ mobile: u.mobile, mapped_key: `del-${i}`, action: 'ADD' })).concat([{ mobile: users[2].mobile, action: 'DISABLE' } as any]) },
    })
    expect(sync.body.summary.ok).toBe(4)
    // a signed call first: this isolate now holds a copy of the row, which must die with it
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
    const del = await api(`${base}/${a.app_id}`, { method: 'DELETE', token: admin })
    expect(del.status).toBe(200)
    expect(del.body).toEqual({ deleted: true, app_id: a.app_id, mappings_deleted: 3 })
    expect((await api(`${base}/${a.app_id}`, { token: admin })).status).toBe(404)
    // the app is gone, and so is every API view of its mappings and events: read what D1 kept
    expect((await env.DB.prepare('SELECT COUNT(*) AS n FROM app_user_mappings WHERE app_id = ?').bind(a.app_id).first<any>()).n).toBe(0)
    const evs = (await env.DB.prepare("SELECT event_id, event_type, payload FROM mapping_events WHERE app_id = ? AND event_type = 'DELETE'").bind(a.app_id).all<any>()).results
    expect(evs).toHaveLength(3)
    expect(new Set(evs.map((e) => e.event_id)).size).toBe(3)
    for (const e of evs) expect(e.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(evs.map((e) => JSON.parse(e.payload)).sort((x, y) => x.mapped_key.localeCompare(y.mapped_key))).toEqual([
      { mobile: users[0].mobile, name: null, mapped_key: 'del-0', status: 'ACTIVE', user_status: 'ACTIVE' },
      { mobile: users[1].mobile, name: null, mapped_key: 'del-1', status: 'ACTIVE', user_status: 'ACTIVE' },
      { mobile: users[2].mobile, name: null, mapped_key: 'del-2', status: 'DISABLED', user_status: 'ACTIVE' },
    ])
    // credentials are dead
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(401)
    expect((await api(`/api/v1/apps/${a.app_id}/users/changes`, { headers: { 'X-App-Access-Token': a.access_token } })).status).toBe(401)
    expect(await auditLog({ target_id: a.app_id, action: 'admin.app.delete' })).toHaveLength(1)
  })

  it('partner_api_enabled: on for SIMPLE_API, off for OIDC at creation; shown in the view; PATCH changes it (audited, version moves on)', async () => {
    const admin = await adminToken()
    const simple = await createApp({ app_name: 'HR' })
    const oidc = await createApp({ app_name: 'HR', protocol_type: 'OIDC', redirect_uris: ['https://rp.example.com/cb'] })
    expect(simple.app.partner_api_enabled).toBe(true)
    expect(oidc.app.partner_api_enabled).toBe(false)
    expect(simple.app.sso_targets).toEqual([])
    const explicit = await createApp({ app_name: 'HR', protocol_type: 'OIDC', redirect_uris: ['https://rp.example.com/cb'], partner_api_enabled: true })
    expect(explicit.app.partner_api_enabled).toBe(true)
    expect((await findApplication(env, oidc.app_id))!.version).toBe(1)
    const on = await api(`${base}/${oidc.app_id}`, { method: 'PATCH', token: admin, json: { partner_api_enabled: true } })
    expect(on.status).toBe(200)
    expect(on.body.partner_api_enabled).toBe(true)
    expect((await api(`${base}/${oidc.app_id}`, { token: admin })).body.partner_api_enabled).toBe(true)
    expect((await findApplication(env, oidc.app_id))!.version).toBe(2)
    // a protocol change leaves the switch as it is
    const moved = await api(`${base}/${simple.app_id}`, { method: 'PATCH', token: admin, json: { protocol_type: 'OIDC', redirect_uris: ['https://hr.example.com/cb'] } })
    expect(moved.body.partner_api_enabled).toBe(true)
    expect((await api(`${base}/${simple.app_id}`, { method: 'PATCH', token: admin, json: { partner_api_enabled: 'yes' } })).status).toBe(400)
    const audit = await env.DB.prepare("SELECT details FROM audit_logs WHERE target_id = ? AND action = 'admin.app.update' ORDER BY id").bind(oidc.app_id).first<{ details: string }>()
    expect(JSON.parse(audit!.details)).toEqual({ partner_api_enabled: true })
  })

  it('sso_targets: other existing SIMPLE_API apps only; shown in the view; every change bumps the version', async () => {
    const admin = await adminToken()
    const [src, t1, t2] = [await createApp({ app_name: 'HR' }), await createApp({ app_name: 'HR' }), await createApp({ app_name: 'HR' })]
    const oidc = await createApp({ app_name: 'HR', protocol_type: 'OIDC', redirect_uris: ['https://rp.example.com/cb'] })
    const patch = (sso_targets: unknown) => api(`${base}/${src.app_id}`, { method: 'PATCH', token: admin, json: { sso_targets } })
    const ok = await patch([t1.app_id, t2.app_id])
    expect(ok.status).toBe(200)
    expect(ok.body.sso_targets).toEqual([t1.app_id, t2.app_id])
    expect((await findApplication(env, src.app_id))!.ssoTargets).toEqual([t1.app_id, t2.app_id])
    const unknown = await patch([t1.app_id, 'app_ffffffffffffffff'])
    expect(unknown.status).toBe(400)
    expect(unknown.body.error).toMatchObject({ code: 'sso_target_unknown', details: { app_ids: ['app_ffffffffffffffff'] } })
    expect((await patch([oidc.app_id])).body.error).toMatchObject({ code: 'sso_target_invalid', details: { app_ids: [oidc.app_id] } })
    expect((await patch([src.app_id])).body.error.code).toBe('sso_target_invalid')
    expect((await patch([t1.app_id, t1.app_id])).body.error.code).toBe('invalid_request')
    expect((await patch('app_x')).body.error.code).toBe('invalid_request')
    // refused changes write nothing
    expect((await findApplication(env, src.app_id))!.ssoTargets).toEqual([t1.app_id, t2.app_id])
    expect((await findApplication(env, src.app_id))!.version).toBe(2)
    const created = await createApp({ app_name: 'HR', sso_targets: [t2.app_id] })
    expect(created.app.sso_targets).toEqual([t2.app_id])
    expect((await api(base, { method: 'POST', token: admin, json: { app_name: 'X', protocol_type: 'SIMPLE_API', sso_targets: ['app_nope'] } })).body.error.code).toBe('sso_target_unknown')
    expect((await patch([])).body.sso_targets).toEqual([])
  })

  it('deleting an app removes it from every sso_targets list in the same batch (audited)', async () => {
    const admin = await adminToken()
    const [gone, kept] = [await createApp({ app_name: 'HR' }), await createApp({ app_name: 'HR' })]
    const a = await createApp({ app_name: 'HR', sso_targets: [gone.app_id, kept.app_id] })
    const b = await createApp({ app_name: 'HR', sso_targets: [gone.app_id] })
    const c = await createApp({ app_name: 'HR', sso_targets: [kept.app_id] })
    expect((await api(`${base}/${gone.app_id}`, { method: 'DELETE', token: admin })).status).toBe(200)
    expect((await api(`${base}/${a.app_id}`, { token: admin })).body.sso_targets).toEqual([kept.app_id])
    expect((await api(`${base}/${b.app_id}`, { token: admin })).body.sso_targets).toEqual([])
    expect((await api(`${base}/${c.app_id}`, { token: admin })).body.sso_targets).toEqual([kept.app_id])
    expect((await findApplication(env, a.app_id))!.version).toBe(2)
    expect((await findApplication(env, c.app_id))!.version).toBe(1)
    const audit = await env.DB.prepare("SELECT details FROM audit_logs WHERE target_id = ? AND action = 'admin.app.delete'").bind(gone.app_id).first<{ details: string }>()
    expect(JSON.parse(audit!.details).removed_from_sso_targets_of.sort()).toEqual([a.app_id, b.app_id].sort())
  })

  it('requires an admin', async () => {
    const u = await createUser()
    const t = await login(u.mobile, u.password)
    expect((await api(base, { token: t.access_token })).status).toBe(403)
    expect((await api(base)).status).toBe(401)
    expect((await api(`${base}/app_0000000000000000`)).status).toBe(401)
  })
})
