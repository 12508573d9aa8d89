import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { errorResponses } from '../lib/errors'
import { bearerSecurity, jsonBody, mergeErrors, pick } from '../lib/openapi'
import { AuthErrors } from '../auth/errors'
import { auditActor } from '../audit/service'
import { FederationErrors } from './errors'
import { PROVIDER_TYPES } from './schema'
import {
  createProviderAsAdmin,
  deleteProviderAsAdmin,
  listProviders,
  loadProvider,
  publicProvider,
  redactSecret,
  updateProviderAsAdmin,
  type ProviderInput,
} from './providers'
import { needs } from '../delegation/rights'

/** Admin: identity providers users may sign in with (docs/federation.md). Mounted at /api/v1/admin/identity-providers. */
export const adminIdentityProviderRoutes = router()

const TAG = 'Admin: identity providers'
const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })

const Url = (example: string) => z.string().min(1).max(2000).openapi({ example, description: 'https (http only on 127.0.0.1, [::1] or localhost outside production)' })
const Type = z.enum(PROVIDER_TYPES).openapi({
  description: '`oidc`: issuer only, endpoints and keys from its discovery document, ID token verified. `oauth2`: authorization, token and user-info endpoints and a claim_mapping. `github`: GitHub\'s OAuth app endpoints and user API (override the three endpoints for GitHub Enterprise Server).',
})
const Mapping = z
  .object({
    subject: z.string().min(1).max(100).openapi({ example: 'id', description: "Dot path to the provider's stable user id (never a login name that can change)" }),
    email: z.string().min(1).max(100).optional().openapi({ example: 'email' }),
    email_verified: z.string().min(1).max(100).optional().openapi({ example: 'email_verified' }),
    name: z.string().min(1).max(100).optional().openapi({ example: 'name' }),
    username: z.string().min(1).max(100).optional().openapi({ example: 'username' }),
  })
  .strict()
  .openapi('ClaimMapping')

const Settings = {
  display_name: z.string().trim().min(1).max(60).openapi({ example: 'GitHub', description: 'The button says "Sign in with <display_name>"' }),
  issuer: Url('https://accounts.example.com').nullable(),
  authorization_endpoint: Url('https://sso.example.com/oauth2/authorize').nullable(),
  token_endpoint: Url('https://sso.example.com/oauth2/token').nullable(),
  userinfo_endpoint: Url('https://sso.example.com/api/user').nullable(),
  client_id: z.string().min(1).max(256).openapi({ example: 'Iv1.8a61f9b3a7aba766' }),
  client_secret: z.string().min(1).max(512).openapi({ example: '4f2c…', description: 'Write-only: stored encrypted, never returned' }),
  token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post']).openapi({ description: 'Default client_secret_basic; client_secret_post for github' }),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope token (RFC 6749 §3.3)')).max(20).openapi({ example: ['openid', 'email', 'profile'], description: 'Defaults: oidc openid email profile; github read:user user:email' }),
  claim_mapping: Mapping.nullable(),
  enabled: z.boolean(),
}

const ProviderView = z
  .object({
    id: z.string().openapi({ example: 'github' }),
    type: Type,
    display_name: z.string(),
    issuer: z.string().nullable(),
    authorization_endpoint: z.string().nullable(),
    token_endpoint: z.string().nullable(),
    userinfo_endpoint: z.string().nullable(),
    client_id: z.string(),
    client_secret_set: z.literal(true),
    token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post']),
    scopes: z.array(z.string()),
    claim_mapping: Mapping.nullable(),
    enabled: z.boolean(),
    redirect_uri: z.string().openapi({ example: 'https://id.example.com/page/federation/github/callback', description: 'Register this callback URL at the provider' }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('IdentityProvider')

const Create = z
  .object({
    id: z.string().min(2).max(32).openapi({ example: 'github', description: 'Slug in every URL of the provider: 2-32 of a-z, 0-9 and -' }),
    type: Type,
    ...Settings,
  })
  .partial()
  .required({ id: true, type: true, display_name: true, client_id: true, client_secret: true })
  .openapi('CreateIdentityProvider')

const Update = z
  .object(Settings)
  .partial()
  .refine((v) => Object.keys(v).length > 0, 'give at least one field to change')
  .openapi('UpdateIdentityProvider')

const IdParam = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' }, example: 'github' }) })

const adminErrors = mergeErrors(errorResponses(AuthErrors, 'bearer_missing', 'invalid_token', 'not_admin_audience', 'not_admin'))

function toInput(b: Partial<z.infer<z.ZodObject<typeof Settings>>>): ProviderInput {
  const i: ProviderInput = {}
  if (b.display_name !== undefined) i.displayName = b.display_name
  if (b.issuer !== undefined) i.issuer = b.issuer
  if (b.authorization_endpoint !== undefined) i.authorizationEndpoint = b.authorization_endpoint
  if (b.token_endpoint !== undefined) i.tokenEndpoint = b.token_endpoint
  if (b.userinfo_endpoint !== undefined) i.userinfoEndpoint = b.userinfo_endpoint
  if (b.client_id !== undefined) i.clientId = b.client_id
  if (b.client_secret !== undefined) i.clientSecret = b.client_secret
  if (b.token_endpoint_auth_method !== undefined) i.tokenEndpointAuthMethod = b.token_endpoint_auth_method
  if (b.scopes !== undefined) i.scopes = [...new Set(b.scopes)]
  if (b.claim_mapping !== undefined) i.claimMapping = b.claim_mapping
  if (b.enabled !== undefined) i.enabled = b.enabled
  return i
}

adminIdentityProviderRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'Add an identity provider',
    description:
      'Adds a provider users can sign in with (a button on /page/login once enabled, which it is by default). Register `redirect_uri` of the answer at the provider. The client secret is stored encrypted and never returned. An `oidc` provider gives `issuer` only; its discovery document is read at the first sign-in.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { body: jsonBody(Create) },
    responses: { 201: ok('Added', ProviderView), ...mergeErrors(pick(400), adminErrors, errorResponses(FederationErrors, 'invalid_provider', 'provider_exists')) },
  }),
  async (c) => {
    const b = c.req.valid('json')
    const row = await createProviderAsAdmin(
      c.env,
      b.id,
      { ...toInput(b), type: b.type, displayName: b.display_name, clientId: b.client_id, clientSecret: b.client_secret },
      auditActor(c),
      redactSecret(b),
    )
    return c.json(publicProvider(c.env, row), 201)
  },
)

adminIdentityProviderRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: [TAG],
    summary: 'List identity providers',
    description: 'Every provider, enabled or not, by id. Never includes the client secrets.',
    security: bearerSecurity,
    ...needs('admin'),
    responses: { 200: ok('Providers', z.object({ items: z.array(ProviderView) })), ...adminErrors },
  }),
  async (c) => c.json({ items: await listProviders(c.env) }, 200),
)

adminIdentityProviderRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{id}',
    tags: [TAG],
    summary: 'Get an identity provider',
    description: 'Every setting of one provider except the client secret.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: IdParam },
    responses: { 200: ok('The provider', ProviderView), ...mergeErrors(pick(400), adminErrors, errorResponses(FederationErrors, 'provider_not_found')) },
  }),
  async (c) => c.json(publicProvider(c.env, await loadProvider(c.env, c.req.valid('param').id)), 200),
)

adminIdentityProviderRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/{id}',
    tags: [TAG],
    summary: 'Update an identity provider',
    description: 'Changes the given settings; omitted ones stay. `client_secret` replaces the stored secret. The type and the id cannot change (add another provider instead). The settings as a whole must still be valid for the type. While identities are linked through the provider, the settings that say whose accounts its subjects are (`issuer`, the origins of `authorization_endpoint`, `token_endpoint` and `userinfo_endpoint`, `claim_mapping.subject`) cannot change: 409 `provider_has_links` (delete the provider and create it again).',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: IdParam, body: jsonBody(Update) },
    responses: { 200: ok('Updated', ProviderView), ...mergeErrors(pick(400), adminErrors, errorResponses(FederationErrors, 'invalid_provider', 'provider_not_found', 'provider_has_links')) },
  }),
  async (c) => {
    const b = c.req.valid('json')
    const row = await updateProviderAsAdmin(c.env, c.req.valid('param').id, toInput(b), auditActor(c), redactSecret(b))
    return c.json(publicProvider(c.env, row), 200)
  },
)

for (const [action, enabled] of [['enable', true], ['disable', false]] as const) {
  adminIdentityProviderRoutes.openapi(
    createRoute({
      method: 'post',
      path: `/{id}/${action}`,
      tags: [TAG],
      summary: enabled ? 'Enable an identity provider' : 'Disable an identity provider',
      description: enabled
        ? 'Shows its button again and accepts sign-ins through it. Same as PATCH `enabled: true`.'
        : 'Removes its button and refuses sign-ins through it at once (flows already started fail at the callback). Linked identities are kept for when it is enabled again. Same as PATCH `enabled: false`.',
      security: bearerSecurity,
      ...needs('admin'),
      request: { params: IdParam },
      responses: { 200: ok(enabled ? 'Enabled' : 'Disabled', ProviderView), ...mergeErrors(pick(400), adminErrors, errorResponses(FederationErrors, 'invalid_provider', 'provider_not_found')) },
    }),
    async (c) => c.json(publicProvider(c.env, await updateProviderAsAdmin(c.env, c.req.valid('param').id, { enabled }, auditActor(c), { enabled })), 200),
  )
}

adminIdentityProviderRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/{id}',
    tags: [TAG],
    summary: 'Delete an identity provider',
    description:
      'Deletes the provider **and every identity linked through it**, and its pending sign-ins, in one batch with the audit row. The accounts stay and keep their mobile and password. Prefer disabling when in doubt: that keeps the links.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: IdParam },
    responses: {
      200: ok('Deleted', z.object({ deleted: z.literal(true), id: z.string(), linked_identities_deleted: z.number().int() })),
      ...mergeErrors(pick(400), adminErrors, errorResponses(FederationErrors, 'provider_not_found')),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param')
    const { identitiesDeleted } = await deleteProviderAsAdmin(c.env, id, auditActor(c))
    return c.json({ deleted: true as const, id, linked_identities_deleted: identitiesDeleted }, 200)
  },
)
