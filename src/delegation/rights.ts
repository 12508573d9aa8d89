import type { OpenAPIHono } from '@hono/zod-openapi'
import { CommonErrors } from '../lib/errors'
import { RIGHTS, type Right } from './model'

/**
 * The right each admin route needs, declared beside the route (createRoute spreads
 * `needs(...)`), carried as OpenAPI extensions so /docs/admin shows it and the admin guard
 * and the route matrix test read the same table from the registry. `admin`: full admins
 * only (signing keys, identity providers, admin groups, API clients, bulk user import).
 */
export type RouteRight = Right | 'admin'

/** Kinds of object a path parameter can name; the guard checks each against the caller's scope for the route's right. */
export type ObjectKind = 'user' | 'group' | 'app' | 'mapping' | 'grant'
export type ScopeParams = Partial<Record<ObjectKind, string>>

export const RIGHT_EXTENSION = 'x-uap-right'
export const SCOPE_EXTENSION = 'x-uap-scope'

/** Spread into a createRoute: the right the route needs and which path parameters name objects in scope. */
export function needs(right: RouteRight, params?: ScopeParams) {
  return { [RIGHT_EXTENSION]: right, ...(params ? { [SCOPE_EXTENSION]: params } : {}) } as { 'x-uap-right': RouteRight; 'x-uap-scope'?: ScopeParams }
}

export const ADMIN_PREFIX = '/api/v1/admin/'

export interface AdminRoute {
  method: string
  /** OpenAPI form: /api/v1/admin/users/{id} */
  path: string
  /** undefined: the route declares none (the guard lets only full admins through; the matrix test fails) */
  right?: RouteRight
  params: ScopeParams
  match: (path: string) => Record<string, string> | null
}

const isRight = (v: unknown): v is RouteRight => v === 'admin' || (RIGHTS as readonly unknown[]).includes(v)

function matcher(path: string) {
  const names: string[] = []
  const source = path
    .replace(/[.+?^$()|[\]\\]/g, '\\$&')
    .replace(/\{([A-Za-z0-9_]+)\}/g, (_, name: string) => {
      names.push(name)
      return '([^/]+)'
    })
  const re = new RegExp(`^${source}/?$`)
  return (p: string) => {
    const m = re.exec(p)
    if (!m) return null
    // a segment that is not valid percent-encoding names no object; refused here, not matched
    // against the next (perhaps weaker) route, and not a 500
    try {
      return Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1])]))
    } catch {
      throw CommonErrors.invalid_request({ message: `The path segment for ${names.join(', ')} is not valid percent-encoding (RFC 3986 §2.1)` })
    }
  }
}

/** Every route of the registry under /api/v1/admin/ with its declared right (read once per isolate). */
export function adminRouteTable(registry: OpenAPIHono['openAPIRegistry']): AdminRoute[] {
  const out: AdminRoute[] = []
  for (const def of registry.definitions) {
    if (def.type !== 'route' || !def.route.path.startsWith(ADMIN_PREFIX)) continue
    const r = def.route as unknown as Record<string, unknown>
    out.push({
      method: def.route.method.toUpperCase(),
      path: def.route.path,
      right: isRight(r[RIGHT_EXTENSION]) ? r[RIGHT_EXTENSION] : undefined,
      params: (r[SCOPE_EXTENSION] as ScopeParams | undefined) ?? {},
      match: matcher(def.route.path),
    })
  }
  // literal segments before parameters: /users/export must win over /users/{id}
  return out.sort((a, b) => specificity(b.path) - specificity(a.path))
}

const specificity = (path: string) => path.split('/').reduce((n, seg) => n * 2 + (seg.startsWith('{') ? 0 : 1), 1)

/** The table entry for a request, if any. */
export function findAdminRoute(table: AdminRoute[], method: string, path: string): { route: AdminRoute; params: Record<string, string> } | null {
  const m = method === 'HEAD' ? 'GET' : method
  for (const route of table) {
    if (route.method !== m) continue
    const params = route.match(path)
    if (params) return { route, params }
  }
  return null
}

