import { createRoute, z } from '@hono/zod-openapi'
import { pick, bearerSecurity, jsonBody, mergeErrors } from '../lib/openapi'
import { errorResponses } from '../lib/errors'
import { AppErrors } from './errors'
import { router } from '../context'
import { listApplications, publicApp } from './service'
import { auditActor } from '../audit/service'
import { redirectUriProblem } from '../lib/redirect-uri'
import { ACCESS_POLICIES, GRANT_TYPES } from './schema'
import { typedText } from '../lib/text'
import {
  createApplicationAsAdmin,
  deleteApplicationAsAdmin,
  disableApplicationAsAdmin,
  loadApplication,
  rotateAppAccessTokenAsAdmin,
  rotateAppSecretAsAdmin,
  updateApplicationAsAdmin,
  type ApplicationPatch,
} from './admin'
import { needs } from '../delegation/rights'
import { assertInScope, within } from '../delegation/scope'

/** Admin: applications of the family (docs/apps.md). Mounted at /api/v1/admin/apps. */
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
/** A Uri that must be https (loopback http included in Uri is refused). */
const HttpsUri = (example: string) => Uri(example).refine((v) => v.startsWith('https://'), 'must be an https URL')
const UriList = (example: string) => z.array(Uri(example)).max(20).refine((l) => new Set(l).size === l.length, 'must not contain duplicates')

const ProtocolType = z.enum(['OIDC', 'SIMPLE_API']).openapi({ description: 'OIDC client, or legacy app on the HMAC-signed simple API' })
const AuthMethod = z.enum(['client_secret_basic', 'client_secret_post', 'none']).openapi({ description: 'OIDC token endpoint client authentication; `none` = public client (PKCE only)' })
const IdTokenClaim = z.enum(['email', 'preferred_username']).openapi({ description: "Which ID token claim the user's mapped_key fills" })
/** Every grant the token endpoint serves and discovery lists (apps/schema.ts GRANT_TYPES); the rules between them are in apps/admin.ts. */
const GrantTypes = z
  .array(z.enum(GRANT_TYPES))
  .min(1)
  .max(GRANT_TYPES.length)
  .refine((l) => new Set(l).size === l.length, 'must not contain duplicates')
  .openapi({
    description:
      'OAuth 2.0 grants the client may use at the token endpoint (default `["authorization_code", "refresh_token"]`). `client_credentials` only for a confidential client (token_endpoint_auth_method other than none); `refresh_token` only with `authorization_code` (the only flow that issues refresh tokens).',
    example: ['authorization_code', 'refresh_token'],
  })
const ResponseTypes = z
  .array(z.enum(['code']))
  .max(1)
  .openapi({ description: '`["code"]` exactly when grant_types has `authorization_code`, else `[]` (RFC 7591 §2.1). Derived from grant_types when omitted.', example: ['code'] })

