/** Small crypto helpers on WebCrypto: randomness, encodings, hashing, constant-time compare, envelope encryption. */
import { ConfigError } from './errors'

const encoder = new TextEncoder()

export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(n))
}

export function base64url(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += String.fromCharCode(b)
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

export function fromBase64url(s: string): Uint8Array<ArrayBuffer> {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)
  const bin = atob(b64)
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

export function hex(bytes: ArrayBuffer | Uint8Array): string {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)
  let s = ''
  for (const b of u8) s += b.toString(16).padStart(2, '0')
  return s
}

/** A random, URL-safe token with `bytes` bytes of entropy and an optional prefix naming its kind. */
export function randomToken(bytes = 32, prefix = ''): string {
  return prefix + base64url(randomBytes(bytes))
}

export async function sha256Hex(input: string | Uint8Array<ArrayBuffer>): Promise<string> {
  const data = typeof input === 'string' ? encoder.encode(input) : input
  return hex(await crypto.subtle.digest('SHA-256', data))
}

export async function hmacSha256Hex(secret: string | Uint8Array<ArrayBuffer>, message: string): Promise<string> {
  const keyData = typeof secret === 'string' ? encoder.encode(secret) : secret
  const key = await crypto.subtle.importKey('raw', keyData, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  return hex(await crypto.subtle.sign('HMAC', key, encoder.encode(message)))
}

/** Constant-time string comparison (length leaks, content does not). */
export function timingSafeEqual(a: string, b: string): boolean {
  const ab = encoder.encode(a)
  const bb = encoder.encode(b)
  const subtle = crypto.subtle as SubtleCrypto & { timingSafeEqual?: (a: ArrayBufferView, b: ArrayBufferView) => boolean }
  if (ab.length !== bb.length) {
    // still spend comparable time
    if (subtle.timingSafeEqual) subtle.timingSafeEqual(ab, ab)
    return false
  }
  if (subtle.timingSafeEqual) return subtle.timingSafeEqual(ab, bb)
  let diff = 0
  for (let i = 0; i < ab.length; i++) diff |= ab[i] ^ bb[i]
  return diff === 0
}

/**
 * Envelope encryption under the master key: AES-256-GCM with a random 96-bit IV, written as
 * `v2.<kid>.<iv b64url>.<ciphertext b64url>`, where kid names the master key (so it can be
 * rotated: decrypt with the old, re-encrypt with the new) and the AES key is the master
 * key's `envelope` subkey (deriveSubkey). `v1.` envelopes, written under the master key
 * itself before subkeys existed, stay readable; the re-encryption sweep moves app secrets on.
 */
// CryptoKeys, not promises: a promise shared between requests would make one request wait on another.
const keyCache = new Map<string, CryptoKey>()

// The id is a public function of the key (it is written into every envelope), computed on every
// partner call's secret decryption; a string, not a promise, for the reason above.
const keyIds = new Map<string, string>()

export async function masterKeyId(masterKey: string): Promise<string> {
  const hit = keyIds.get(masterKey)
  if (hit !== undefined) return hit
  const id = (await sha256Hex(masterKey)).slice(0, 8)
  keyIds.set(masterKey, id)
  return id
}

function masterKeyBytes(masterKey: string): Uint8Array<ArrayBuffer> {
  const raw = masterKey.startsWith('dev-') ? masterKey.slice(4) : masterKey
  return fromBase64url(raw.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''))
}

/** Why a subkey is used; each purpose gets an independent key, so one use can never stand in for another. */
export type KeyPurpose = 'envelope' | 'sms-code' | 'webhook-secret' | 'captcha'

/**
 * A per-purpose subkey of the master key: HKDF-SHA256 (RFC 5869) with the master key as
 * input keying material, a fixed salt and `uap-edge/<purpose>` as info (§3.2: independent
 * keys from one secret by their info).
 */
async function subkeyBits(masterKey: string, purpose: KeyPurpose): Promise<ArrayBuffer> {
  const ikm = await crypto.subtle.importKey('raw', masterKeyBytes(masterKey), 'HKDF', false, ['deriveBits'])
  return crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: encoder.encode('uap-edge subkeys v1'), info: encoder.encode(`uap-edge/${purpose}`) }, ikm, 256)
}

