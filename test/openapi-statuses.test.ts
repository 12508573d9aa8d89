import { beforeAll, describe, expect, it } from 'vitest'
import { SELF } from 'cloudflare:test'
import { MAX_BODY_BYTES, MAX_UPLOAD_BYTES, bodyLimitOf } from '../src/app'
import { signRequest } from '../src/signing/client'
import { createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test'
import worker from '../src/index'
import type { Env } from '../src/env'
import { adminToken, createUser, login } from './support/api'
import { createApp, createOidcApp } from './support/apps'
import { randomIp } from './support/browser'

/** The Worker's fetch handler with some variables changed (a fresh env object: configuration parsed anew). */
async function fetchWithEnv(overrides: Partial<Env>, path: string, init: RequestInit = {}) {
  const ctx = createExecutionContext()
  const res = await worker.fetch(new Request(`http://localhost${path}`, init), { ...env, ...overrides } as Env, ctx)
  await waitOnExecutionContext(ctx)
  return res
}

// The OpenAPI documents must list every status a route returns. This walks
// /docs/admin/openapi.json and, for every operation, provokes the statuses any caller can
// cause without knowing the route's business (no or wrong credentials, an over-long path
// id, a malformed body or a wrong content type, a body over the limit, a misconfigured
// Worker) and checks that the answer's status is listed, in the documented media type and
// error shape. 405 (wrong method) is answered for any path and need not be listed.

const ORIGIN = 'http://localhost'
/** Each walk below sends requests to every operation in turn, so it grows with every route; on a loaded machine 30 s is not enough. */
const WALK_TIMEOUT_MS = 120_000
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const

type Schema = { $ref?: string; oneOf?: Schema[]; anyOf?: Schema[] }
type Response = { description: string; content?: Record<string, { schema?: Schema }> }
type Parameter = { name: string; in: 'path' | 'query' | 'header'; required?: boolean }
type Operation = {
  security?: Record<string, string[]>[]
  parameters?: Parameter[]
  requestBody?: { content: Record<string, unknown> }
  responses: Record<string, Response>
}
type Op = { key: string; method: string; path: string; op: Operation }
type Auth = 'admin' | 'user' | 'app' | 'signed' | 'client' | 'none'

let spec: { paths: Record<string, Record<string, Operation>> }
let ops: Op[]
let partner: { appId: string; secret: string; accessToken: string }
let client: { id: string; secret: string }
let user: { mobile: string; password: string }

beforeAll(async () => {
  spec = (await (await SELF.fetch(`${ORIGIN}/docs/admin/openapi.json`)).json()) as typeof spec
  ops = Object.entries(spec.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => ({ key: `${m.toUpperCase()} ${path}`, method: m, path, op: item[m]! })))
  const a = await createApp({ app_name: 'OpenAPI walk' })
  partner = { appId: a.app_id, secret: a.app_secret, accessToken: a.access_token }
  const o = await createOidcApp()
  client = { id: o.app_id, secret: o.app_secret }
  user = await createUser()
})

const schemes = (op: Operation) => new Set((op.security ?? []).flatMap((r) => Object.keys(r)))
const pathParams = (op: Operation) => (op.parameters ?? []).filter((p) => p.in === 'path')

/** Who may call an operation, read from the document itself. */
function authOf({ path, op }: Op): Auth {
  const s = schemes(op)
  if (s.has('appSignature') || (op.parameters ?? []).some((p) => p.in === 'header' && p.name === 'X-UAP-Signature')) return 'signed'
  if (s.has('appAccessToken')) return 'app'
  if (s.has('clientBasic')) return 'client'
  if (s.has('bearerAuth')) return path.startsWith('/api/v1/admin/') ? 'admin' : 'user'
  return 'none'
}

/** Operations where a caller's role or its app's state decides (403), beyond being authenticated (401). */
const rolesApply = ({ path, op }: Op) => (schemes(op).has('bearerAuth') && path.startsWith('/api/v1/admin/')) || schemes(op).has('appAccessToken') || schemes(op).has('appSignature')

function url({ path, op }: Op, ids: 'plausible' | 'too long') {
  let p = path
  for (const param of pathParams(op)) p = p.replace(`{${param.name}}`, ids === 'too long' ? 'x'.repeat(65) : param.name === 'app_id' ? partner.appId : crypto.randomUUID())
  return `${ORIGIN}${p}`
}

