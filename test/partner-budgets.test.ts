import { describe, expect, it } from 'vitest'
import { ROUND_TRIP_BUDGETS, measurePartnerRoutes, type RouteCount } from './support/round-trips'

// Issue 14's round-trip budgets for the signed partner path, counted by
// test/support/storage.ts on the real Worker and bindings (after one warm-up request each):
// sequential storage stages, and no Durable Object created per ticket.
let rows: Promise<RouteCount[]> | undefined
const measured = async (name: string) => {
  const row = (await (rows ??= measurePartnerRoutes())).find((r) => r.name === name)
  if (!row) throw new Error(`${name} was not measured`)
  return row
}
const why = (r: RouteCount) => `${r.name}: ${r.stages} stages\n${r.log.join('\n')}`

describe('round-trip budgets of signed partner calls (issue 14)', () => {
  it('signed ping: at most one sequential storage stage (per-IP limit and the app gate together)', async () => {
    const r = await measured('signed ping')
    expect(r.status).toBe(200)
    expect(r.stages, why(r)).toBeLessThanOrEqual(ROUND_TRIP_BUDGETS['signed ping'].stages)
    // exact replay protection without KV: no KV read or write on the path
    expect(r.calls.kv, why(r)).toBe(0)
    expect(r.newObjects).toBe(0)
  })

  it('ticket exchange: at most two stages, and no new Durable Object per ticket', async () => {
    const r = await measured('ticket exchange')
    expect(r.status).toBe(200)
    expect(r.stages, why(r)).toBeLessThanOrEqual(ROUND_TRIP_BUDGETS['ticket exchange'].stages)
    expect(r.newObjects, why(r)).toBe(0)
    expect(r.calls.kv, why(r)).toBe(0)
  })

  it('ticket verify: at most two stages (redemption in the gate call, then the account re-check)', async () => {
    const r = await measured('ticket verify')
    expect(r.status).toBe(200)
    expect(r.stages, why(r)).toBeLessThanOrEqual(ROUND_TRIP_BUDGETS['ticket verify'].stages)
    expect(r.newObjects, why(r)).toBe(0)
    expect(r.calls.kv, why(r)).toBe(0)
  })
})
