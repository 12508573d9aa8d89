import { describe, expect, it, vi } from 'vitest'
import { env, runInDurableObject } from 'cloudflare:test'
import type { Env } from '../src/env'
import { api } from './support/api'
import { createApp } from './support/apps'
import { signRequest } from '../src/signing/client'
import { hitRateLimit, ipRateKey, policyFor } from '../src/ratelimit'
import { appGate } from '../src/signing/gate'
import { PERSIST_SOON_MS } from '../src/ratelimit/durable-object'

describe('rate limiter (Durable Object per policy and key)', () => {
  it('allows up to the limit, refuses with a retry-after, and counts keys separately', async () => {
    const { limit } = policyFor(env, 'captcha_ip')
    const key = `203.0.113.${Math.floor(Math.random() * 250)}-${crypto.randomUUID()}`
    // concurrent hits still count exactly: the object handles them one at a time
    const results = await Promise.all(Array.from({ length: limit + 3 }, () => hitRateLimit(env, 'captcha_ip', key)))
    expect(results.filter((r) => r.allowed).length).toBe(limit)
    const refused = results.filter((r) => !r.allowed)
    expect(refused.length).toBe(3)
    expect(refused[0].retryAfterS).toBeGreaterThan(0)
    expect((await hitRateLimit(env, 'captcha_ip', key + '-other')).allowed).toBe(true)
  })

  it("a policy's hits are counted in memory at once and in storage within a second; an instance that reads storage goes on from there", async () => {
    const e = { ...env, RATE_LIMITS: JSON.stringify({ captcha_ip: { limit: 3, windowS: 60 } }) }
    const key = `198.51.100.${crypto.randomUUID()}`
    const stub = env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`captcha_ip:${key}`))
    const stored = () => runInDurableObject(stub, (_i, state) => state.storage.get<{ count: number }>('w'))
    expect((await hitRateLimit(e, 'captcha_ip', key)).remaining).toBe(2)
    expect((await hitRateLimit(e, 'captcha_ip', key)).remaining).toBe(1)
    // not yet written: the answer did not wait for a storage commit
    expect(await stored()).toBeUndefined()
    await new Promise((r) => setTimeout(r, PERSIST_SOON_MS + 200))
    expect((await stored())!.count).toBe(2)
    // as a restarted object would, read the window from storage: the count goes on from 2
    await runInDurableObject(stub, (instance) => void ((instance as unknown as { cached?: unknown }).cached = undefined))
    expect((await hitRateLimit(e, 'captcha_ip', key)).allowed).toBe(true)
    expect((await hitRateLimit(e, 'captcha_ip', key)).allowed).toBe(false)
  })
})


describe('exact counters: reserve, refund, peek (src/ratelimit/counters.ts)', () => {
  it('a refund gives a reserved hit back (never below zero) and peek reads without counting', async () => {
    const { countHit, peekCounter, refundHit } = await import('../src/ratelimit/counters')
    const name = `test_counter:${crypto.randomUUID()}`
    expect(await peekCounter(env, name)).toEqual({ count: 0, retryAfterS: 0 })
    const hits = await Promise.all(Array.from({ length: 5 }, () => countHit(env, name, 3, 60)))
    expect(hits.filter((h) => h.allowed).length).toBe(3)
    for (let i = 0; i < 3; i++) expect((await peekCounter(env, name)).count).toBe(3) // peeking counts nothing
    expect((await peekCounter(env, name)).retryAfterS).toBeGreaterThan(0)
    await refundHit(env, name)
    expect((await peekCounter(env, name)).count).toBe(2)
    expect((await countHit(env, name, 3, 60)).allowed).toBe(true)
    expect((await countHit(env, name, 3, 60)).allowed).toBe(false)
    await refundHit(env, name, 10)
    expect((await peekCounter(env, name)).count).toBe(0)
  })

  it('an exact counter is in storage before its answer (single use must survive a restart)', async () => {
    const { firstUse } = await import('../src/ratelimit/counters')
    const name = `test_once:${crypto.randomUUID()}`
    expect(await firstUse(env, name, 60)).toBe(true)
    const stub = env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`once:${name}`))
    expect((await runInDurableObject(stub, (_i, state) => state.storage.get<{ count: number }>('w')))!.count).toBe(1)
  })
})