const KIND_WORDS: Record<ObjectKind, string> = { user: 'user', group: 'group', app: 'application', mapping: "mapping's user", grant: "grant's subject" }

/** The sentence /docs/admin adds to each admin operation's description. */
export function rightSentence(right: RouteRight, params: ScopeParams = {}): string {
  if (right === 'admin') return 'Needs a full admin (role ADMIN); sub-admins and API clients get 403 `admin_only`.'
  const objects = (Object.keys(params) as ObjectKind[]).map((k) => KIND_WORDS[k])
  const over = objects.length ? `, with the ${objects.join(' and the ')} in the path inside the scope of a grant holding it (else 403 \`out_of_scope\`)` : ''
  return `Needs the right \`${right}\`${over} (docs/admin-rights.md).`
}

type Doc = { paths?: Record<string, unknown>; components?: { securitySchemes?: Record<string, unknown> } }

/** How an API client authenticates (docs/api-clients.md): both headers on every call, instead of the bearer token the operations name. */
const API_CLIENT_SCHEMES = {
  apiClientKey: { type: 'apiKey', in: 'header', name: 'X-Client-Key', description: "An API client's public client key (docs/api-clients.md); sent with X-API-Key" },
  apiClientSecret: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: "The API client's key, shown once at creation or rotation" },
}

/**
 * /docs/admin: each admin operation's description ends with the right it needs, and says
 * what an API client can be answered besides (the guard's 401/403 codes and its own 429).
 */
export function describeRights<T extends Doc>(doc: T): T {
  doc.components = { ...doc.components, securitySchemes: { ...doc.components?.securitySchemes, ...API_CLIENT_SCHEMES } }
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    if (!path.startsWith(ADMIN_PREFIX)) continue
    for (const op of Object.values(item as Record<string, Record<string, unknown>>)) {
      if (!op || typeof op !== 'object' || !isRight(op[RIGHT_EXTENSION])) continue
      const right = op[RIGHT_EXTENSION]
      const params = (op[SCOPE_EXTENSION] as ScopeParams | undefined) ?? {}
      const sentence = rightSentence(right, params)
      op.description = op.description ? `${op.description}\n\n**Right:** ${sentence}` : `**Right:** ${sentence}`
      const responses = ((op.responses as Record<string, { description?: string }> | undefined) ?? {}) as Record<string, { description?: string; content?: unknown }>
      op.responses = responses
      const forbidden = responses['403']
      if (forbidden) {
        const codes = right === 'admin' ? ['`admin_only`'] : ['`right_missing`', ...(Object.keys(params).length ? ['`out_of_scope`'] : [])]
        forbidden.description = `${forbidden.description ?? ''}; ${codes.join(', ')} (docs/admin-rights.md)`
      }
      const errorOf = (status: string, description: string) => {
        const r = responses[status]
        if (r) r.description = `${r.description ?? ''}; ${description}`
        else responses[status] = { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }
      }
      if (path.includes('{')) errorOf('400', 'a path segment that is not valid percent-encoding: `invalid_request` (the admin guard)')
      errorOf('401', 'API clients: `api_client_credentials_missing`, `invalid_api_client`, `api_client_disabled`, `api_client_expired` (docs/api-clients.md); sub-admins: `admin_session_expired`, a session past the admin lifetimes (docs/admin-rights.md)')
      errorOf('403', 'API clients: `api_client_ip_not_allowed`, `api_client_origin_not_allowed`, `api_client_path_not_allowed` (docs/api-clients.md)')
      errorOf('429', "API clients: the client's own per-minute limit, `rate_limited` with Retry-After (docs/api-clients.md)")
      const limited = responses['429'] as { headers?: Record<string, unknown> }
      limited.headers ??= { 'Retry-After': { description: 'Seconds until the window ends', schema: { type: 'integer' } } }
      // either the bearer token or both API-client headers (OpenAPI: any one requirement object, all of its schemes)
      const security = op.security as Record<string, string[]>[] | undefined
      if (security?.some((s) => 'bearerAuth' in s)) op.security = [...security, { apiClientKey: [], apiClientSecret: [] }]
    }
  }
  return doc
}
