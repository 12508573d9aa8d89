import { describe, expect, it } from 'vitest'
import { MAX_BODY_BYTES } from '../src/app'
import { api } from './support/api'

/** The one error body: exactly error.{code, message, request_id, details?}, request_id = X-Request-Id. */
function expectErrorBody(r: Awaited<ReturnType<typeof api>>, status: number, code: string) {
  expect(r.status).toBe(status)
  expect(r.headers.get('Content-Type')).toMatch(/^application\/json/)
  expect(Object.keys(r.body)).toEqual(['error'])
  expect(Object.keys(r.body.error).sort()).toEqual(expect.arrayContaining(['code', 'message', 'request_id']))
  for (const k of Object.keys(r.body.error)) expect(['code', 'message', 'request_id', 'details']).toContain(k)
  expect(r.body.error.code).toBe(code)
  expect(typeof r.body.error.message).toBe('string')
  expect(r.body.error.message.length).toBeGreaterThan(3)
  expect(r.body.error.request_id).toBe(r.headers.get('X-Request-Id'))
}

const LOGIN = '/api/v1/auth/login'
const JSON_HEADERS = { 'Content-Type': 'application/json' }

describe('error bodies', () => {
  it('malformed JSON → 400 malformed_json', async () => {
    const r = await api(LOGIN, { method: 'POST', headers: JSON_HEADERS, body: '{"mobile": "+8613800138000",' })
    expectErrorBody(r, 400, 'malformed_json')
  })

  it('an empty body on a JSON route → 400 malformed_json', async () => {
    expectErrorBody(await api(LOGIN, { method: 'POST', headers: JSON_HEADERS }), 400, 'malformed_json')
  })

  it('a wrong or missing Content-Type on a JSON route → 400 invalid_request naming the problem', async () => {
    const body = JSON.stringify({ mobile: '+8613800138000', password: 'x' })
    const plain = await api(LOGIN, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body })
    expectErrorBody(plain, 400, 'invalid_request')
    expect(plain.body.error.message).toContain('text/plain')
    const form = await api(LOGIN, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'mobile=1&password=2' })
    expectErrorBody(form, 400, 'invalid_request')
    const none = await api(LOGIN, { method: 'POST', body: new TextEncoder().encode(body) })
    expectErrorBody(none, 400, 'invalid_request')
  })

  it('zod validation failures → 400 invalid_request with details.issues per field', async () => {
    const r = await api(LOGIN, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ mobile: 'not a phone' }) })
    expectErrorBody(r, 400, 'invalid_request')
    expect(r.body.error.details.target).toBe('json')
    const paths = r.body.error.details.issues.map((i: { path: string }) => i.path)
    expect(paths).toEqual(expect.arrayContaining(['mobile', 'password']))
    for (const issue of r.body.error.details.issues) expect(issue.message).toBeTruthy()
    expect(r.body.error.message).toMatch(/^(mobile|password): /)
  })

  it('a JSON array instead of an object → 400 invalid_request', async () => {
    expectErrorBody(await api(LOGIN, { method: 'POST', headers: JSON_HEADERS, body: '[]' }), 400, 'invalid_request')
  })

  it(`a body over ${MAX_BODY_BYTES} bytes → 413 payload_too_large`, async () => {
    const big = JSON.stringify({ mobile: '+8613800138000', password: 'x'.repeat(MAX_BODY_BYTES) })
    expectErrorBody(await api(LOGIN, { method: 'POST', headers: JSON_HEADERS, body: big }), 413, 'payload_too_large')
    // exactly at the limit is still parsed (and then refused by validation, not by size)
    const atLimit = '{"mobile":"+8613800138000","password":"' + 'x'.repeat(MAX_BODY_BYTES - 41) + '"}'
    expect(new TextEncoder().encode(atLimit).length).toBe(MAX_BODY_BYTES)
    expect((await api(LOGIN, { method: 'POST', headers: JSON_HEADERS, body: atLimit })).status).toBe(400)
  })

  it('an unknown route → 404 not_found', async () => {
    expectErrorBody(await api('/api/v1/nothing-here'), 404, 'not_found')
    expectErrorBody(await api('/api/v1/auth/login/extra', { method: 'POST' }), 404, 'not_found')
  })

  it('a known route with the wrong method → 405 method_not_allowed with Allow', async () => {
    const r = await api(LOGIN, { method: 'GET' })
    expectErrorBody(r, 405, 'method_not_allowed')
    expect(r.headers.get('Allow')).toBe('POST')
    const jwks = await api('/.well-known/jwks.json', { method: 'DELETE' })
    expectErrorBody(jwks, 405, 'method_not_allowed')
    expect(jwks.headers.get('Allow')).toBe('GET')
  })

  it('authentication errors use the same body', async () => {
    expectErrorBody(await api('/api/v1/auth/me'), 401, 'unauthorized')
    expectErrorBody(await api('/api/v1/auth/me', { headers: { Authorization: 'Bearer a.b.c' } }), 401, 'invalid_token')
  })
})

describe('X-Request-Id', () => {
  it('is on every response, success or error, and differs per request', async () => {
    const ids = new Set<string>()
    for (const [path, init] of [
      ['/healthz', {}],
      ['/livez', {}],
      ['/.well-known/jwks.json', {}],
      ['/docs/open', {}],
      ['/docs/admin/openapi.json', {}],
      ['/nope', {}],
      [LOGIN, { method: 'GET' }],
      [LOGIN, { method: 'POST', headers: JSON_HEADERS, body: '{' }],
    ] as [string, RequestInit][]) {
      const r = await api(path, init)
      const id = r.headers.get('X-Request-Id')
      expect(id, path).toMatch(/^[A-Za-z0-9._-]{8,128}$/)
      ids.add(id!)
    }
    expect(ids.size).toBe(8)
  })

  it('echoes a sane incoming X-Request-Id and replaces an unsafe one', async () => {
    const mine = await api('/nope', { headers: { 'X-Request-Id': 'trace-0123456789' } })
    expect(mine.headers.get('X-Request-Id')).toBe('trace-0123456789')
    expect(mine.body.error.request_id).toBe('trace-0123456789')
    const evil = await api('/nope', { headers: { 'X-Request-Id': 'bad id with spaces <script>' } })
    expect(evil.headers.get('X-Request-Id')).not.toContain('<')
    expect(evil.body.error.request_id).toBe(evil.headers.get('X-Request-Id'))
  })
})