const AppSettings = {
  app_name: typedText({ min: 1, max: 100 }).openapi({ example: 'Legacy HR' }),
  icon_url: Uri('https://hr.example.com/icon.png').nullable(),
  description: typedText({ max: 300 }).nullable().openapi({ example: 'Leave requests, payslips and your HR file', description: "Shown under the app's name on the users' portal (/page/home)" }),
  home_url: Uri('https://hr.example.com/').nullable().openapi({ description: "Where the portal's \"My apps\" opens the app. A SIMPLE_API app opened from the portal gets a ticket at this URL when it is one of its redirect_uris, else at its first redirect URI (docs/portal.md)" }),
  initiate_login_uri: HttpsUri('https://hr.example.com/oidc/initiate').nullable().openapi({
    description: 'OIDC apps: the third-party-initiated login endpoint (OpenID Connect Core 1.0 §4); the portal opens it with `iss` and, when home_url is set, `target_link_uri`. https only (OpenID Connect Registration 1.0 §2)',
  }),
  protocol_type: ProtocolType,
  redirect_uris: UriList('https://hr.example.com/sso/callback'),
  post_logout_redirect_uris: UriList('https://hr.example.com/signed-out'),
  grant_types: GrantTypes,
  response_types: ResponseTypes,
  token_endpoint_auth_method: AuthMethod,
  id_token_claim: IdTokenClaim,
  notification_url: Uri('https://hr.example.com/uap/webhook').nullable(),
  backchannel_logout_uri: Uri('https://hr.example.com/uap/backchannel-logout').nullable(),
  require_pkce: z.boolean().openapi({ description: 'PKCE (S256) required at the authorization endpoint (default true). Only a confidential client (token_endpoint_auth_method other than none) may be set to false.' }),
  first_party: z.boolean().openapi({ description: 'First-party apps skip the consent page' }),
  access_policy: z.enum(ACCESS_POLICIES).openapi({
    description: "Who may enter the app (OIDC, tickets, login with app_id, refresh): `mapping` (default) an active mapping; `permission` also the app's `access` permission (docs/permissions.md)",
  }),
  partner_api_enabled: z.boolean().openapi({
    description: 'May the app call the HMAC-signed partner API (/api/v1/open/*, /api/v1/simple/*)? Default at creation: true for SIMPLE_API, false for OIDC (docs/apps.md)',
  }),
  sso_targets: z
    .array(z.string().min(1).max(64))
    .max(100)
    .refine((l) => new Set(l).size === l.length, 'must not contain duplicates')
    .openapi({ example: ['app_9b8c7d6e5f4a3b2c'], description: 'app_ids of the SIMPLE_API apps this app may exchange tickets into (docs/tickets.md); empty: no exchange' }),
}

export const AppView = z
  .object({
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    app_name: z.string().openapi({ example: 'Legacy HR' }),
    icon_url: z.string().nullable(),
    description: z.string().nullable(),
    home_url: z.string().nullable(),
    initiate_login_uri: z.string().nullable(),
    protocol_type: ProtocolType,
    redirect_uris: z.array(z.string()).openapi({ example: ['https://hr.example.com/sso/callback'] }),
    post_logout_redirect_uris: z.array(z.string()),
    grant_types: z.array(z.string()).openapi({ example: ['authorization_code', 'refresh_token'] }),
    response_types: z.array(z.string()).openapi({ example: ['code'] }),
    token_endpoint_auth_method: AuthMethod,
    id_token_claim: IdTokenClaim,
    notification_url: z.string().nullable(),
    backchannel_logout_uri: z.string().nullable(),
    require_pkce: z.boolean(),
    first_party: z.boolean(),
    access_policy: z.enum(ACCESS_POLICIES),
    partner_api_enabled: z.boolean(),
    sso_targets: z.array(z.string()).openapi({ example: ['app_9b8c7d6e5f4a3b2c'] }),
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

const Credentials = z
  .object({
    app: AppView,
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    app_secret: z.string().openapi({ example: 'sk_Zq3vJ0o2m9bqfR4wA1c6n8YtK5eD7hL2pX0sU9iG3rM' }),
    access_token: z.string().openapi({ example: 'at_8b1Qy5nW2zL7cX4vR9tP0kH3mJ6fD1sA5gE8uI2oY7w' }),
    webhook_secret: z.string().openapi({ example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3Zp1cXkH2yE=', description: 'Verifies the webhooks sent to notification_url (Standard Webhooks, docs/webhooks.md); rotate with POST /api/v1/admin/apps/{app_id}/webhooks/secret/rotate' }),
  })
  .openapi('ApplicationCredentials')

adminAppRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'Register an application',
    description:
      'Creates an application and returns its `app_id`, `app_secret` (HMAC key for signed requests), `access_token` (X-App-Access-Token for the mapping API) and `webhook_secret` (verifies the webhooks sent to `notification_url`). **The secrets and the token are shown only in this response**; UAP Edge keeps the secret encrypted and the token as a hash. OIDC applications with the `authorization_code` grant need at least one redirect URI; a machine client with only `client_credentials` needs none. The app records who registered it: a sub-admin (or API client) manages the apps they registered; their `sso_targets` must be apps they manage.',
    security: bearerSecurity,
    ...needs('apps.manage'),
    request: { body: jsonBody(CreateApp) },
    responses: { 201: ok('Created; store the credentials now', Credentials), ...mergeErrors(pick(400, 401, 403), errorResponses(AppErrors, 'sso_target_unknown', 'sso_target_invalid', 'backchannel_logout_uri_not_allowed')) },
  }),
  async (c) => {
    const b = c.req.valid('json')
    // an SSO target receives tickets from this app: a sub-admin names only apps they manage
    await assertInScope(c, { apps: b.sso_targets ?? [] })
    const { row, credentials } = await createApplicationAsAdmin(c.env, { ...toPatch(b), appName: b.app_name, protocolType: b.protocol_type }, auditActor(c))
    c.header('Cache-Control', 'no-store')
    return c.json({ app: publicApp(row), app_id: row.appId, ...credentials }, 201)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: [TAG],
    summary: 'List applications',
    description: 'Newest first, paginated. `q` matches part of the name or of the app_id. A sub-admin sees the apps of their scope and those they registered.',
    security: bearerSecurity,
    ...needs('apps.manage'),
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
    return c.json(await listApplications(c.env, { page: q.page, pageSize: q.page_size, search: q.q, status: q.status, protocolType: q.protocol_type, within: within(c, 'apps') }), 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}',
    tags: [TAG],
    summary: 'Get an application',
    description: 'Every setting of one application. Never returns the secret or the access token.',
    security: bearerSecurity,
    ...needs('apps.manage', { app: 'app_id' }),
    request: { params: AppIdParam },
    responses: { 200: ok('The application', AppView), ...pick(400, 401, 403, 404) },
  }),
  async (c) => c.json(publicApp(await loadApplication(c.env, c.req.valid('param').app_id)), 200),
)

adminAppRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/{app_id}',
    tags: [TAG],
    summary: 'Update an application',
    description:
      'Changes any of the given settings; omitted fields stay. `null` clears icon_url, description, home_url, initiate_login_uri, notification_url and backchannel_logout_uri. Setting `status` to DISABLED refuses the app at once on signed requests and access-token calls (403 app_disabled); `partner_api_enabled: false` refuses its signed requests (403 partner_api_disabled). `sso_targets` replaces the whole list; each entry must be another existing SIMPLE_API app (400 sso_target_unknown / sso_target_invalid).',
    security: bearerSecurity,
    ...needs('apps.manage', { app: 'app_id' }),
    request: { params: AppIdParam, body: jsonBody(UpdateApp) },
    responses: { 200: ok('Updated', AppView), ...mergeErrors(pick(400, 401, 403, 404), errorResponses(AppErrors, 'sso_target_unknown', 'sso_target_invalid', 'backchannel_logout_uri_not_allowed')) },
  }),
  async (c) => {
    const b = c.req.valid('json')
    await assertInScope(c, { apps: b.sso_targets ?? [] })
    const updated = await updateApplicationAsAdmin(c.env, c.req.valid('param').app_id, toPatch(b), auditActor(c), b)
    return c.json(publicApp(updated), 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/secret/rotate',
    tags: [TAG],
    summary: 'Rotate the app secret',
    description:
      'Issues a new app secret and returns it once. The old secret stops working immediately: signed requests made with it are refused (401 signature_invalid) from this response on. Coordinate with the app owner before rotating.',
    security: bearerSecurity,
    ...needs('apps.manage', { app: 'app_id' }),
    request: { params: AppIdParam },
    responses: { 200: ok('New secret; store it now', z.object({ app_id: z.string(), app_secret: z.string().openapi({ example: 'sk_Zq3vJ0o2m9bqfR4wA1c6n8YtK5eD7hL2pX0sU9iG3rM' }) })), ...pick(400, 401, 403, 404) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    const secret = await rotateAppSecretAsAdmin(c.env, app_id, auditActor(c))
    c.header('Cache-Control', 'no-store')
    return c.json({ app_id, app_secret: secret }, 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/access-token/rotate',
    tags: [TAG],
    summary: 'Rotate the app access token',
    description: 'Issues a new X-App-Access-Token and returns it once; the old token is refused (401 app_token_invalid) from this response on.',
    security: bearerSecurity,
    ...needs('apps.manage', { app: 'app_id' }),
    request: { params: AppIdParam },
    responses: { 200: ok('New token; store it now', z.object({ app_id: z.string(), access_token: z.string().openapi({ example: 'at_8b1Qy5nW2zL7cX4vR9tP0kH3mJ6fD1sA5gE8uI2oY7w' }) })), ...pick(400, 401, 403, 404) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    const token = await rotateAppAccessTokenAsAdmin(c.env, app_id, auditActor(c))
    c.header('Cache-Control', 'no-store')
    return c.json({ app_id, access_token: token }, 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/disable',
    tags: [TAG],
    summary: 'Disable an application',
    description: 'Same as PATCH with `status: DISABLED`: signed requests and access-token calls of the app are refused (403 app_disabled). Mappings are kept. Re-enable with PATCH `status: ACTIVE`.',
    security: bearerSecurity,
    ...needs('apps.manage', { app: 'app_id' }),
    request: { params: AppIdParam },
    responses: { 200: ok('Disabled', AppView), ...pick(400, 401, 403, 404) },
  }),
  async (c) => {
    return c.json(publicApp(await disableApplicationAsAdmin(c.env, c.req.valid('param').app_id, auditActor(c))), 200)
  },
)

adminAppRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/{app_id}',
    tags: [TAG],
    summary: 'Delete an application',
    description:
      'Deletes the application **and all its user mappings**. Each deleted mapping gets a DELETE event in the mapping outbox, written in the same atomic batch as the deletion and the audit row, so consumers of the outbox learn of every removed mapping. The app also leaves every other app\'s `sso_targets` in that batch. The app credentials stop working at once. This cannot be undone; prefer disabling when in doubt.',
    security: bearerSecurity,
    ...needs('apps.manage', { app: 'app_id' }),
    request: { params: AppIdParam },
    responses: { 200: ok('Deleted', z.object({ deleted: z.literal(true), app_id: z.string(), mappings_deleted: z.number().int() })), ...pick(400, 401, 403, 404) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    const { mappingsDeleted: n } = await deleteApplicationAsAdmin(c.env, app_id, auditActor(c))
    return c.json({ deleted: true as const, app_id, mappings_deleted: n }, 200)
  },
)

/** API field names → the application's settings (only the fields given). */
function toPatch(b: Partial<z.infer<typeof Settings>> & { status?: 'ACTIVE' | 'DISABLED' }): ApplicationPatch {
  const patch: ApplicationPatch = {}
  if (b.app_name !== undefined) patch.appName = b.app_name
  if (b.icon_url !== undefined) patch.iconUrl = b.icon_url
  if (b.description !== undefined) patch.description = b.description || null
  if (b.home_url !== undefined) patch.homeUrl = b.home_url
  if (b.initiate_login_uri !== undefined) patch.initiateLoginUri = b.initiate_login_uri
  if (b.protocol_type !== undefined) patch.protocolType = b.protocol_type
  if (b.redirect_uris !== undefined) patch.redirectUris = b.redirect_uris
  if (b.post_logout_redirect_uris !== undefined) patch.postLogoutRedirectUris = b.post_logout_redirect_uris
  if (b.grant_types !== undefined) patch.grantTypes = b.grant_types
  if (b.response_types !== undefined) patch.responseTypes = b.response_types
  if (b.token_endpoint_auth_method !== undefined) patch.tokenEndpointAuthMethod = b.token_endpoint_auth_method
  if (b.id_token_claim !== undefined) patch.idTokenClaim = b.id_token_claim
  if (b.notification_url !== undefined) patch.notificationUrl = b.notification_url
  if (b.backchannel_logout_uri !== undefined) patch.backchannelLogoutUri = b.backchannel_logout_uri
  if (b.require_pkce !== undefined) patch.requirePkce = b.require_pkce
  if (b.first_party !== undefined) patch.firstParty = b.first_party
  if (b.access_policy !== undefined) patch.accessPolicy = b.access_policy
  if (b.partner_api_enabled !== undefined) patch.partnerApiEnabled = b.partner_api_enabled
  if (b.sso_targets !== undefined) patch.ssoTargets = b.sso_targets
  if (b.status !== undefined) patch.status = b.status
  return patch
}
