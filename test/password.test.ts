import { describe, expect, it } from 'vitest'
import bcrypt from 'bcryptjs'
import { argon2id } from '@noble/hashes/argon2.js'
import { scrypt } from '@noble/hashes/scrypt.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { decoyHash, HASH_LIMITS, hashPassword, legacyHashFormat, needsRehash, paramsForProfile, PRODUCTION_PARAMS, TEST_PARAMS, verifyPassword } from '../src/lib/password'
import { argon2idRaw, sharedInstanceBytes } from '../src/lib/password/argon2id'
import { env } from 'cloudflare:test'
import { adminToken, api, createUser, login } from './support/api'

/** The stored PHC string: no API shows it (by design), so read from D1. */
const storedHash = async (id: string) => (await env.DB.prepare('SELECT password_hash FROM users WHERE id = ?').bind(id).first<{ password_hash: string }>())!.password_hash
const paramsOf = (phc: string) => /^\$argon2id\$v=19\$(m=\d+,t=\d+,p=\d+)\$/.exec(phc)?.[1]
const current = `m=${TEST_PARAMS.m},t=${TEST_PARAMS.t},p=${TEST_PARAMS.p}`
const utf8 = (s: string) => new TextEncoder().encode(s)
const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/=+$/, '')
const b64url = (bytes: Uint8Array) => b64(bytes).replace(/\+/g, '-').replace(/\//g, '_')
const fromB64 = (s: string) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0))
const salt16 = () => crypto.getRandomValues(new Uint8Array(16))

/** The Argon2 reference implementation's own test vector (phc-winner-argon2 src/test.c, README). */
const REFERENCE_ARGON2ID = '$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc'

