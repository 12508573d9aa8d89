import { createRoute, z } from '@hono/zod-openapi'
import { eq } from 'drizzle-orm'
import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { pick, bearerSecurity, jsonBody } from '../lib/openapi'
import { router } from '../context'
import { getDb } from '../db'
import { applications, type Application } from './schema'
import { encryptAppSecret, findApplication, listApplications, newAppAccessToken, newAppSecret, newApplicationRow, publicApp } from './service'
import { auditFrom, auditStatement } from '../audit/service'
import { badRequest, notFound } from '../lib/errors'
import { redirectUriProblem } from '../lib/redirect-uri'
import { sha256Hex } from '../lib/crypto'
import { deleteAllMappingsOfAppStatements } from '../mappings/service'

/** Admin: applications of the family (docs/apps.md). */
export const adminAppRoutes = router()

const TAG = 'Admin: applications'
const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })

/** A URL field checked by lib/redirect-uri.ts (absolute, https or loopback http, no fragment, no userinfo). */
const Uri = (example: string) =>
  z
    .string()
    .superRefine((v, ctx) => {
      const problem = redirectUriProblem(v)
      if (problem) ctx.addIssue({ code: 'custom', message: problem })
    })
    .openapi({ example })
const UriList = (example: string) => z.array(Uri(example)).max(20).refine((l) => new Set(l).size === l.length, 'must not contain duplicates')

const ProtocolType = z.enum(['OIDC', 'SIMPLE_API']).openapi({ description: 'OIDC client, or legacy app on the HMAC-signed simple API' })
const AuthMethod = z.enum(['client_secret_basic', 'client_secret_post', 'none']).openapi({ description: 'OIDC token endpoint client authentication; `none` = public client (PKCE only)' })
const IdTokenClaim = z.enum(['email', 'preferred_username']).openapi({ description: "Which ID token claim the user's mapped_key fills" })
const GrantTypes = z.array(z.enum(['authorization_code', 'refresh_token'])).min(1).max(2)
const ResponseTypes = z.array(z.enum(['code'])).min(1).max(1)

const AppSettings = {
  app_name: z.string().trim().min(1).max(100).openapi({ example: 'Legacy HR' }),
  icon_url: Uri('https://hr.example.com/icon.png').nullable(),
  protocol_type: ProtocolType,
  redirect_uris: UriList('https://hr.example.com/sso/callback'),
  post_logout_redirect_uris: UriList('https://hr.example.com/signed-out'),
  grant_types: GrantTypes,
  response_types: ResponseTypes,
  token_endpoint_auth_method: AuthMethod,
  id_token_claim: IdTokenClaim,
  notification_url: Uri('https://hr.example.com/uap/webhook').nullable(),
  backchannel_logout_uri: Uri('https://hr.example.com/uap/backchannel-logout').nullable(),
  first_party: z.boolean().openapi({ description: 'First-party apps skip the consent page' }),
}

export const AppView = z
  .object({
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    app_name: z.string().openapi({ example: 'Legacy HR' }),
    icon_url: z.string().nullable(),
    protocol_type: ProtocolType,
    redirect_uris: z.array(z.string()).openapi({ example: ['https://hr.example.com/sso/callback'] }),
    post_logout_redirect_uris: z.array(z.string()),
    grant_types: z.array(z.string()).openapi({ example: ['authorization_code', 'refresh_token'] }),
    response_types: z.array(z.string()).openapi({ example: ['code'] }),
    token_endpoint_auth_method: AuthMethod,
    id_token_claim: IdTokenClaim,
    notification_url: z.string().nullable(),
    backchannel_logout_uri: z.string().nullable(),
    first_party: z.boolean(),
    status: z.enum(['ACTIVE', 'DISABLED']),
    created_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
    updated_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
  })
  .openapi('Application')

const AppIdParam = z.object({ app_id: z.string().min(1).max(64).openapi({ param: { name: 'app_id', in: 'path' }, example: 'app_3f9a1c2d4e5f6a7b' }) })

const Settings = z.object(AppSettings)