/** The Worker with tiny limits, through the real bindings (RATE_LIMITS is read per env). */
const tiny = { RATE_LIMITS: JSON.stringify({ app_token: { limit: 2, windowS: 60 }, signed_app: { limit: 2, windowS: 60 }, partner_ip: { limit: 3, windowS: 60 } }) }
const tinyEnv = { ...env, ...tiny }

const call = (path: string, headers: Record<string, string>, e: Partial<Env> = tiny) => api(path, { headers, env: e })

/** Moves the limiter's window into the past, as if the window had run out. */
async function expireWindow(policy: string, key: string) {
  const stub = env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`${policy}:${key}`))
  await runInDurableObject(stub, async (instance, state) => {
    // the window in the object's memory is the count (storage follows within a second)
    const i = instance as unknown as { cached?: { start: number; count: number; windowMs: number } | null }
    const w = i.cached ?? (await state.storage.get<{ start: number; count: number; windowMs: number }>('w'))
    if (!w) throw new Error('no window counted')
    const moved = { ...w, start: w.start - w.windowMs }
    await state.storage.put('w', moved)
    i.cached = moved
  })
}

/** The same for a per-app policy of signed calls, counted in the app's AppGate. */
async function expireAppWindow(policy: string, appId: string) {
  await runInDurableObject(appGate(env, appId), async (_instance, state) => {
    const n = state.storage.sql.exec('UPDATE rate_window SET start = start - window_ms WHERE policy = ?', policy).rowsWritten
    if (!n) throw new Error('no window stored')
  })
}

