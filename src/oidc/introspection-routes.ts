import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { OPEN } from '../lib/openapi'
import { OAuthError, authenticateClient, formBodyOnly, markRefusedAnswer, noStore, oauthEndpoint, oauthErrors, oauthHook } from './oauth'
import { introspect, introspectedClient, readForIntrospection } from './service'
import { TAG, TokenParam, clientSecurity, form } from './http'

/** Token introspection (RFC 7662). Mounted at /oauth2/introspect. */
export const introspectionRoutes = router()

const Introspection = z
  .object({
    active: z.boolean(),
    client_id: z.string().optional(),
    sub: z.string().optional(),
    scope: z.string().optional(),
    exp: z.number().int().optional(),
    iat: z.number().int().optional(),
    iss: z.string().optional(),
    aud: z.union([z.string(), z.array(z.string())]).optional(),
    jti: z.string().optional(),
    token_type: z.string().optional(),
  })
  .openapi('Introspection', { example: { active: true, client_id: 'app_3f9a1c2d4e5f6a7b', sub: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f', scope: 'openid email', exp: 1795000900, iat: 1795000000, iss: 'https://id.example.com', token_type: 'Bearer' } })

introspectionRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'Token introspection',
    description:
      'RFC 7662. Confidential clients only (client_secret_basic or client_secret_post). Answers `{ "active": false }` for anything that is not a valid, unexpired, unrevoked token of a live session issued to the calling client; otherwise `active: true` with client_id, sub, scope, exp, iat, iss (and aud, jti, token_type for access tokens).',
    ...OPEN,
    security: clientSecurity,
    middleware: [formBodyOnly] as const,
    request: { body: form(TokenParam) },
    responses: { 200: { description: 'Token state', content: { 'application/json': { schema: Introspection } } }, ...oauthErrors(400, 401) },
  }),
  async (c) =>
    oauthEndpoint(c, async () => {
      const f = c.req.valid('form')
      // the token's reads run beside client authentication (one round trip); nothing is revealed before it passes
      const read = f.token ? readForIntrospection(c.env, f.token) : undefined
      read?.catch(() => {})
      // a client introspecting its own token is authenticated with the app row that read joined (no read of its own)
      const { app } = await authenticateClient(c, f, { allowPublic: false, knownApp: read?.then(introspectedClient, () => undefined) })
      if (!f.token || !read) throw new OAuthError('invalid_request', 'token is required')
      noStore(c)
      const answer = introspect(c.env, app, await read)
      if (!answer.active) markRefusedAnswer(c)
      return c.json(answer, 200)
    }),
  oauthHook,
)

