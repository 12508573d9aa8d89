import { formatCidr, ipAllowed, parseCidr, type CidrBlock } from '../lib/cidr'

/*
 * The three allowlists of an API client (docs/api-clients.md, "Allowlists"). Each is stored
 * in a canonical form, so what an admin reads back is what is compared, and each kind is
 * unrestricted while its list is empty.
 */

/** The canonical text of an IP allowlist entry (a CIDR block or a bare address); throws with the reason. */
export function canonicalCidr(entry: string): string {
  return formatCidr(parseCidr(entry))
}

/**
 * The serialized origin (RFC 6454 §6.2: scheme "://" host [":" port], host lower case,
 * default port dropped) of an origin allowlist entry; throws with the reason. Only http and
 * https: those are the origins browsers send.
 */
export function canonicalOrigin(entry: string): string {
  if (!/^https?:\/\/[^/?#@\s]+\/?$/i.test(entry)) throw new Error(`"${entry}" is not an origin: give scheme://host[:port], http or https, without a path`)
  let u: URL
  try {
    u = new URL(entry)
  } catch {
    throw new Error(`"${entry}" is not an origin: give scheme://host[:port], http or https, without a path`)
  }
  return u.origin
}

/**
 * The canonical form of a path prefix: absolute, without a trailing slash (except `/`
 * itself), without query, fragment, percent-escapes or dot segments; throws with the reason.
 * Compared against the decoded path the router matched (Hono's c.req.path).
 */
export function canonicalPathPrefix(entry: string): string {
  if (!entry.startsWith('/')) throw new Error(`"${entry}": a path prefix starts with /`)
  if (/[?#%\s\\]/.test(entry)) throw new Error(`"${entry}": a path prefix has no query, fragment, percent-escape, whitespace or backslash`)
  const trimmed = entry.length > 1 ? entry.replace(/\/+$/, '') : entry
  if (trimmed.includes('//')) throw new Error(`"${entry}": a path prefix has no empty segment (//)`)
  if (trimmed.split('/').some((seg) => seg === '.' || seg === '..')) throw new Error(`"${entry}": a path prefix has no . or .. segment`)
  return trimmed || '/'
}

/** Is the path under the prefix at a segment boundary? `/api/v1/admin/users` covers `/api/v1/admin/users/42`, not `/api/v1/admin/users-export`. */
export function pathUnder(path: string, prefix: string): boolean {
  if (prefix === '/') return true
  return path === prefix || path.startsWith(prefix + '/')
}

const blockCache = new Map<string, CidrBlock>()

/** Is the client IP in one of the (canonical, stored) blocks? Parsed blocks are kept per isolate. */
export function ipInAllowlist(ip: string, entries: readonly string[]): boolean {
  const blocks = entries.map((e) => {
    let b = blockCache.get(e)
    if (!b) {
      b = parseCidr(e)
      if (blockCache.size > 10_000) blockCache.clear()
      blockCache.set(e, b)
    }
    return b
  })
  return ipAllowed(ip, blocks)
}

/** Is the Origin header's value one of the (canonical, stored) origins? Anything that is not an http(s) origin (`null` included) is in none. */
export function originInAllowlist(origin: string, entries: readonly string[]): boolean {
  let canonical: string
  try {
    canonical = canonicalOrigin(origin)
  } catch {
    return false
  }
  return entries.includes(canonical)
}
