import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { applyD1Migrations, createExecutionContext, createScheduledController, env, waitOnExecutionContext } from 'cloudflare:test'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose'
import worker from '../src/index'
import { invalidateKeyCache, MAX_SIGNED_LIFETIME_MS, PUBLISH_AHEAD_MS, rotateKeys, verificationKeys, verifyJwt } from '../src/keys/service'
import { ADMIN, api, type ApiInit } from './support/api'
import { signRequest } from '../src/signing/client'
import { findApplication, getAppSecret, reencryptAppSecrets } from '../src/apps/service'
import { masterKeyId } from '../src/lib/crypto'
import { getConfig } from '../src/env'
import { findProvider, providerClientSecret, reencryptProviderSecrets } from '../src/federation/providers'
import { cronTasks } from '../src/wiring'

/**
 * Key rotation changes what every token in the database verifies against, so these tests
 * run on their own database (ISOLATED_DB, see vitest.config.mts) through the Worker's
 * own handlers, and move the clock with a fake Date instead of waiting.
 * Only this file may use ISOLATED_DB.
 */
const E = { ...env, DB: env.ISOLATED_DB } as typeof env

/** A request to the Worker on ISOLATED_DB (and any other variables given). */
const call = (path: string, init: ApiInit = {}) => api(path, { ...init, env: { DB: E.DB, ...init.env } })

async function adminLogin() {
  const r = await call('/api/v1/auth/login', { method: 'POST', json: ADMIN })
  expect(r.status).toBe(200)
  return r.body as { access_token: string; refresh_token: string }
}

const kidOf = (jwt: string) => decodeProtectedHeader(jwt).kid!
const servedJwks = async () => (await call('/.well-known/jwks.json')).body as JSONWebKeySet
const servedKids = async () => (await servedJwks()).keys.map((k) => k.kid)
const verifyServed = async (jwt: string) => jwtVerify(jwt, createLocalJWKSet(await servedJwks()), { issuer: 'http://localhost', audience: 'uap-edge' })

async function runCron() {
  const ctx = createExecutionContext()
  await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: '*/5 * * * *' }), E, ctx)
  await waitOnExecutionContext(ctx)
}

const keyRow = (kid: string) =>
  E.DB.prepare('SELECT kid, activate_at, retired_at, expires_at FROM signing_keys WHERE kid = ?').bind(kid).first<{ kid: string; activate_at: number; retired_at: number | null; expires_at: number | null }>()

beforeAll(async () => {
  await applyD1Migrations(E.DB, env.TEST_MIGRATIONS)
})

afterEach(() => {
  vi.useRealTimers()
})

