import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { getDb } from '../src/db'
import { createUser, login } from './support/api'
import { createApp } from './support/apps'
import { signRequest } from '../src/signing/client'
import { StorageRecorder, describeCalls, measureStorage, stagesOf, storageEnv, wrapEnv } from './support/storage'
import { ROUND_TRIP_BUDGETS, measureTargetRoutes } from './support/round-trips'

// the budgeted routes are measured once for this file (setup is a code flow and two apps)
let targetRows: ReturnType<typeof measureTargetRoutes> | undefined
const targetRoutes = () => (targetRows ??= measureTargetRoutes())

const call = (startSeq: number, endSeq: number) => ({ startSeq, endSeq, stage: 0 })
const later = <T>(v: T, ms = 5) => new Promise<T>((r) => setTimeout(() => r(v), ms))

describe('stage computation (critical path over start/settle order)', () => {
  it('no calls → 0 stages; parallel calls → 1; a call started after another settled → 2', () => {
    expect(stagesOf([])).toBe(0)
    expect(stagesOf([call(1, 4), call(2, 3)])).toBe(1)
    const dependent = [call(1, 2), call(3, 4)]
    expect(stagesOf(dependent)).toBe(2)
    expect(dependent.map((c) => c.stage)).toEqual([1, 2])
  })

  it('the stage follows the longest chain that settled before the start, not the number of calls', () => {
    // A and B together; C waits for A only; D waits for C; E starts while C is still running
    const [a, b, c, d, e] = [call(1, 3), call(2, 6), call(4, 7), call(8, 9), call(5, 10)]
    expect(stagesOf([a, b, c, d, e])).toBe(3)
    expect([a, b, c, d, e].map((x) => x.stage)).toEqual([1, 1, 2, 3, 2])
    // input order does not matter
    const shuffled = [call(8, 9), call(4, 7), call(1, 3), call(5, 10), call(2, 6)]
    expect(stagesOf(shuffled)).toBe(3)
  })

  it('a recorder orders real async calls by when they started and settled', async () => {
    const rec = new StorageRecorder()
    await Promise.all([rec.track('kv', 'KV', 'get', 'a', () => later(1)), rec.track('d1', 'DB', 'first', 'b', () => later(2, 1))])
    expect(stagesOf(rec.calls)).toBe(1)
    await rec.track('do', 'X', 'hit', 'c', () => later(3))
    expect(stagesOf(rec.calls)).toBe(2)
    // a failing call still counts, and settles
    await expect(rec.track('d1', 'DB', 'run', 'd', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(stagesOf(rec.calls)).toBe(3)
    expect(rec.calls.map((c) => [c.kind, c.ok, c.stage])).toEqual([
      ['kv', true, 1],
      ['d1', true, 1],
      ['do', true, 2],
      ['d1', false, 3],
    ])
  })
})

describe('wrapped bindings record every kind of call and still work', () => {
  it('D1 (prepare/bind/first/all/run/raw, batch, exec), KV, Durable Object RPC, Queue', async () => {
    const rec = new StorageRecorder()
    const w = wrapEnv(env, rec)
    const one = await w.DB.prepare('SELECT ? AS v').bind(7).first<{ v: number }>()
    expect(one?.v).toBe(7)
    const [all, raw] = await Promise.all([w.DB.prepare('SELECT 1 AS v').all(), w.DB.prepare('SELECT 2 AS v').raw()])
    expect(all.results).toEqual([{ v: 1 }])
    expect(raw).toEqual([[2]])
    await w.DB.prepare('SELECT 1').run()
    const batch = await w.DB.batch([w.DB.prepare('SELECT 3 AS v'), w.DB.prepare('SELECT ? AS v').bind(4)])
    expect(batch.map((r) => r.results)).toEqual([[{ v: 3 }], [{ v: 4 }]])
    await w.DB.exec('SELECT 1')
    const key = `storage-counter:${crypto.randomUUID()}`
    await w.KV.put(key, 'x', { expirationTtl: 60 })
    expect(await w.KV.get(key)).toBe('x')
    expect((await w.KV.getWithMetadata(key)).value).toBe('x')
    expect((await w.KV.list({ prefix: key })).keys.map((k) => k.name)).toEqual([key])
    await w.KV.delete(key)
    const limiter = w.RATE_LIMITER.get(w.RATE_LIMITER.idFromName(`storage-counter:${crypto.randomUUID()}`))
    expect((await limiter.hit(5, 60_000, 1)).allowed).toBe(true)
    // a real message would reach the webhook consumer: an empty batch is refused by the queue, and still recorded
    await expect(w.WEBHOOK_QUEUE.sendBatch([])).rejects.toThrow(/at least one message/)
    const ops = rec.calls.map((c) => `${c.kind}:${c.binding}.${c.op}`)
    expect(ops).toEqual([
      'd1:DB.first',
      'd1:DB.all',
      'd1:DB.raw',
      'd1:DB.run',
      'd1:DB.batch',
      'd1:DB.exec',
      'kv:KV.put',
      'kv:KV.get',
      'kv:KV.getWithMetadata',
      'kv:KV.list',
      'kv:KV.delete',
      'do:RATE_LIMITER.hit',
      'queue:WEBHOOK_QUEUE.sendBatch',
    ])
    expect(rec.calls.map((c) => c.ok)).toEqual([...Array(12).fill(true), false])
    expect(rec.calls.every((c) => c.endSeq > c.startSeq)).toBe(true)
    expect(rec.calls.find((c) => c.op === 'hit')!.detail).toMatch(/^storage-counter:/)
    // all and raw ran together: 12 stages for 13 calls
    expect(stagesOf(rec.calls)).toBe(12)
  })

  it('a Durable Object stub records fetch like any RPC method; ids, names and awaiting the stub are not calls', async () => {
    // none of the Worker's object classes has a fetch handler, so a stand-in namespace shows it
    const seen: string[] = []
    const stub = {
      id: { name: 'obj-1', toString: () => 'f'.repeat(64) },
      name: 'obj-1',
      fetch: async (url: string) => (seen.push(`fetch ${url}`), new Response('hi')),
      count: async (n: number) => (seen.push(`count ${n}`), n + 1),
    }
    const ns = { idFromName: (n: string) => ({ name: n }), idFromString: () => stub.id, newUniqueId: () => ({ ...stub.id }), get: () => stub, jurisdiction: () => ns }
    const rec = new StorageRecorder()
    const w = wrapEnv({ OBJ: ns }, rec) as unknown as { OBJ: DurableObjectNamespace }
    const s = w.OBJ.get(w.OBJ.idFromName('obj-1')) as unknown as typeof stub
    expect(s.id.name).toBe('obj-1')
    expect(await Promise.resolve(s)).toBe(s) // not thenable
    expect(await (await s.fetch('http://do/x')).text()).toBe('hi')
    expect(await s.count(1)).toBe(2)
    const j = (w.OBJ.jurisdiction('eu').get(w.OBJ.newUniqueId()) as unknown as typeof stub)
    await j.count(5)
    expect(seen).toEqual(['fetch http://do/x', 'count 1', 'count 5'])
    expect(rec.calls.map((c) => `${c.kind}:${c.binding}.${c.op} ${c.detail}`)).toEqual(['do:OBJ.fetch obj-1', 'do:OBJ.count obj-1', 'do:OBJ.count obj-1'])
    // only the call on the id from newUniqueId() creates an object
    expect(rec.calls.map((c) => !!c.newObject)).toEqual([false, false, true])
  })

  it('the measuring env is one stable object with stable bindings, so isolate caches keyed by env or env.DB stay warm', async () => {
    const e = storageEnv()
    expect(storageEnv()).toBe(e)
    expect(storageEnv().DB).toBe(e.DB)
    expect(storageEnv().RATE_LIMITER).toBe(e.RATE_LIMITER)
    expect(getDb(e.DB)).toBe(getDb(storageEnv().DB))
    // the key set is read from D1 at most once a minute per isolate (src/keys): a second request reads nothing
    const first = await measureStorage('/.well-known/jwks.json')
    expect(first.response.status).toBe(200)
    const second = await measureStorage('/.well-known/jwks.json')
    expect(second.response.status).toBe(200)
    expect(second.calls).toEqual({ d1: 0, kv: 0, do: 0, queue: 0 })
  })
})

describe('measureStorage on real routes', () => {
  it('/livez touches nothing; /healthz is one D1 call in one stage', async () => {
    const live = await measureStorage('/livez')
    expect(live.response.status).toBe(200)
    expect(live.calls).toEqual({ d1: 0, kv: 0, do: 0, queue: 0 })
    expect(live.stages).toBe(0)
    const health = await measureStorage('/healthz')
    expect(health.response.status).toBe(200)
    expect(health.calls).toEqual({ d1: 1, kv: 0, do: 0, queue: 0 })
    expect(health.stages).toBe(1)
    expect(health.log[0]).toMatchObject({ kind: 'd1', binding: 'DB', op: 'first', detail: 'SELECT 1', stage: 1 })
    expect(health.background.log).toEqual([])
  })

  it('GET /api/v1/auth/me is two sequential D1 reads (the session check, then the profile)', async () => {
    const user = await createUser()
    const { access_token } = await login(user.mobile, user.password)
    const get = () => measureStorage('/api/v1/auth/me', { headers: { Authorization: `Bearer ${access_token}` } })
    await get() // warm: the signing keys for this env
    const m = await get()
    expect(m.response.status).toBe(200)
    expect((await m.response.json<{ mobile: string }>()).mobile).toBe(user.mobile)
    expect(m.calls, describeCalls(m.log)).toEqual({ d1: 2, kv: 0, do: 0, queue: 0 })
    expect(m.stages).toBe(2)
    expect(m.log.map((c) => c.stage)).toEqual([1, 2])
  })

  it('concurrent measurements are queued, each sees only its own calls', async () => {
    const [a, b] = await Promise.all([measureStorage('/healthz'), measureStorage('/livez')])
    expect(a.calls.d1).toBe(1)
    expect(b.calls.d1).toBe(0)
  })

  it('work after the response (waitUntil) is reported apart from the request path', async () => {
    // a refused ticket exchange writes its audit row after the response (src/tickets/service.ts auditSoon)
    const target = await createApp()
    const source = await createApp()
    const user = await createUser()
    const url = 'http://localhost/api/v1/simple/ticket/exchange'
    const body = JSON.stringify({ target_app_id: target.app_id, user_mobile: user.mobile })
    const refused = async () => {
      const headers = await signRequest({ appId: source.app_id, appSecret: source.app_secret, method: 'POST', url, body })
      return measureStorage(new Request(url, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body }))
    }
    await refused() // warm: the source's row
    const m = await refused()
    expect(m.response.status).toBe(403)
    expect((await m.response.json<{ error: { code: string } }>()).error.code).toBe('target_not_allowed')
    expect(m.background.calls.d1, describeCalls(m.background.log)).toBe(1)
    expect(m.background.log[0]).toMatchObject({ kind: 'd1', op: 'batch' })
    // and it is not on the request's path
    expect(m.log.filter((c) => c.kind === 'd1' && c.detail === '1 statements')).toEqual([])
    // redeeming a ticket addresses an existing object, never creates one
    const rows = await targetRoutes()
    expect(rows.find((r) => r.name === 'ticket verify')!.newObjects).toBe(0)
  })
})

describe("today's round trips on the routes issue 14 budgets (listed, not enforced)", () => {
  it('measures every budgeted route with a 200 answer and records the table for npm run bench', async ({ task }) => {
    const rows = await targetRoutes()
    expect(rows.map((r) => r.name).sort()).toEqual(Object.keys(ROUND_TRIP_BUDGETS).sort())
    for (const r of rows) {
      expect(r.status, r.name).toBe(200)
      expect(r.stages, r.name).toBeGreaterThan(0)
    }
    // picked up by bench/run.mjs through vitest's JSON reporter (docs/benchmarks.md)
    task.meta.roundTrips = rows.map((r) => ({ ...r, budget: ROUND_TRIP_BUDGETS[r.name] }))
    console.log(rows.map((r) => `${r.name}: ${r.stages} stages, ${JSON.stringify(r.calls)}`).join('\n'))
  })
})

declare module 'vitest' {
  interface TaskMeta {
    roundTrips?: unknown
  }
}
