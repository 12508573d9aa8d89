import { swaggerUI } from '@hono/swagger-ui'
import type { OpenAPIHono } from '@hono/zod-openapi'
import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { getConfig } from '../env'
import { CommonErrors } from '../lib/errors'
import { requireAdmin } from '../auth/guards'
import { readBrowserSession } from '../auth/browser-session'
import { SWAGGER_ASSETS, SWAGGER_ASSET_BASE } from './assets'
import { describeRights } from '../delegation/rights'

const INFO = {
  version: '0.1.0',
  description:
    'UAP Edge: one account for a family of apps. OIDC apps use authorization code + PKCE; legacy apps use the HMAC-signed simple API. Errors have the body `{ "error": { "code", "message", "request_id", "details"? } }`, except on the OAuth/OIDC endpoints (token, revocation, introspection, userinfo), which answer `{ "error", "error_description" }` as RFC 6749 §5.2 requires (docs/oidc.md).',
}

/** Shown at the top of /docs/open: how a partner app gets going, by integration style. */
const PARTNER_QUICK_START = `

## Quick start

**Credentials.** An admin registers your app (\`POST /api/v1/admin/apps\`) and hands you, once, its \`app_id\`, \`app_secret\` and \`access_token\`.

**OpenID Connect apps** (authorization code + PKCE):
1. Discover: \`GET /.well-known/openid-configuration\`; keys at \`/.well-known/jwks.json\`.
2. Send the browser to \`/oauth2/authorize?response_type=code&client_id=APP_ID&redirect_uri=REGISTERED_URI&scope=openid%20profile&state=…&nonce=…&code_challenge=…&code_challenge_method=S256\`. The user signs in on the hosted page and consents.
3. Exchange the code at \`POST /oauth2/token\` (\`grant_type=authorization_code\`, \`code\`, \`redirect_uri\`, \`code_verifier\`; client secret by HTTP Basic). Validate the ID token against the JWKS; call \`/oauth2/userinfo\` with the access token.
4. Refresh with \`grant_type=refresh_token\` (scope \`offline_access\`); sign out with \`/oauth2/end_session\`. Implicit and password grants are refused (RFC 9700).

**Legacy (SIMPLE_API) apps:** sign every \`/api/v1/open/*\` and \`/api/v1/simple/*\` call with HMAC-SHA256 (headers \`X-UAP-App-Id\`, \`X-UAP-Timestamp\`, \`X-UAP-Nonce\`, \`X-UAP-Signature\`; canonical string, worked example and reference client in docs/signing.md) and check it with \`GET /api/v1/open/ping\` first. Move a signed-in user to another app with \`POST /api/v1/simple/ticket/exchange\` (the target must be in your app's \`sso_targets\`, set by an admin, and the user mapped in your app); the target app redeems the ticket once with \`POST /api/v1/simple/ticket/verify\`. Keep your user mappings in sync with \`POST /api/v1/apps/mapping/sync\` (header \`X-App-Access-Token\`) and read \`GET /api/v1/apps/{app_id}/users/changes?since=CURSOR\`.`

type Doc = ReturnType<OpenAPIHono<AppEnv>['getOpenAPI31Document']>
type Shape = 'html' | 'oauth' | 'json'
type Operation = { responses?: Record<string, unknown> }
/** What the app answers around every route: the error shape of a path, the body limit. */
export interface AppResponses {
  shapeOf: (path: string) => Shape
  maxBodyBytes: number
}

const BODY_METHODS = ['post', 'put', 'patch', 'delete']
const OPERATION_METHODS = ['get', ...BODY_METHODS]

const errorContent = (shape: Shape) =>
  shape === 'html'
    ? { 'text/html': { schema: { type: 'string' } } }
    : { 'application/json': { schema: { $ref: `#/components/schemas/${shape === 'oauth' ? 'OAuthError' : 'Error'}` } } }

/**
 * Statuses the app answers for any route, before or around its handler (src/app.ts): the
 * body limit, an unexpected failure, a configuration the Worker refuses to run with. Added
 * to every operation here rather than to each route, each in the shape its path answers
 * with (`shapeOf`); an operation that lists the status itself keeps its own entry.
 */
function withAppResponses(doc: Doc, { shapeOf, maxBodyBytes }: AppResponses): Doc {
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item as Record<string, Operation>)) {
      if (!OPERATION_METHODS.includes(method)) continue
      const responses = (op.responses ??= {})
      const shape = shapeOf(path)
      if (BODY_METHODS.includes(method)) responses['413'] ??= { description: `\`payload_too_large\`: the request body exceeds ${maxBodyBytes} bytes`, content: errorContent(shape) }
      responses['500'] ??= { description: '`internal_error`: an unexpected failure; the log has the details under the request id', content: errorContent(shape) }
      responses['503'] ??= { description: '`misconfigured`: the Worker refuses to run with its configuration; the log says why', content: errorContent('json') }
    }
  }
  return doc
}

