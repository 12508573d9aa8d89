import { describe, expect, it } from 'vitest'
import { ROUND_TRIP_BUDGETS, measureTargetRoutes, type RouteCount } from './support/round-trips'

// Issue 14's round-trip budgets, counted (not timed) with the storage recorder: the number
// of sequential storage stages on the path to the response (test/support/storage.ts).
let measured: RouteCount[] | undefined
const route = async (name: string) => {
  measured ??= await measureTargetRoutes()
  const r = measured.find((m) => m.name === name)
  if (!r) throw new Error(`no measurement for ${name}`)
  return r
}

describe('storage round trips per request', () => {
  for (const name of ['refresh', 'OIDC refresh', 'userinfo', 'introspection', 'signed ping', 'ticket exchange', 'ticket verify']) {
    it(`${name}: at most ${ROUND_TRIP_BUDGETS[name].stages} sequential storage stage(s)`, async () => {
      const r = await route(name)
      expect(r.stages, r.log.join('\n')).toBeLessThanOrEqual(ROUND_TRIP_BUDGETS[name].stages)
    })
  }

  // the access-token denylist is read by the session query itself (src/auth/tokens.ts accessTokenDeniedSql)
  for (const name of ['userinfo', 'introspection']) {
    it(`${name}: no KV on the path (revocation is checked in the session read)`, async () => {
      const r = await route(name)
      expect(r.status).toBe(200)
      expect(r.calls.kv, r.log.join('\n')).toBe(0)
    })
  }

  // a valid token's read is all they do: oauth_ip counts only refusals there, and the
  // introspecting client is authenticated with the app row its token's read joined
  for (const name of ['userinfo', 'introspection']) {
    it(`${name}: one D1 read and no limiter call`, async () => {
      const r = await route(name)
      expect(r.status).toBe(200)
      expect(r.calls, r.log.join('\n')).toMatchObject({ d1: 1, do: 0 })
    })
  }

  it('OIDC refresh: the client is authenticated with the app row the refresh read joined (one read, one write batch)', async () => {
    const r = await route('OIDC refresh')
    expect(r.status).toBe(200)
    expect(r.calls.d1, r.log.join('\n')).toBe(2)
  })

  // signed partner calls: nonces, per-app limits and tickets all live in the app's AppGate
  for (const name of ['signed ping', 'ticket exchange', 'ticket verify']) {
    it(`${name}: no KV on the path (the nonce check is exact) and no Durable Object created per request`, async () => {
      const r = await route(name)
      expect(r.status).toBe(200)
      expect(r.calls.kv, r.log.join('\n')).toBe(0)
      expect(r.newObjects, r.log.join('\n')).toBe(0)
    })
  }
})
