import { describe, expect, it } from 'vitest'
import { SELF, runInDurableObject } from 'cloudflare:test'
import signingDoc from '../docs/signing.md?raw'
import { env } from 'cloudflare:test'
import { adminToken, api, auditLog, readResponse, signedApi } from './support/api'
import { createApp } from './support/apps'
import { canonicalQuery, canonicalString } from '../src/signing/canonical'
import { signRequest } from '../src/signing/client'
import { hmacSha256Hex, sha256Hex } from '../src/lib/crypto'
import { appGate, HOLD_MAX_MS, type AdmitRequest } from '../src/signing/gate'
import { MAX_SKEW_S } from '../src/signing/verify'
import { encryptAppSecret, newAppSecret } from '../src/apps/service'

const now = () => Math.floor(Date.now() / 1000)

/** Sends a request whose signature was computed for `signed` but whose wire form is `sent`. */
async function tampered(
  app: { app_id: string; app_secret: string },
  signed: { method: string; path: string; body?: string },
  sent: { method: string; path: string; body?: string },
) {
  const headers = await signRequest({ appId: app.app_id, appSecret: app.app_secret, method: signed.method, url: `http://localhost${signed.path}`, body: signed.body })
  const res = await SELF.fetch(`http://localhost${sent.path}`, { method: sent.method, headers: { ...headers, 'Content-Type': 'application/json' }, body: sent.body })
  return { status: res.status, body: (await res.json()) as any }
}

describe('signing scheme: worked example of docs/signing.md', () => {
  const ex = {
    appId: 'app_0123456789abcdef',
    secret: 'sk_worked_example_secret_never_use_it',
    method: 'POST',
    url: 'https://uap.example.com/api/v1/simple/ticket/exchange?q=Li%20Lei&a=1&a=0',
    body: '{"target_app_id":"app_fedcba9876543210","user_mobile":"+8613800138000"}',
    timestamp: 1767225600,
    nonce: 'b5f1c0a4e9d84c2a9f1e7d3c6b2a8f40',
  }
  const expectedSignature = 'f6cc3d49c0da9734cb12c91a9af2f9fdaeb6247e38583c94e7d93eae9d9cfcf2'

  it('the reference client produces the documented signature', async () => {
    const h = await signRequest({ appId: ex.appId, appSecret: ex.secret, method: ex.method, url: ex.url, body: ex.body, timestamp: ex.timestamp, nonce: ex.nonce })
    expect(h).toEqual({ 'X-UAP-App-Id': ex.appId, 'X-UAP-Timestamp': '1767225600', 'X-UAP-Nonce': ex.nonce, 'X-UAP-Signature': expectedSignature })
  })

  it('the verifier side (canonical string + HMAC) matches the document, byte for byte', async () => {
    const bodyHash = await sha256Hex(ex.body)
    const url = new URL(ex.url)
    const canonical = canonicalString({ appId: ex.appId, method: ex.method, path: url.pathname, query: url.search, timestamp: String(ex.timestamp), nonce: ex.nonce, bodySha256Hex: bodyHash })
    expect(signingDoc).toContain(`Body SHA-256: \`${bodyHash}\``)
    expect(signingDoc).toContain('```\n' + canonical + '\n```')
    expect(await hmacSha256Hex(ex.secret, canonical)).toBe(expectedSignature)
    expect(signingDoc).toContain(`X-UAP-Signature: ${expectedSignature}`)
  })

  it('canonical query: RFC 3986 encoding, sorted by name then value, repeated names kept', () => {
    expect(canonicalQuery('?b=2&a=z&a=1&c')).toBe('a=1&a=z&b=2&c=')
    expect(canonicalQuery('?q=Li+Lei&x=%E6%9D%8E')).toBe('q=Li%20Lei&x=%E6%9D%8E')
    expect(canonicalQuery("?k=a!b*c'(d)")).toBe('k=a%21b%2Ac%27%28d%29')
    expect(canonicalQuery('')).toBe('')
  })

  it('the query edge cases in docs/signing.md: a signature over the documented canonical form is accepted for the raw query', async () => {
    const rows = [...signingDoc.matchAll(/^  \| `(\?[^`]*)` \| `([^`]*)` \|/gm)].map((m) => ({ wire: m[1], canonical: m[2] }))
    expect(rows.map((r) => r.wire)).toEqual(['?flag', '?a=1&&b=2', '?=x', '?a=b=c', '?a=%zz', '?a=%FF'])
    const a = await createApp()
    const emptyBody = await sha256Hex('')
    for (const { wire, canonical } of rows) {
      expect(canonicalQuery(wire), wire).toBe(canonical)
      // Signed by hand from the table's canonical column, not through canonicalQuery.
      const timestamp = String(Math.floor(Date.now() / 1000))
      const nonce = crypto.randomUUID().replace(/-/g, '')
      const message = ['UAP-HMAC-SHA256', a.app_id, 'GET', '/api/v1/open/ping', canonical, timestamp, nonce, emptyBody].join('\n')
      const res = await SELF.fetch(`http://localhost/api/v1/open/ping${wire}`, {
        headers: { 'X-UAP-App-Id': a.app_id, 'X-UAP-Timestamp': timestamp, 'X-UAP-Nonce': nonce, 'X-UAP-Signature': await hmacSha256Hex(a.app_secret, message) },
      })
      expect(res.status, wire).toBe(200)
    }
  })
})

