import { scryptSync } from 'node:crypto'
import bcrypt from 'bcryptjs'
import { pbkdf2 } from '@noble/hashes/pbkdf2.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { base64url, randomBytes, sha256Hex, timingSafeEqual } from '../crypto'
import { argon2idRaw } from './argon2id'
import { parseHash, type ParsedHash } from './formats'
import type { Argon2idParams } from './params'

/**
 * Password hashing: Argon2id (OWASP's first choice), stored as a PHC string
 * `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>` so parameters travel with the
 * hash and can be raised later (see needsRehash). Hashes of earlier schemes and of imported
 * user bases (scrypt, bcrypt, Django PBKDF2, memberapi's sha256) keep verifying and are
 * replaced at the user's next successful sign-in. Why these choices: docs/passwords.md.
 */
export { PRODUCTION_PARAMS, TEST_PARAMS, paramsForProfile, type Argon2idParams } from './params'
export { legacyHashFormat, HASH_LIMITS, type HashFormat } from './formats'

export { PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH } from './policy'

const SALT_LEN = 16
const DK_LEN = 32
/** WebCrypto refuses PBKDF2 above this in production (workerd limit-enforcer.h, DEFAULT_MAX_PBKDF2_ITERATIONS). */
const WEBCRYPTO_PBKDF2_MAX = 100_000

const encoder = new TextEncoder()

/** Unpadded standard base64, as PHC strings carry salt and hash. */
function b64(bytes: Uint8Array): string {
  return base64url(bytes).replace(/-/g, '+').replace(/_/g, '/')
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return timingSafeEqual(base64url(a), base64url(b))
}

export async function hashPassword(password: string, params: Argon2idParams): Promise<string> {
  const salt = randomBytes(SALT_LEN)
  const tag = argon2idRaw(encoder.encode(password.normalize('NFKC')), salt, params, DK_LEN)
  return `$argon2id$v=19$m=${params.m},t=${params.t},p=${params.p}$${b64(salt)}$${b64(tag)}`
}

async function djangoPbkdf2(password: Uint8Array, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  if (iterations <= WEBCRYPTO_PBKDF2_MAX) {
    const key = await crypto.subtle.importKey('raw', password as Uint8Array<ArrayBuffer>, 'PBKDF2', false, ['deriveBits'])
    return new Uint8Array(await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: salt as Uint8Array<ArrayBuffer>, iterations }, key, DK_LEN * 8))
  }
  // Synchronous on purpose, like every hash here: noble's async variant time-slices with
  // Date.now(), which workerd freezes while code runs.
  return pbkdf2(sha256, password, salt, { c: iterations, dkLen: DK_LEN })
}

async function matches(password: string, h: ParsedHash): Promise<boolean> {
  const pw = encoder.encode(password)
  switch (h.format) {
    case 'argon2id':
      return equalBytes(argon2idRaw(pw, h.salt, h.params, h.hash.length), h.hash)
    case 'scrypt': {
      // native (BoringSSL) scrypt: the same key as @noble/hashes in about 60 % of its time
      const N = 2 ** h.ln
      return equalBytes(scryptSync(pw, h.salt, h.hash.length, { N, r: h.r, p: h.p, maxmem: 256 * N * h.r }), h.hash)
    }
    case 'bcrypt':
      return bcrypt.compareSync(password, h.encoded)
    case 'django_pbkdf2_sha256':
      return equalBytes(await djangoPbkdf2(pw, encoder.encode(h.salt), h.iterations), h.hash)
    case 'sha256':
      return timingSafeEqual(await sha256Hex(pw as Uint8Array<ArrayBuffer>), h.hex)
  }
}

/**
 * True when `password` matches `stored`, a hash in any accepted format (formats.ts).
 * Hashes made here are of the NFKC form of the password; systems we import from hashed the
 * password as typed. Both forms are tried (the same for the ASCII passwords most people
 * have), so a password typed the same way verifies whichever system made its hash.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored)
  if ('error' in parsed) return false
  const normalized = password.normalize('NFKC')
  if (await matches(normalized, parsed)) return true
  return normalized !== password && (await matches(password, parsed))
}

/**
 * True unless the stored hash is argon2id with today's parameters: every other format and
 * every older parameter set is re-hashed at the next successful sign-in.
 */
export function needsRehash(stored: string, current: Argon2idParams): boolean {
  const parsed = parseHash(stored)
  if ('error' in parsed || parsed.format !== 'argon2id') return true
  const { m, t, p } = parsed.params
  return m !== current.m || t !== current.t || p !== current.p || parsed.hash.length !== DK_LEN || parsed.salt.length < SALT_LEN
}

/**
 * A hash of a random password, verified against when the mobile is unknown so that
 * "no such user" costs the same time as "wrong password" (no user enumeration by timing).
 */
// Values, not promises: a promise shared between requests would make one request wait on another.
const decoys = new Map<string, string>()
export async function decoyHash(params: Argon2idParams): Promise<string> {
  const key = `${params.m}.${params.t}.${params.p}`
  let d = decoys.get(key)
  if (!d) {
    d = await hashPassword(base64url(randomBytes(16)), params)
    decoys.set(key, d)
  }
  return d
}
