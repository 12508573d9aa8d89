import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { api, createUser, login } from './support/api'
import { Browser } from './support/browser'
import { admin, createProvider, githubProvider, oidcProvider, upstreams } from './federation-helpers'
import { decryptSecret } from '../src/lib/crypto'
import { OutboundError, outboundFetch, outboundUrlProblem } from '../src/lib/outbound'

// The admin API of identity providers (/api/v1/admin/identity-providers): audited writes, a
// write-only secret encrypted at rest, per-type validation; and the outbound rules for the
// URLs it configures. Provider ids here are never signed in with (federation.test.ts does).

const base = '/api/v1/admin/identity-providers'
const auditRows = async (targetId: string) =>
  (await env.DB.prepare('SELECT action, actor_type, details FROM audit_logs WHERE target_id = ? ORDER BY id').bind(targetId).all<{ action: string; actor_type: string; details: string }>()).results

describe('admin: identity providers', () => {
  it('creates an oidc provider: secret never returned, encrypted at rest under its own AAD, audited without the secret', async () => {
    const secret = 'upstream-client-secret-0123456789'
    const r = await api(base, { method: 'POST', token: await admin(), json: { id: 'adm-oidc', type: 'oidc', display_name: 'Corp SSO', issuer: 'https://sso.corp.example', client_id: 'uap', client_secret: secret } })
    expect(r.status).toBe(201)
    expect(r.body).toMatchObject({ id: 'adm-oidc', type: 'oidc', display_name: 'Corp SSO', issuer: 'https://sso.corp.example', client_secret_set: true, enabled: true, scopes: ['openid', 'email', 'profile'], token_endpoint_auth_method: 'client_secret_basic', redirect_uri: 'http://localhost/page/federation/adm-oidc/callback' })
    expect(JSON.stringify(r.body)).not.toContain(secret)
    for (const path of [`${base}/adm-oidc`, base]) expect(JSON.stringify((await api(path, { token: await admin() })).body)).not.toContain(secret)

    const row = await env.DB.prepare('SELECT client_secret_enc FROM identity_providers WHERE id = ?').bind('adm-oidc').first<{ client_secret_enc: string }>()
    expect(row!.client_secret_enc).toMatch(/^v2\./)
    expect(row!.client_secret_enc).not.toContain(secret)
    expect(await decryptSecret(env.MASTER_KEY!, row!.client_secret_enc, 'idp-client-secret:adm-oidc')).toBe(secret)
    await expect(decryptSecret(env.MASTER_KEY!, row!.client_secret_enc, 'app-secret:adm-oidc')).rejects.toThrow()

    const audit = await auditRows('adm-oidc')
    expect(audit.map((a) => a.action)).toEqual(['admin.identity_provider.create'])
    expect(audit[0].actor_type).toBe('admin')
    expect(audit[0].details).not.toContain(secret)
    expect(JSON.parse(audit[0].details)).toMatchObject({ client_secret: 'changed', issuer: 'https://sso.corp.example' })
  })

  it('the github preset fills in GitHub\'s scopes and client_secret_post; its endpoints default to github.com', async () => {
    const r = await api(base, { method: 'POST', token: await admin(), json: { id: 'adm-github', type: 'github', display_name: 'GitHub', client_id: 'Iv1.abc', client_secret: 's3cr3t-value' } })
    expect(r.status).toBe(201)
    expect(r.body).toMatchObject({ scopes: ['read:user', 'user:email'], token_endpoint_auth_method: 'client_secret_post', authorization_endpoint: null, token_endpoint: null, userinfo_endpoint: null, claim_mapping: null })
  })

  it('refuses incomplete or inconsistent settings with 400 naming the field', async () => {
    const tok = await admin()
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ id: 'adm-bad1', type: 'oidc', display_name: 'X', client_id: 'c', client_secret: 's' }, /^issuer: required/],
      [{ id: 'adm-bad2', type: 'oidc', display_name: 'X', issuer: 'https://a.example', token_endpoint: 'https://a.example/t', client_id: 'c', client_secret: 's' }, /discovery/],
      [{ id: 'adm-bad3', type: 'oidc', display_name: 'X', issuer: 'https://a.example', scopes: ['email'], client_id: 'c', client_secret: 's' }, /openid/],
      [{ id: 'adm-bad4', type: 'oauth2', display_name: 'X', client_id: 'c', client_secret: 's' }, /^authorization_endpoint: required/],
      [{ id: 'adm-bad5', type: 'oauth2', display_name: 'X', authorization_endpoint: 'https://a.example/a', token_endpoint: 'https://a.example/t', userinfo_endpoint: 'https://a.example/u', client_id: 'c', client_secret: 's' }, /claim_mapping\.subject/],
      [{ id: 'adm-bad6', type: 'github', display_name: 'X', claim_mapping: { subject: 'login' }, client_id: 'c', client_secret: 's' }, /claim_mapping/],
      [{ id: 'adm-bad7', type: 'oidc', display_name: 'X', issuer: 'http://sso.corp.example', client_id: 'c', client_secret: 's' }, /^issuer: must be https/],
      [{ id: 'adm-bad8', type: 'oidc', display_name: 'X', issuer: 'https://u:p@sso.corp.example', client_id: 'c', client_secret: 's' }, /userinfo/],
      [{ id: 'Bad_Id', type: 'github', display_name: 'X', client_id: 'c', client_secret: 's' }, /^id:/],
      [{ id: 'adm-bad9', type: 'saml', display_name: 'X', client_id: 'c', client_secret: 's' }, /type/],
    ]
    for (const [json, message] of cases) {
      const r = await api(base, { method: 'POST', token: tok, json })
      expect(r.status, JSON.stringify(json)).toBe(400)
      expect(r.body.error.code).toBe('invalid_request')
      expect(r.body.error.message, JSON.stringify(json)).toMatch(message)
    }
    // nothing was written for any of them
    expect((await env.DB.prepare("SELECT count(*) AS n FROM identity_providers WHERE id LIKE 'adm-bad%' OR id = 'Bad_Id'").first<{ n: number }>())!.n).toBe(0)
  })

  it('refuses a duplicate id with 409', async () => {
    const json = { id: 'adm-dup', type: 'github', display_name: 'GitHub', client_id: 'c', client_secret: 's' }
    expect((await api(base, { method: 'POST', token: await admin(), json })).status).toBe(201)
    const again = await api(base, { method: 'POST', token: await admin(), json })
    expect(again.status).toBe(409)
    expect(again.body.error.code).toBe('provider_exists')
  })

  it('updates settings, replaces the secret (audited as changed), enables and disables', async () => {
    await createProvider({ id: 'adm-upd', type: 'github', display_name: 'GitHub', client_id: 'c', client_secret: 'first-secret' })
    const before = await env.DB.prepare('SELECT client_secret_enc FROM identity_providers WHERE id = ?').bind('adm-upd').first<{ client_secret_enc: string }>()
    const tok = await admin()
    const r = await api(`${base}/adm-upd`, { method: 'PATCH', token: tok, json: { display_name: 'GitHub (company)', client_secret: 'second-secret' } })
    expect(r.status).toBe(200)
    expect(r.body.display_name).toBe('GitHub (company)')
    const after = await env.DB.prepare('SELECT client_secret_enc FROM identity_providers WHERE id = ?').bind('adm-upd').first<{ client_secret_enc: string }>()
    expect(after!.client_secret_enc).not.toBe(before!.client_secret_enc)
    expect(await decryptSecret(env.MASTER_KEY!, after!.client_secret_enc, 'idp-client-secret:adm-upd')).toBe('second-secret')
    // the settings as a whole stay valid for the type
    expect((await api(`${base}/adm-upd`, { method: 'PATCH', token: tok, json: { issuer: 'https://x.example' } })).status).toBe(400)
    expect((await api(`${base}/adm-upd`, { method: 'PATCH', token: tok, json: {} })).status).toBe(400)

    expect((await api(`${base}/adm-upd/disable`, { method: 'POST', token: tok })).body.enabled).toBe(false)
    expect((await api(`${base}/adm-upd/enable`, { method: 'POST', token: tok })).body.enabled).toBe(true)
    const audit = await auditRows('adm-upd')
    expect(audit.map((a) => a.action)).toEqual(['admin.identity_provider.create', 'admin.identity_provider.update', 'admin.identity_provider.disable', 'admin.identity_provider.enable'])
    expect(JSON.parse(audit[1].details)).toEqual({ display_name: 'GitHub (company)', client_secret: 'changed' })
    for (const a of audit) expect(a.details ?? '').not.toMatch(/first-secret|second-secret/)
  })

  it('while identities are linked, what says whose accounts the subjects are cannot change (409 provider_has_links)', async () => {
    const tok = await admin()
    await createProvider({ id: 'adm-move', type: 'oidc', display_name: 'Corp SSO', issuer: 'https://sso.corp.example', client_id: 'uap', client_secret: 'move-secret' })
    // no links yet: the issuer may move
    expect((await api(`${base}/adm-move`, { method: 'PATCH', token: tok, json: { issuer: 'https://sso2.corp.example' } })).status).toBe(200)
    const user = await createUser()
    await env.DB.prepare("INSERT INTO linked_identities (id, provider_id, subject, user_id, created_at) VALUES (?, 'adm-move', 's1', ?, ?)").bind(crypto.randomUUID(), user.id, Date.now()).run()
    const moved = await api(`${base}/adm-move`, { method: 'PATCH', token: tok, json: { issuer: 'https://other-idp.example' } })
    expect(moved.status).toBe(409)
    expect(moved.body.error).toMatchObject({ code: 'provider_has_links', details: { fields: ['issuer'], linked_identities: 1 } })
    expect((await env.DB.prepare("SELECT issuer FROM identity_providers WHERE id = 'adm-move'").first<{ issuer: string }>())!.issuer).toBe('https://sso2.corp.example')
    // everything else still changes
    const named = await api(`${base}/adm-move`, { method: 'PATCH', token: tok, json: { display_name: 'Corp SSO (new name)', client_secret: 'move-secret-2' } })
    expect(named.status).toBe(200)

    // an oauth2 provider's subject claim
    await createProvider({
      id: 'adm-move-o2',
      type: 'oauth2',
      display_name: 'Partner',
      authorization_endpoint: 'https://partner.example/oauth/authorize',
      token_endpoint: 'https://partner.example/oauth/token',
      userinfo_endpoint: 'https://partner.example/api/me',
      claim_mapping: { subject: 'id' },
      client_id: 'uap',
      client_secret: 'o2-secret',
    })
    await env.DB.prepare("INSERT INTO linked_identities (id, provider_id, subject, user_id, created_at) VALUES (?, 'adm-move-o2', '7', ?, ?)").bind(crypto.randomUUID(), user.id, Date.now()).run()
    const claim = await api(`${base}/adm-move-o2`, { method: 'PATCH', token: tok, json: { claim_mapping: { subject: 'email' } } })
    expect(claim.status).toBe(409)
    expect(claim.body.error.details.fields).toEqual(['claim_mapping.subject'])
    expect((await api(`${base}/adm-move-o2`, { method: 'PATCH', token: tok, json: { claim_mapping: { subject: 'id', name: 'full_name' } } })).status).toBe(200)

    // a GitHub Enterprise server: a path on the same server may change, another server may not
    const gh = await githubProvider('adm-move-gh')
    await env.DB.prepare("INSERT INTO linked_identities (id, provider_id, subject, user_id, created_at) VALUES (?, 'adm-move-gh', '42', ?, ?)").bind(crypto.randomUUID(), user.id, Date.now()).run()
    const sameServer = new URL(gh.userinfo_endpoint)
    sameServer.pathname = '/api/v3/user'
    expect((await api(`${base}/adm-move-gh`, { method: 'PATCH', token: tok, json: { userinfo_endpoint: sameServer.toString() } })).status).toBe(200)
    const other = await api(`${base}/adm-move-gh`, { method: 'PATCH', token: tok, json: { userinfo_endpoint: 'https://ghe.other.example/api/v3/user', token_endpoint: 'https://ghe.other.example/login/oauth/access_token' } })
    expect(other.status).toBe(409)
    expect(other.body.error.details.fields).toEqual(['token_endpoint', 'userinfo_endpoint'])
  })

  it('a disabled provider has no button, cannot start a flow and is not listed to apps', async () => {
    await githubProvider('adm-off')
    const b = new Browser()
    expect((await b.get('/page/login')).html).toContain('value="adm-off"')
    expect((await api('/api/v1/auth/federation/providers')).body.items.map((p: { id: string }) => p.id)).toContain('adm-off')
    await api(`${base}/adm-off/disable`, { method: 'POST', token: await admin() })
    const page = await b.get('/page/login')
    expect(page.html).not.toContain('value="adm-off"')
    expect((await api('/api/v1/auth/federation/providers')).body.items.map((p: { id: string }) => p.id)).not.toContain('adm-off')
    const start = await b.post('/page/federation/start', { csrf_token: b.csrf, provider: 'adm-off' })
    expect(start.status).toBe(404)
    expect(start.html).toContain('not available')
    const apiStart = await api('/api/v1/auth/federation/adm-off/login?app_id=x&redirect_uri=https://x.example/cb')
    expect(apiStart.status).toBe(404)
    expect(apiStart.body.error.code).toBe('unknown_provider')
  })

  it('deletes a provider with its linked identities, in one audited batch', async () => {
    await githubProvider('adm-del')
    const user = await createUser()
    await env.DB.prepare("INSERT INTO linked_identities (id, provider_id, subject, user_id, created_at) VALUES (?, 'adm-del', '42', ?, ?)").bind(crypto.randomUUID(), user.id, Date.now()).run()
    const r = await api(`${base}/adm-del`, { method: 'DELETE', token: await admin() })
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ deleted: true, id: 'adm-del', linked_identities_deleted: 1 })
    expect((await env.DB.prepare("SELECT count(*) AS n FROM linked_identities WHERE provider_id = 'adm-del'").first<{ n: number }>())!.n).toBe(0)
    expect((await auditRows('adm-del')).at(-1)!.action).toBe('admin.identity_provider.delete')
    expect((await api(`${base}/adm-del`, { token: await admin() })).status).toBe(404)
    expect((await api(`${base}/adm-del`, { method: 'DELETE', token: await admin() })).status).toBe(404)
  })

  it('is for admins only', async () => {
    const user = await createUser()
    const { access_token } = await login(user.mobile, user.password)
    expect((await api(base, { token: access_token })).status).toBe(403)
    expect((await api(base)).status).toBe(401)
    expect((await api(base, { method: 'POST', json: { id: 'adm-x' } })).status).toBe(401)
  })

  it('lists providers with their settings', async () => {
    await oidcProvider('adm-list', { display_name: 'Listed' })
    const r = await api(base, { token: await admin() })
    expect(r.status).toBe(200)
    const mine = r.body.items.find((p: { id: string }) => p.id === 'adm-list')
    expect(mine).toMatchObject({ type: 'oidc', display_name: 'Listed', issuer: upstreams().oidcIssuer, client_secret_set: true })
    expect(mine).not.toHaveProperty('client_secret')
  })
})

