import { describe, expect, it } from 'vitest'
import { hashPassword, needsRehash, paramsForProfile, PRODUCTION_PARAMS, TEST_PARAMS, verifyPassword } from '../src/lib/password'
import { env } from 'cloudflare:test'
import { api, createUser, login } from './support/api'

/** The stored PHC string: no API shows it (by design), so read from D1. */
const storedHash = async (id: string) => (await env.DB.prepare('SELECT password_hash FROM users WHERE id = ?').bind(id).first<{ password_hash: string }>())!.password_hash
const paramsOf = (phc: string) => /^\$scrypt\$(ln=\d+,r=\d+,p=\d+)\$/.exec(phc)![1]
const current = `ln=${TEST_PARAMS.ln},r=${TEST_PARAMS.r},p=${TEST_PARAMS.p}`

describe('password hashes (PHC strings)', () => {
  it('hash → PHC string with its parameters and a 16-byte salt; verify; needsRehash compares parameters', async () => {
    const phc = await hashPassword('correct horse', TEST_PARAMS)
    expect(phc).toMatch(/^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/)
    expect(await verifyPassword('correct horse', phc)).toBe(true)
    expect(await verifyPassword('correct horsf', phc)).toBe(false)
    expect(await hashPassword('correct horse', TEST_PARAMS)).not.toBe(phc) // salted
    expect(needsRehash(phc, TEST_PARAMS)).toBe(false)
    expect(needsRehash(phc, PRODUCTION_PARAMS)).toBe(true)
    expect(needsRehash('$2b$10$legacybcrypt', TEST_PARAMS)).toBe(true)
    expect(paramsForProfile('production')).toEqual(PRODUCTION_PARAMS)
  })

  it('refuses malformed or absurd PHC strings instead of running them', async () => {
    expect(await verifyPassword('x', 'plain-text')).toBe(false)
    expect(await verifyPassword('x', '$scrypt$ln=30,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAA')).toBe(false)
    expect(await verifyPassword('x', '$scrypt$ln=10,r=8,p=99$AAAAAAAAAAAAAAAAAAAAAA$AAAA')).toBe(false)
  })

  it('normalises Unicode (NFKC) so the same password typed differently verifies', async () => {
    const phc = await hashPassword('ｐａｓｓ\u00e9', TEST_PARAMS)
    expect(await verifyPassword('pass\u0065\u0301', phc)).toBe(true)
  })

  it('the production parameters are an OWASP scrypt configuration (N·r·p work ≥ 2^13·8·10)', () => {
    const { ln, r, p } = PRODUCTION_PARAMS
    expect(r).toBeGreaterThanOrEqual(8)
    expect(2 ** ln * r * p).toBeGreaterThanOrEqual(2 ** 13 * 8 * 10)
  })
})

describe('concurrent hashing', () => {
  it('concurrent password hashes still all succeed', async () => {
    const hashes = await Promise.all([1, 2, 3].map((i) => hashPassword(`pw-${i}`, TEST_PARAMS)))
    for (const [i, h] of hashes.entries()) expect(await verifyPassword(`pw-${i + 1}`, h)).toBe(true)
  })
})

describe('re-hash at login', () => {
  it('a hash made with other parameters is upgraded to the current ones at the next successful login', async () => {
    const u = await createUser()
    expect(paramsOf(await storedHash(u.id))).toBe(current)
    const old = await hashPassword(u.password, { ln: 9, r: 8, p: 2 })
    // a hash from before a parameter change: no API writes one with other parameters
    await env.DB.prepare('UPDATE users SET password_hash = ? WHERE id = ?').bind(old, u.id).run()

    // a failed login changes nothing
    const wrong = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: 'not-the-password' }, headers: { 'CF-Connecting-IP': '10.201.0.1' } })
    expect(wrong.status).toBe(401)
    expect(await storedHash(u.id)).toBe(old)

    await login(u.mobile, u.password)
    const upgraded = await storedHash(u.id)
    expect(upgraded).not.toBe(old)
    expect(paramsOf(upgraded)).toBe(current)
    expect(await verifyPassword(u.password, upgraded)).toBe(true)
    // and the upgraded hash keeps working
    await expect(login(u.mobile, u.password)).resolves.toHaveProperty('access_token')
    expect(await storedHash(u.id)).toBe(upgraded)
  })
})