async function credentials(o: Op, kind: 'good' | 'bad', method: string, target: string, body?: string): Promise<Record<string, string>> {
  switch (authOf(o)) {
    case 'admin':
      return { Authorization: `Bearer ${kind === 'good' ? await adminToken() : 'not-a-token'}` }
    case 'user':
      return { Authorization: `Bearer ${kind === 'good' ? (await login(user.mobile, user.password)).access_token : 'not-a-token'}` }
    case 'app':
      return { 'X-App-Access-Token': kind === 'good' ? partner.accessToken : `at_${'x'.repeat(43)}` }
    case 'signed':
      return signRequest({ appId: partner.appId, appSecret: kind === 'good' ? partner.secret : 'sk_wrong', method: method.toUpperCase(), url: target, body })
    case 'client':
      return { Authorization: 'Basic ' + btoa(kind === 'good' ? `${client.id}:${client.secret}` : 'nobody:wrong') }
    case 'none':
      return {}
  }
}

/** Bodies that are malformed for the media types an operation takes, and one in a media type it does not take. */
function malformedBodies(op: Operation): { contentType: string; body: string; label: string }[] {
  const types = Object.keys(op.requestBody?.content ?? {})
  const out: { contentType: string; body: string; label: string }[] = []
  if (types.includes('application/json')) out.push({ contentType: 'application/json', body: '{"unterminated', label: 'malformed JSON' })
  if (types.some((t) => t.includes('form'))) {
    out.push({ contentType: 'multipart/form-data', body: 'a=b', label: 'multipart without a boundary' })
    out.push({ contentType: 'application/x-www-form-urlencoded; charset=latin1', body: 'a=b', label: 'a form that is not UTF-8' })
  }
  out.push({ contentType: types.includes('application/json') ? 'text/plain' : 'application/json', body: types.includes('application/json') ? 'x' : '{}', label: 'a media type it does not take' })
  return out
}

function matchesSchema(schema: Schema | undefined, body: unknown): boolean {
  if (!schema) return true
  if (schema.oneOf || schema.anyOf) return (schema.oneOf ?? schema.anyOf)!.some((s) => matchesSchema(s, body))
  const b = body as any
  if (schema.$ref === '#/components/schemas/Error') return typeof b?.error?.code === 'string' && typeof b.error.message === 'string' && typeof b.error.request_id === 'string'
  if (schema.$ref === '#/components/schemas/OAuthError') return typeof b?.error === 'string'
  return true
}

/** The answer's status is listed for the operation, in a documented media type and (for errors) shape. */
async function expectListed(o: Op, res: globalThis.Response, label: string) {
  const text = await res.text()
  const where = `${o.key} (${label}) answered ${res.status}: ${text.slice(0, 160)}`
  if (res.status === 405) return
  expect.soft(Object.keys(o.op.responses), where).toContain(String(res.status))
  const documented = o.op.responses[String(res.status)]
  if (res.status < 400 || !documented.content) return
  const media = (res.headers.get('Content-Type') ?? '').split(';')[0].trim()
  expect.soft(Object.keys(documented.content), `${where}: media type`).toContain(media)
  if (media === 'application/json') expect.soft(matchesSchema(documented.content[media].schema, JSON.parse(text)), `${where}: error shape`).toBe(true)
}

/** From an address of its own, so the walk's requests never count against another test's per-IP limits. */
const send = (method: string, target: string, headers: Record<string, string>, body?: string) =>
  SELF.fetch(target, { method: method.toUpperCase(), headers: { 'CF-Connecting-IP': randomIp(), ...headers }, body, redirect: 'manual' })