describe('GET/POST /api/v1/open/ping', () => {
  it('answers a correctly signed request with the app id and server time', async () => {
    const a = await createApp()
    const r = await signedApi(a, 'GET', '/api/v1/open/ping')
    expect(r.status).toBe(200)
    expect(r.body.app_id).toBe(a.app_id)
    expect(Math.abs(r.body.timestamp - now())).toBeLessThan(5)
    expect(new Date(r.body.server_time).getTime()).toBeGreaterThan(0)
  })

  it('accepts a signed query in any order and echoes the body hash for POST', async () => {
    const a = await createApp()
    expect((await signedApi(a, 'GET', '/api/v1/open/ping?q=Li%20Lei&a=1&a=0')).status).toBe(200)
    const r = await signedApi(a, 'POST', '/api/v1/open/ping', { json: { hello: 'world' } })
    expect(r.status).toBe(200)
    expect(r.body.body_sha256).toBe(await sha256Hex(JSON.stringify({ hello: 'world' })))
  })

  it('is listed in the partner spec', async () => {
    const doc = (await api('/docs/open/openapi.json')).body
    expect(Object.keys(doc.paths['/api/v1/open/ping'])).toEqual(expect.arrayContaining(['get', 'post']))
    expect(doc.components.securitySchemes.appSignature).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-UAP-Signature' })
  })

  it('documents every signed route the same way: the appSignature scheme and all four headers', async () => {
    const doc = (await api('/docs/open/openapi.json')).body
    const signed: string[] = []
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, { security?: unknown; parameters?: { in: string; name: string; required?: boolean }[] }>>)) {
      for (const [method, op] of Object.entries(item)) {
        const headers = (op.parameters ?? []).filter((p) => p.in === 'header' && p.name.startsWith('X-UAP-') && p.required).map((p) => p.name)
        const declared = JSON.stringify(op.security ?? []).includes('appSignature')
        // a signature as one of several ways in (the first-party auth routes) is documented there
        if (declared && (op.security as unknown[]).length > 1 && !headers.length) continue
        if (!headers.length && !declared) continue
        signed.push(`${method.toUpperCase()} ${path}`)
        expect(op.security, `${method} ${path}`).toEqual([{ appSignature: [] }])
        expect(headers.sort(), `${method} ${path}`).toEqual(['X-UAP-App-Id', 'X-UAP-Nonce', 'X-UAP-Signature', 'X-UAP-Timestamp'])
      }
    }
    expect(signed).toEqual(
      expect.arrayContaining(['GET /api/v1/open/ping', 'POST /api/v1/open/ping', 'POST /api/v1/open/sms/send', 'POST /api/v1/open/pwd/reset', 'POST /api/v1/simple/ticket/exchange', 'POST /api/v1/simple/ticket/verify']),
    )
  })
})

