import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { OPEN, jsonText, serialized, type Serialized } from '../lib/openapi'
import { getConfig } from '../env'
import { GRANT_TYPES } from '../apps/schema'
import { CLAIMS_SUPPORTED, SUPPORTED_SCOPES } from './service'
import { SUPPORTED_PROMPTS } from './authorize'
import { TAG } from './http'
import { publicCors } from '../lib/cors'

/** OpenID Connect Discovery 1.0 §4. Mounted at /.well-known. */
export const discoveryRoutes = router()
// Public metadata, read with a plain GET (the JWKS does the same, src/keys/routes.ts).
discoveryRoutes.use('/openid-configuration', publicCors({ allowMethods: ['GET'], maxAge: 600 }))

const Discovery = z
  .object({
    issuer: z.string(),
    authorization_endpoint: z.string(),
    token_endpoint: z.string(),
    userinfo_endpoint: z.string(),
    jwks_uri: z.string(),
    revocation_endpoint: z.string(),
    introspection_endpoint: z.string(),
    end_session_endpoint: z.string(),
    scopes_supported: z.array(z.string()),
    response_types_supported: z.array(z.string()),
    response_modes_supported: z.array(z.string()),
    grant_types_supported: z.array(z.string()),
    subject_types_supported: z.array(z.string()),
    id_token_signing_alg_values_supported: z.array(z.string()),
    token_endpoint_auth_methods_supported: z.array(z.string()),
    revocation_endpoint_auth_methods_supported: z.array(z.string()),
    introspection_endpoint_auth_methods_supported: z.array(z.string()),
    claims_supported: z.array(z.string()),
    claim_types_supported: z.array(z.string()),
    code_challenge_methods_supported: z.array(z.string()),
    prompt_values_supported: z.array(z.string()),
    claims_parameter_supported: z.boolean(),
    request_parameter_supported: z.boolean(),
    request_uri_parameter_supported: z.boolean(),
    authorization_response_iss_parameter_supported: z.boolean(),
    backchannel_logout_supported: z.boolean(),
    backchannel_logout_session_supported: z.boolean(),
    service_documentation: z.string(),
  })
  .openapi('OpenIdConfiguration')

function discoveryDocument(issuer: string): z.infer<typeof Discovery> {
  return {
    issuer,
    authorization_endpoint: `${issuer}/oauth2/authorize`,
    token_endpoint: `${issuer}/oauth2/token`,
    userinfo_endpoint: `${issuer}/oauth2/userinfo`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    revocation_endpoint: `${issuer}/oauth2/revoke`,
    introspection_endpoint: `${issuer}/oauth2/introspect`,
    end_session_endpoint: `${issuer}/oauth2/end_session`,
    scopes_supported: [...SUPPORTED_SCOPES],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: [...GRANT_TYPES],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['ES256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    claims_supported: CLAIMS_SUPPORTED,
    claim_types_supported: ['normal'],
    code_challenge_methods_supported: ['S256'],
    prompt_values_supported: [...SUPPORTED_PROMPTS],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
    authorization_response_iss_parameter_supported: true,
    backchannel_logout_supported: true,
    backchannel_logout_session_supported: true,
    service_documentation: `${issuer}/docs/open`,
  }
}

// The document is a function of the issuer alone (one per deployment), serialized once.
const texts = new Map<string, Serialized<z.infer<typeof Discovery>>>()
function discoveryText(issuer: string) {
  let text = texts.get(issuer)
  if (!text) {
    if (texts.size >= 8) texts.clear()
    texts.set(issuer, (text = serialized(discoveryDocument(issuer))))
  }
  return text
}

discoveryRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/openid-configuration',
    tags: [TAG],
    summary: 'OpenID Provider metadata',
    description:
      'OpenID Connect Discovery 1.0. Lists exactly what UAP Edge supports: authorization code flow with PKCE (S256), refresh tokens, client credentials, ES256 ID tokens, RP-initiated and back-channel logout. Point your OIDC library at the issuer and it reads everything else from here.',
    ...OPEN,
    responses: { 200: { description: 'Provider metadata', content: { 'application/json': { schema: Discovery } } } },
  }),
  (c) => {
    c.header('Cache-Control', 'public, max-age=300')
    return jsonText(c, discoveryText(getConfig(c.env).issuer))
  },
)

