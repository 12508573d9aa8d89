import { createRoute, z } from '@hono/zod-openapi'
import { OPEN, pick, bearerSecurity, jsonBody } from '../lib/openapi'
import { router } from '../context'
import { MobileField } from '../lib/mobile'
import { login, logoutAll, logoutSession } from './service'
import { rotateRefreshToken } from './tokens'
import { requireUser } from './guards'
import { findUserById } from '../users/service'
import { UserProfile, publicUser } from '../users/view'
import { auditFrom } from '../audit/service'
import { UserErrors } from '../users/errors'

export const TokenResponse = z
  .object({
    access_token: z.string().openapi({ example: 'eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6ImF0K2p3dCJ9...' }),
    refresh_token: z.string().openapi({ example: 'rt_V0hZ0lq8p3bX3Jm2n8kqQx0Xb5k2c9Yt7r1Zs4Aa6Ew' }),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().openapi({ example: 900 }),
  })
  .openapi('TokenResponse')



/** First-party sign-in API. Mounted at /api/v1/auth. */
export const authRoutes = router()

authRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/login',
    tags: ['Auth'],
    summary: 'Sign in with mobile and password',
    description:
      'Verifies the password and returns an ES256 access token (JWT, `typ: at+jwt`, claims iss, sub, aud, exp, iat, jti, sid) and an opaque refresh token. With `app_id` the access token is issued for that application (aud = app_id). Unknown mobiles and wrong passwords get the same 401. Repeated failures per mobile and per IP lock sign-in for 15 minutes (429 with Retry-After).',
    ...OPEN,
    request: {
      body: jsonBody(
        z.object({
          mobile: MobileField,
          password: z.string().min(1).max(256).openapi({ example: 'correct horse battery staple' }),
          app_id: z.string().min(1).max(64).optional().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
        }),
      ),
    },
    responses: { 200: { description: 'Signed in', content: { 'application/json': { schema: TokenResponse } } }, ...pick(400, 401, 403, 429) },
  }),
  async (c) => {
    const body = c.req.valid('json')
    const tokens = await login(c.env, body, { requestId: c.get('requestId'), ip: c.get('clientIp'), userAgent: c.req.header('User-Agent') })
    c.header('Cache-Control', 'no-store')
    return c.json(tokens, 200)
  },
)

authRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/refresh',
    tags: ['Auth'],
    summary: 'Exchange a refresh token for new tokens',
    description:
      'Rotates the refresh token: the presented one stops working and a new one is returned with a fresh access token. Presenting a refresh token that was already rotated revokes its whole token family (theft detection), except within a 10-second grace window in which a concurrent or retried refresh receives the same successor.',
    ...OPEN,
    request: { body: jsonBody(z.object({ refresh_token: z.string().min(1).max(512).openapi({ example: 'rt_V0hZ0lq8p3bX3Jm2n8kqQx0Xb5k2c9Yt7r1Zs4Aa6Ew' }) })) },
    responses: { 200: { description: 'New tokens', content: { 'application/json': { schema: TokenResponse } } }, ...pick(400, 401) },
  }),
  async (c) => {
    const { refresh_token } = c.req.valid('json')
    const { userId: _u, sessionId: _s, ...tokens } = await rotateRefreshToken(c.env, refresh_token, { requestId: c.get('requestId'), ip: c.get('clientIp') })
    c.header('Cache-Control', 'no-store')
    return c.json(tokens as z.infer<typeof TokenResponse>, 200)
  },
)

const Ok = z.object({ ok: z.literal(true) }).openapi('Ok')

authRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/logout',
    tags: ['Auth'],
    summary: 'Sign out this session',
    description: 'Ends the session of the presented access token: its refresh tokens are revoked and its access tokens are no longer accepted by UAP Edge.',
    security: bearerSecurity,
    middleware: [requireUser] as const,
    responses: { 200: { description: 'Signed out', content: { 'application/json': { schema: Ok } } }, ...pick(401) },
  }),
  async (c) => {
    const auth = c.get('auth')!
    await logoutSession(c.env, auth.userId, auth.sessionId, auditFrom(c, { action: 'logout' }))
    return c.json({ ok: true as const }, 200)
  },
)

authRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/logout-all',
    tags: ['Auth'],
    summary: 'Sign out every session of this user',
    description: 'Ends every session of the signed-in user, on every device and app, and revokes all their refresh tokens.',
    security: bearerSecurity,
    middleware: [requireUser] as const,
    responses: { 200: { description: 'Signed out everywhere', content: { 'application/json': { schema: Ok } } }, ...pick(401) },
  }),
  async (c) => {
    const auth = c.get('auth')!
    await logoutAll(c.env, auth.userId, auditFrom(c, { action: 'logout_all' }))
    return c.json({ ok: true as const }, 200)
  },
)

authRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/me',
    tags: ['Auth'],
    summary: 'The signed-in user',
    description: "Returns the profile of the access token's user.",
    security: bearerSecurity,
    middleware: [requireUser] as const,
    responses: { 200: { description: 'Profile', content: { 'application/json': { schema: UserProfile } } }, ...pick(401, 404) },
  }),
  async (c) => {
    const user = await findUserById(c.env, c.get('auth')!.userId)
    if (!user) throw UserErrors.user_not_found()
    return c.json(publicUser(user), 200)
  },
)
