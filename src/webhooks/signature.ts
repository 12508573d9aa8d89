import { hmacSha256Hex, randomBytes } from '../lib/crypto'

/*
 * Webhook signatures (docs/webhooks.md).
 *
 * Standard Webhooks (https://www.standardwebhooks.com, spec "Signature scheme", symmetric
 * v1): the secret is `whsec_` + base64 of the key bytes; the signed content is
 * `${webhook-id}.${webhook-timestamp}.${body}`; `webhook-signature` is a space-separated
 * list of `v1,<base64 HMAC-SHA256>`, one per secret in use (several during a rotation).
 *
 * X-UAP-Signature (source design): hex HMAC-SHA256 keyed with the secret string itself
 * over `${X-UAP-Timestamp}.${body}`, as the SMS webhook signs (src/sms/providers.ts); one
 * value per secret in use, separated by a space.
 */

export const SECRET_PREFIX = 'whsec_'
/** Key bytes of a new secret (the spec allows 24 to 64). */
const SECRET_BYTES = 32

const encoder = new TextEncoder()

function base64(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return btoa(s)
}

function fromBase64(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

export function newWebhookSecret(): string {
  return SECRET_PREFIX + base64(randomBytes(SECRET_BYTES))
}

/** Standard Webhooks "Signature scheme": v1 = base64(HMAC-SHA256(key, id.timestamp.body)). */
export async function standardSignature(secret: string, id: string, timestamp: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey('raw', fromBase64(secret.slice(SECRET_PREFIX.length)), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const mac = await crypto.subtle.sign('HMAC', key, encoder.encode(`${id}.${timestamp}.${body}`))
  return `v1,${base64(new Uint8Array(mac))}`
}

/** The source design's X-UAP-Signature: hex(HMAC-SHA256(secret string, timestamp.body)). */
export function uapSignature(secret: string, timestamp: number, body: string): Promise<string> {
  return hmacSha256Hex(secret, `${timestamp}.${body}`)
}

/**
 * Every signature header of one delivery. `secrets` newest first; a receiver accepts the
 * request when any listed signature matches a secret it holds.
 */
export async function signatureHeaders(secrets: string[], id: string, body: string, now = Date.now()): Promise<Record<string, string>> {
  const timestamp = Math.floor(now / 1000)
  const [standard, uap] = await Promise.all([
    Promise.all(secrets.map((s) => standardSignature(s, id, timestamp, body))),
    Promise.all(secrets.map((s) => uapSignature(s, timestamp, body))),
  ])
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': standard.join(' '),
    'X-UAP-Timestamp': String(timestamp),
    'X-UAP-Signature': uap.join(' '),
  }
}