/** Create: name and protocol required, every other setting optional (defaults in apps/service.ts). */
const CreateApp = Settings.partial().required({ app_name: true, protocol_type: true }).openapi('CreateApplication')

/** Update: any subset of the settings, plus status. */
const UpdateApp = Settings.partial()
  .extend({ status: z.enum(['ACTIVE', 'DISABLED']).optional() })
  .refine((v) => Object.keys(v).length > 0, 'give at least one field to change')
  .openapi('UpdateApplication')

/** An OIDC client without a redirect URI could never complete the authorization code flow. */
function checkConsistency(a: Pick<Application, 'protocolType' | 'redirectUris'>) {
  if (a.protocolType === 'OIDC' && a.redirectUris.length === 0) throw badRequest('redirect_uris: an OIDC application needs at least one redirect URI')
}

async function loadApp(appId: string, env: Parameters<typeof findApplication>[0]) {
  const app = await findApplication(env, appId)
  if (!app) throw notFound('Application not found')
  return app
}

const Credentials = z
  .object({
    app: AppView,
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    app_secret: z.string().openapi({ example: 'sk_Zq3vJ0o2m9bqfR4wA1c6n8YtK5eD7hL2pX0sU9iG3rM' }),
    access_token: z.string().openapi({ example: 'at_8b1Qy5nW2zL7cX4vR9tP0kH3mJ6fD1sA5gE8uI2oY7w' }),
  })
  .openapi('ApplicationCredentials')

adminAppRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/api/v1/admin/apps',
    tags: [TAG],
    summary: 'Register an application',
    description:
      'Creates an application and returns its `app_id`, `app_secret` (HMAC key for signed requests and webhooks) and `access_token` (X-App-Access-Token for the mapping API). **The secret and the token are shown only in this response**; UAP Edge keeps the secret encrypted and the token as a hash. OIDC applications need at least one redirect URI.',
    security: bearerSecurity,
    request: { body: jsonBody(CreateApp) },
    responses: { 201: ok('Created; store the credentials now', Credentials), ...pick(400, 401, 403) },
  }),
  async (c) => {
    const b = c.req.valid('json')
    const { row, credentials } = await newApplicationRow(c.env, {
      appName: b.app_name,
      protocolType: b.protocol_type,
      iconUrl: b.icon_url,
      redirectUris: b.redirect_uris,
      postLogoutRedirectUris: b.post_logout_redirect_uris,
      grantTypes: b.grant_types,
      responseTypes: b.response_types,
      tokenEndpointAuthMethod: b.token_endpoint_auth_method,
      idTokenClaim: b.id_token_claim,
      notificationUrl: b.notification_url,
      backchannelLogoutUri: b.backchannel_logout_uri,
      firstParty: b.first_party,
    })
    checkConsistency(row)
    const db = getDb(c.env.DB)
    await db.batch([
      db.insert(applications).values(row),
      auditStatement(db, auditFrom(c, { action: 'admin.app.create', targetType: 'application', targetId: row.appId, details: { app_name: row.appName, protocol_type: row.protocolType } })),
    ])
    c.header('Cache-Control', 'no-store')
    return c.json({ app: publicApp(row), app_id: row.appId, ...credentials }, 201)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/api/v1/admin/apps',
    tags: [TAG],
    summary: 'List applications',
    description: 'Newest first, paginated. `q` matches part of the name or of the app_id.',
    security: bearerSecurity,
    request: {
      query: z.object({
        page: z.coerce.number().int().min(1).default(1).openapi({ example: 1 }),
        page_size: z.coerce.number().int().min(1).max(100).default(20).openapi({ example: 20 }),
        q: z.string().max(100).optional().openapi({ example: 'HR' }),
        status: z.enum(['ACTIVE', 'DISABLED']).optional(),
        protocol_type: ProtocolType.optional(),
      }),
    },
    responses: { 200: ok('A page of applications', z.object({ items: z.array(AppView), page: z.number(), page_size: z.number(), total: z.number() })), ...pick(400, 401, 403) },
  }),
  async (c) => {
    const q = c.req.valid('query')
    return c.json(await listApplications(c.env, { page: q.page, pageSize: q.page_size, search: q.q, status: q.status, protocolType: q.protocol_type }), 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/api/v1/admin/apps/{app_id}',
    tags: [TAG],
    summary: 'Get an application',
    description: 'Every setting of one application. Never returns the secret or the access token.',
    security: bearerSecurity,
    request: { params: AppIdParam },
    responses: { 200: ok('The application', AppView), ...pick(401, 403, 404) },
  }),
  async (c) => c.json(publicApp(await loadApp(c.req.valid('param').app_id, c.env)), 200),
)

adminAppRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/api/v1/admin/apps/{app_id}',
    tags: [TAG],
    summary: 'Update an application',
    description:
      'Changes any of the given settings; omitted fields stay. `null` clears icon_url, notification_url and backchannel_logout_uri. Setting `status` to DISABLED refuses the app at once on signed requests and access-token calls (403 app_disabled).',
    security: bearerSecurity,
    request: { params: AppIdParam, body: jsonBody(UpdateApp) },
    responses: { 200: ok('Updated', AppView), ...pick(400, 401, 403, 404) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    const b = c.req.valid('json')
    const app = await loadApp(app_id, c.env)
    const patch: Partial<Application> = {}
    if (b.app_name !== undefined) patch.appName = b.app_name
    if (b.icon_url !== undefined) patch.iconUrl = b.icon_url
    if (b.protocol_type !== undefined) patch.protocolType = b.protocol_type
    if (b.redirect_uris !== undefined) patch.redirectUris = b.redirect_uris
    if (b.post_logout_redirect_uris !== undefined) patch.postLogoutRedirectUris = b.post_logout_redirect_uris
    if (b.grant_types !== undefined) patch.grantTypes = b.grant_types
    if (b.response_types !== undefined) patch.responseTypes = b.response_types
    if (b.token_endpoint_auth_method !== undefined) patch.tokenEndpointAuthMethod = b.token_endpoint_auth_method
    if (b.id_token_claim !== undefined) patch.idTokenClaim = b.id_token_claim
    if (b.notification_url !== undefined) patch.notificationUrl = b.notification_url
    if (b.backchannel_logout_uri !== undefined) patch.backchannelLogoutUri = b.backchannel_logout_uri
    if (b.first_party !== undefined) patch.firstParty = b.first_party
    if (b.status !== undefined) patch.status = b.status
    const updated: Application = { ...app, ...patch, updatedAt: Date.now() }
    checkConsistency(updated)
    const action = b.status === 'DISABLED' && app.status !== 'DISABLED' ? 'admin.app.disable' : b.status === 'ACTIVE' && app.status !== 'ACTIVE' ? 'admin.app.enable' : 'admin.app.update'
    const db = getDb(c.env.DB)
    await db.batch([
      db.update(applications).set({ ...patch, updatedAt: updated.updatedAt }).where(eq(applications.appId, app_id)),
      auditStatement(db, auditFrom(c, { action, targetType: 'application', targetId: app_id, details: b })),
    ])
    return c.json(publicApp(updated), 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/api/v1/admin/apps/{app_id}/secret/rotate',
    tags: [TAG],
    summary: 'Rotate the app secret',
    description:
      'Issues a new app secret and returns it once. The old secret stops working immediately: signed requests made with it are refused (401 signature_invalid) from this response on. Coordinate with the app owner before rotating.',
    security: bearerSecurity,
    request: { params: AppIdParam },
    responses: { 200: ok('New secret; store it now', z.object({ app_id: z.string(), app_secret: z.string().openapi({ example: 'sk_Zq3vJ0o2m9bqfR4wA1c6n8YtK5eD7hL2pX0sU9iG3rM' }) })), ...pick(401, 403, 404) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    await loadApp(app_id, c.env)
    const secret = newAppSecret()
    await replaceCredential(c, app_id, { appSecretEnc: await encryptAppSecret(c.env, app_id, secret) }, 'admin.app.rotate_secret')
    return c.json({ app_id, app_secret: secret }, 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/api/v1/admin/apps/{app_id}/access-token/rotate',
    tags: [TAG],
    summary: 'Rotate the app access token',
    description: 'Issues a new X-App-Access-Token and returns it once; the old token is refused (401 app_token_invalid) from this response on.',
    security: bearerSecurity,
    request: { params: AppIdParam },
    responses: { 200: ok('New token; store it now', z.object({ app_id: z.string(), access_token: z.string().openapi({ example: 'at_8b1Qy5nW2zL7cX4vR9tP0kH3mJ6fD1sA5gE8uI2oY7w' }) })), ...pick(401, 403, 404) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    await loadApp(app_id, c.env)
    const token = newAppAccessToken()
    await replaceCredential(c, app_id, { accessTokenHash: await sha256Hex(token) }, 'admin.app.rotate_access_token')
    return c.json({ app_id, access_token: token }, 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/api/v1/admin/apps/{app_id}/disable',
    tags: [TAG],
    summary: 'Disable an application',
    description: 'Same as PATCH with `status: DISABLED`: signed requests and access-token calls of the app are refused (403 app_disabled). Mappings are kept. Re-enable with PATCH `status: ACTIVE`.',
    security: bearerSecurity,
    request: { params: AppIdParam },
    responses: { 200: ok('Disabled', AppView), ...pick(401, 403, 404) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    const app = await loadApp(app_id, c.env)
    const updated: Application = { ...app, status: 'DISABLED', updatedAt: Date.now() }
    const db = getDb(c.env.DB)
    await db.batch([
      db.update(applications).set({ status: 'DISABLED', updatedAt: updated.updatedAt }).where(eq(applications.appId, app_id)),
      auditStatement(db, auditFrom(c, { action: 'admin.app.disable', targetType: 'application', targetId: app_id })),
    ])
    return c.json(publicApp(updated), 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/api/v1/admin/apps/{app_id}',
    tags: [TAG],
    summary: 'Delete an application',
    description:
      'Deletes the application **and all its user mappings**. Each deleted mapping gets a DELETE event in the mapping outbox, written in the same atomic batch as the deletion and the audit row, so consumers of the outbox learn of every removed mapping. The app credentials stop working at once. This cannot be undone; prefer disabling when in doubt.',
    security: bearerSecurity,
    request: { params: AppIdParam },
    responses: { 200: ok('Deleted', z.object({ deleted: z.literal(true), app_id: z.string(), mappings_deleted: z.number().int() })), ...pick(401, 403, 404) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    const app = await loadApp(app_id, c.env)
    const db = getDb(c.env.DB)
    const now = Date.now()
    const [, deletedMappings] = await db.batch([
      ...(deleteAllMappingsOfAppStatements(db, app_id, now) as [ReturnType<typeof deleteAllMappingsOfAppStatements>[0], ReturnType<typeof deleteAllMappingsOfAppStatements>[1]]),
      db.delete(applications).where(eq(applications.appId, app_id)),
      auditStatement(db, auditFrom(c, { action: 'admin.app.delete', targetType: 'application', targetId: app_id, details: { app_name: app.appName, protocol_type: app.protocolType } })),
    ])
    const n = (deletedMappings as { meta?: { changes?: number } }).meta?.changes ?? 0
    return c.json({ deleted: true as const, app_id, mappings_deleted: n }, 200)
  },
)

/** Swaps one stored credential (secret envelope or token hash) with its audit row; the new value is shown once, never cached. */
async function replaceCredential(c: Context<AppEnv>, appId: string, set: Partial<Pick<Application, 'appSecretEnc' | 'accessTokenHash'>>, action: string) {
  const db = getDb(c.env.DB)
  await db.batch([
    db.update(applications).set({ ...set, updatedAt: Date.now() }).where(eq(applications.appId, appId)),
    auditStatement(db, auditFrom(c, { action, targetType: 'application', targetId: appId })),
  ])
  c.header('Cache-Control', 'no-store')
}