describe('signature verification', () => {
  it('refuses a tampered method, path, query or body with signature_invalid', async () => {
    const a = await createApp()
    const cases = [
      [{ method: 'GET', path: '/api/v1/open/ping' }, { method: 'POST', path: '/api/v1/open/ping' }],
      [{ method: 'POST', path: '/api/v1/open/ping?x=1' }, { method: 'POST', path: '/api/v1/open/ping' }],
      [{ method: 'GET', path: '/api/v1/open/ping?a=1' }, { method: 'GET', path: '/api/v1/open/ping?a=2' }],
      [{ method: 'GET', path: '/api/v1/open/ping?a=1' }, { method: 'GET', path: '/api/v1/open/ping?a=1&b=2' }],
      [{ method: 'POST', path: '/api/v1/open/ping', body: '{"amount":1}' }, { method: 'POST', path: '/api/v1/open/ping', body: '{"amount":100}' }],
      [{ method: 'POST', path: '/api/v1/open/ping', body: '{"a":1}' }, { method: 'POST', path: '/api/v1/open/ping', body: '{"a": 1}' }],
    ] as const
    for (const [signed, sent] of cases) {
      const r = await tampered(a, signed, sent)
      expect(r.status, JSON.stringify({ signed, sent })).toBe(401)
      expect(r.body.error.code).toBe('signature_invalid')
    }
    // the untampered control passes
    expect((await tampered(a, cases[4][0], cases[4][0])).status).toBe(200)
  })

  it('refuses a path signed for another route', async () => {
    const a = await createApp()
    const r = await tampered(a, { method: 'GET', path: '/api/v1/open/pong' }, { method: 'GET', path: '/api/v1/open/ping' })
    expect(r.body.error.code).toBe('signature_invalid')
  })

  it('refuses stale and future timestamps beyond ±300 s, accepts within', async () => {
    const a = await createApp()
    const stale = await signedApi(a, 'GET', '/api/v1/open/ping', { timestamp: now() - 301 })
    expect(stale.status).toBe(401)
    expect(stale.body.error.code).toBe('timestamp_stale')
    expect(Math.abs(stale.body.error.details.server_time - now())).toBeLessThan(5)
    const future = await signedApi(a, 'GET', '/api/v1/open/ping', { timestamp: now() + 301 })
    expect(future.status).toBe(401)
    expect(future.body.error.code).toBe('timestamp_stale')
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { timestamp: now() - 290 })).status).toBe(200)
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { timestamp: now() + 290 })).status).toBe(200)
  })

  it('a request stamped as far ahead as allowed keeps its nonce until after its stamp stops being accepted (the skew is judged in whole seconds)', async () => {
    const a = await createApp()
    const nonce = crypto.randomUUID().replace(/-/g, '')
    const T = now() + MAX_SKEW_S // the partner's clock 300 s ahead: the earliest its nonce can be stored
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { nonce, timestamp: T })).status).toBe(200)
    const [stored] = await runInDurableObject(appGate(env, a.app_id), (_o, state) => state.storage.sql.exec<{ expires_at: number }>('SELECT expires_at FROM nonce WHERE nonce = ?', nonce).toArray())
    // T is accepted while floor(now / 1000) - T <= 300, i.e. until just before (T + 301) s
    expect(stored.expires_at).toBeGreaterThan((T + MAX_SKEW_S + 1) * 1000)
  })

  it("accepts a nonce once, and keeps it in the app's AppGate for longer than the skew window", async () => {
    const a = await createApp()
    const nonce = crypto.randomUUID().replace(/-/g, '')
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { nonce })).status).toBe(200)
    const again = await signedApi(a, 'GET', '/api/v1/open/ping', { nonce })
    expect(again.status).toBe(401)
    expect(again.body.error.code).toBe('nonce_replayed')
    const stored = await runInDurableObject(appGate(env, a.app_id), (_o, state) => state.storage.sql.exec<{ expires_at: number }>('SELECT expires_at FROM nonce WHERE nonce = ?', nonce).toArray())
    expect(stored.length).toBe(1)
    expect(stored[0].expires_at).toBeGreaterThan(Date.now() + 590_000)
    // nothing of it in KV any more
    expect(await env.KV.get(`nonce:${a.app_id}:${nonce}`)).toBeNull()
    const audit = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_logs WHERE action = 'signature.nonce_replayed' AND target_id = ?").bind(a.app_id).first<{ n: number }>()
    expect(audit!.n).toBe(1)
  })

  it('8 concurrent copies of one signed request: exactly one is admitted (the nonce check is exact)', async () => {
    const a = await createApp()
    const url = 'http://localhost/api/v1/open/ping?x=1'
    // warm this isolate's copy of the app row, so the copies race on the gate alone
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
    const headers = await signRequest({ appId: a.app_id, appSecret: a.app_secret, method: 'GET', url })
    const results = await Promise.all(Array.from({ length: 8 }, () => SELF.fetch(url, { headers }).then(readResponse)))
    expect(results.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401, 401, 401, 401])
    for (const r of results.filter((x) => x.status === 401)) expect(r.body.error.code).toBe('nonce_replayed')
  })

  it('does not burn the nonce of a request whose signature failed', async () => {
    const a = await createApp()
    const nonce = crypto.randomUUID().replace(/-/g, '')
    const bad = await signedApi({ ...a, app_secret: 'sk_wrong' }, 'GET', '/api/v1/open/ping', { nonce })
    expect(bad.body.error.code).toBe('signature_invalid')
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { nonce })).status).toBe(200)
  })

  it("refuses a request signed with another app's secret, and an unknown app id, alike", async () => {
    const a = await createApp()
    const b = await createApp()
    const wrong = await signedApi({ app_id: a.app_id, app_secret: b.app_secret }, 'GET', '/api/v1/open/ping')
    expect(wrong.status).toBe(401)
    expect(wrong.body.error.code).toBe('signature_invalid')
    const unknown = await signedApi({ app_id: 'app_ffffffffffffffff', app_secret: b.app_secret }, 'GET', '/api/v1/open/ping')
    expect(unknown.status).toBe(401)
    expect(unknown.body.error).toMatchObject({ code: 'signature_invalid', message: wrong.body.error.message })
    const audit = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_logs WHERE action = 'signature.invalid' AND target_id = ?").bind(a.app_id).first<{ n: number }>()
    expect(audit!.n).toBe(1)
  })

  it('refuses a disabled app with app_disabled (after checking the signature), from the next request on', async () => {
    const a = await createApp()
    const admin = await adminToken()
    // the app row is in this isolate's cache now: the disable must still apply at once
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
    expect((await api(`/api/v1/admin/apps/${a.app_id}/disable`, { method: 'POST', token: admin })).status).toBe(200)
    const nonce = crypto.randomUUID().replace(/-/g, '')
    const r = await signedApi(a, 'GET', '/api/v1/open/ping', { nonce })
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('app_disabled')
    // a forger still only learns signature_invalid
    expect((await signedApi({ app_id: a.app_id, app_secret: 'sk_guess' }, 'GET', '/api/v1/open/ping')).body.error.code).toBe('signature_invalid')
    expect((await api(`/api/v1/admin/apps/${a.app_id}`, { method: 'PATCH', token: admin, json: { status: 'ACTIVE' } })).status).toBe(200)
    // the refused request spent nothing: even its nonce is still unused
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { nonce })).status).toBe(200)
  })

  it('after a secret rotation refuses the old secret at once and accepts the new one', async () => {
    const a = await createApp()
    // twice: the second is served from this isolate's cached row, which must not outlive the rotation
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
    const rot = await api(`/api/v1/admin/apps/${a.app_id}/secret/rotate`, { method: 'POST', token: await adminToken() })
    expect(rot.status).toBe(200)
    expect(rot.body.app_secret).toMatch(/^sk_/)
    expect(rot.body.app_secret).not.toBe(a.app_secret)
    const old = await signedApi(a, 'GET', '/api/v1/open/ping')
    expect(old.status).toBe(401)
    expect(old.body.error.code).toBe('signature_invalid')
    expect((await signedApi({ app_id: a.app_id, app_secret: rot.body.app_secret }, 'GET', '/api/v1/open/ping')).status).toBe(200)
  })

  it('names each missing header with signature_missing, and malformed ones', async () => {
    const a = await createApp()
    for (const h of ['X-UAP-App-Id', 'X-UAP-Timestamp', 'X-UAP-Nonce', 'X-UAP-Signature']) {
      const sig = await signRequest({ appId: a.app_id, appSecret: a.app_secret, method: 'GET', url: 'http://localhost/api/v1/open/ping' })
      delete sig[h]
      const res = await SELF.fetch('http://localhost/api/v1/open/ping', { headers: sig })
      const body = (await res.json()) as any
      expect(res.status).toBe(401)
      expect(body.error.code).toBe('signature_missing')
      expect(body.error.details.missing).toEqual([h])
    }
    const none = await api('/api/v1/open/ping')
    expect(none.status).toBe(401)
    expect(none.body.error.details.missing).toHaveLength(4)
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { headers: { 'X-UAP-Timestamp': '1767225600000x' } })).body.error.code).toBe('signature_missing')
    // Milliseconds, the common mistake, are answered with the fix: timestamp_stale and the server clock.
    const ms = await signedApi(a, 'GET', '/api/v1/open/ping', { timestamp: Date.now() })
    expect(ms.status).toBe(401)
    expect(ms.body.error.code).toBe('timestamp_stale')
    expect(ms.body.error.message).toMatch(/milliseconds/)
    expect(Math.abs(ms.body.error.details.server_time - Date.now() / 1000)).toBeLessThan(60)
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { headers: { 'X-UAP-Timestamp': '12345678901234567' } })).body.error.code).toBe('signature_missing')
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { nonce: 'short' })).body.error.code).toBe('signature_missing')
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { headers: { 'X-UAP-Signature': 'zz' } })).body.error.code).toBe('signature_invalid')
  })
})

