/**
 * The UAP Edge request-signing scheme (docs/signing.md). Pure functions shared by the
 * verifier and the reference client, so both build byte-identical strings.
 *
 *   UAP-HMAC-SHA256\n<app_id>\n<METHOD>\n<path>\n<canonical query>\n<timestamp>\n<nonce>\n<hex sha256(body)>
 *
 * - path: as sent on the wire (percent-encoded), without the query
 * - canonical query: pairs sorted by name then value, each part RFC 3986-encoded, joined by `&`
 * - timestamp: Unix seconds; nonce: 16–64 chars of [A-Za-z0-9_-]
 */
export const SIGNING_ALGORITHM = 'UAP-HMAC-SHA256'

export const SIGNATURE_HEADERS = {
  appId: 'X-UAP-App-Id',
  timestamp: 'X-UAP-Timestamp',
  nonce: 'X-UAP-Nonce',
  signature: 'X-UAP-Signature',
} as const

const rfc3986 = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase())

export function canonicalQuery(search: string | URLSearchParams): string {
  const params = typeof search === 'string' ? new URLSearchParams(search) : search
  const pairs: (readonly [string, string])[] = []
  params.forEach((v, k) => pairs.push([rfc3986(k), rfc3986(v)] as const))
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
  return pairs.map(([k, v]) => `${k}=${v}`).join('&')
}

export function canonicalString(p: { appId: string; method: string; path: string; query: string; timestamp: string; nonce: string; bodySha256Hex: string }): string {
  return [SIGNING_ALGORITHM, p.appId, p.method.toUpperCase(), p.path, canonicalQuery(p.query), p.timestamp, p.nonce, p.bodySha256Hex].join('\n')
}