describe('every status an operation answers is listed in /docs/admin/openapi.json', () => {
  it('walks more than the routes of a handful of features', () => {
    expect(ops.length).toBeGreaterThan(50)
    for (const kind of ['admin', 'user', 'app', 'signed', 'client', 'none'] as const) expect(ops.some((o) => authOf(o) === kind), kind).toBe(true)
  })

  it('without credentials, and with wrong ones', async () => {
    for (const o of ops) {
      const target = url(o, 'plausible')
      await expectListed(o, await send(o.method, target, {}), 'no credentials')
      if (authOf(o) !== 'none') await expectListed(o, await send(o.method, target, await credentials(o, 'bad', o.method, target)), 'wrong credentials')
    }
  }, WALK_TIMEOUT_MS)

  it('with an over-long path id: 400', async () => {
    for (const o of ops.filter((x) => pathParams(x.op).length)) {
      const target = url(o, 'too long')
      const res = await send(o.method, target, await credentials(o, 'good', o.method, target))
      expect.soft(res.status, o.key).toBe(400)
      await expectListed(o, res, 'over-long path id')
    }
  }, WALK_TIMEOUT_MS)

  it('with a malformed body or a media type the operation does not take', async () => {
    for (const o of ops.filter((x) => x.op.requestBody)) {
      const target = url(o, 'plausible')
      for (const m of malformedBodies(o.op)) {
        const res = await send(o.method, target, { ...(await credentials(o, 'good', o.method, target, m.body)), 'Content-Type': m.contentType }, m.body)
        expect.soft(res.status, `${o.key} ${m.label}`).toBeGreaterThanOrEqual(400)
        expect.soft(res.status, `${o.key} ${m.label}`).toBeLessThan(500)
        await expectListed(o, res, m.label)
      }
    }
  }, WALK_TIMEOUT_MS)

  it(`with a body over the path's limit (${MAX_BODY_BYTES} bytes; ${MAX_UPLOAD_BYTES} on file uploads): 413`, async () => {
    const bodies = new Map<number, string>()
    const overLimit = (limit: number) => bodies.get(limit) ?? bodies.set(limit, 'a='.padEnd(limit + 1, 'x')).get(limit)!
    const uploads = ops.filter((x) => x.method !== 'get' && bodyLimitOf(new URL(url(x, 'plausible')).pathname) === MAX_UPLOAD_BYTES)
    expect(uploads.length, 'the bulk import previews take files over the general limit').toBe(2)
    for (const o of ops.filter((x) => x.method !== 'get')) {
      const contentType = Object.keys(o.op.requestBody?.content ?? { 'application/json': {} })[0]
      const target = url(o, 'plausible')
      const res = await send(o.method, target, { 'Content-Type': contentType }, overLimit(bodyLimitOf(new URL(target).pathname)))
      expect.soft(res.status, o.key).toBe(413)
      await expectListed(o, res, 'body too large')
    }
  }, WALK_TIMEOUT_MS)

  it('on a misconfigured Worker: 503', async () => {
    for (const o of ops) {
      const res = await fetchWithEnv({ ENVIRONMENT: 'production' }, new URL(url(o, 'plausible')).pathname, { method: o.method.toUpperCase() })
      expect.soft(res.status, o.key).toBe(503)
      await expectListed(o, res, 'misconfigured')
    }
  })
})

describe('the documents list the generic statuses of each kind of operation', () => {
  it('path parameters → 400; security → 401 (403 where roles apply); a request body → 400 and 413; every operation → 500 and 503', () => {
    for (const o of ops) {
      const listed = Object.keys(o.op.responses)
      if (pathParams(o.op).length) expect(listed, `${o.key}: path parameters`).toContain('400')
      if ((o.op.security ?? []).some((r) => Object.keys(r).length)) expect(listed, `${o.key}: security`).toContain('401')
      if (rolesApply(o)) expect(listed, `${o.key}: roles`).toContain('403')
      if (o.op.requestBody) expect(listed, `${o.key}: request body`).toEqual(expect.arrayContaining(['400', '413']))
      if (o.method !== 'get') expect(listed, `${o.key}: body limit`).toContain('413')
      expect(listed, o.key).toEqual(expect.arrayContaining(['500', '503']))
    }
  })

  it('POST /oauth2/end_session lists its 403 (an unconfirmed sign-out form), as an HTML page', () => {
    const post = ops.find((o) => o.key === 'POST /oauth2/end_session')!
    expect(Object.keys(post.op.responses['403']?.content ?? {})).toEqual(['text/html'])
  })

  it('/docs/open lists the same responses as /docs/admin for each partner operation', async () => {
    const open = (await (await SELF.fetch(`${ORIGIN}/docs/open/openapi.json`)).json()) as typeof spec
    for (const [path, item] of Object.entries(open.paths)) {
      for (const m of METHODS) if (item[m]) expect(Object.keys(item[m]!.responses).sort(), `${m} ${path}`).toEqual(Object.keys(spec.paths[path][m]!.responses).sort())
    }
  })
})
