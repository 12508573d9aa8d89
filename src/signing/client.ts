/**
 * Reference client for UAP Edge signed requests (docs/signing.md). Self-contained on
 * WebCrypto (Node ≥ 18, Deno, Bun, browsers, Workers): partner apps may copy this file.
 */
import { canonicalString, SIGNATURE_HEADERS } from './canonical'

const enc = new TextEncoder()
const toHex = (buf: ArrayBuffer) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('')

export interface SignOptions {
  appId: string
  appSecret: string
  method: string
  /** Absolute URL of the UAP Edge endpoint, query included. */
  url: string
  body?: string
  /** Overrides for tests and worked examples. */
  timestamp?: number
  nonce?: string
}

/** Returns the four X-UAP-* headers for a request. */
export async function signRequest(o: SignOptions): Promise<Record<string, string>> {
  const url = new URL(o.url)
  const timestamp = String(o.timestamp ?? Math.floor(Date.now() / 1000))
  const nonce = o.nonce ?? toHex(crypto.getRandomValues(new Uint8Array(16)).buffer as ArrayBuffer)
  const bodySha256Hex = toHex(await crypto.subtle.digest('SHA-256', enc.encode(o.body ?? '')))
  const message = canonicalString({ appId: o.appId, method: o.method, path: url.pathname, query: url.search, timestamp, nonce, bodySha256Hex })
  const key = await crypto.subtle.importKey('raw', enc.encode(o.appSecret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const signature = toHex(await crypto.subtle.sign('HMAC', key, enc.encode(message)))
  return {
    [SIGNATURE_HEADERS.appId]: o.appId,
    [SIGNATURE_HEADERS.timestamp]: timestamp,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.signature]: signature,
  }
}

/** fetch() with the signature headers added; JSON bodies get Content-Type application/json. */
export async function signedFetch(o: Omit<SignOptions, 'body'> & { json?: unknown; fetch?: typeof fetch }): Promise<Response> {
  const body = o.json === undefined ? undefined : JSON.stringify(o.json)
  const headers = await signRequest({ ...o, body })
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  return (o.fetch ?? fetch)(o.url, { method: o.method, headers, body })
}