describe('partner API switch (issue 9)', () => {
  it('an OIDC client is refused by default (403 partner_api_disabled, audited, nothing spent); an admin can switch it on', async () => {
    const rp = await createApp({ protocol_type: 'OIDC', redirect_uris: ['https://rp.example.com/cb'] })
    expect(rp.app.partner_api_enabled).toBe(false)
    const nonce = crypto.randomUUID().replace(/-/g, '')
    const refused = await signedApi(rp, 'GET', '/api/v1/open/ping', { nonce })
    expect(refused.status).toBe(403)
    expect(refused.body.error.code).toBe('partner_api_disabled')
    // a wrong secret still reads as a wrong secret
    expect((await signedApi({ app_id: rp.app_id, app_secret: 'sk_guess' }, 'GET', '/api/v1/open/ping')).body.error.code).toBe('signature_invalid')
    const audit = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_logs WHERE action = 'signature.partner_api_disabled' AND target_id = ?").bind(rp.app_id).first<{ n: number }>()
    expect(audit!.n).toBe(1)
    const admin = await adminToken()
    const on = await api(`/api/v1/admin/apps/${rp.app_id}`, { method: 'PATCH', token: admin, json: { partner_api_enabled: true } })
    expect(on.body.partner_api_enabled).toBe(true)
    expect((await signedApi(rp, 'GET', '/api/v1/open/ping', { nonce })).status).toBe(200)
  })

  it('a SIMPLE_API app switched off is refused from the next request on, and back on', async () => {
    const a = await createApp()
    const admin = await adminToken()
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
    expect((await api(`/api/v1/admin/apps/${a.app_id}`, { method: 'PATCH', token: admin, json: { partner_api_enabled: false } })).status).toBe(200)
    expect((await signedApi(a, 'POST', '/api/v1/simple/ticket/verify', { json: { ticket: 'x' } })).body.error.code).toBe('partner_api_disabled')
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).body.error.code).toBe('partner_api_disabled')
    expect((await api(`/api/v1/admin/apps/${a.app_id}`, { method: 'PATCH', token: admin, json: { partner_api_enabled: true } })).status).toBe(200)
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
  })
})