describe('outbound calls to admin-configured URLs', () => {
  const dev = { allowLoopbackHttp: true }
  const prod = { allowLoopbackHttp: false }

  it('https only in production; http only to this machine elsewhere', () => {
    expect(outboundUrlProblem('https://idp.example.com/x', prod)).toBeNull()
    expect(outboundUrlProblem('http://127.0.0.1:9000/x', prod)).toMatch(/https/)
    expect(outboundUrlProblem('http://127.0.0.1:9000/x', dev)).toBeNull()
    expect(outboundUrlProblem('http://localhost:9000/x', dev)).toBeNull()
    expect(outboundUrlProblem('http://[::1]:9000/x', dev)).toBeNull()
    expect(outboundUrlProblem('http://idp.example.com/x', dev)).toMatch(/https/)
    expect(outboundUrlProblem('http://10.0.0.1/x', dev)).toMatch(/https/)
    expect(outboundUrlProblem('ftp://idp.example.com/x', dev)).toMatch(/https/)
    expect(outboundUrlProblem('https://a:b@idp.example.com/x', prod)).toMatch(/userinfo/)
    expect(outboundUrlProblem('not a url', prod)).toMatch(/absolute/)
  })

  it('does not follow redirects and bounds the answer', async () => {
    const gh = upstreams().githubUrl
    await expect(outboundFetch(`${gh}/_test/redirect`, {}, dev)).rejects.toThrow(/redirect/)
    await expect(outboundFetch(`${gh}/_test/large`, {}, { ...dev, maxBytes: 64 * 1024 })).rejects.toBeInstanceOf(OutboundError)
    await expect(outboundFetch(`${gh}/user`, {}, prod)).rejects.toThrow(/must be https/)
    const ok = await outboundFetch(`${gh}/nothing-here`, {}, dev)
    expect(ok.status).toBe(404)
  })
})
