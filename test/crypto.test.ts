import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { uniqueMobile } from './support/api'
import { createApp } from './support/apps'
import { lastCode } from './support/sms'
import { base64url, decryptSecret, encryptSecret, fromBase64url, masterKeyId, subkeyHmacHex, hmacSha256Hex } from '../src/lib/crypto'
import { findApplication, getAppSecret, reencryptAppSecrets } from '../src/apps/service'
import { getDb } from '../src/db'
import { applications } from '../src/apps/schema'
import { eq } from 'drizzle-orm'

const MASTER = env.MASTER_KEY!

/** An envelope as written before subkeys: AES-GCM under the master key itself (`v1.`). */
async function legacyEnvelope(masterKey: string, plaintext: string, aad: string) {
  const raw = fromBase64url((masterKey.startsWith('dev-') ? masterKey.slice(4) : masterKey).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''))
  const key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt'])
  const iv = crypto.getRandomValues(new Uint8Array(12))
  const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(aad) }, key, new TextEncoder().encode(plaintext))
  return `v1.${await masterKeyId(masterKey)}.${base64url(iv)}.${base64url(new Uint8Array(ct))}`
}

describe('per-purpose subkeys of MASTER_KEY (HKDF, RFC 5869)', () => {
  it('new envelopes are v2 under the envelope subkey: the master key itself cannot open them', async () => {
    const env2 = await encryptSecret(MASTER, 'secret value', 'aad-1')
    expect(env2.startsWith(`v2.${await masterKeyId(MASTER)}.`)).toBe(true)
    expect(await decryptSecret(MASTER, env2, 'aad-1')).toBe('secret value')
    // forged as v1 (the raw master key): fails
    await expect(decryptSecret(MASTER, env2.replace(/^v2\./, 'v1.'), 'aad-1')).rejects.toThrow()
  })

  it('subkeys differ per purpose and from a plain HMAC under the master key', async () => {
    const sms = await subkeyHmacHex(MASTER, 'sms-code', 'm')
    const other = await subkeyHmacHex(MASTER, 'webhook-secret', 'm')
    expect(sms).toMatch(/^[0-9a-f]{64}$/)
    expect(sms).not.toBe(other)
    expect(sms).not.toBe(await hmacSha256Hex(MASTER, 'm'))
  })

  it('v1 envelopes written before stay readable, and the sweep moves app secrets to v2', async () => {
    const a = await createApp({ app_name: 'Legacy envelope' })
    // an envelope of the earlier format: nothing writes one any more
    const v1 = await legacyEnvelope(MASTER, a.app_secret, `app-secret:${a.app_id}`)
    await getDb(env.DB).update(applications).set({ appSecretEnc: v1 }).where(eq(applications.appId, a.app_id))
    expect(await getAppSecret(env, (await findApplication(env, a.app_id))!)).toBe(a.app_secret)
    let moved = 0
    for (let i = 0; i < 20 && !(await findApplication(env, a.app_id))!.appSecretEnc.startsWith('v2.'); i++) moved += await reencryptAppSecrets(env)
    expect(moved).toBeGreaterThanOrEqual(1)
    const row = (await findApplication(env, a.app_id))!
    expect(row.appSecretEnc.startsWith(`v2.${await masterKeyId(MASTER)}.`)).toBe(true)
    expect(await getAppSecret(env, row)).toBe(a.app_secret)
  })
})

describe('SMS code hashes use the sms-code subkey', () => {
  it('a new code is stored as the subkey HMAC; a code stored before subkeys (no v) still verifies', async () => {
    const { sendSmsCode, verifySmsCode } = await import('../src/sms/service')
    const m = uniqueMobile()
    await sendSmsCode(env, { mobile: m, purpose: 'register' })
    const stored = (await env.KV.get<{ hash: string; v?: number }>(`sms:register:${m}`, 'json'))!
    expect(stored.v).toBe(2)
    const code = await lastCode(m)
    expect(stored.hash).toBe(await subkeyHmacHex(MASTER, 'sms-code', `sms-code:v1:register:${m}:${code}`))
    expect(stored.hash).not.toBe(await hmacSha256Hex(MASTER, `sms-code:v1:register:${m}:${code}`))

    const legacy = uniqueMobile()
    await env.KV.put(`sms:register:${legacy}`, JSON.stringify({ id: crypto.randomUUID(), hash: await hmacSha256Hex(MASTER, `sms-code:v1:register:${legacy}:123456`), exp: Date.now() + 60_000 }), { expirationTtl: 300 })
    await expect(verifySmsCode(env, { mobile: legacy, purpose: 'register', code: '123456' })).resolves.toBeUndefined()
  })
})