describe('AppGate: when a cached app row may be used (docs/security.md)', () => {
  const gate = () => appGate(env, `app_gate_test_${crypto.randomUUID()}`)
  const req = (over: Partial<AdmitRequest>): AdmitRequest => ({ version: 1, fresh: false, spend: true, nonce: crypto.randomUUID(), nonceTtlMs: 600_000, policies: [], ...over })

  it('vouches for a version once a row read from D1 set it; never for an older one', async () => {
    const g = gate()
    expect((await g.admit(req({ version: 1 }))).kind).toBe('stale') // nothing known yet: read D1
    expect((await g.admit(req({ version: 1, fresh: true }))).kind).toBe('admitted')
    expect((await g.admit(req({ version: 1 }))).kind).toBe('admitted')
    // D1 moved on without a hold (an edit outside the admin API): the newer read wins
    expect((await g.admit(req({ version: 2, fresh: true }))).kind).toBe('admitted')
    expect((await g.admit(req({ version: 1 }))).kind).toBe('stale')
    expect((await g.admit(req({ version: 1, fresh: true }))).kind).toBe('stale')
    expect((await g.admit(req({ version: 2 }))).kind).toBe('admitted')
    // a stale answer spends nothing: the same nonce is still usable
    const nonce = crypto.randomUUID()
    expect((await g.admit(req({ version: 1, nonce }))).kind).toBe('stale')
    expect((await g.admit(req({ version: 2, nonce }))).kind).toBe('admitted')
    expect((await g.admit(req({ version: 2, nonce }))).kind).toBe('replayed')
  })

  it('while a change is held no cached row is used; after release only the released version', async () => {
    const g = gate()
    await g.admit(req({ version: 4, fresh: true }))
    const token = await g.hold()
    expect((await g.admit(req({ version: 4 }))).kind).toBe('stale')
    // a read from D1 during the change is served (the change is not answered yet), not vouched for
    expect((await g.admit(req({ version: 4, fresh: true }))).kind).toBe('admitted')
    expect((await g.admit(req({ version: 4 }))).kind).toBe('stale')
    await g.release(token, 5)
    expect((await g.admit(req({ version: 4 }))).kind).toBe('stale')
    expect((await g.admit(req({ version: 5 }))).kind).toBe('admitted')
  })

  it('overlapping changes: nothing is vouched for until the last is released, then the highest version', async () => {
    const g = gate()
    await g.admit(req({ version: 1, fresh: true }))
    const [a, b] = [await g.hold(), await g.hold()]
    await g.release(b, 3)
    expect((await g.admit(req({ version: 3 }))).kind).toBe('stale')
    await g.release(a, 2)
    expect((await g.admit(req({ version: 2 }))).kind).toBe('stale')
    expect((await g.admit(req({ version: 3 }))).kind).toBe('admitted')
    // an unknown outcome (release without a version, e.g. a deleted row) leaves nothing vouched for
    const c = await g.hold()
    await g.release(c, null)
    expect((await g.admit(req({ version: 3 }))).kind).toBe('stale')
    expect((await g.admit(req({ version: 3, fresh: true }))).kind).toBe('admitted')
  })

  it('a hold never released (the D1 write failed, or the release was lost) is abandoned after HOLD_MAX_MS without vouching for the old row', async () => {
    const g = gate()
    await g.admit(req({ version: 7, fresh: true }))
    await g.hold()
    await runInDurableObject(g, (_o, state) => state.storage.sql.exec('UPDATE gate_hold SET since = ?', Date.now() - HOLD_MAX_MS - 1))
    expect((await g.admit(req({ version: 7 }))).kind).toBe('stale')
    expect((await g.admit(req({ version: 8, fresh: true }))).kind).toBe('admitted')
    expect((await g.admit(req({ version: 8 }))).kind).toBe('admitted')
  })

  it('failure ordering on rotation: D1 written, the release lost: the old secret is refused anyway, the new one works', async () => {
    const a = await createApp()
    // cached in this isolate, and vouched for by the gate
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
    // what rotateAppSecretAsAdmin does, minus the release
    await appGate(env, a.app_id).hold()
    const secret = newAppSecret()
    await env.DB.prepare('UPDATE applications SET app_secret_enc = ?, version = version + 1 WHERE app_id = ?').bind(await encryptAppSecret(env, a.app_id, secret), a.app_id).run()
    const old = await signedApi(a, 'GET', '/api/v1/open/ping')
    expect(old.status).toBe(401)
    expect(old.body.error.code).toBe('signature_invalid')
    expect((await signedApi({ app_id: a.app_id, app_secret: secret }, 'GET', '/api/v1/open/ping')).status).toBe(200)
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(401)
  })

  it('failure ordering on disable: the hold is taken before D1 is written, so a failed hold writes nothing', async () => {
    const a = await createApp()
    const admin = await adminToken()
    // a gate that cannot be reached: the admin write is refused before D1 is touched
    const broken = { ...env, APP_GATE: { idFromName: () => ({}), get: () => ({ hold: () => Promise.reject(new Error('gate down')) }) } }
    const { createExecutionContext, waitOnExecutionContext } = await import('cloudflare:test')
    const worker = (await import('../src/index')).default
    const ctx = createExecutionContext()
    const res = await worker.fetch(new Request(`http://localhost/api/v1/admin/apps/${a.app_id}/disable`, { method: 'POST', headers: { Authorization: `Bearer ${admin}` } }), broken as never, ctx)
    await waitOnExecutionContext(ctx)
    expect(res.status).toBe(500)
    const row = await env.DB.prepare('SELECT status, version FROM applications WHERE app_id = ?').bind(a.app_id).first<{ status: string; version: number }>()
    expect(row).toEqual({ status: 'ACTIVE', version: 1 })
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
  })
})
