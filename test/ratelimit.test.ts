import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { hitRateLimit, policyFor } from '../src/ratelimit'

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
})
