import type { Context } from 'hono'
import { z } from '@hono/zod-openapi'
import { router, type AppEnv } from '../context'
import { pageHeaders } from '../pages/security'
import { OAuthErrorBody, refusedAnswer, startOauthRateLimit } from './oauth'
import { countRefused, knownLimited } from '../ratelimit/refused'
import type { HitResult } from '../ratelimit/window'
import { errorPage } from './pages'
import { authorizeRoutes } from './authorize-routes'
import { tokenRoutes } from './token-routes'
import { userinfoRoutes } from './userinfo-routes'
import { revocationRoutes } from './revocation-routes'
import { introspectionRoutes } from './introspection-routes'
import { endSessionRoutes } from './end-session-routes'
import { publicCors } from '../lib/cors'

/** The OAuth 2.0 / OIDC endpoints, one file each. Mounted at /oauth2. */
export const oauthRoutes = router()
oauthRoutes.openAPIRegistry.registerComponent('securitySchemes', 'clientBasic', {
  type: 'http',
  scheme: 'basic',
  description: 'client_secret_basic: HTTP Basic of the form-urlencoded client_id and client_secret (RFC 6749 §2.3.1)',
})

/** The endpoints a browser is sent to: they answer with HTML pages, never the OAuth JSON body. */
const BROWSER_ENDPOINTS = ['/authorize', '/end_session']
export const isBrowserEndpoint = (path: string) => BROWSER_ENDPOINTS.some((p) => path === `/oauth2${p}` || path.startsWith(`/oauth2${p}/`))

// Browser-based public clients (SPAs) call these cross-origin; no cookies are involved.
for (const path of ['/token', '/userinfo', '/revoke']) {
  oauthRoutes.use(path, publicCors({ allowMethods: ['GET', 'POST', 'OPTIONS'], allowHeaders: ['Authorization', 'Content-Type'], maxAge: 600 }))
}
// The endpoints that answer with HTML (error pages, sign-out confirmation) get the hosted pages' headers.
for (const path of BROWSER_ENDPOINTS) oauthRoutes.use(path, pageHeaders)

/**
 * `oauth_ip`, per client IP (IPv6 per /64). Refused with 429 and Retry-After (RFC 6585 §4);
 * RFC 6749 has no rate-limit error code, so the OAuth body says `temporarily_unavailable`
 * (RFC 6749 §4.1.2.1: "temporary overloading"), and the browser endpoints answer a page.
 * CORS preflights are answered above, not counted.
 *
 * Endpoints that write (authorize, token, revocation, end_session) count every request,
 * decided before anything is written: the browser endpoints may write before they could
 * wait, so they are counted first; the token and revocation endpoints start the count
 * beside their first read, and client authentication waits for it before the client
 * lookup returns. Whatever such an endpoint answered, a refused request gets the 429.
 *
 * UserInfo and introspection only read and answer one verified token: they count only the
 * calls they refuse (an error, or an inactive token at introspection), as `partner_ip` does
 * for signed calls (src/ratelimit/refused.ts). An IP this isolate knows to be over its limit
 * is refused before any work. A valid token's read costs no limiter call.
 */
const COUNTS_REFUSED_ONLY = new Set(['/oauth2/userinfo', '/oauth2/introspect'])

async function oauthRateLimit(c: Context<AppEnv>, next: () => Promise<void>) {
  if (COUNTS_REFUSED_ONLY.has(c.req.path)) return countRefusedOnly(c, next)
  const limit = startOauthRateLimit(c)
  if (isBrowserEndpoint(c.req.path)) {
    const r = await limit
    if (!r.allowed) {
      c.header('Retry-After', String(r.retryAfterS))
      return errorPage(c, (t) => ({ title: t.pleaseWaitTitle, message: t.tooManyRequests(t.waitSeconds(r.retryAfterS)) }), 429)
    }
    return next()
  }
  await next()
  answerLimit(c, await limit)
}

async function countRefusedOnly(c: Context<AppEnv>, next: () => Promise<void>) {
  const ip = c.get('clientIp')
  const known = knownLimited(c.env, 'oauth_ip', ip)
  if (known) return limitedResponse(known)
  await next()
  if (c.res.status < 400 && !refusedAnswer(c)) return
  answerLimit(c, await countRefused(c.env, 'oauth_ip', ip))
}

/** The X-RateLimit headers of a counted request; the 429 in place of the endpoint's answer when the count was refused. */
function answerLimit(c: Context<AppEnv>, r: HitResult) {
  c.header('X-RateLimit-Limit', String(r.limit))
  c.header('X-RateLimit-Remaining', String(r.remaining))
  if (r.allowed) return
  const answered = c.res
  // The endpoint's answer and its headers are dropped (a 401's WWW-Authenticate would mislead); CORS ones are kept.
  c.res = undefined
  const res = limitedResponse(r)
  answered.headers.forEach((v, k) => {
    if (/^access-control-|^vary$/i.test(k)) res.headers.set(k, v)
  })
  c.res = res
}

function limitedResponse(r: HitResult) {
  return new Response(JSON.stringify({ error: 'temporarily_unavailable', error_description: `Rate limit exceeded (oauth_ip); retry after ${r.retryAfterS} s` }), {
    status: 429,
    headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', Pragma: 'no-cache', 'Retry-After': String(r.retryAfterS), 'X-RateLimit-Limit': String(r.limit), 'X-RateLimit-Remaining': '0' },
  })
}
oauthRoutes.use('*', oauthRateLimit)

oauthRoutes.route('/authorize', authorizeRoutes)
oauthRoutes.route('/token', tokenRoutes)
oauthRoutes.route('/userinfo', userinfoRoutes)
oauthRoutes.route('/revoke', revocationRoutes)
oauthRoutes.route('/introspect', introspectionRoutes)
oauthRoutes.route('/end_session', endSessionRoutes)

// Every operation above can answer the per-IP limit: its 429 is documented on each of them.
const retryAfter = { 'Retry-After': { description: 'Seconds until the window ends', schema: { type: 'integer' as const } } }
for (const def of oauthRoutes.openAPIRegistry.definitions) {
  if (def.type !== 'route') continue
  const browser = BROWSER_ENDPOINTS.includes(def.route.path.replace(/\/$/, ''))
  def.route.responses[429] ??= browser
    ? { description: 'Too many requests from this network (`oauth_ip`): an HTML page', headers: retryAfter, content: { 'text/html': { schema: z.string() } } }
    : { description: 'Too many requests from this network (`oauth_ip`): `temporarily_unavailable` (RFC 6585 §4; RFC 6749 §5.2 body)', headers: retryAfter, content: { 'application/json': { schema: OAuthErrorBody } } }
}
