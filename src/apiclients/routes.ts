import { createRoute, z } from '@hono/zod-openapi'
import { bearerSecurity, jsonBody, mergeErrors, pick } from '../lib/openapi'
import { errorResponses } from '../lib/errors'
import { typedText } from '../lib/text'
import { router } from '../context'
import { auditActor } from '../audit/service'
import { RIGHTS } from '../delegation/model'
import { ApiClientErrors } from './errors'
import { canonicalCidr, canonicalOrigin, canonicalPathPrefix } from './allowlists'
import { DEFAULT_RATE_LIMIT_PER_MINUTE } from './schema'
import {
  createApiClientAsAdmin,
  expireApiClientAsAdmin,
  listApiClients,
  loadApiClient,
  publicApiClient,
  rotateApiKeyAsAdmin,
  setApiClientStatusAsAdmin,
  updateApiClientAsAdmin,
  type ApiClientPatch,
} from './service'
import { needs } from '../delegation/rights'

/**
 * Admin: API clients, machine credentials for the admin API (docs/api-clients.md). Mounted at
 * /api/v1/admin/api-clients. Only full admins manage them: a client or a sub-admin could
 * otherwise mint itself more power than it holds.
 */
export const adminApiClientRoutes = router()

adminApiClientRoutes.use('*', async (c, next) => {
  if (c.get('auth')?.role !== 'ADMIN') throw ApiClientErrors.full_admin_required()
  await next()
})

const TAG = 'Admin: API clients'
const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })
const adminErrors = mergeErrors(pick(400, 401, 403), errorResponses(ApiClientErrors, 'full_admin_required'))
const notFound = errorResponses(ApiClientErrors, 'api_client_not_found')

/** Per list: enough for any real client, and the scope check stays within one request's D1 budget. */
export const MAX_LIST_ENTRIES = 50
/** The RateLimiter object of a client serves about 1,000 requests a second. */
export const MAX_RATE_LIMIT_PER_MINUTE = 60_000

const unique = <T extends z.ZodType>(item: T, max: number) =>
  z
    .array(item)
    .max(max)
    .refine((l) => new Set(l as unknown[]).size === l.length, 'must not contain duplicates')

/** A list entry turned into its canonical form, or a 400 naming the entry and what is wrong with it. */
const canonical = (canon: (v: string) => string, example: string, description: string) =>
  z
    .string()
    .min(1)
    .max(200)
    .transform((v, ctx) => {
      try {
        return canon(v.trim())
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message })
        return z.NEVER
      }
    })
    .openapi({ type: 'string', example, description })

/** Canonical forms can coincide (`10.0.0.1` and `10.0.0.1/32`): duplicates after canonicalisation are dropped. */
const canonicalList = (entry: ReturnType<typeof canonical>, example: string[], description: string) =>
  z
    .array(entry)
    .max(MAX_LIST_ENTRIES)
    .transform((l) => [...new Set(l)])
    .openapi({ example, description })

const Allowlist = z
  .object({
    ips: canonicalList(
      canonical(canonicalCidr, '203.0.113.0/24', 'An IPv4 or IPv6 CIDR block, or a single address'),
      ['203.0.113.0/24', '2001:db8::/32'],
      'IPv4 and IPv6 CIDR blocks (or single addresses) the client may call from; stored canonical (`10.0.0.1` as `10.0.0.1/32`). An IPv4 block also covers its IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`). Empty: any address.',
    ).optional(),
    origins: canonicalList(
      canonical(canonicalOrigin, 'https://ops.example.com', 'scheme://host[:port], http or https, no path'),
      ['https://ops.example.com'],
      'Origins a browser may call from. Checked only when the request has an Origin header (machines send none). Empty: any origin.',
    ).optional(),
    paths: canonicalList(
      canonical(canonicalPathPrefix, '/api/v1/admin/users', 'An absolute path prefix'),
      ['/api/v1/admin/users', '/api/v1/admin/apps'],
      'Path prefixes the client may call, matched at a segment boundary (`/api/v1/admin/users` covers `/api/v1/admin/users/42`, not `/api/v1/admin/users-export`). Empty: any path.',
    ).optional(),
  })
  .strict()
  .openapi('ApiClientAllowlist')