describe('rate limits on partner routes', () => {
  it('per app on X-App-Access-Token routes: 429 with Retry-After and the JSON error body, then recovers', async () => {
    const a = await createApp()
    const ip = `198.51.100.${Math.floor(Math.random() * 250)}-${crypto.randomUUID()}`
    const req = (i: number) => call(`/api/v1/apps/${a.app_id}/users/changes`, { 'X-App-Access-Token': a.access_token, 'CF-Connecting-IP': `${ip}-${i}` })
    expect((await req(1)).status).toBe(200)
    const second = await req(2)
    expect(second.status).toBe(200)
    expect(second.headers.get('X-RateLimit-Remaining')).toBe('0')
    const limited = await req(3)
    expect(limited.status).toBe(429)
    expect(Number(limited.headers.get('Retry-After'))).toBeGreaterThan(0)
    expect(Number(limited.headers.get('Retry-After'))).toBeLessThanOrEqual(60)
    expect(limited.body.error).toMatchObject({ code: 'rate_limited', details: { policy: 'app_token', limit: 2 } })
    expect(limited.body.error.request_id).toBeTruthy()
    // another app is not affected
    const b = await createApp()
    expect((await call(`/api/v1/apps/${b.app_id}/users/changes`, { 'X-App-Access-Token': b.access_token })).status).toBe(200)
    await expireWindow('app_token', a.app_id)
    expect((await req(4)).status).toBe(200)
  })

  it('per app on signed routes, counted only for correctly signed requests', async () => {
    const a = await createApp()
    const signed = async (secret = a.app_secret) =>
      call('/api/v1/open/ping', { ...(await signRequest({ appId: a.app_id, appSecret: secret, method: 'GET', url: 'http://localhost/api/v1/open/ping' })), 'CF-Connecting-IP': crypto.randomUUID() })
    // forgeries do not spend the app's budget
    for (let i = 0; i < 3; i++) expect((await signed('sk_forged')).body.error.code).toBe('signature_invalid')
    expect((await signed()).status).toBe(200)
    expect((await signed()).status).toBe(200)
    const limited = await signed()
    expect(limited.status).toBe(429)
    expect(limited.body.error.details.policy).toBe('signed_app')
    await expireAppWindow('signed_app', a.app_id)
    expect((await signed()).status).toBe(200)
  })

  it('a replay spends none of the budget (the nonce is checked first), and a refused request keeps its nonce', async () => {
    const a = await createApp()
    const url = 'http://localhost/api/v1/open/ping'
    const headersOf = async () => signRequest({ appId: a.app_id, appSecret: a.app_secret, method: 'GET', url })
    const first = await headersOf()
    const send = (h: Record<string, string>) => call('/api/v1/open/ping', { ...h, 'CF-Connecting-IP': crypto.randomUUID() })
    expect((await send(first)).status).toBe(200)
    for (let i = 0; i < 3; i++) expect((await send(first)).body.error.code).toBe('nonce_replayed')
    // the limit is 2: the second distinct request still fits, the third does not
    expect((await send(await headersOf())).status).toBe(200)
    const third = await headersOf()
    const limited = await send(third)
    expect(limited.status).toBe(429)
    // once the window is over, that very request (same nonce, same signature) goes through
    await expireAppWindow('signed_app', a.app_id)
    expect((await send(third)).status).toBe(200)
  })

  it('per client IP, for calls that are not admitted: once over, the IP is refused before any work until its window ends', async () => {
    const ip = `203.0.113.${crypto.randomUUID()}`
    const oneSecond = { RATE_LIMITS: JSON.stringify({ partner_ip: { limit: 3, windowS: 1 } }) }
    const req = () => call('/api/v1/open/ping', { 'CF-Connecting-IP': ip }, oneSecond)
    for (let i = 0; i < 3; i++) expect((await req()).body.error.code).toBe('signature_missing')
    const limited = await req()
    expect(limited.status).toBe(429)
    expect(limited.body.error.details.policy).toBe('partner_ip')
    expect(Number(limited.headers.get('Retry-After'))).toBeGreaterThanOrEqual(1)
    // refused again without asking the limiter object: even with its window moved into the
    // past (it would admit now), this isolate keeps the answer it gave until the window's end
    await expireWindow('partner_ip', ip)
    expect((await req()).status).toBe(429)
    // a correctly signed call from that IP is refused as well while the window lasts
    const a = await createApp()
    const signedHeaders = async () => ({ ...(await signRequest({ appId: a.app_id, appSecret: a.app_secret, method: 'GET', url: 'http://localhost/api/v1/open/ping' })), 'CF-Connecting-IP': ip })
    expect((await call('/api/v1/open/ping', await signedHeaders(), oneSecond)).status).toBe(429)
    await new Promise((r) => setTimeout(r, 1100))
    expect((await req()).body.error.code).toBe('signature_missing')
    expect((await call('/api/v1/open/ping', await signedHeaders(), oneSecond)).status).toBe(200)
  })

  it('an admitted signed call costs no per-IP count: it is counted by its app (signed_app) in the same gate call', async () => {
    const ip = `203.0.113.${crypto.randomUUID()}`
    const a = await createApp()
    for (let i = 0; i < 2; i++) {
      const h = await signRequest({ appId: a.app_id, appSecret: a.app_secret, method: 'GET', url: 'http://localhost/api/v1/open/ping' })
      expect((await call('/api/v1/open/ping', { ...h, 'CF-Connecting-IP': ip })).status).toBe(200)
    }
    const ipLimiter = env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`partner_ip:${ip}`))
    expect((await ipLimiter.peek()).count).toBe(0)
    // a forgery from the same IP is counted there
    const forged = await signRequest({ appId: a.app_id, appSecret: 'not-the-secret', method: 'GET', url: 'http://localhost/api/v1/open/ping' })
    expect((await call('/api/v1/open/ping', { ...forged, 'CF-Connecting-IP': ip })).body.error.code).toBe('signature_invalid')
    expect((await ipLimiter.peek()).count).toBe(1)
  })

  it('uses the default policies when RATE_LIMITS is absent, and overrides per policy', () => {
    expect(policyFor({ ...env, RATE_LIMITS: undefined }, 'signed_app')).toEqual({ limit: 600, windowS: 60 })
    expect(policyFor({ ...env, RATE_LIMITS: undefined }, 'partner_ip')).toEqual({ limit: 1200, windowS: 60 })
    expect(policyFor(tinyEnv, 'signed_app')).toEqual({ limit: 2, windowS: 60 })
    expect(policyFor(tinyEnv, 'captcha_ip')).toEqual({ limit: 30, windowS: 60 })
    expect(policyFor({ ...env, RATE_LIMITS: undefined }, 'oauth_ip')).toEqual({ limit: 1200, windowS: 60 })
    expect(policyFor({ ...env, RATE_LIMITS: undefined }, 'sms_verify_ip')).toEqual({ limit: 60, windowS: 3600 })
  })
})

