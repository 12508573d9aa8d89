import { describe, expect, it } from 'vitest'
import { SELF } from 'cloudflare:test'
import { buildApp } from '../src/app'
import { ADMIN, adminToken, api, createUser, login } from './support/api'
import { Browser } from './support/browser'

const get = (path: string) => SELF.fetch(`http://localhost${path}`)
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const

type Op = { summary?: string; description?: string; tags?: string[]; responses?: Record<string, unknown>; 'x-uap-open'?: boolean }
type Spec = { openapi: string; paths: Record<string, Record<string, Op>> }

const operations = (spec: Spec) =>
  Object.entries(spec.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => ({ key: `${m.toUpperCase()} ${path}`, path, op: item[m] })))

/** Every API route the app registers (Hono's `:id` → OpenAPI's `{id}`), docs pages excluded. */
function registeredRoutes(): string[] {
  const keys = buildApp()
    .routes.filter((r) => r.method !== 'ALL' && !r.path.includes('*') && !r.path.startsWith('/docs'))
    .map((r) => `${r.method} ${r.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`)
  return [...new Set(keys)].sort()
}

describe('/docs pages', () => {
  for (const [page, title] of [
    ['/docs/admin', 'UAP Edge admin API'],
    ['/docs/open', 'UAP Edge partner API'],
  ]) {
    it(`${page} serves Swagger UI with only same-origin assets, and those assets are served`, async () => {
      const res = await get(page)
      expect(res.status).toBe(200)
      expect(res.headers.get('Content-Type')).toMatch(/^text\/html/)
      const html = await res.text()
      expect(html).toContain(`<title>${title}</title>`)
      expect(html).toContain(`url: '${page}/openapi.json'`)
      // nothing loads from another origin (no CDN): every src/href is a same-origin path
      const refs = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1])
      expect(refs.length).toBeGreaterThanOrEqual(2)
      for (const ref of refs) expect(ref, ref).toMatch(/^\/(?!\/)/)
      expect(html).not.toMatch(/https?:\/\/(?!localhost)/)
      for (const ref of refs) {
        const asset = await get(ref)
        expect(asset.status, ref).toBe(200)
        expect(asset.headers.get('Content-Type'), ref).toMatch(ref.endsWith('.css') ? /^text\/css/ : /^text\/javascript/)
        const body = await asset.text()
        expect(body.length, ref).toBeGreaterThan(100_000)
      }
      expect(refs.some((r) => r.endsWith('swagger-ui-bundle.js'))).toBe(true)
      expect(refs.some((r) => r.endsWith('swagger-ui.css'))).toBe(true)
    })
  }

  it('unknown asset names are 404 with the JSON error body', async () => {
    const res = await get('/docs/assets/swagger-ui-dist/package.json')
    expect(res.status).toBe(404)
    expect(((await res.json()) as any).error.code).toBe('not_found')
  })
})

