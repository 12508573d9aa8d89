import { describe, expect, it } from 'vitest'
import { SELF } from 'cloudflare:test'
import signingDoc from '../docs/signing.md?raw'
import { env } from 'cloudflare:test'
import { adminToken, api, auditLog, signedApi } from './support/api'
import { createApp } from './support/apps'
import { canonicalQuery, canonicalString } from '../src/signing/canonical'
import { signRequest } from '../src/signing/client'
import { hmacSha256Hex, sha256Hex } from '../src/lib/crypto'

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

  it('accepts a nonce once, and stores it in KV for longer than the skew window', async () => {
    const a = await createApp()
    const nonce = crypto.randomUUID().replace(/-/g, '')
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { nonce })).status).toBe(200)
    const again = await signedApi(a, 'GET', '/api/v1/open/ping', { nonce })
    expect(again.status).toBe(401)
    expect(again.body.error.code).toBe('nonce_replayed')
    const stored = await env.KV.getWithMetadata(`nonce:${a.app_id}:${nonce}`)
    expect(stored.value).not.toBeNull()
    expect(await auditLog({ action: 'signature.nonce_replayed', target_id: a.app_id })).toHaveLength(1)
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
    expect(await auditLog({ action: 'signature.invalid', target_id: a.app_id })).toHaveLength(1)
  })

  it('refuses a disabled app with app_disabled (after checking the signature)', async () => {
    const a = await createApp()
    const admin = await adminToken()
    expect((await api(`/api/v1/admin/apps/${a.app_id}/disable`, { method: 'POST', token: admin })).status).toBe(200)
    const r = await signedApi(a, 'GET', '/api/v1/open/ping')
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('app_disabled')
    // a forger still only learns signature_invalid
    expect((await signedApi({ app_id: a.app_id, app_secret: 'sk_guess' }, 'GET', '/api/v1/open/ping')).body.error.code).toBe('signature_invalid')
    expect((await api(`/api/v1/admin/apps/${a.app_id}`, { method: 'PATCH', token: admin, json: { status: 'ACTIVE' } })).status).toBe(200)
    expect((await signedApi(a, 'GET', '/api/v1/open/ping')).status).toBe(200)
  })

  it('after a secret rotation refuses the old secret at once and accepts the new one', async () => {
    const a = await createApp()
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
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { nonce: 'short' })).body.error.code).toBe('signature_missing')
    expect((await signedApi(a, 'GET', '/api/v1/open/ping', { headers: { 'X-UAP-Signature': 'zz' } })).body.error.code).toBe('signature_invalid')
  })
})
