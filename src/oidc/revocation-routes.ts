import { createRoute } from '@hono/zod-openapi'
import { router } from '../context'
import { OPEN } from '../lib/openapi'
import { OAuthError, authenticateClient, formBodyOnly, noStore, oauthEndpoint, oauthErrors, oauthHook } from './oauth'
import { revokeToken } from './service'
import { TAG, TokenParam, clientSecurity, form } from './http'

/** Token revocation (RFC 7009). Mounted at /oauth2/revoke. */
export const revocationRoutes = router()

revocationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'Token revocation',
    description:
      'RFC 7009. Client-authenticated (public clients send their client_id). A refresh token revokes its whole family. An access token is denied by UAP Edge (userinfo, introspection, its own API) until it expires; other services that verify it with the JWKS alone accept it until then (at most the access-token lifetime). Always 200 for tokens that are unknown, already revoked or issued to another client (§2.2), so nothing is learned from the answer.',
    ...OPEN,
    security: clientSecurity,
    middleware: [formBodyOnly] as const,
    request: { body: form(TokenParam) },
    responses: { 200: { description: 'Revoked (or nothing to revoke)' }, ...oauthErrors(400, 401) },
  }),
  async (c) =>
    oauthEndpoint(c, async () => {
      const f = c.req.valid('form')
      const { app } = await authenticateClient(c, f, { allowPublic: true })
      if (!f.token) throw new OAuthError('invalid_request', 'token is required')
      await revokeToken(c.env, app, f.token, { requestId: c.get('requestId'), ip: c.get('clientIp') })
      noStore(c)
      return c.body(null, 200)
    }),
  oauthHook,
)

