import type { Argon2idParams } from './params'

/**
 * Every stored password hash format verifyPassword accepts, parsed and bounded before any
 * work is done, so a stored or imported string can never make one sign-in allocate more than
 * the isolate holds or burn more CPU than the bounds below allow. What each costs: docs/passwords.md.
 */
export type HashFormat = 'argon2id' | 'scrypt' | 'bcrypt' | 'django_pbkdf2_sha256' | 'sha256'

export type ParsedHash =
  | { format: 'argon2id'; params: Argon2idParams; salt: Uint8Array; hash: Uint8Array }
  | { format: 'scrypt'; ln: number; r: number; p: number; salt: Uint8Array; hash: Uint8Array }
  | { format: 'bcrypt'; cost: number; encoded: string }
  | { format: 'django_pbkdf2_sha256'; iterations: number; salt: string; hash: Uint8Array }
  | { format: 'sha256'; hex: string }

export const HASH_LIMITS = {
  /** longer than any format below can be */
  maxLength: 512,
  argon2id: {
    /** KiB. 64 MiB (node-argon2's and Bitwarden's default) is the most a 128 MB isolate can spare. */
    maxM: 65_536,
    maxT: 10,
    maxP: 16,
    /** m·t in KiB-passes: 64 MiB × 4 passes, about 0.15 s of CPU */
    maxWork: 65_536 * 4,
  },
  scrypt: {
    /** N·r·p: node:crypto scrypt in production refuses more (workerd limit-enforcer.h, DEFAULT_MAX_SCRYPT_COST) */
    maxCost: 2 ** 20,
    /** 128·N·r bytes */
    maxMemory: 64 * 2 ** 20,
  },
  /** bcrypt's cost is log2 of its rounds: each step doubles the time */
  bcrypt: { minCost: 4, maxCost: 14 },
  /** Django 5.2 defaults to 1,000,000 and 6.0 to 1,200,000; above 100,000 this runs in JavaScript */
  djangoPbkdf2: { maxIterations: 1_200_000 },
  salt: { min: 8, max: 64 },
  tag: { min: 16, max: 64 },
} as const

const FORMATS_ACCEPTED = 'bcrypt ($2a$, $2b$, $2y$), Django pbkdf2_sha256$, sha256:<hex>, $argon2id$ or $scrypt$ PHC strings'

/** PHC strings use unpadded standard base64 (RFC 4648 §4); our own scrypt hashes used the URL alphabet (§5). */
function decodeB64(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/_-]+$/.test(s) || s.length % 4 === 1) return null
  const std = s.replace(/-/g, '+').replace(/_/g, '/')
  const bin = atob(std + '==='.slice((std.length + 3) % 4))
  const out = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i)
  return out
}

type Result = ParsedHash | { error: string }

function saltAndTag(saltB64: string, tagB64: string, name: string): { salt: Uint8Array; hash: Uint8Array } | { error: string } {
  const salt = decodeB64(saltB64)
  const hash = decodeB64(tagB64)
  if (!salt || !hash) return { error: `${name}: salt and hash must be base64` }
  const { salt: s, tag: t } = HASH_LIMITS
  if (salt.length < s.min || salt.length > s.max) return { error: `${name}: salt must be ${s.min}–${s.max} bytes` }
  if (hash.length < t.min || hash.length > t.max) return { error: `${name}: hash must be ${t.min}–${t.max} bytes` }
  return { salt, hash }
}

function argon2id(s: string): Result {
  const m = /^\$argon2id\$v=(\d+)\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,10})\$([^$]+)\$([^$]+)$/.exec(s)
  if (!m) return { error: 'argon2id: expected $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>' }
  if (m[1] !== '19') return { error: 'argon2id: only version 19 (0x13) is supported' }
  const params = { m: Number(m[2]), t: Number(m[3]), p: Number(m[4]) }
  const L = HASH_LIMITS.argon2id
  if (params.p < 1 || params.p > L.maxP) return { error: `argon2id: p must be 1–${L.maxP}` }
  if (params.t < 1 || params.t > L.maxT) return { error: `argon2id: t must be 1–${L.maxT}` }
  if (params.m < 8 * params.p) return { error: 'argon2id: m must be at least 8·p KiB' }
  if (params.m > L.maxM) return { error: `argon2id: m above ${L.maxM} KiB (64 MiB) does not fit the Worker's 128 MB memory` }
  if (params.m * params.t > L.maxWork) return { error: `argon2id: m·t above ${L.maxWork} KiB-passes costs too much CPU per sign-in` }
  const st = saltAndTag(m[5], m[6], 'argon2id')
  return 'error' in st ? st : { format: 'argon2id', params, ...st }
}

