/**
 * Redirect URI rules shared by app registration (admin API) and the OIDC endpoints.
 *
 * - absolute URI (RFC 6749 §3.1.2), no fragment (§3.1.2), no userinfo (RFC 3986 §3.2.1,
 *   deprecated and a phishing aid: https://trusted@evil.example)
 * - https, except http on loopback hosts for native and local development clients
 *   (RFC 8252 §7.3; `localhost` is accepted too, for developer convenience)
 * - matched later by exact string comparison (RFC 6749 §3.1.2.2 and the OAuth 2.0
 *   Security BCP, RFC 9700 §4.1.3: no prefix or wildcard matching)
 */
export const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['localhost', '127.0.0.1', '[::1]'])

export const MAX_URI_LENGTH = 2000

/** Why `uri` cannot be registered, or null when it can. */
export function redirectUriProblem(uri: string): string | null {
  if (typeof uri !== 'string' || uri.length === 0) return 'must be a non-empty string'
  if (uri.length > MAX_URI_LENGTH) return `must be at most ${MAX_URI_LENGTH} characters`
  if (/[\s\u0000-\u001f\u007f]/.test(uri)) return 'must not contain whitespace or control characters'
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
  if (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) return null
  if (url.protocol === 'http:') return 'must use https (http is allowed only for localhost, 127.0.0.1 and [::1])'
  return 'must use https'
}

/** Exact, case-sensitive comparison against the app's registered redirect_uris. */
export function isRegisteredRedirectUri(app: { redirectUris: readonly string[] }, uri: string): boolean {
  return typeof uri === 'string' && app.redirectUris.some((r) => r === uri)
}

/** Same rule for RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2, §3). */
export function isRegisteredPostLogoutRedirectUri(app: { postLogoutRedirectUris: readonly string[] }, uri: string): boolean {
  return typeof uri === 'string' && app.postLogoutRedirectUris.some((r) => r === uri)
}