/** The partner spec: only operations marked `x-uap-open` (see lib/openapi.ts OPEN). */
function openOnly(doc: Doc): Doc {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    const kept = Object.fromEntries(Object.entries(item as Record<string, unknown>).filter(([, op]) => (op as Record<string, unknown>)?.['x-uap-open']))
    if (Object.keys(kept).length) paths[path] = kept
  }
  return { ...doc, paths } as Doc
}

/**
 * /docs/admin: every route. /docs/open: what partner apps call. Both specs are generated
 * from the route definitions on request, then cached per isolate.
 */
export function mountDocs(app: OpenAPIHono<AppEnv>, appResponses: AppResponses) {
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
  let adminDoc: Doc | undefined
  let openDoc: Doc | undefined
  const build = (c: { env: AppEnv['Bindings'] }) => {
    if (!adminDoc) {
      const servers = [{ url: c.env.ISSUER }]
      adminDoc = describeRights(withAppResponses(app.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 'UAP Edge admin API', ...INFO }, servers }), appResponses))
      openDoc = withAppResponses(openOnly(app.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 'UAP Edge partner API', ...INFO, description: INFO.description + PARTNER_QUICK_START }, servers })), appResponses)
    }
    return { adminDoc: adminDoc!, openDoc: openDoc! }
  }
  app.use('/docs', docsHeaders)
  app.use('/docs/*', docsHeaders)
  app.use('/docs/admin', adminDocsGuard)
  app.use('/docs/admin/*', adminDocsGuard)
  app.get('/docs/admin/openapi.json', (c) => c.json(build(c).adminDoc))
  app.get('/docs/open/openapi.json', (c) => c.json(build(c).openDoc))
  // Assets from this Worker (baseUrl), not the CDN @hono/swagger-ui defaults to; no online validator.
  const ui = { baseUrl: SWAGGER_ASSET_BASE, validatorUrl: 'none' }
  app.get('/docs/admin', swaggerUI({ ...ui, url: '/docs/admin/openapi.json', title: 'UAP Edge admin API' }))
  app.get('/docs/open', swaggerUI({ ...ui, url: '/docs/open/openapi.json', title: 'UAP Edge partner API' }))
  app.get(`${SWAGGER_ASSET_BASE}/swagger-ui-dist/:file`, (c) => {
    const asset = SWAGGER_ASSETS[c.req.param('file')]
    if (!asset) return c.notFound()
    c.header('Content-Type', asset.type)
    c.header('Cache-Control', 'public, max-age=86400')
    c.header('X-Content-Type-Options', 'nosniff')
    return c.body(asset.body)
  })
}

/**
 * Security headers on every /docs response. Swagger UI needs its own bundle (served from
 * here, 'self'), one inline bootstrap script (allowed by its hash, computed from the page
 * itself, so nothing else inline can run), inline styles, data: images and fetches of the
 * spec ('self'). No framing anywhere (clickjacking "Try it out" with an admin's token).
 */
const docsHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next()
  const h = c.res.headers
  h.set('X-Frame-Options', 'DENY')
  h.set('X-Content-Type-Options', 'nosniff')
  h.set('Referrer-Policy', 'no-referrer')
  if (!(h.get('Content-Type') ?? '').startsWith('text/html')) {
    h.set('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'")
    return
  }
  const html = await c.res.clone().text()
  const hashes: string[] = []
  for (const m of html.matchAll(/<script>([\s\S]*?)<\/script>/g)) {
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(m[1])))
    hashes.push(`'sha256-${btoa(String.fromCharCode(...digest))}'`)
  }
  h.set(
    'Content-Security-Policy',
    [`default-src 'none'`, `script-src 'self' ${hashes.join(' ')}`, `style-src 'self' 'unsafe-inline'`, `img-src 'self' data:`, `font-src 'self' data:`, `connect-src 'self'`, `base-uri 'none'`, `form-action 'none'`, `frame-ancestors 'none'`].join('; '),
  )
}

/**
 * DOCS_ADMIN_ACCESS=admin: /docs/admin and its spec only for admins, by admin bearer token
 * or by a hosted-page session of an ADMIN user (so the Swagger UI works in a browser).
 * /docs/open stays public: it is what partners integrate against.
 */
const adminDocsGuard: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (getConfig(c.env).docsAdminAccess === 'public') return next()
  if (c.req.header('Authorization')) return requireAdmin(c, next)
  const browser = await readBrowserSession(c)
  if (browser?.user.role === 'ADMIN') return next()
  if (c.req.path.endsWith('.json')) throw CommonErrors.unauthorized({ message: 'The admin API reference is for admins: sign in at /page/login or send an admin bearer token' })
  return c.redirect(`/page/login?${new URLSearchParams({ return_to: c.req.path })}`, 303)
}