const Id = z.string().min(1).max(64)
const Scope = z
  .object({
    groups: unique(Id, MAX_LIST_ENTRIES).default([]).openapi({ description: 'Group ids; a group reaches its whole subtree and its members', example: ['3c1e9f0a-5b7d-4e2f-8a6c-1d2e3f4a5b6c'] }),
    users: unique(Id, MAX_LIST_ENTRIES).default([]).openapi({ description: 'User ids', example: [] }),
    apps: unique(Id, MAX_LIST_ENTRIES).default([]).openapi({ description: 'Application app_ids', example: ['app_3f9a1c2d4e5f6a7b'] }),
  })
  .strict()
  .openapi('ApiClientScope', { description: 'What the rights reach (src/delegation/model.ts); every id must exist' })

const Rights = unique(z.enum(RIGHTS), RIGHTS.length)
  .min(1)
  .openapi({ example: ['users.read', 'mappings.write'], description: `Rights the client holds within its scope: ${RIGHTS.join(', ')}` })

const ExpiresAt = z.iso
  .datetime({ offset: true })
  .nullable()
  .openapi({ example: '2027-06-30T00:00:00Z', description: 'ISO 8601 instant from which the client is refused (401 api_client_expired); must be in the future. null: never expires' })

const RateLimit = z
  .number()
  .int()
  .min(1)
  .max(MAX_RATE_LIMIT_PER_MINUTE)
  .openapi({ example: DEFAULT_RATE_LIMIT_PER_MINUTE, description: `Requests per minute (fixed window, counted exactly); over it 429 rate_limited with Retry-After. Default ${DEFAULT_RATE_LIMIT_PER_MINUTE}` })

const Name = typedText({ min: 1, max: 100 }).openapi({ example: 'HR sync job' })

const CreateApiClient = z
  .object({
    name: Name,
    rights: Rights,
    scope: Scope.optional(),
    allowlist: Allowlist.optional(),
    rate_limit_per_minute: RateLimit.optional(),
    expires_at: ExpiresAt.optional(),
  })
  .strict()
  .openapi('CreateApiClient')

const UpdateApiClient = z
  .object({
    name: Name.optional(),
    rights: Rights.optional(),
    scope: Scope.optional(),
    allowlist: Allowlist.optional(),
    rate_limit_per_minute: RateLimit.optional(),
    expires_at: ExpiresAt.optional(),
  })
  .strict()
  .refine((v) => Object.keys(v).length > 0, 'give at least one field to change')
  .openapi('UpdateApiClient')

export const ApiClientView = z
  .object({
    id: z.string().openapi({ example: '7d3f5a2e-1c4b-4e8a-9f6d-2b1a0c9e8d7f' }),
    name: z.string().openapi({ example: 'HR sync job' }),
    client_key: z.string().openapi({ example: 'ck_4f1c2b9a8e7d6c5b4a3f2e1d0c9b8a7f', description: 'Public; sent as X-Client-Key' }),
    status: z.enum(['ACTIVE', 'DISABLED']),
    expires_at: z.string().nullable(),
    expired: z.boolean().openapi({ description: 'expires_at has passed: the client is refused (401 api_client_expired)' }),
    rights: z.array(z.enum(RIGHTS)),
    scope: z.object({ groups: z.array(z.string()), users: z.array(z.string()), apps: z.array(z.string()) }),
    allowlist: z.object({ ips: z.array(z.string()), origins: z.array(z.string()), paths: z.array(z.string()) }),
    rate_limit_per_minute: z.number().int(),
    created_by: z.string().nullable().openapi({ description: "The creating admin's user id" }),
    created_at: z.string(),
    updated_at: z.string(),
    last_used_at: z.string().nullable().openapi({ description: 'Last successful authentication, to the minute' }),
  })
  .openapi('ApiClient')

