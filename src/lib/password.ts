import { scryptAsync } from '@noble/hashes/scrypt.js'
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
 * At most `max` tasks at once, the rest wait in FIFO order. An isolate runs JavaScript on
 * one thread, so concurrent hashes add no throughput, but each holds its own 128·N·r bytes
 * (8 MiB) and an isolate has 128 MB: a burst of logins must queue, not allocate in parallel.
 */
export function createLimiter(max: number) {
  let active = 0
  const waiting: (() => void)[] = []
  return async function run<T>(task: () => Promise<T>): Promise<T> {
    if (active >= max) await new Promise<void>((resolve) => waiting.push(resolve))
    else active++
    try {
      return await task()
    } finally {
      const next = waiting.shift()
      if (next) next() // hand the slot over without releasing it
      else active--
    }
  }
}

const hashing = createLimiter(1)

async function derive(password: string, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  // asyncTick: yield every 50 ms so other requests on this isolate are not starved meanwhile
  return hashing(() => scryptAsync(password.normalize('NFKC'), salt, { N: 2 ** params.ln, r: params.r, p: params.p, dkLen: DK_LEN, asyncTick: 50 }))
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
const decoys = new Map<string, Promise<string>>()
export function decoyHash(params: ScryptParams): Promise<string> {
  const key = `${params.ln}.${params.r}.${params.p}`
  let d = decoys.get(key)
  if (!d) {
    d = hashPassword(base64url(randomBytes(16)), params)
    decoys.set(key, d)
  }
  return d
}
