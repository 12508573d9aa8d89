import { createRoute, z } from '@hono/zod-openapi'
import type { MiddlewareHandler } from 'hono'
import { OPEN, pick, bearerSecurity, jsonBody, mergeErrors } from '../lib/openapi'
import { router, type AppEnv } from '../context'
import { MobileField } from '../lib/mobile'
import { CommonErrors, errorResponses } from '../lib/errors'
import { enforceRateLimit } from '../ratelimit'
import { requireSignedApp } from '../signing/verify'
import { SIGNATURE_HEADERS } from '../signing/canonical'
import { signedErrors } from '../signing/routes'
import { CaptchaErrors } from '../captcha/errors'
import { AuthErrors } from './errors'
import { LOGIN_LIMITS, LOGIN_WINDOW_S } from './login-attempts'
import { authenticateAppSecret, login, logoutAll, logoutSession } from './service'
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

authRoutes.openAPIRegistry.registerComponent('securitySchemes', 'appBasic', {
  type: 'http',
  scheme: 'basic',
  description: 'HTTP Basic of `app_id:app_secret` (RFC 7617): the app authenticating its own server-side sign-in call (login with app_id).',
})

/** RFC 7617 `Basic base64(user-id ":" password)`; null when the header is not that. */
function basicCredentials(header: string): { id: string; secret: string } | null {
  const m = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header)
  if (!m) return null
  let raw: string
  try {
    raw = new TextDecoder().decode(Uint8Array.from(atob(m[1]), (ch) => ch.charCodeAt(0)))
  } catch {
    return null
  }
  const i = raw.indexOf(':')
  return i > 0 ? { id: raw.slice(0, i), secret: raw.slice(i + 1) } : null
}

/**
 * Login with app_id hands the app a token for the user from a password the app collected:
 * a resource-owner password grant in all but name (RFC 9700 §2.4 forbids that one for
 * OAuth). It is kept for legacy apps, but only for the app's own server: the call must be
 * authenticated as the app, either signed like every /api/v1/open/* call (requireSignedApp:
 * per-IP and per-app limits, timestamp, nonce) or with HTTP Basic app_id:app_secret. Sets
 * `c.var.app`; without either the handler refuses an app_id.
 */
const appAuthentication: MiddlewareHandler<AppEnv> = async (c, next) => {
  const authorization = c.req.header('Authorization')
  const signed = c.req.header(SIGNATURE_HEADERS.appId) !== undefined || c.req.header(SIGNATURE_HEADERS.signature) !== undefined
  if (authorization === undefined) return signed ? requireSignedApp(c, next) : next()
  if (signed) throw AuthErrors.invalid_app_credentials({ message: 'Authenticate the app one way: either the signature headers or HTTP Basic, not both' })
  const basic = basicCredentials(authorization)
  if (!basic) throw AuthErrors.invalid_app_credentials({ message: 'The Authorization header must be HTTP Basic with app_id:app_secret', headers: { 'WWW-Authenticate': 'Basic realm="uap-edge", charset="UTF-8"' } })
  // bounds the unauthenticated work (app lookup, secret decryption) per client, as for every app credential
  await enforceRateLimit(c, 'partner_ip', c.get('clientIp'))
  c.set('app', await authenticateAppSecret(c.env, basic.id, basic.secret, { requestId: c.get('requestId'), ip: c.get('clientIp') }))
  await next()
}

const LOGIN_DESCRIPTION = `Verifies the password and returns an ES256 access token (JWT, \`typ: at+jwt\`, claims iss, sub, aud, exp, iat, jti, sid) and an opaque refresh token. Unknown mobiles and wrong passwords get the same 401 \`invalid_credentials\`.

**Failed attempts** are counted exactly per mobile and per client IP (IPv6 per /64) over ${LOGIN_WINDOW_S / 60} minutes, before the password is checked, so parallel guesses cannot outrun the count. After ${LOGIN_LIMITS.mobile.captchaAfter} failures for the number (or ${LOGIN_LIMITS.ip.captchaAfter} from the network) the answer is 401 \`captcha_required\` and the password is not checked: fetch \`GET /api/v1/utils/captcha\`, show the picture and send \`captcha_id\` + \`captcha_code\` with the password. A sent captcha is always checked and spent, right or wrong (400 \`invalid_captcha\`). \`invalid_credentials\` carries \`details.captcha_required: true\` when the next attempt will need one. With captchas, sign-in is refused only past ${LOGIN_LIMITS.mobile.lockAt} failures per number or ${LOGIN_LIMITS.ip.lockAt} per network in the window (429 \`too_many_attempts\`, Retry-After). A right password clears the number's count.

**With \`app_id\`** the access token is issued for that application (aud = app_id), for users with an active mapping in it (403 \`user_not_mapped\`, said only after a right password). Because this hands the app a token from a password it collected, only the app's server may make the call: authenticate it as the app, either signed like the /api/v1/open/* calls (X-UAP-App-Id, X-UAP-Timestamp, X-UAP-Nonce, X-UAP-Signature; docs/signing.md) or with HTTP Basic \`app_id:app_secret\`. Without either: 401 \`app_auth_required\`; wrong credentials or another app's: 401 \`invalid_app_credentials\` (a signed call answers the signing errors, e.g. \`signature_invalid\`). Browser apps use OpenID Connect instead (authorization code + PKCE). Without \`app_id\` (first-party sign-in) no app authentication is involved.`

authRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/login',
    tags: ['Auth'],
    summary: 'Sign in with mobile and password',
    description: LOGIN_DESCRIPTION,
    ...OPEN,
    // none for first-party sign-in; the app's signature or HTTP Basic with app_id
    security: [{}, { appSignature: [] }, { appBasic: [] }] as Record<string, string[]>[],
    middleware: [appAuthentication] as const,
    request: {
      body: jsonBody(
        z.object({
          mobile: MobileField,
          password: z.string().min(1).max(256).openapi({ example: 'correct horse battery staple' }),
          app_id: z.string().min(1).max(64).optional().openapi({ example: 'app_3f9a1c2d4e5f6a7b', description: 'Issue the token for this app; the call must then be authenticated as this app (signature or HTTP Basic).' }),
          captcha_id: z.string().min(1).max(64).optional().openapi({ example: '6f1c0b7e-2a4d-4c1e-9f3a-7b5d2e8c1a90', description: 'After 401 captcha_required: from GET /api/v1/utils/captcha' }),
          captcha_code: z.string().max(32).optional().openapi({ example: 'K7WPA', description: 'What the user read in the picture (case-insensitive)' }),
        }),
      ),
    },
    responses: {
      200: { description: 'Signed in', content: { 'application/json': { schema: TokenResponse } } },
      ...mergeErrors(
        pick(400),
        errorResponses(CaptchaErrors, 'invalid_captcha'),
        errorResponses(AuthErrors, 'invalid_app', 'invalid_credentials', 'captcha_required', 'app_auth_required', 'invalid_app_credentials', 'account_disabled', 'user_not_mapped', 'too_many_attempts'),
        signedErrors,
      ),
    },
  }),
  async (c) => {
    const body = c.req.valid('json')
    const app = c.get('app')
    if (body.app_id && !app) throw AuthErrors.app_auth_required({ headers: { 'WWW-Authenticate': 'Basic realm="uap-edge", charset="UTF-8"' } })
    if (app && body.app_id !== app.appId) {
      if (!body.app_id) throw CommonErrors.invalid_request({ message: 'app_id: required when the call is authenticated as an app (the token is issued for it)' })
      throw AuthErrors.invalid_app_credentials()
    }
    const captcha = body.captcha_id !== undefined || body.captcha_code !== undefined ? { id: body.captcha_id ?? '', code: body.captcha_code ?? '' } : null
    const tokens = await login(c.env, { mobile: body.mobile, password: body.password, app_id: body.app_id, captcha }, { requestId: c.get('requestId'), ip: c.get('clientIp'), userAgent: c.req.header('User-Agent') })
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
      'Rotates the refresh token: the presented one stops working and a new one is returned with a fresh access token. Presenting a refresh token that was already rotated revokes its whole token family (theft detection), except within a 10-second grace window in which a concurrent or retried refresh receives the same successor. A refresh token from a login with `app_id` is refreshed by that app\'s server only: authenticate the call as the app, as for the login (signature or HTTP Basic `app_id:app_secret`); without it 401 `app_auth_required`. It stops working, and its family is revoked, once the app is disabled or the user\'s mapping in it is inactive.',
    ...OPEN,
    security: [{}, { appSignature: [] }, { appBasic: [] }] as Record<string, string[]>[],
    middleware: [appAuthentication] as const,
    request: { body: jsonBody(z.object({ refresh_token: z.string().min(1).max(512).openapi({ example: 'rt_V0hZ0lq8p3bX3Jm2n8kqQx0Xb5k2c9Yt7r1Zs4Aa6Ew' }) })) },
    responses: { 200: { description: 'New tokens', content: { 'application/json': { schema: TokenResponse } } }, ...mergeErrors(pick(400, 401), errorResponses(AuthErrors, 'app_auth_required', 'invalid_app_credentials'), signedErrors) },
  }),
  async (c) => {
    const { refresh_token } = c.req.valid('json')
    const { userId: _u, sessionId: _s, ...tokens } = await rotateRefreshToken(c.env, refresh_token, { requestId: c.get('requestId'), ip: c.get('clientIp'), authenticatedApp: c.get('app')?.appId ?? null })
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
