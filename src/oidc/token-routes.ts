import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { OPEN } from '../lib/openapi'
import { GRANT_TYPES, type GrantType } from '../apps/schema'
import { OAuthError, authenticateClient, formBodyOnly, noStore, oauthEndpoint, oauthErrors, oauthHook, param } from './oauth'
import { TAG, clientAuthFields, clientSecurity, form } from './http'
import { GRANTS, GRANT_PREFETCH, type TokenRequestForm } from './grants'

/** The token endpoint (RFC 6749 §3.2). Mounted at /oauth2/token. */
export const tokenRoutes = router()

const TokenRequest = z
  .object({
    grant_type: param(128).openapi({ example: 'authorization_code', description: 'authorization_code, refresh_token or client_credentials.' }),
    code: param(128).openapi({ example: 'SplxlOBeZQQYbYS6WxSbIA...' }),
    redirect_uri: param().openapi({ example: 'https://app.example.com/callback' }),
    code_verifier: param(128).openapi({ example: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk' }),
    refresh_token: param(512).openapi({ example: 'rt_V0hZ0lq8p3bX3Jm2n8kqQx0Xb5k2c9Yt7r1Zs4Aa6Ew' }),
    scope: param(512),
    ...clientAuthFields,
  })
  .openapi('TokenRequest')

const OidcTokenResponse = z
  .object({
    access_token: z.string().openapi({ example: 'eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6ImF0K2p3dCJ9...' }),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().openapi({ example: 900 }),
    scope: z.string().optional().openapi({ example: 'openid email offline_access' }),
    id_token: z.string().optional().openapi({ example: 'eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6IkpXVCJ9...' }),
    refresh_token: z.string().optional().openapi({ example: 'rt_V0hZ0lq8p3bX3Jm2n8kqQx0Xb5k2c9Yt7r1Zs4Aa6Ew' }),
  })
  .openapi('OidcTokenResponse')

const isGrantType = (g: string): g is GrantType => (GRANT_TYPES as readonly string[]).includes(g)

/** Why a grant type is refused: the two RFC 9700 forbids get their reason and the way forward. */
function unsupportedGrant(grantType: string): OAuthError {
  const why =
    grantType === 'password'
      ? 'The resource owner password grant is not supported: RFC 9700 §2.4 forbids it. Use the authorization code flow with PKCE.'
      : grantType === 'implicit' || grantType === 'token'
        ? 'The implicit grant is not supported: RFC 9700 §2.1.2 forbids it. Use the authorization code flow with PKCE.'
        : `grant_type ${grantType} is not supported; use ${GRANT_TYPES.join(', ')}`
  return new OAuthError('unsupported_grant_type', why)
}

tokenRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'Token endpoint',
    description: `RFC 6749 §3.2, form-encoded. Grants:
- \`authorization_code\`: \`code\`, \`redirect_uri\` (must equal the authorization request's), \`code_verifier\` when PKCE was used. A code works once; presenting it again fails and revokes the tokens the first exchange issued. Returns an access token, an ID token (scope openid) and, with scope offline_access, a refresh token.
- \`refresh_token\`: rotates the refresh token (the old one stops working; reusing it revokes the whole family), bound to the client it was issued to.
- \`client_credentials\`: confidential clients only; an access token whose \`sub\` is the client_id, no refresh token, no scope.

Client authentication is the method registered for the app: \`client_secret_basic\` (HTTP Basic of the form-urlencoded client_id and secret, RFC 6749 §2.3.1), \`client_secret_post\`, or \`none\` (public clients, which must use PKCE).

The implicit grant and the resource-owner password grant are refused (\`unsupported_response_type\` / \`unsupported_grant_type\`): RFC 9700 §2.1.2 and §2.4 forbid them. Use the authorization code flow with PKCE instead, also for SPAs and native apps.

Errors use the OAuth format \`{ "error", "error_description" }\` (RFC 6749 §5.2), not the usual UAP Edge error body; \`invalid_client\` is a 401 with \`WWW-Authenticate: Basic\`. Responses carry \`Cache-Control: no-store\`.`,
    ...OPEN,
    security: clientSecurity,
    middleware: [formBodyOnly] as const,
    request: { body: form(TokenRequest) },
    responses: { 200: { description: 'Tokens', content: { 'application/json': { schema: OidcTokenResponse } } }, ...oauthErrors(400, 401) },
  }),
  async (c) =>
    oauthEndpoint(c, async () => {
      const f = c.req.valid('form') as TokenRequestForm
      if (!f.grant_type) throw new OAuthError('invalid_request', 'grant_type is required')
      if (!isGrantType(f.grant_type)) throw unsupportedGrant(f.grant_type)
      const pre = GRANT_PREFETCH[f.grant_type]
      const prefetched = pre?.read(c.env, f)
      prefetched?.catch(() => {}) // awaited (and its error seen) only by the grant, after client authentication
      const client = await authenticateClient(c, f, { allowPublic: true, knownApp: prefetched?.then((r) => pre!.app(r), () => undefined) })
      // RFC 6749 §5.2 unauthorized_client: a client uses only the grants registered for it.
      if (!client.app.grantTypes.includes(f.grant_type)) throw new OAuthError('unauthorized_client', `This client may not use the ${f.grant_type} grant`)
      const body = await GRANTS[f.grant_type](c.env, client, f, { requestId: c.get('requestId'), ip: c.get('clientIp'), prefetched })
      noStore(c)
      return c.json(body as z.infer<typeof OidcTokenResponse>, 200)
    }),
  oauthHook,
)