describe('signing-key rotation', () => {
  it('publishes before signing, switches at activation, keeps the old key until its tokens expire, then the cron removes it', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() })
    const t0 = await adminLogin()
    const k0 = kidOf(t0.access_token)
    expect(await servedKids()).toContain(k0)

    // 1. A forced rotation publishes a successor that does not sign yet.
    const { created } = await rotateKeys(E, { force: true })
    expect(created).toHaveLength(1)
    const k1 = created[0].kid
    expect(k1).not.toBe(k0)
    expect(created[0].activateAt).toBe(Date.now() + PUBLISH_AHEAD_MS)
    expect(await servedKids()).toEqual(expect.arrayContaining([k0, k1]))
    const beforeActivation = await adminLogin()
    expect(kidOf(beforeActivation.access_token)).toBe(k0)
    // a second forced rotation while one is pending does not pile up keys
    expect((await rotateKeys(E, { force: true })).created).toHaveLength(0)

    // 2. Once the successor's activation time has passed, new tokens carry its kid ...
    vi.setSystemTime(created[0].activateAt + 1000)
    await runCron()
    const afterActivation = await adminLogin()
    expect(kidOf(afterActivation.access_token)).toBe(k1)
    // ... the old key is retired but still published, and tokens it signed still verify.
    const old = await keyRow(k0)
    expect(old!.retired_at).toBe(created[0].activateAt)
    expect(old!.expires_at).toBe(created[0].activateAt + MAX_SIGNED_LIFETIME_MS)
    expect(await servedKids()).toEqual(expect.arrayContaining([k0, k1]))
    await expect(verifyServed(t0.access_token)).resolves.toHaveProperty('payload.sub')
    await expect(verifyServed(afterActivation.access_token)).resolves.toHaveProperty('payload.sub')

    // 3. Just before retired_at + MAX_SIGNED_LIFETIME_MS the old key is still there.
    vi.setSystemTime(old!.expires_at! - 1000)
    await runCron()
    expect(await keyRow(k0)).not.toBeNull()
    expect(await servedKids()).toContain(k0)

    // 4. After it, the cron deletes it and the JWKS no longer lists it; the new key stays.
    vi.setSystemTime(old!.expires_at! + 1000)
    await runCron()
    expect(await keyRow(k0)).toBeNull()
    expect(await servedKids()).toEqual([k1])
    const later = await adminLogin()
    expect(kidOf(later.access_token)).toBe(k1)
    await expect(verifyServed(later.access_token)).resolves.toHaveProperty('payload.sub')
  })

  it('a token signed before a rotation still verifies with jose against the served JWKS afterwards', async () => {
    const t = await adminLogin()
    await rotateKeys(E, { force: true })
    const jwks = await servedJwks()
    const { payload, protectedHeader } = await jwtVerify(t.access_token, createLocalJWKSet(jwks), { issuer: 'http://localhost', audience: 'uap-edge' })
    expect(protectedHeader.kid).toBe(kidOf(t.access_token))
    expect(payload.sid).toBeTruthy()
    // and it is still accepted by the Worker itself
    expect((await call('/api/v1/auth/me', { token: t.access_token })).status).toBe(200)
  })

  it('the cron rotates a key that has signed for 30 days without being asked', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() })
    const before = await servedKids()
    vi.setSystemTime(Date.now() + 31 * 86400_000)
    await runCron()
    const after = await servedKids()
    expect(after.length).toBeGreaterThan(0)
    expect(after.some((k) => !before.includes(k))).toBe(true)
  })

  it('POST /api/v1/admin/keys/rotate publishes a key and is audited with actor, request id and IP', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 400 * 86400_000 })
    await runCron() // let everything older expire and a current signer exist, so nothing is pending
    vi.setSystemTime(Date.now() + 2 * PUBLISH_AHEAD_MS)
    await runCron()
    const admin = await adminLogin()
    const requestId = `rotate-${crypto.randomUUID()}`
    const r = await call('/api/v1/admin/keys/rotate', { method: 'POST', token: admin.access_token, headers: { 'CF-Connecting-IP': '198.51.100.20', 'X-Request-Id': requestId } })
    expect(r.status).toBe(200)
    expect(r.body.created).toHaveLength(1)
    expect(await servedKids()).toContain(r.body.created[0].kid)
    const log = await call('/api/v1/admin/audit?action=admin.keys.rotate', { token: admin.access_token })
    const audit = log.body.items.find((i: { request_id: string }) => i.request_id === requestId)
    expect(audit).toMatchObject({ action: 'admin.keys.rotate', actor_type: 'admin', target_type: 'signing_key', target_id: r.body.created[0].kid, ip: '198.51.100.20' })
    expect(audit!.actor_id).toBeTruthy()
  })
  it('with ACCESS_TOKEN_TTL above an hour, a retired key stays published until the access tokens it signed expire', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 800 * 86400_000 })
    await runCron()
    vi.setSystemTime(Date.now() + 2 * PUBLISH_AHEAD_MS)
    await runCron()
    const long = { ...E, ACCESS_TOKEN_TTL: '7200' } as typeof env
    const t = (await call('/api/v1/auth/login', { method: 'POST', json: ADMIN, env: { ACCESS_TOKEN_TTL: '7200' } })).body as { access_token: string; expires_in: number }
    expect(t.expires_in).toBe(7200)

    const { created } = await rotateKeys(long, { force: true })
    vi.setSystemTime(created[0].activateAt + 1000)
    await rotateKeys(long)
    // 90 minutes after the switch: past the default 1 h, before the token's own exp
    vi.setSystemTime(created[0].activateAt + 90 * 60_000)
    await rotateKeys(long)
    await expect(verifyServed(t.access_token)).resolves.toHaveProperty('payload.sub')
  })
  it('an admin rotation and its audit row are one write: a failing write leaves no unaudited key behind', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 1200 * 86400_000 })
    await runCron()
    vi.setSystemTime(Date.now() + 2 * PUBLISH_AHEAD_MS)
    await runCron()
    const admin = await adminLogin()
    const kids = async () => (await E.DB.prepare('SELECT kid FROM signing_keys').all<{ kid: string }>()).results.map((r) => r.kid)
    const before = await kids()
    // D1 whose second batch of the request fails (as an audit insert may)
    let batches = 0
    const db = E.DB
    const flaky = new Proxy(db, {
      get(target, prop) {
        if (prop === 'batch') return async (stmts: D1PreparedStatement[]) => {
          if (++batches >= 2) throw new Error('D1 unavailable')
          return target.batch(stmts)
        }
        const v = Reflect.get(target, prop)
        return typeof v === 'function' ? v.bind(target) : v
      },
    })
    const res = await call('/api/v1/admin/keys/rotate', { method: 'POST', token: admin.access_token, env: { DB: flaky } })
    const added = (await kids()).filter((k) => !before.includes(k))
    if (res.status === 200) {
      expect(added).toHaveLength(1)
      const audit = await call(`/api/v1/admin/audit?action=admin.keys.rotate&target_id=${added[0]}`, { token: admin.access_token })
      expect(audit.body.items[0]).not.toBeUndefined()
    } else {
      expect(added).toEqual([])
    }
  })

  it('verifying a token imports no key once the key list is loaded (the key set is kept with it)', async () => {
    const t = await adminLogin()
    await verifyJwt(E, t.access_token, { audience: 'uap-edge' })
    const imports = vi.spyOn(crypto.subtle, 'importKey')
    try {
      for (let i = 0; i < 3; i++) await expect(verifyJwt(E, t.access_token, { audience: 'uap-edge' })).resolves.toHaveProperty('payload.sub')
      expect(imports).not.toHaveBeenCalled()
    } finally {
      imports.mockRestore()
    }
  })

  it('the kept key set drops a key the moment it expires, within the isolate cache lifetime', async () => {
    // after every key the earlier tests made (they move the clock too)
    const latest = (await E.DB.prepare('SELECT MAX(activate_at) AS t FROM signing_keys').first<{ t: number | null }>())?.t ?? 0
    vi.useFakeTimers({ toFake: ['Date'], now: Math.max(Date.now(), latest) + 400 * 86400_000 })
    await runCron() // let everything older expire and a current signer exist, so nothing is pending
    vi.setSystemTime(Date.now() + 2 * PUBLISH_AHEAD_MS)
    await runCron()
    const { created } = await rotateKeys(E, { force: true })
    vi.setSystemTime(created[0].activateAt + 1000)
    await runCron() // the older key is retired
    const k0 = (await E.DB.prepare('SELECT kid FROM signing_keys WHERE kid != ? AND retired_at IS NOT NULL ORDER BY activate_at DESC').bind(created[0].kid).first<{ kid: string }>())!.kid
    await E.DB.prepare('UPDATE signing_keys SET expires_at = ? WHERE kid = ?').bind(Date.now() + 30_000, k0).run()
    invalidateKeyCache(E)
    const header = (kid: string) => ({ alg: 'ES256', kid })
    await expect((await verificationKeys(E))(header(k0))).resolves.toBeTruthy()
    vi.setSystemTime(Date.now() + 31_000) // the key list itself is only 31 s old
    await expect((await verificationKeys(E))(header(k0))).rejects.toMatchObject({ code: 'ERR_JWKS_NO_MATCHING_KEY' })
    await expect((await verificationKeys(E))(header(created[0].kid))).resolves.toBeTruthy()
  })

})

