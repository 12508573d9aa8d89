import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { OPEN } from '../lib/openapi'
import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { OAuthError, noStore, oauthText, oauthEndpoint, oauthErrors, oauthHook, param } from './oauth'
import { readClientAccess, userinfoClaims } from './service'
import { TAG, form } from './http'

/** UserInfo (OIDC Core §5.3). Mounted at /oauth2/userinfo. */
export const userinfoRoutes = router()

const UserInfo = z
  .object({
    sub: z.string().openapi({ example: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f' }),
    email: z.string().optional().openapi({ example: 'lilei@example.com' }),
    preferred_username: z.string().optional().openapi({ example: 'lilei' }),
    name: z.string().optional().openapi({ example: 'Li Lei' }),
    phone_number: z.string().optional().openapi({ example: '+8613800138000' }),
    updated_at: z.number().int().optional().openapi({ example: 1795000000 }),
    groups: z.array(z.string()).optional().openapi({ example: ['department/Sales/East', 'role/Manager'] }),
    permissions: z.array(z.string()).optional().openapi({ example: ['orders:read'] }),
  })
  .openapi('UserInfo')

const bearerError = (status: 400 | 401 | 403, error: string, description: string, extra = '') =>
  new OAuthError(error, description, status, { 'WWW-Authenticate': `Bearer realm="uap-edge", error="${error}", error_description="${oauthText(description)}"${extra}` })

async function userinfo(c: Context<AppEnv>, bodyToken: string | undefined) {
  return oauthEndpoint(c, async () => {
    const header = c.req.header('Authorization')
    const m = header ? /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(header) : null
    if (header && !m) throw bearerError(401, 'invalid_token', 'The Authorization header must be a Bearer token')
    if (m && bodyToken !== undefined) throw bearerError(400, 'invalid_request', 'Send the access token once (RFC 6750 §2)')
    const token = m?.[1] ?? bodyToken
    if (!token) throw new OAuthError('invalid_token', 'An access token is required', 401, { 'WWW-Authenticate': 'Bearer realm="uap-edge"' })
    const access = await readClientAccess(c.env, token, { claims: true })
    if (!access) throw bearerError(401, 'invalid_token', 'The access token is invalid or expired')
    const r = userinfoClaims(c.env, access)
    if ('error' in r) throw r.error === 'insufficient_scope' ? bearerError(403, r.error, r.description, ', scope="openid"') : bearerError(401, r.error, r.description)
    const { claims } = r
    noStore(c)
    return c.json(claims, 200)
  })
}

const USERINFO_DESCRIPTION =
  'OIDC Core §5.3. Bearer access token (RFC 6750) in the Authorization header, or for POST as the form field `access_token`. Claims: `sub` and the application\'s chosen claim (`email` or `preferred_username`, the user\'s mapped key in the app) always; `name`, `updated_at` with scope profile; `email` (the account\'s email, when the app\'s claim is not email) with scope email; `phone_number` with scope phone; `groups` (the user\'s groups as paths, `department/Sales/East`) with scope groups; `permissions` (the keys granted to the user in this app, docs/permissions.md) with scope permissions. Errors: 401 `invalid_token`, 403 `insufficient_scope`, with `WWW-Authenticate: Bearer` and the OAuth error body.'

userinfoRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: [TAG],
    summary: 'UserInfo',
    description: USERINFO_DESCRIPTION,
    ...OPEN,
    security: [{ bearerAuth: [] }],
    responses: { 200: { description: 'Claims', content: { 'application/json': { schema: UserInfo } } }, ...oauthErrors(400, 401, 403) },
  }),
  (c) => userinfo(c, undefined),
)

userinfoRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'UserInfo (POST)',
    description: USERINFO_DESCRIPTION,
    ...OPEN,
    security: [{ bearerAuth: [] }],
    request: { body: form(z.object({ access_token: param(4096) }), false) },
    responses: { 200: { description: 'Claims', content: { 'application/json': { schema: UserInfo } } }, ...oauthErrors(400, 401, 403) },
  }),
  (c) => userinfo(c, (c.req.valid('form')).access_token),
  oauthHook,
)