async function aesKey(masterKey: string, version: 'v1' | 'v2'): Promise<CryptoKey> {
  const cacheKey = `${version}:${masterKey}`
  let key = keyCache.get(cacheKey)
  if (!key) {
    const raw = version === 'v1' ? masterKeyBytes(masterKey) : await subkeyBits(masterKey, 'envelope')
    key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt'])
    keyCache.set(cacheKey, key)
  }
  return key
}

/** HMAC-SHA256 under a purpose's subkey of the master key (hex). */
export async function subkeyHmacHex(masterKey: string, purpose: Exclude<KeyPurpose, 'envelope'>, message: string): Promise<string> {
  const cacheKey = `hmac:${purpose}:${masterKey}`
  let key = keyCache.get(cacheKey)
  if (!key) {
    key = await crypto.subtle.importKey('raw', await subkeyBits(masterKey, purpose), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    keyCache.set(cacheKey, key)
  }
  return hex(await crypto.subtle.sign('HMAC', key, encoder.encode(message)))
}

/** The envelope version and key id every new envelope under this master key starts with. */
export async function currentEnvelopePrefix(masterKey: string): Promise<string> {
  return `v2.${await masterKeyId(masterKey)}.`
}

export async function encryptSecret(masterKey: string, plaintext: string, aad = ''): Promise<string> {
  const key = await aesKey(masterKey, 'v2')
  const iv = randomBytes(12)
  const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: encoder.encode(aad) }, key, encoder.encode(plaintext))
  return `${await currentEnvelopePrefix(masterKey)}${base64url(iv)}.${base64url(new Uint8Array(ct))}`
}

export async function decryptSecret(masterKeys: string | string[], envelope: string, aad = ''): Promise<string> {
  const [v, kid, ivB64, ctB64] = envelope.split('.')
  if ((v !== 'v1' && v !== 'v2') || !kid || !ivB64 || !ctB64) throw new Error('malformed envelope')
  for (const mk of Array.isArray(masterKeys) ? masterKeys : [masterKeys]) {
    if ((await masterKeyId(mk)) !== kid) continue
    const key = await aesKey(mk, v)
    const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64url(ivB64), additionalData: encoder.encode(aad) }, key, fromBase64url(ctB64))
    return new TextDecoder().decode(pt)
  }
  // data written under a master key that is no longer configured: an operator error, not a bug
  throw new ConfigError(`data is encrypted under master key ${kid}, which is neither MASTER_KEY nor in MASTER_KEY_PREVIOUS; set the old key as MASTER_KEY_PREVIOUS`)
}

/**
 * Compact sealing of short values that travel in URLs, each under its own key: AES-256-GCM
 * with a key derived by HKDF-SHA256 (RFC 5869) from the master key, a per-message random
 * `salt` the caller keeps next to the sealed bytes (e.g. a ticket's own secret) and an
 * `info` naming the purpose. A key is used for one message only, so the IV can be fixed
 * (NIST SP 800-38D §8: the IV must not repeat *under a key*) and the master key itself
 * encrypts nothing here. No key id: opening tries each key given (MASTER_KEY first, then
 * MASTER_KEY_PREVIOUS), and the tag tells a wrong key from the right one. unseal answers
 * null for anything that does not open.
 */
const hkdfCache = new Map<string, CryptoKey>()
const ZERO_IV = new Uint8Array(12)

async function sealingKey(masterKey: string, salt: Uint8Array<ArrayBuffer>, info: string): Promise<CryptoKey> {
  let base = hkdfCache.get(masterKey)
  if (!base) {
    const raw = masterKey.startsWith('dev-') ? masterKey.slice(4) : masterKey
    base = await crypto.subtle.importKey('raw', fromBase64url(raw.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')), 'HKDF', false, ['deriveKey'])
    hkdfCache.set(masterKey, base)
  }
  return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt, info: encoder.encode(info) }, base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'])
}

export async function seal(masterKey: string, plaintext: string, salt: Uint8Array<ArrayBuffer>, info: string): Promise<Uint8Array<ArrayBuffer>> {
  const key = await sealingKey(masterKey, salt, info)
  return new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: ZERO_IV }, key, encoder.encode(plaintext)))
}

export async function unseal(masterKeys: string[], sealed: Uint8Array<ArrayBuffer>, salt: Uint8Array<ArrayBuffer>, info: string): Promise<string | null> {
  if (sealed.length < 16) return null
  for (const mk of masterKeys) {
    try {
      const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: ZERO_IV }, await sealingKey(mk, salt, info), sealed)
      return new TextDecoder().decode(pt)
    } catch {
      // not this key (or tampered): try the next
    }
  }
  return null
}
