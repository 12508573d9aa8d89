import type { Context, MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { verifyAccessToken, API_AUDIENCE, type VerifiedAccess } from './tokens'
import { AuthErrors } from './errors'

function bearer(header: string | undefined): string {
  const m = header && /^Bearer\s+([A-Za-z0-9._~+/=-]+)$/i.exec(header)
  if (!m) throw AuthErrors.bearer_missing({ headers: { 'WWW-Authenticate': 'Bearer realm="uap-edge"' } })
  return m[1]
}

const invalidToken = (message: string) => AuthErrors.invalid_token({ message, headers: { 'WWW-Authenticate': 'Bearer realm="uap-edge", error="invalid_token"' } })

/** A verified UAP Edge access token that is not an OAuth client's. */
export async function firstPartyToken(c: Context<AppEnv>): Promise<VerifiedAccess> {
  const v = await verifyAccessToken(c.env, bearer(c.req.header('Authorization')))
  // Tokens from the OIDC token endpoint carry the scope the user consented to and are for
  // that client's use (userinfo, its own API; RFC 9068 §4). Accepting them here would hand
  // the client the whole profile and account actions no scope grants.
  if (v.scope !== undefined) throw invalidToken('This access token was issued to an OAuth client and is not valid for this API')
  return v
}

/**
 * Any signed-in user of UAP Edge's own API (/api/v1/auth/*): a live session's token whose
 * audience is UAP Edge itself. A token issued for an app (login with app_id, aud = app_id)
 * is that app's to use, not a key to the user's account here (RFC 9068 §4, RFC 8707).
 */
export const requireUser: MiddlewareHandler<AppEnv> = async (c, next) => {
  const v = await firstPartyToken(c)
  if (!v.audience.includes(API_AUDIENCE)) throw invalidToken('This access token was issued for an application and is not valid for this API')
  c.set('auth', v)
  await next()
}

/** Admin endpoints: a token for UAP Edge's own API, held by an ADMIN user. */
export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  // the mapping API accepts an admin token too and may already have verified it
  const known = c.get('auth')
  if (known?.role === 'ADMIN' && known.audience.includes(API_AUDIENCE)) return next()
  const v = await firstPartyToken(c)
  if (!v.audience.includes(API_AUDIENCE)) throw AuthErrors.not_admin_audience()
  if (v.role !== 'ADMIN') throw AuthErrors.not_admin()
  c.set('auth', v)
  await next()
}