describe('RATE_LIMITS is validated, never silently ignored', () => {
  const signedPing = async (e: Partial<Env>) => {
    const a = await createApp()
    return call('/api/v1/open/ping', { ...(await signRequest({ appId: a.app_id, appSecret: a.app_secret, method: 'GET', url: 'http://localhost/api/v1/open/ping' })), 'CF-Connecting-IP': crypto.randomUUID() }, e)
  }

  it('a malformed or wrong RATE_LIMITS answers 503 misconfigured; the log names the problem', async () => {
    for (const [raw, problem] of [
      ['{"signed_app": {"limit": 1200, "windowS": 60}', /RATE_LIMITS.*JSON/],
      ['[1, 2]', /RATE_LIMITS.*object/],
      ['{"signed_ap": {"limit": 1200}}', /signed_ap.*unknown/],
      ['{"signed_app": {"limit": 0}}', /signed_app\.limit/],
      ['{"signed_app": {"limit": "many"}}', /signed_app\.limit/],
      ['{"signed_app": {"windowS": -5}}', /signed_app\.windowS/],
      ['{"signed_app": {"limit": 10, "window": 60}}', /signed_app\.window/],
      ['{"signed_app": 100}', /signed_app/],
    ] as const) {
      const logged: string[] = []
      const spy = vi.spyOn(console, 'error').mockImplementation((l: string) => void logged.push(l))
      let r: Awaited<ReturnType<typeof signedPing>>
      try {
        r = await signedPing({ ...env, RATE_LIMITS: raw })
      } finally {
        spy.mockRestore()
      }
      expect(r.status, raw).toBe(503)
      expect(r.body.error.code, raw).toBe('misconfigured')
      expect(r.body.error.message, raw).not.toMatch(problem)
      const line = logged.map((l) => JSON.parse(l)).find((l) => l.request_id === r.body.error.request_id)
      expect(line?.error, raw).toMatch(problem)
    }
  })

  it('a valid override still applies', async () => {
    expect(policyFor({ ...env, RATE_LIMITS: '{"signed_app": {"limit": 7}}' }, 'signed_app')).toEqual({ limit: 7, windowS: 60 })
    expect((await signedPing({ ...env, RATE_LIMITS: '{"signed_app": {"limit": 7, "windowS": 30}}' })).status).toBe(200)
  })
})

describe('per-IP policies and IPv6', () => {
  const hex4 = () => Math.floor(Math.random() * 0x10000).toString(16)

  it('counts an IPv6 client by its /64: rotating the interface id does not buy a new budget', async () => {
    const prefix = `2001:db8:${hex4()}:${hex4()}`
    const req = (iid: string) => call('/api/v1/open/ping', { 'CF-Connecting-IP': `${prefix}:${iid}` })
    // partner_ip is 3 per minute in tinyEnv; four different addresses of one /64
    for (const iid of ['0:0:0:1', 'aaaa:bbbb:cccc:dddd', '1:2:3:4']) expect((await req(iid)).body.error.code).toBe('signature_missing')
    const limited = await req('ffff:ffff:ffff:fffe')
    expect(limited.status).toBe(429)
    expect(limited.body.error.details.policy).toBe('partner_ip')
    // another /64 has its own budget
    expect((await call('/api/v1/open/ping', { 'CF-Connecting-IP': `2001:db8:${hex4()}:${hex4()}::1` })).body.error.code).toBe('signature_missing')
  })

  it('ipRateKey: IPv6 → its /64 (any notation), IPv4 and IPv4-mapped IPv6 → the address', () => {
    expect(ipRateKey('203.0.113.9')).toBe('203.0.113.9')
    expect(ipRateKey('::ffff:203.0.113.9')).toBe('203.0.113.9')
    expect(ipRateKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(ipRateKey('2001:DB8:0001:0002::7')).toBe('2001:db8:1:2::/64')
    expect(ipRateKey('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(ipRateKey('::1')).toBe('0:0:0:0::/64')
    expect(ipRateKey('not-an-ip')).toBe('not-an-ip')
  })
})
