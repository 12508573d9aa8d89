import { textProblem } from './text'

/**
 * Redirect URI rules shared by app registration (admin API) and the OIDC endpoints.
 *
 * - absolute URI (RFC 6749 §3.1.2), no fragment (§3.1.2), no userinfo (RFC 3986 §3.2.1,
 *   deprecated and a phishing aid: https://trusted@evil.example)
 * - https, except http on a loopback IP literal (127.0.0.0/8, [::1]) for native and local
 *   development clients (RFC 8252 §7.3); not `localhost`, whose name may resolve elsewhere
 *   (RFC 8252 §8.3)
 * - matched later by exact string comparison (RFC 6749 §3.1.2.2 and the OAuth 2.0
 *   Security BCP, RFC 9700 §4.1.3: no prefix or wildcard matching), except the port of a
 *   loopback IP literal in an authorization request (RFC 8252 §7.3)
 */
/** A loopback IP literal as WHATWG URL normalises hosts: 127.0.0.0/8 or [::1] (RFC 8252 §7.3, §8.3). */
export function isLoopbackIpLiteral(hostname: string): boolean {
  return hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
}

/**
 * A redirect URI on the user's own device: a loopback IP literal, or `localhost` (no longer
 * registrable, but apps registered before keep it). Any local program can listen there, so
 * such a redirect does not prove which app asked (RFC 8252 §8.6).
 */
export function isLoopbackRedirect(uri: string): boolean {
  try {
    const { hostname } = new URL(uri)
    return isLoopbackIpLiteral(hostname) || hostname === 'localhost'
  } catch {
    return false
  }
}

export const MAX_URI_LENGTH = 2000

/** Why `uri` cannot be registered, or null when it can. */
export function redirectUriProblem(uri: string): string | null {
  if (typeof uri !== 'string' || uri.length === 0) return 'must be a non-empty string'
  if (uri.length > MAX_URI_LENGTH) return `must be at most ${MAX_URI_LENGTH} characters`
  if (/[\s\u0000-\u001f\u007f]/.test(uri)) return 'must not contain whitespace or control characters'
  if (textProblem(uri)) return textProblem(uri)
  if (uri.includes('#')) return 'must not contain a fragment (#)'
  if (uri.includes('*')) return 'must not contain wildcards'
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(uri)
  if (!scheme) return 'must be an absolute URL (https://host/path)'
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    return 'must be an absolute URL (https://host/path)'
  }
  // userinfo: `new URL` drops an empty one (https://@host), so look at the raw authority too
  const authority = uri.slice(scheme[0].length).split(/[/?]/)[0]
  if (authority.includes('@') || url.username || url.password) return 'must not contain userinfo (user:password@)'
  if (!url.hostname) return 'must have a host'
  if (url.protocol === 'https:') return null
  if (url.protocol === 'http:' && isLoopbackIpLiteral(url.hostname)) return null
  if (url.protocol === 'http:' && url.hostname === 'localhost') return 'must use https; for a local redirect use the loopback IP literal http://127.0.0.1 or http://[::1] instead of localhost (RFC 8252 §8.3)'
  if (url.protocol === 'http:') return 'must use https (http is allowed only for the loopback IP literals 127.0.0.1 and [::1])'
  return 'must use https'
}

/**
 * Exact, case-sensitive comparison against the app's registered redirect_uris. With
 * `anyLoopbackPort` (OAuth authorization requests), a registered http loopback IP literal
 * also matches the same URI on any port: a native app listens on whatever port the OS
 * gives it, and the authorization server MUST allow any port there (RFC 8252 §7.3). Only
 * the port may differ, and the presented URI must already be in normal form, so nothing
 * else can slip past the exact match.
 */
export function isRegisteredRedirectUri(app: { redirectUris: readonly string[] }, uri: string, opts: { anyLoopbackPort?: boolean } = {}): boolean {
  if (typeof uri !== 'string') return false
  if (app.redirectUris.some((r) => r === uri)) return true
  if (!opts.anyLoopbackPort) return false
  let presented: URL
  try {
    presented = new URL(uri)
  } catch {
    return false
  }
  if (presented.href !== uri || presented.protocol !== 'http:' || !isLoopbackIpLiteral(presented.hostname) || presented.username || presented.password || presented.hash) return false
  return app.redirectUris.some((r) => {
    try {
      const registered = new URL(r)
      if (registered.protocol !== 'http:' || !isLoopbackIpLiteral(registered.hostname)) return false
      registered.port = presented.port
      return registered.href === uri
    } catch {
      return false
    }
  })
}

/** Same rule for RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2, §3). */
export function isRegisteredPostLogoutRedirectUri(app: { postLogoutRedirectUris: readonly string[] }, uri: string): boolean {
  return typeof uri === 'string' && app.postLogoutRedirectUris.some((r) => r === uri)
}
