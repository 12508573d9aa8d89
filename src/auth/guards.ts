import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { AuthErrors } from './errors'
import { verifyAccessToken, API_AUDIENCE } from './tokens'

function bearer(header: string | undefined): string {
  const m = header && /^Bearer\s+([A-Za-z0-9._~+/=-]+)$/i.exec(header)
  if (!m) throw AuthErrors.bearer_missing({ headers: { 'WWW-Authenticate': 'Bearer realm="uap-edge"' } })
  return m[1]
}

/** Any signed-in user of UAP Edge (token issued by us, session still live). */
export const requireUser: MiddlewareHandler<AppEnv> = async (c, next) => {
  const v = await verifyAccessToken(c.env, bearer(c.req.header('Authorization')))
  // Tokens from the OIDC token endpoint carry the scope the user consented to and are for
  // that client's use (userinfo, its own API; RFC 9068 §4). Accepting them here would hand
  // the client the whole profile and account actions no scope grants.
  if (v.scope !== undefined) throw AuthErrors.invalid_token({ message: 'This access token was issued to an OAuth client and is not valid for this API', headers: { 'WWW-Authenticate': 'Bearer realm="uap-edge", error="invalid_token"' } })
  c.set('auth', v)
  await next()
}

/** Admin endpoints: a token for UAP Edge's own API, held by an ADMIN user. */
export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  // the mapping API accepts an admin token too and may already have verified it
  const known = c.get('auth')
  if (known?.role === 'ADMIN' && known.audience.includes(API_AUDIENCE)) return next()
  await requireUser(c, async () => {})
  const auth = c.get('auth')!
  if (!auth.audience.includes(API_AUDIENCE)) throw AuthErrors.not_admin_audience()
  if (auth.role !== 'ADMIN') throw AuthErrors.not_admin()
  await next()
}