describe('master key rotation (MASTER_KEY_PREVIOUS)', () => {
  const newKey = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))
  const rotated = { ...E, MASTER_KEY: newKey, MASTER_KEY_PREVIOUS: E.MASTER_KEY } as typeof env
  const newOnly = { ...E, MASTER_KEY: newKey } as typeof env

  async function ping(e: typeof env, app: { appId: string; secret: string }) {
    const headers = await signRequest({ appId: app.appId, appSecret: app.secret, method: 'GET', url: 'http://localhost/api/v1/open/ping' })
    return api('/api/v1/open/ping', { headers, env: e })
  }

  it('secrets under the previous key keep working; the re-encryption sweep moves them to the new key, audited', async () => {
    const created = await call('/api/v1/admin/apps', { method: 'POST', token: (await adminLogin()).access_token, json: { app_name: 'Rotation', protocol_type: 'SIMPLE_API' } })
    const app = { appId: created.body.app_id as string, secret: created.body.app_secret as string }
    expect((await ping(E, app)).status).toBe(200)

    // the operator sets a new MASTER_KEY and keeps the old one as MASTER_KEY_PREVIOUS
    expect((await ping(rotated, app)).status).toBe(200)
    // forgetting the previous key is a configuration error that says what to do, not a 500
    const logged: string[] = []
    const spy = vi.spyOn(console, 'error').mockImplementation((l: string) => void logged.push(l))
    let lost: Awaited<ReturnType<typeof ping>>
    try {
      lost = await ping(newOnly, app)
    } finally {
      spy.mockRestore()
    }
    expect(lost.status).toBe(503)
    expect(lost.body.error.code).toBe('misconfigured')
    expect(logged.map((l) => JSON.parse(l)).find((l) => l.request_id === lost.body.error.request_id)?.error).toContain('MASTER_KEY_PREVIOUS')

    const n = await reencryptAppSecrets(rotated, Date.now())
    expect(n).toBeGreaterThanOrEqual(1)
    const row = await findApplication(E, app.appId)
    expect(row!.appSecretEnc.startsWith(`v2.${await masterKeyId(newKey)}.`)).toBe(true)
    expect(await getAppSecret(newOnly, row!)).toBe(app.secret)
    expect((await ping(newOnly, app)).status).toBe(200)
    expect(await reencryptAppSecrets(rotated, Date.now())).toBe(0)
    const audit = await E.DB.prepare("SELECT details FROM audit_logs WHERE action = 'system.app_secrets_reencrypted' ORDER BY id DESC LIMIT 1").first<{ details: string }>()
    expect(JSON.parse(audit!.details).count).toBe(n)
  })

  it('identity provider client secrets move to the new key too (cron task reencrypt-idp-secrets), audited; until then the previous key opens them', async () => {
    const secret = 'idp-client-secret-under-the-old-key'
    const created = await call('/api/v1/admin/identity-providers', { method: 'POST', token: (await adminLogin()).access_token, json: { id: 'rot-idp', type: 'github', display_name: 'GitHub', client_id: 'Iv1.rotation', client_secret: secret } })
    expect(created.status).toBe(201)
    const before = (await findProvider(E, 'rot-idp'))!
    expect(await providerClientSecret(rotated, before)).toBe(secret)
    // without the sweep, removing MASTER_KEY_PREVIOUS would lose the secret (and every sign-in through the provider)
    await expect(providerClientSecret(newOnly, before)).rejects.toThrow(/MASTER_KEY_PREVIOUS/)

    const n = (await cronTasks.find((t) => t.name === 'reencrypt-idp-secrets')!.run(rotated, Date.now())) as number
    expect(n).toBeGreaterThanOrEqual(1)
    const after = (await findProvider(E, 'rot-idp'))!
    expect(after.clientSecretEnc.startsWith(`v2.${await masterKeyId(newKey)}.`)).toBe(true)
    expect(await providerClientSecret(newOnly, after)).toBe(secret)
    expect(await reencryptProviderSecrets(rotated)).toBe(0)
    const audit = await E.DB.prepare("SELECT actor_type, details FROM audit_logs WHERE action = 'system.idp_secrets_reencrypted' ORDER BY id DESC LIMIT 1").first<{ actor_type: string; details: string }>()
    expect(audit!.actor_type).toBe('system')
    expect(JSON.parse(audit!.details)).toMatchObject({ count: n, provider_ids: expect.arrayContaining(['rot-idp']) })
    expect(audit!.details).not.toContain(secret)
  })

  it('MASTER_KEY_PREVIOUS must hold 32-byte base64 keys', () => {
    expect(() => getConfig({ ...rotated, MASTER_KEY_PREVIOUS: 'short' } as never)).toThrow(/MASTER_KEY_PREVIOUS/)
    expect(getConfig({ ...rotated, MASTER_KEY_PREVIOUS: `${E.MASTER_KEY}, ${newKey}` } as never).previousMasterKeys).toEqual([E.MASTER_KEY, newKey])
  })
})
