import { swaggerUI } from '@hono/swagger-ui'
import type { OpenAPIHono } from '@hono/zod-openapi'
import type { AppEnv } from '../lib/context'

const INFO = {
  version: '0.1.0',
  description:
    'UAP Edge: one account for a family of apps. OIDC apps use authorization code + PKCE; legacy apps use the HMAC-signed simple API. Errors have the body `{ "error": { "code", "message", "request_id", "details"? } }`, except on the OAuth/OIDC endpoints (token, revocation, introspection, userinfo), which answer `{ "error", "error_description" }` as RFC 6749 §5.2 requires (docs/oidc.md).',
}

type Doc = ReturnType<OpenAPIHono<AppEnv>['getOpenAPI31Document']>

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
export function mountDocs(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
  let adminDoc: Doc | undefined
  let openDoc: Doc | undefined
  const build = (c: { env: AppEnv['Bindings'] }) => {
    if (!adminDoc) {
      const servers = [{ url: c.env.ISSUER }]
      adminDoc = app.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 'UAP Edge admin API', ...INFO }, servers })
      openDoc = openOnly(app.getOpenAPI31Document({ openapi: '3.1.0', info: { title: 'UAP Edge partner API', ...INFO }, servers }))
    }
    return { adminDoc: adminDoc!, openDoc: openDoc! }
  }
  app.get('/docs/admin/openapi.json', (c) => c.json(build(c).adminDoc))
  app.get('/docs/open/openapi.json', (c) => c.json(build(c).openDoc))
  app.get('/docs/admin', swaggerUI({ url: '/docs/admin/openapi.json', title: 'UAP Edge admin API' }))
  app.get('/docs/open', swaggerUI({ url: '/docs/open/openapi.json', title: 'UAP Edge partner API' }))
}