describe('/docs/admin/openapi.json', () => {
  it('is OpenAPI 3.1 and lists every registered route', async () => {
    const spec = (await (await get('/docs/admin/openapi.json')).json()) as Spec
    expect(spec.openapi).toBe('3.1.0')
    const documented = operations(spec).map((o) => o.key)
    const routes = registeredRoutes()
    expect(routes.length).toBeGreaterThan(10)
    // dev-only helpers (404 in production) are deliberately left out of the spec
    for (const r of routes) if (!r.includes('/api/v1/dev/')) expect(documented, r).toContain(r)
    for (const r of [
      'POST /api/v1/auth/login',
      'POST /api/v1/auth/refresh',
      'POST /api/v1/auth/logout',
      'POST /api/v1/auth/logout-all',
      'GET /api/v1/auth/me',
      'GET /.well-known/jwks.json',
      'GET /healthz',
      'GET /livez',
      'POST /api/v1/admin/users',
      'GET /api/v1/admin/users',
      'GET /api/v1/admin/users/{id}',
      'PATCH /api/v1/admin/users/{id}',
      'PUT /api/v1/admin/users/{id}/password',
      'GET /api/v1/admin/audit',
      'POST /api/v1/admin/keys/rotate',
    ])
      expect(documented).toContain(r)
  })

  it('every operation has a summary, a description, tags and documented responses', async () => {
    const spec = (await (await get('/docs/admin/openapi.json')).json()) as Spec
    for (const { key, op } of operations(spec)) {
      expect(op.summary?.trim().length, `${key} summary`).toBeGreaterThan(3)
      expect(op.description?.trim().length, `${key} description`).toBeGreaterThan(10)
      expect(op.tags?.length, `${key} tags`).toBeGreaterThan(0)
      expect(Object.keys(op.responses ?? {}).length, `${key} responses`).toBeGreaterThan(0)
    }
  })

  it('admin operations document bearer auth or the API-client headers, and their 401/403 errors with the Error schema', async () => {
    const spec = (await (await get('/docs/admin/openapi.json')).json()) as Spec & { components: any }
    expect(spec.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' })
    const admin = operations(spec).filter((o) => o.path.startsWith('/api/v1/admin/'))
    expect(admin.length).toBeGreaterThan(5)
    for (const { key, op } of admin) {
      // a bearer token, or both API-client headers (docs/api-clients.md)
      expect((op as any).security, key).toEqual([{ bearerAuth: [] }, { apiClientKey: [], apiClientSecret: [] }])
      for (const code of ['401', '403']) expect(JSON.stringify(op.responses?.[code]), `${key} ${code}`).toContain('#/components/schemas/Error')
    }
  })
})

describe('/docs/open/openapi.json', () => {
  it('lists exactly the partner operations (x-uap-open): login, refresh, JWKS today, and no admin route', async () => {
    const admin = (await (await get('/docs/admin/openapi.json')).json()) as Spec
    const open = (await (await get('/docs/open/openapi.json')).json()) as Spec
    const openKeys = operations(open).map((o) => o.key).sort()
    const flagged = operations(admin).filter((o) => o.op['x-uap-open']).map((o) => o.key).sort()
    expect(openKeys).toEqual(flagged)
    expect(openKeys).toEqual(expect.arrayContaining(['POST /api/v1/auth/login', 'POST /api/v1/auth/refresh', 'GET /.well-known/jwks.json']))
    for (const key of openKeys) expect(key).not.toMatch(/ \/api\/v1\/admin\//)
    for (const internal of ['POST /api/v1/auth/logout', 'GET /api/v1/auth/me', 'GET /healthz', 'GET /livez']) expect(openKeys).not.toContain(internal)
    // the partner spec is titled for partners and still has the shared Error schema
    expect((open as any).info.title).toBe('UAP Edge partner API')
    // and opens with a quick start for both integration styles
    expect((open as any).info.description).toContain('## Quick start')
    expect((open as any).info.description).toContain('/oauth2/authorize')
    expect((open as any).info.description).toContain('/api/v1/simple/ticket/exchange')
    expect((open as any).components.schemas.Error).toBeTruthy()
  })
})

describe('DOCS_ADMIN_ACCESS=admin', () => {
  const admin = { DOCS_ADMIN_ACCESS: 'admin' }
  it('keeps /docs/admin and its spec for admins (bearer or hosted-page session); /docs/open stays public', async () => {
    const anon = await api('/docs/admin', { redirect: 'manual', env: admin })
    expect(anon.status).toBe(303)
    expect(anon.headers.get('Location')).toBe('/page/login?return_to=%2Fdocs%2Fadmin')
    const anonSpec = await api('/docs/admin/openapi.json', { env: admin })
    expect(anonSpec.status).toBe(401)
    expect(anonSpec.body.error.code).toBe('unauthorized')
    expect((await api('/docs/open/openapi.json', { env: admin })).status).toBe(200)

    const user = await createUser()
    const userToken = (await login(user.mobile, user.password)).access_token
    expect((await api('/docs/admin/openapi.json', { token: userToken, env: admin })).status).toBe(403)
    expect((await api('/docs/admin/openapi.json', { token: await adminToken(), env: admin })).status).toBe(200)

    // an admin signed in on the hosted page reads the Swagger UI and its spec with the cookie
    const b = new Browser()
    await b.loginOnPage(ADMIN)
    const page = await api('/docs/admin', { headers: b.headers(), env: admin })
    expect(page.status).toBe(200)
    expect((await api('/docs/admin/openapi.json', { headers: b.headers(), env: admin })).status).toBe(200)
  })
})

describe('/docs security headers', () => {
  it('the Swagger pages carry a CSP that allows only their own bundle and the hash of their inline bootstrap, and no framing', async () => {
    for (const path of ['/docs/admin', '/docs/open']) {
      const res = await SELF.fetch(`http://localhost${path}`)
      const html = await res.text()
      const csp = res.headers.get('Content-Security-Policy')!
      expect(csp).toMatch(/frame-ancestors 'none'/)
      expect(csp).toMatch(/default-src 'none'/)
      expect(csp).not.toMatch(/'unsafe-inline'[^;]*;?\s*$|script-src[^;]*'unsafe-inline'/)
      const inline = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1])
      expect(inline.length).toBe(1)
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(inline[0])))
      expect(csp).toContain(`'sha256-${btoa(String.fromCharCode(...digest))}'`)
      expect(res.headers.get('X-Frame-Options')).toBe('DENY')
    }
    for (const path of ['/docs/admin/openapi.json', '/docs/open/openapi.json', '/docs/assets/swagger-ui-dist/swagger-ui.css']) {
      const res = await SELF.fetch(`http://localhost${path}`)
      expect(res.status, path).toBe(200)
      expect(res.headers.get('Content-Security-Policy'), path).toBe("default-src 'none'; frame-ancestors 'none'")
      expect(res.headers.get('X-Content-Type-Options'), path).toBe('nosniff')
    }
  })
})