describe('password hashes (argon2id PHC strings)', () => {
  it('hash → PHC string with its parameters and a 16-byte salt; verify; needsRehash compares parameters', async () => {
    const phc = await hashPassword('correct horse', TEST_PARAMS)
    expect(phc).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
    expect(await verifyPassword('correct horse', phc)).toBe(true)
    expect(await verifyPassword('correct horsf', phc)).toBe(false)
    expect(await hashPassword('correct horse', TEST_PARAMS)).not.toBe(phc) // salted
    expect(needsRehash(phc, TEST_PARAMS)).toBe(false)
    expect(needsRehash(phc, PRODUCTION_PARAMS)).toBe(true)
    expect(needsRehash('$2b$10$legacybcrypt', TEST_PARAMS)).toBe(true)
    expect(paramsForProfile('production')).toEqual(PRODUCTION_PARAMS)
    expect(paramsForProfile('test')).toEqual(TEST_PARAMS)
    expect(legacyHashFormat(phc)).toEqual({ format: 'argon2id' })
  })

  it('the stored tag is what an independent Argon2id (@noble/hashes) computes for that salt', async () => {
    const phc = await hashPassword('correct horse', TEST_PARAMS)
    const [, , , , saltB64, tagB64] = phc.split('$')
    const expected = argon2id(utf8('correct horse'), fromB64(saltB64), { ...TEST_PARAMS, dkLen: 32 })
    expect(tagB64).toBe(b64(expected))
  })

  it('matches @noble/hashes argon2id byte for byte: non-ASCII and empty passwords, several lanes, passes and tag lengths', () => {
    const cases: [string, { m: number; t: number; p: number }, number][] = [
      ['password', { m: 256, t: 2, p: 1 }, 32],
      ['pässwörd', { m: 256, t: 2, p: 1 }, 32], // 2-byte UTF-8
      ['密码密码', { m: 512, t: 1, p: 2 }, 32], // 3-byte UTF-8: 12 bytes, 4 UTF-16 units
      ['🔑 key', { m: 64, t: 3, p: 4 }, 16], // 4-byte UTF-8
      ['', { m: 32, t: 1, p: 4 }, 64], // the smallest memory for 4 lanes
    ]
    for (const [pw, params, dkLen] of cases) {
      const salt = salt16()
      expect(b64(argon2idRaw(utf8(pw), salt, params, dkLen)), pw).toBe(b64(argon2id(utf8(pw), salt, { ...params, dkLen })))
    }
  })

  it('verifies the Argon2 reference implementation\'s published vector', async () => {
    expect(await verifyPassword('password', REFERENCE_ARGON2ID)).toBe(true)
    expect(await verifyPassword('passwore', REFERENCE_ARGON2ID)).toBe(false)
  })

  it('refuses malformed or absurd hash strings instead of running them', async () => {
    expect(await verifyPassword('x', 'plain-text')).toBe(false)
    expect(await verifyPassword('x', '')).toBe(false)
    expect(await verifyPassword('x', '$scrypt$ln=30,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(false)
    expect(await verifyPassword('x', '$scrypt$ln=10,r=8,p=99999$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(false)
    expect(await verifyPassword('x', '$argon2id$v=19$m=4194304,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(false)
    expect(await verifyPassword('x', '$argon2id$v=19$m=1024,t=1,p=1$AA$AAAAAAAAAAAAAAAAAAAAAA')).toBe(false) // 1-byte salt
  })

  it('normalises Unicode (NFKC) so the same password typed differently verifies', async () => {
    const phc = await hashPassword('ｐａｓｓ\u00e9', TEST_PARAMS)
    expect(await verifyPassword('pass\u0065\u0301', phc)).toBe(true)
  })

  it('the production parameters are one of OWASP\'s Argon2id configurations', () => {
    const owasp = [
      { m: 47_104, t: 1, p: 1 },
      { m: 19_456, t: 2, p: 1 },
      { m: 12_288, t: 3, p: 1 },
      { m: 9_216, t: 4, p: 1 },
      { m: 7_168, t: 5, p: 1 },
    ]
    expect(owasp).toContainEqual(PRODUCTION_PARAMS)
  })

  it('the decoy for unknown mobiles is a hash of the current scheme and parameters, so it costs what a real verify costs', async () => {
    const decoy = await decoyHash(PRODUCTION_PARAMS)
    expect(paramsOf(decoy)).toBe(`m=${PRODUCTION_PARAMS.m},t=${PRODUCTION_PARAMS.t},p=${PRODUCTION_PARAMS.p}`)
    expect(needsRehash(decoy, PRODUCTION_PARAMS)).toBe(false)
    expect(await decoyHash(PRODUCTION_PARAMS)).toBe(decoy) // made once per isolate
    expect(paramsOf(await decoyHash(TEST_PARAMS))).toBe(current)
  })
})

describe('memory of the WebAssembly instance', () => {
  const pw = utf8('correct horse')
  const MiB = 2 ** 20
  // Mixed sizes, lanes and password lengths: without the up-front reservation these push the
  // instance well past the largest of them (the allocator does not reuse freed blocks for
  // larger ones).
  const mix = (maxM: number) => {
    const ms = [8, 1024, maxM, 4096, Math.floor(maxM / 2), 12_288, maxM - 1000, 2048].filter((m) => m <= maxM)
    for (let i = 0; i < 24; i++) {
      const p = [1, 2, 4][i % 3]
      argon2idRaw(utf8('x'.repeat(1 + ((i * 37) % 200))), salt16(), { m: Math.max(ms[i % ms.length], 8 * p), t: 1, p }, 32)
    }
  }

  it('hashes up to ours share one instance that never grows past its reservation, whatever the mix', () => {
    // synchronous from here to the last read: nothing else runs in this isolate meanwhile
    argon2idRaw(pw, salt16(), PRODUCTION_PARAMS, 32)
    const settled = sharedInstanceBytes()
    if (settled < 64 * MiB) {
      // the isolate has not yet verified a larger imported hash (test order is not guaranteed)
      expect(settled).toBeGreaterThan(PRODUCTION_PARAMS.m * 1024)
      expect(settled).toBeLessThanOrEqual(PRODUCTION_PARAMS.m * 1024 + 2 * MiB)
    }
    mix(PRODUCTION_PARAMS.m)
    expect(sharedInstanceBytes()).toBe(settled)
  })

  it('an imported hash with more memory than ours moves to one 65 MiB instance, which then holds every size', async () => {
    expect(await verifyPassword('password', REFERENCE_ARGON2ID)).toBe(true) // m = 64 MiB
    const grown = sharedInstanceBytes()
    expect(grown).toBeGreaterThan(HASH_LIMITS.argon2id.maxM * 1024)
    expect(grown).toBeLessThanOrEqual(HASH_LIMITS.argon2id.maxM * 1024 + 2 * MiB)
    mix(HASH_LIMITS.argon2id.maxM)
    expect(await verifyPassword('password', REFERENCE_ARGON2ID)).toBe(true)
    argon2idRaw(pw, salt16(), PRODUCTION_PARAMS, 32)
    expect(sharedInstanceBytes()).toBe(grown)
  })
})

describe('concurrent hashing', () => {
  it('concurrent password hashes still all succeed', async () => {
    const hashes = await Promise.all([1, 2, 3].map((i) => hashPassword(`pw-${i}`, TEST_PARAMS)))
    for (const [i, h] of hashes.entries()) expect(await verifyPassword(`pw-${i + 1}`, h)).toBe(true)
  })
})

let ipCounter = 0
/**
 * Stores `stored` as a user's hash straight in D1, then signs in through the API: a wrong
 * password fails and changes nothing, the right one succeeds and leaves a hash of the current
 * scheme, and that one keeps working.
 */
async function signInUpgrades(password: string, stored: string, wrong = 'not-the-password') {
  const u = await createUser()
  // a hash of another scheme or parameters: no API writes one
  await env.DB.prepare('UPDATE users SET password_hash = ? WHERE id = ?').bind(stored, u.id).run()
  ipCounter++
  const headers = { 'CF-Connecting-IP': `10.202.${ipCounter}.1` }
  const bad = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: wrong }, headers })
  expect(bad.status).toBe(401)
  expect(await storedHash(u.id)).toBe(stored)

  await expect(login(u.mobile, password)).resolves.toHaveProperty('access_token')
  const upgraded = await storedHash(u.id)
  expect(upgraded).not.toBe(stored)
  expect(paramsOf(upgraded)).toBe(current)
  expect(needsRehash(upgraded, TEST_PARAMS)).toBe(false)
  expect(await verifyPassword(password, upgraded)).toBe(true)
  await expect(login(u.mobile, password)).resolves.toHaveProperty('access_token')
  expect(await storedHash(u.id)).toBe(upgraded)
}

describe('re-hash at login', () => {
  it('an argon2id hash made with other parameters is upgraded to the current ones at the next successful login', async () => {
    const u = await createUser()
    expect(paramsOf(await storedHash(u.id))).toBe(current)
    await signInUpgrades(u.password, await hashPassword(u.password, { m: 512, t: 2, p: 1 }))
  })

  it('our scrypt hashes of before (URL-safe base64, NFKC password) verify and are upgraded to argon2id', async () => {
    const password = 'ｓｃｒｙｐｔ-pw' // hashed in its NFKC form, as the scrypt code did
    const salt = salt16()
    const dk = scrypt(password.normalize('NFKC'), salt, { N: 2 ** 10, r: 8, p: 1, dkLen: 32 })
    const old = `$scrypt$ln=10,r=8,p=1$${b64url(salt)}$${b64url(dk)}`
    expect(legacyHashFormat(old)).toEqual({ format: 'scrypt' })
    await signInUpgrades(password, old)
  })
})

describe('legacy hashes from imported user bases: verified at the next sign-in, then upgraded', () => {
  it('bcrypt $2b$ (bcryptjs)', async () => {
    const h = bcrypt.hashSync('bcrypt-password', 10)
    expect(h).toMatch(/^\$2b\$10\$/)
    expect(legacyHashFormat(h)).toEqual({ format: 'bcrypt' })
    await signInUpgrades('bcrypt-password', h)
  })

  it('bcrypt $2y$ (the PHP manual\'s password_verify example) and $2a$ (jBCrypt\'s test vector)', async () => {
    await signInUpgrades('rasmuslerdorf', '$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a')
    await signInUpgrades('abc', '$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i', 'abd')
  })

  it('Django pbkdf2_sha256 at 10,000 iterations: the published vector of Django\'s tests (WebCrypto)', async () => {
    const h = 'pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY='
    expect(legacyHashFormat(h)).toEqual({ format: 'django_pbkdf2_sha256' })
    await signInUpgrades('lètmein', h, 'lètmeinz')
  })

  it('Django pbkdf2_sha256 above the 100,000 iterations WebCrypto allows in production (JavaScript PBKDF2)', async () => {
    // made with WebCrypto here (local workerd has no iteration limit); verified with @noble/hashes.
    // Just past the limit: JavaScript in the test pool runs several times slower than in wrangler.
    const salt = 'Hq5nLr8sTbW2xZ4mKp9vYc'
    const key = await crypto.subtle.importKey('raw', utf8('django-password'), 'PBKDF2', false, ['deriveBits'])
    const dk = new Uint8Array(await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: utf8(salt), iterations: 100_001 }, key, 256))
    await signInUpgrades('django-password', `pbkdf2_sha256$100001$${salt}$${btoa(String.fromCharCode(...dk))}`)
    // Django 4.2's published vector at its default 600,000 iterations is accepted for import
    expect(legacyHashFormat('pbkdf2_sha256$600000$seasalt$OAXyhAQ/4ZDA9V5RMExt3C1OwQdUpLZ99vm1McFlLRA=')).toEqual({ format: 'django_pbkdf2_sha256' })
  })

  it('sha256:<hex> (memberapi), in either case of hex', async () => {
    const hex = bytesToHex(sha256(utf8('memberapi-password')))
    await signInUpgrades('memberapi-password', `sha256:${hex}`)
    expect(await verifyPassword('memberapi-password', `sha256:${hex.toUpperCase()}`)).toBe(true)
    expect(await verifyPassword('memberapi-passwore', `sha256:${hex}`)).toBe(false)
  })

  it('argon2id PHC from another system (@noble/hashes, two lanes), and Django\'s argon2$argon2id$ form', async () => {
    const salt = salt16()
    const tag = argon2id(utf8('argon2-password'), salt, { m: 2048, t: 2, p: 2, dkLen: 32 })
    const phc = `$argon2id$v=19$m=2048,t=2,p=2$${b64(salt)}$${b64(tag)}`
    await signInUpgrades('argon2-password', phc)
    expect(legacyHashFormat(`argon2${phc}`)).toEqual({ format: 'argon2id' })
    await signInUpgrades('argon2-password', `argon2${phc}`)
  })

  it('scrypt in the standard PHC form (unpadded base64 with + and /, raw password)', async () => {
    const password = 'scrypt-\u0065\u0301' // not NFKC: a foreign system hashed it as typed
    let salt = salt16()
    let dk = scrypt(password, salt, { N: 2 ** 12, r: 8, p: 2, dkLen: 32 })
    while (!/[+/]/.test(b64(salt) + b64(dk))) { // make sure the standard alphabet is exercised
      salt = salt16()
      dk = scrypt(password, salt, { N: 2 ** 12, r: 8, p: 2, dkLen: 32 })
    }
    await signInUpgrades(password, `$scrypt$ln=12,r=8,p=2$${b64(salt)}$${b64(dk)}`)
  })
})

describe('the hash never leaves the server', () => {
  it('neither /me nor the admin user answers carry the stored hash', async () => {
    const u = await createUser({ name: 'Hash Hidden' })
    const stored = await storedHash(u.id)
    expect(stored).toMatch(/^\$argon2id\$/)
    const t = await login(u.mobile, u.password)
    const token = await adminToken()
    const answers = [
      await api('/api/v1/auth/me', { token: t.access_token }),
      await api(`/api/v1/admin/users/${u.id}`, { token }),
      await api(`/api/v1/admin/users?q=${encodeURIComponent(u.mobile)}`, { token }),
    ]
    for (const r of answers) {
      expect(r.status).toBe(200)
      const text = JSON.stringify(r.body)
      expect(text).toContain(u.id)
      expect(text).not.toContain('$argon2id$')
      expect(text).not.toContain(stored.split('$').at(-1))
      expect(text).not.toMatch(/password/i)
    }
  })
})

describe('legacyHashFormat: what the bulk user import may store', () => {
  const S = 'AAAAAAAAAAAAAAAAAAAAAA'
  it('names the format of every accepted hash', () => {
    expect(legacyHashFormat('$2b$12$' + 'a'.repeat(53))).toEqual({ format: 'bcrypt' })
    expect(legacyHashFormat('$2y$04$' + 'a'.repeat(53))).toEqual({ format: 'bcrypt' })
    expect(legacyHashFormat('pbkdf2_sha256$1000000$seasalt$r1uLUxoxpP2Ued/qxvmje7UH9PUJBkRrvf9gGPL7Cps=')).toEqual({ format: 'django_pbkdf2_sha256' })
    expect(legacyHashFormat('sha256:' + 'ab'.repeat(32))).toEqual({ format: 'sha256' })
    expect(legacyHashFormat(REFERENCE_ARGON2ID)).toEqual({ format: 'argon2id' })
    expect(legacyHashFormat(`$scrypt$ln=16,r=8,p=1$${S}$${S}`)).toEqual({ format: 'scrypt' })
  })

  it('refuses malformed, unsupported and too costly hashes with a reason, never repeating the hash', () => {
    const refused: [string, RegExp][] = [
      ['', /empty/],
      ['correct horse battery staple', /unsupported password hash format; accepted: bcrypt/],
      ['5f4dcc3b5aa765d61d8327deb882cf99', /unsupported/], // bare md5
      ['md5$seasalt$abc', /unsupported/],
      ['pbkdf2_sha1$10000$seasalt$abc=', /unsupported/],
      ['$pbkdf2-sha256$29000$N2ZPQWhJSDh0$abc', /unsupported/], // passlib's form
      ['x'.repeat(HASH_LIMITS.maxLength + 1), /longer than 512/],
      ['$2x$10$' + 'a'.repeat(53), /\$2x\$/],
      ['$2b$10$tooshort', /bcrypt: expected/],
      ['$2b$15$' + 'a'.repeat(53), /bcrypt: cost must be 4–14/],
      ['$2b$03$' + 'a'.repeat(53), /bcrypt: cost must be/],
      ['pbkdf2_sha256$2000000$seasalt$r1uLUxoxpP2Ued/qxvmje7UH9PUJBkRrvf9gGPL7Cps=', /iterations must be 1–1,200,000/],
      ['pbkdf2_sha256$10000$seasalt$not-base64', /django_pbkdf2_sha256: expected/],
      ['pbkdf2_sha256$10000$$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=', /django_pbkdf2_sha256: expected/], // no salt
      ['sha256:abc', /sha256: expected sha256:<64 hex digits>/],
      ['sha256:' + 'g'.repeat(64), /sha256: expected/],
      ['$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$AAAA', /only the argon2id variant/],
      ['$argon2d$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$AAAA', /only the argon2id variant/],
      ['$argon2id$v=16$m=65536,t=2,p=1$c29tZXNhbHQ$' + S, /only version 19/],
      ['$argon2id$m=65536,t=2,p=1$c29tZXNhbHQ$' + S, /argon2id: expected/], // no version
      ['$argon2id$v=19$m=131072,t=1,p=1$' + S + '$' + S, /argon2id: m above 65536 KiB/],
      ['$argon2id$v=19$m=65536,t=5,p=1$' + S + '$' + S, /argon2id: m·t above/],
      ['$argon2id$v=19$m=1024,t=11,p=1$' + S + '$' + S, /argon2id: t must be/],
      ['$argon2id$v=19$m=16,t=1,p=4$' + S + '$' + S, /at least 8·p/],
      ['$argon2id$v=19$m=1024,t=1,p=1$AAAA$' + S, /salt must be 8–64 bytes/],
      ['$argon2id$v=19$m=1024,t=1,p=1$' + S + '$AAAA', /hash must be 16–64 bytes/],
      ['$argon2id$v=19$m=1024,t=1,p=1$' + S + '$' + S + ',data=AA', /base64/],
      ['$scrypt$ln=17,r=8,p=1$' + S + '$' + S, /scrypt: 128·N·r above 64 MiB/],
      ['$scrypt$ln=14,r=8,p=16$' + S + '$' + S, /scrypt: N·r·p above 2\^20/],
      ['$scrypt$ln=0,r=8,p=1$' + S + '$' + S, /scrypt: ln must be/],
      ['$scrypt$N=16384,r=8,p=1$' + S + '$' + S, /scrypt: expected/],
    ]
    for (const [hash, reason] of refused) {
      const r = legacyHashFormat(hash)
      expect(r, hash).toHaveProperty('error')
      const { error } = r as { error: string }
      expect(error, hash).toMatch(reason)
      if (hash.length > 12) expect(error).not.toContain(hash)
    }
  })
})