function scrypt(s: string): Result {
  const m = /^\$scrypt\$ln=(\d{1,3}),r=(\d{1,5}),p=(\d{1,5})\$([^$]+)\$([^$]+)$/.exec(s)
  if (!m) return { error: 'scrypt: expected $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>' }
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])]
  if (ln < 1 || ln > 20 || r < 1 || p < 1) return { error: 'scrypt: ln must be 1–20, r and p at least 1' }
  const L = HASH_LIMITS.scrypt
  if (2 ** ln * r * p > L.maxCost) return { error: 'scrypt: N·r·p above 2^20 is refused by the Workers runtime' }
  if (128 * 2 ** ln * r > L.maxMemory) return { error: "scrypt: 128·N·r above 64 MiB does not fit the Worker's 128 MB memory" }
  const st = saltAndTag(m[4], m[5], 'scrypt')
  return 'error' in st ? st : { format: 'scrypt', ln, r, p, ...st }
}

function bcrypt(s: string): Result {
  const m = /^\$2([abxy])\$(\d\d)\$[./A-Za-z0-9]{53}$/.exec(s)
  if (!m) return { error: 'bcrypt: expected $2b$<cost>$ and 53 characters of bcrypt base64' }
  if (m[1] === 'x') return { error: 'bcrypt: $2x$ (hashes of the pre-2011 crypt_blowfish bug) is not supported' }
  const cost = Number(m[2])
  const L = HASH_LIMITS.bcrypt
  if (cost < L.minCost || cost > L.maxCost) return { error: `bcrypt: cost must be ${L.minCost}–${L.maxCost} (each step doubles the CPU per sign-in)` }
  return { format: 'bcrypt', cost, encoded: s }
}

function djangoPbkdf2(s: string): Result {
  // django.contrib.auth.hashers.PBKDF2PasswordHasher: algorithm$iterations$salt$base64(dk), dk 32 bytes
  const m = /^pbkdf2_sha256\$(\d{1,10})\$([^$]{1,128})\$([A-Za-z0-9+/]{43}=)$/.exec(s)
  if (!m) return { error: 'django_pbkdf2_sha256: expected pbkdf2_sha256$<iterations>$<salt>$<base64 of 32 bytes>' }
  const iterations = Number(m[1])
  const max = HASH_LIMITS.djangoPbkdf2.maxIterations
  if (iterations < 1 || iterations > max) return { error: `django_pbkdf2_sha256: iterations must be 1–${max.toLocaleString('en')} (CPU per sign-in)` }
  return { format: 'django_pbkdf2_sha256', iterations, salt: m[2], hash: decodeB64(m[3].slice(0, -1))! }
}

function sha256(s: string): Result {
  const m = /^sha256:([0-9a-fA-F]{64})$/.exec(s)
  if (!m) return { error: 'sha256: expected sha256:<64 hex digits>' }
  return { format: 'sha256', hex: m[1].toLowerCase() }
}

/** Parses a stored hash of any accepted format, or says why it is refused. */
export function parseHash(stored: string): Result {
  if (typeof stored !== 'string' || stored.length === 0) return { error: 'empty password hash' }
  if (stored.length > HASH_LIMITS.maxLength) return { error: `password hash longer than ${HASH_LIMITS.maxLength} characters` }
  if (stored.startsWith('$argon2id$')) return argon2id(stored)
  // Django's Argon2PasswordHasher stores argon2-cffi's PHC string behind its own "argon2" name
  if (stored.startsWith('argon2$argon2id$')) return argon2id(stored.slice('argon2'.length))
  if (stored.startsWith('$scrypt$')) return scrypt(stored)
  if (stored.startsWith('$2')) return bcrypt(stored)
  if (stored.startsWith('pbkdf2_sha256$')) return djangoPbkdf2(stored)
  if (stored.startsWith('sha256:')) return sha256(stored)
  if (/^\$argon2(i|d)\$/.test(stored) || stored.startsWith('argon2$')) return { error: 'only the argon2id variant of Argon2 is supported' }
  return { error: `unsupported password hash format; accepted: ${FORMATS_ACCEPTED}` }
}

/**
 * For the bulk user import: may this hash be stored as it is? The reason is fit for a 400
 * answer (it never repeats the hash). Anything accepted here verifies at the user's next
 * sign-in and is then replaced by the current scheme.
 */
export function legacyHashFormat(hash: string): { format: HashFormat } | { error: string } {
  const parsed = parseHash(hash)
  return 'error' in parsed ? parsed : { format: parsed.format }
}
