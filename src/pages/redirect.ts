import type { Context } from 'hono'
import type { AppEnv } from '../context'
import type { Env } from '../env'
import type { User } from '../users/schema'

/** Where a signed-in user lands when no (acceptable) return_to was given. */
export const DEFAULT_AFTER_LOGIN = '/page/home'

/**
 * `return_to` is honoured only when it stays on this site or is a registered redirect URI:
 * - a relative path starting with exactly one `/` (`//host` is another site; a backslash is
 *   read as a slash by browsers, so `/\host` is refused too), or an absolute URL on ISSUER's origin;
 * - or an exact match of `redirect_uris` of an ACTIVE application.
 * Anything else (other hosts, `javascript:`, `data:`, control characters) → null. No open redirect.
 */
export async function safeReturnTo(env: Env, raw: string | null | undefined): Promise<string | null> {
  if (!raw || raw.length > 2048) return null
  if (/[\u0000-\u0020\u007f\\]/.test(raw)) return null
  if (raw.startsWith('/')) return raw.startsWith('//') ? null : raw
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return null
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null
  if (url.origin === new URL(env.ISSUER).origin) return raw
  const hit = await env.DB.prepare(
    "SELECT 1 AS ok FROM applications, json_each(applications.redirect_uris) AS r WHERE r.value = ? AND applications.status = 'ACTIVE' LIMIT 1",
  )
    .bind(raw)
    .first()
  return hit ? raw : null
}

/**
 * The one place that decides where /page/login (and sign-up) send the browser after a
 * successful sign-in, so a new destination rule changes only this function: the validated
 * `return_to` (e.g. `/oauth2/authorize?...` from the OIDC authorize endpoint, or
 * `/page/sso/simple?...` for a SIMPLE_API app, which issues the ticket), else
 * DEFAULT_AFTER_LOGIN (the portal's "My apps").
 */
export async function postLoginRedirect(c: Context<AppEnv>, _user: User, form: { return_to?: string | null }): Promise<string> {
  return (await safeReturnTo(c.env, form.return_to)) ?? DEFAULT_AFTER_LOGIN
}
