import type { Context, MiddlewareHandler } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import type { AppEnv } from '../context'
import { randomToken, timingSafeEqual } from '../lib/crypto'
import { getConfig } from '../env'

/**
 * CSRF protection for the hosted pages' forms: double-submit token. A random value sits in
 * an HttpOnly, Secure, SameSite=Lax cookie with the `__Host-` prefix (no Domain, Path=/,
 * so a sibling subdomain cannot plant one) and in a hidden `csrf_token` field; a POST must
 * carry both, equal (compared in constant time). Cross-site Origin / Sec-Fetch-Site are
 * refused as well.
 */
export const CSRF_COOKIE = '__Host-uap_csrf'
export const CSRF_FIELD = 'csrf_token'
export const CSRF_RE = /^[A-Za-z0-9_-]{43}$/

/** The browser's CSRF token, set as a cookie first if it has none. */
export function csrfToken(c: Context<AppEnv>): string {
  const existing = getCookie(c, CSRF_COOKIE)
  if (existing && CSRF_RE.test(existing)) return existing
  const token = randomToken(32)
  setCookie(c, CSRF_COOKIE, token, { httpOnly: true, secure: true, sameSite: 'Lax', path: '/' })
  return token
}

/**
 * The double-submit check for one submitted token: same-site request (Origin /
 * Sec-Fetch-Site), and the field equal to the cookie. Used by every form of the site:
 * the /page/* middleware below and the OIDC confirmation forms (src/oidc/pages.tsx).
 */
export function csrfAccepted(c: Context<AppEnv>, field: unknown): boolean {
  // "null" is what browsers send under some referrer policies and privacy settings: the token decides then.
  const origin = c.req.header('Origin')
  if (origin && origin !== 'null' && origin !== new URL(c.req.url).origin) return false
  const site = c.req.header('Sec-Fetch-Site')
  if (site && site !== 'same-origin' && site !== 'none') return false
  const cookie = getCookie(c, CSRF_COOKIE)
  if (!cookie || typeof field !== 'string' || !CSRF_RE.test(cookie)) return false
  return timingSafeEqual(cookie, field)
}

/**
 * The posted form, or null when the body is not the form its Content-Type claims (multipart
 * without its boundary, truncated parts, a charset other than UTF-8 ...): the parser throws
 * on those, and such a request deserves a 400, not a 500. Another media type is an empty form.
 */
export async function postedForm(c: Context<AppEnv>): Promise<Record<string, unknown> | null> {
  try {
    return await c.req.parseBody()
  } catch {
    return null
  }
}

/**
 * Content-Security-Policy of the pages: no script at all, styles only from /page/assets,
 * images from this site, data: URLs (captcha), the brand logo's origin and any origin a
 * page asked for with allowPageImage.
 */
export function contentSecurityPolicy(logoUrl?: string, imageOrigins: string[] = []): string {
  const img = new Set(["'self'", 'data:'])
  if (logoUrl?.startsWith('https://')) img.add(new URL(logoUrl).origin)
  for (const o of imageOrigins) img.add(o)
  return [`default-src 'none'`, `style-src 'self'`, `img-src ${[...img].join(' ')}`, `base-uri 'none'`, `frame-ancestors 'none'`].join('; ')
}

/** Lets this response's page show an https image from another origin (an app's icon on the consent page). */
export function allowPageImage(c: Context<AppEnv>, url: string) {
  const origin = new URL(url).origin
  c.set('pageImageOrigins', [...(c.get('pageImageOrigins') ?? []), origin])
}

/**
 * Security headers on every hosted page: all of /page/*, and the OIDC endpoints that
 * answer with HTML (/oauth2/authorize, /oauth2/end_session; src/oidc/routes.ts).
 */
export const pageHeaders: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next()
  applyPageHeaders(c, c.res.headers)
}

/** The headers of pageHeaders, also for a page answered where that middleware does not run (src/app.ts). */
export function applyPageHeaders(c: Context<AppEnv>, h: Headers) {
  h.set('Content-Security-Policy', contentSecurityPolicy(getConfig(c.env).brandLogoUrl, c.get('pageImageOrigins')))
  h.set('X-Frame-Options', 'DENY')
  h.set('X-Content-Type-Options', 'nosniff')
  // return_to may carry OIDC parameters: no Referer to other sites. (Not "no-referrer":
  // it would make the browser send `Origin: null` on our own form posts.)
  h.set('Referrer-Policy', 'same-origin')
  if (!h.has('Cache-Control')) h.set('Cache-Control', 'no-store')
}
