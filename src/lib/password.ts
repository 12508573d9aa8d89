import { scrypt } from '@noble/hashes/scrypt.js'
import { base64url, fromBase64url, randomBytes, timingSafeEqual } from './crypto'

/**
 * Password hashing: scrypt (memory-hard), stored as a PHC string
 * `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` so parameters travel with the hash
 * and can be raised later (see needsRehash). Why scrypt and these numbers: docs/passwords.md.
 */
export interface ScryptParams {
  ln: number
  r: number
  p: number
}

/** OWASP Password Storage Cheat Sheet scrypt option "N=2^13 (8 MiB), r=8, p=10". */
export const PRODUCTION_PARAMS: ScryptParams = { ln: 13, r: 8, p: 10 }
/** Cheap parameters for the test suite only; refused in production by getConfig. */
export const TEST_PARAMS: ScryptParams = { ln: 10, r: 8, p: 1 }

const DK_LEN = 32

export function paramsForProfile(profile: 'production' | 'test'): ScryptParams {
  return profile === 'test' ? TEST_PARAMS : PRODUCTION_PARAMS
}

/**
 * Synchronous on purpose. noble's scryptAsync time-slices with Date.now(), which workerd
 * freezes while code runs, so it would never yield anyway; a hash runs to completion, one
 * at a time per isolate, holding 128·N·r bytes (8 MiB in production) only while it runs.
 * Coordinating hashes across requests with a shared promise queue is not an option:
 * workerd cancels a request that waits on a promise another request resolves.
 */
async function derive(password: string, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  return scrypt(password.normalize('NFKC'), salt, { N: 2 ** params.ln, r: params.r, p: params.p, dkLen: DK_LEN })
}

export async function hashPassword(password: string, params: ScryptParams): Promise<string> {
  const salt = randomBytes(16)
  const dk = await derive(password, salt, params)
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${base64url(salt)}$${base64url(dk)}`
}

interface ParsedHash {
  params: ScryptParams
  salt: Uint8Array
  hash: string
}

function parse(phc: string): ParsedHash | null {
  const m = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(phc)
  if (!m) return null
  const params = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) }
  if (params.ln < 1 || params.ln > 20 || params.r < 1 || params.r > 32 || params.p < 1 || params.p > 16) return null
  return { params, salt: fromBase64url(m[4]), hash: m[5] }
}

export async function verifyPassword(password: string, phc: string): Promise<boolean> {
  const parsed = parse(phc)
  if (!parsed) return false
  const dk = await derive(password, parsed.salt, parsed.params)
  return timingSafeEqual(base64url(dk), parsed.hash)
}

/** True when the stored hash was made with parameters other than today's: re-hash at the next successful login. */
export function needsRehash(phc: string, current: ScryptParams): boolean {
  const parsed = parse(phc)
  if (!parsed) return true
  return parsed.params.ln !== current.ln || parsed.params.r !== current.r || parsed.params.p !== current.p
}

/**
 * A hash of a random password, verified against when the mobile is unknown so that
 * "no such user" costs the same time as "wrong password" (no user enumeration by timing).
 */
// Values, not promises: a promise shared between requests would make one request wait on another.
const decoys = new Map<string, string>()
export async function decoyHash(params: ScryptParams): Promise<string> {
  const key = `${params.ln}.${params.r}.${params.p}`
  let d = decoys.get(key)
  if (!d) {
    d = await hashPassword(base64url(randomBytes(16)), params)
    decoys.set(key, d)
  }
  return d
}