const IssuedKey = z
  .object({
    api_client: ApiClientView,
    client_key: z.string().openapi({ example: 'ck_4f1c2b9a8e7d6c5b4a3f2e1d0c9b8a7f' }),
    api_key: z.string().openapi({ example: 'ak_Zq3vJ0o2m9bqfR4wA1c6n8YtK5eD7hL2pX0sU9iG3rM', description: 'Sent as X-API-Key. Shown only in this response: UAP Edge keeps its SHA-256' }),
  })
  .openapi('ApiClientCredentials')

const IdParam = z.object({ id: Id.openapi({ param: { name: 'id', in: 'path' }, example: '7d3f5a2e-1c4b-4e8a-9f6d-2b1a0c9e8d7f' }) })

const scopeErrors = errorResponses(ApiClientErrors, 'expires_at_in_past', 'scope_group_unknown', 'scope_user_unknown', 'scope_app_unknown')

adminApiClientRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'Create an API client',
    description:
      'Creates a machine credential for the admin API and returns its `client_key` and `api_key`. **The API key is shown only in this response**; UAP Edge keeps its SHA-256. The machine sends both on every call (`X-Client-Key`, `X-API-Key`). Every id in `scope` must name an existing group, user or app (400 otherwise); each allowlist is unrestricted while empty.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { body: jsonBody(CreateApiClient) },
    responses: { 201: ok('Created; store the API key now', IssuedKey), ...mergeErrors(adminErrors, scopeErrors) },
  }),
  async (c) => {
    const b = c.req.valid('json')
    const { row, apiKey } = await createApiClientAsAdmin(
      c.env,
      {
        name: b.name,
        rights: b.rights,
        scope: b.scope ?? { groups: [], users: [], apps: [] },
        allowlist: { ips: b.allowlist?.ips ?? [], origins: b.allowlist?.origins ?? [], paths: b.allowlist?.paths ?? [] },
        rateLimitPerMinute: b.rate_limit_per_minute ?? DEFAULT_RATE_LIMIT_PER_MINUTE,
        expiresAt: b.expires_at ? Date.parse(b.expires_at) : null,
      },
      auditActor(c),
    )
    c.header('Cache-Control', 'no-store')
    return c.json({ api_client: publicApiClient(row), client_key: row.clientKey, api_key: apiKey }, 201)
  },
)

adminApiClientRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: [TAG],
    summary: 'List API clients',
    description: 'Newest first, paginated. `q` matches part of the name or of the client_key. Never returns an API key.',
    security: bearerSecurity,
    ...needs('admin'),
    request: {
      query: z.object({
        page: z.coerce.number().int().min(1).default(1).openapi({ example: 1 }),
        page_size: z.coerce.number().int().min(1).max(100).default(20).openapi({ example: 20 }),
        q: z.string().max(100).optional().openapi({ example: 'sync' }),
        status: z.enum(['ACTIVE', 'DISABLED']).optional(),
      }),
    },
    responses: { 200: ok('A page of API clients', z.object({ items: z.array(ApiClientView), page: z.number(), page_size: z.number(), total: z.number() })), ...adminErrors },
  }),
  async (c) => {
    const q = c.req.valid('query')
    return c.json(await listApiClients(c.env, { page: q.page, pageSize: q.page_size, search: q.q, status: q.status }), 200)
  },
)

adminApiClientRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{id}',
    tags: [TAG],
    summary: 'Get an API client',
    description: 'Every setting of one client and when it was last used. Never returns the API key.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: IdParam },
    responses: { 200: ok('The API client', ApiClientView), ...mergeErrors(adminErrors, notFound) },
  }),
  async (c) => c.json(publicApiClient(await loadApiClient(c.env, c.req.valid('param').id)), 200),
)

adminApiClientRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/{id}',
    tags: [TAG],
    summary: 'Update an API client',
    description:
      'Changes any of name, rights, scope, allowlist, rate_limit_per_minute and expires_at; omitted fields stay. `rights` and `scope` replace the old ones whole, and so does each allowlist kind given (`allowlist: {"ips": []}` lifts the IP restriction and leaves origins and paths as they are). `expires_at: null` removes the expiry (and brings an expired client back). Takes effect from the next request.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: IdParam, body: jsonBody(UpdateApiClient) },
    responses: { 200: ok('Updated', ApiClientView), ...mergeErrors(adminErrors, notFound, scopeErrors) },
  }),
  async (c) => {
    const b = c.req.valid('json')
    const patch: ApiClientPatch = {}
    if (b.name !== undefined) patch.name = b.name
    if (b.rights !== undefined) patch.rights = b.rights
    if (b.scope !== undefined) patch.scope = b.scope
    if (b.allowlist !== undefined) patch.allowlist = b.allowlist
    if (b.rate_limit_per_minute !== undefined) patch.rateLimitPerMinute = b.rate_limit_per_minute
    if (b.expires_at !== undefined) patch.expiresAt = b.expires_at === null ? null : Date.parse(b.expires_at)
    return c.json(publicApiClient(await updateApiClientAsAdmin(c.env, c.req.valid('param').id, patch, auditActor(c))), 200)
  },
)

adminApiClientRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{id}/rotate',
    tags: [TAG],
    summary: 'Rotate the API key',
    description: 'Issues a new API key and returns it once. The old key stops working immediately: from this response on it gets 401 invalid_api_client. The client_key stays.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: IdParam },
    responses: { 200: ok('New API key; store it now', IssuedKey), ...mergeErrors(adminErrors, notFound) },
  }),
  async (c) => {
    const { row, apiKey } = await rotateApiKeyAsAdmin(c.env, c.req.valid('param').id, auditActor(c))
    c.header('Cache-Control', 'no-store')
    return c.json({ api_client: publicApiClient(row), client_key: row.clientKey, api_key: apiKey }, 200)
  },
)

adminApiClientRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{id}/disable',
    tags: [TAG],
    summary: 'Disable an API client',
    description: 'The client is refused from the next request on (401 api_client_disabled, once its key is proved). Its settings and key are kept; enable brings it back.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: IdParam },
    responses: { 200: ok('Disabled', ApiClientView), ...mergeErrors(adminErrors, notFound) },
  }),
  async (c) => c.json(publicApiClient(await setApiClientStatusAsAdmin(c.env, c.req.valid('param').id, 'DISABLED', auditActor(c))), 200),
)

adminApiClientRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{id}/enable',
    tags: [TAG],
    summary: 'Enable an API client',
    description: 'Undoes disable. An expired client stays refused until its expires_at is moved (PATCH).',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: IdParam },
    responses: { 200: ok('Enabled', ApiClientView), ...mergeErrors(adminErrors, notFound) },
  }),
  async (c) => c.json(publicApiClient(await setApiClientStatusAsAdmin(c.env, c.req.valid('param').id, 'ACTIVE', auditActor(c))), 200),
)

adminApiClientRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{id}/expire',
    tags: [TAG],
    summary: 'Expire an API client now',
    description: 'Sets expires_at to now: the client is refused from the next request on (401 api_client_expired, once its key is proved). PATCH a later expires_at, or null, to bring it back.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: IdParam },
    responses: { 200: ok('Expired', ApiClientView), ...mergeErrors(adminErrors, notFound) },
  }),
  async (c) => c.json(publicApiClient(await expireApiClientAsAdmin(c.env, c.req.valid('param').id, auditActor(c))), 200),
)
