// Storage-call counter for workers tests (issue 14: round-trip budgets are counts, not timings).
//
// `measureStorage(request)` sends one request to the Worker (src/index.ts) with an env whose
// D1, KV, Durable Object and Queue bindings record every call, and answers how many calls of
// each kind the request made and how many of them had to wait for each other (sequential
// stages). The wrapped env is built once and reused, so isolate caches keyed by `env` or by
// `env.DB` (config, drizzle instance, signing keys) warm up and stay warm as they do in
// production: a request measured after a warm-up shows the steady-state path.
import { createExecutionContext, env as realEnv, waitOnExecutionContext } from 'cloudflare:test'
import worker from '../../src/index'
import type { Env } from '../../src/env'

export type StorageKind = 'd1' | 'kv' | 'do' | 'queue'
export const STORAGE_KINDS: readonly StorageKind[] = ['d1', 'kv', 'do', 'queue']

export interface StorageCall {
  kind: StorageKind
  /** binding name in env (DB, KV, RATE_LIMITER, ...) */
  binding: string
  /** method called: first/all/run/raw/batch/exec on D1, get/put/... on KV, the RPC method or fetch on a Durable Object, send/sendBatch */
  op: string
  /** what it touched: the SQL (D1), the key (KV), the object's name or id (DO) */
  detail: string
  /** performance.now() at the call and when it settled. workerd only advances the clock on I/O, so these are coarse. */
  start: number
  end: number
  /** Logical order of the call and of its settling on this recorder's counter: exact where the clock is not. */
  startSeq: number
  endSeq: number
  ok: boolean
  /** a Durable Object call on an id from newUniqueId(): the call creates the object */
  newObject?: boolean
  /** 1 + the highest stage among calls that settled before this one started (see stagesOf) */
  stage: number
}

export type KindCounts = Record<StorageKind, number>

export interface CallGroup {
  calls: KindCounts
  /** sequential storage stages: the critical path through the calls, in calls */
  stages: number
  log: StorageCall[]
}

export interface StorageMeasurement extends CallGroup {
  response: Response
  /** calls that settled after the Worker returned its response (ctx.waitUntil work): not on the response's path */
  background: CallGroup
}

/**
 * Assigns every call its stage and returns the number of stages: a call's stage is
 * 1 + the highest stage among the calls that had settled before it started (0 when none
 * had), so calls started together (Promise.all) share a stage and a call that waited for
 * another's answer comes one stage later. The result is the longest such chain.
 * Ordering uses the sequence numbers, never the clock.
 */
export function stagesOf(calls: Pick<StorageCall, 'startSeq' | 'endSeq' | 'stage'>[]): number {
  const byStart = [...calls].sort((a, b) => a.startSeq - b.startSeq)
  let max = 0
  for (const c of byStart) {
    let before = 0
    for (const d of byStart) {
      if (d.startSeq >= c.startSeq) break
      if (d.endSeq < c.startSeq && d.stage > before) before = d.stage
    }
    c.stage = before + 1
    if (c.stage > max) max = c.stage
  }
  return max
}

export function countKinds(calls: Pick<StorageCall, 'kind'>[]): KindCounts {
  const out: KindCounts = { d1: 0, kv: 0, do: 0, queue: 0 }
  for (const c of calls) out[c.kind]++
  return out
}

function group(calls: StorageCall[]): CallGroup {
  const log = [...calls].sort((a, b) => a.startSeq - b.startSeq)
  return { calls: countKinds(log), stages: stagesOf(log), log }
}

export const describeCall = (c: StorageCall) => `${c.stage} ${c.kind} ${c.binding}.${c.op} ${c.detail}${c.newObject ? ' (new object)' : ''}${c.ok ? '' : ' (failed)'}`

/** One line per call, in the order they started: `stage kind BINDING.op detail`. */
export function describeCalls(log: StorageCall[]): string {
  return log.map(describeCall).join('\n')
}

/** Collects calls; one measurement at a time (measureStorage queues them). */
export class StorageRecorder {
  private seq = 0
  calls: StorageCall[] = []

  reset() {
    this.calls = []
  }

  /** The next value of the logical clock, e.g. to mark the moment a response was returned. */
  tick() {
    return ++this.seq
  }

  track<T>(kind: StorageKind, binding: string, op: string, detail: string, run: () => Promise<T> | T, extra: Partial<StorageCall> = {}): Promise<T> {
    const call: StorageCall = { kind, binding, op, detail, start: performance.now(), end: NaN, startSeq: ++this.seq, endSeq: Infinity, ok: false, stage: 0, ...extra }
    this.calls.push(call)
    const settle = (ok: boolean) => {
      call.endSeq = ++this.seq
      call.end = performance.now()
      call.ok = ok
    }
    let pending: Promise<T>
    try {
      pending = Promise.resolve(run())
    } catch (e) {
      settle(false)
      return Promise.reject(e)
    }
    return pending.then(
      (v) => {
        settle(true)
        return v
      },
      (e) => {
        settle(false)
        throw e
      },
    )
  }
}

/** The SQL on one line, a long column list elided so the table and the condition stay readable. */
const short = (s: string, n = 160) => {
  const one = s
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/^select (.+?) from /i, (m, cols: string) => (cols.length > 40 ? 'select … from ' : m))
  return one.length > n ? one.slice(0, n - 1) + '…' : one
}

// ---------------------------------------------------------------- D1

function wrapD1(name: string, db: D1Database, rec: StorageRecorder): D1Database {
  const realOf = new WeakMap<object, D1PreparedStatement>()
  const unwrap = (s: D1PreparedStatement) => realOf.get(s) ?? s
  // `via` names a Sessions API session (`session(first-unconstrained).first`), so a test can tell replica reads from primary ones.
  const statement = (real: D1PreparedStatement, sql: string, via = ''): D1PreparedStatement => {
    const w = {
      bind: (...values: unknown[]) => statement(real.bind(...values), sql, via),
      first: (...args: unknown[]) => rec.track('d1', name, `${via}first`, short(sql), () => (real.first as (...a: unknown[]) => Promise<unknown>)(...args)),
      all: () => rec.track('d1', name, `${via}all`, short(sql), () => real.all()),
      run: () => rec.track('d1', name, `${via}run`, short(sql), () => real.run()),
      raw: (...args: unknown[]) => rec.track('d1', name, `${via}raw`, short(sql), () => (real.raw as (...a: unknown[]) => Promise<unknown>)(...args)),
    }
    realOf.set(w, real)
    return w as unknown as D1PreparedStatement
  }
  const batchOf = (target: { batch: D1Database['batch'] }, op: string) => (statements: D1PreparedStatement[]) =>
    rec.track('d1', name, op, `${statements.length} statements`, () => target.batch(statements.map(unwrap)))
  const wrapped: Record<string, unknown> = {
    prepare: (sql: string) => statement(db.prepare(sql), sql),
    batch: batchOf(db, 'batch'),
    exec: (sql: string) => rec.track('d1', name, 'exec', short(sql), () => db.exec(sql)),
    dump: () => rec.track('d1', name, 'dump', '', () => (db as unknown as { dump(): Promise<ArrayBuffer> }).dump()),
  }
  const withSession = (db as unknown as { withSession?: (c?: string) => D1DatabaseSession }).withSession
  if (typeof withSession === 'function') {
    wrapped.withSession = (constraint?: string) => {
      const session = withSession.call(db, constraint)
      const via = `session(${constraint && constraint.startsWith('first-') ? constraint : 'bookmark'}).`
      return {
        prepare: (sql: string) => statement(session.prepare(sql), sql, via),
        batch: batchOf(session, `${via}batch`),
        getBookmark: () => session.getBookmark(),
      }
    }
  }
  return wrapped as unknown as D1Database
}

// ---------------------------------------------------------------- KV

function wrapKv(name: string, kv: KVNamespace, rec: StorageRecorder): KVNamespace {
  const keyOf = (k: unknown) => (Array.isArray(k) ? `${k.length} keys` : String(k))
  const call = (op: 'get' | 'getWithMetadata' | 'put' | 'delete' | 'list') => (...args: unknown[]) =>
    rec.track('kv', name, op, op === 'list' ? JSON.stringify(args[0] ?? {}) : keyOf(args[0]), () => (kv[op] as (...a: unknown[]) => Promise<unknown>).apply(kv, args))
  return { get: call('get'), getWithMetadata: call('getWithMetadata'), put: call('put'), delete: call('delete'), list: call('list') } as unknown as KVNamespace
}

// ---------------------------------------------------------------- Durable Objects

function wrapStub(name: string, stub: DurableObjectStub, rec: StorageRecorder, newObject: boolean): DurableObjectStub {
  const label = (stub.id as DurableObjectId & { name?: string }).name ?? stub.name ?? stub.id.toString().slice(0, 16)
  const extra = newObject ? { newObject } : {}
  const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>()
  return new Proxy(stub, {
    get(target, prop) {
      // awaiting a stub must not treat it as a promise; symbols (dispose) and the id are local
      if (prop === 'then') return undefined
      if (typeof prop === 'symbol' || prop === 'id' || prop === 'name') {
        const v = Reflect.get(target, prop)
        return typeof v === 'function' ? v.bind(target) : v
      }
      let m = methods.get(prop)
      if (!m) {
        m = (...args: unknown[]) => rec.track('do', name, prop, label, () => (target as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[prop](...args), extra)
        methods.set(prop, m)
      }
      return m
    },
  })
}

function wrapNamespace(name: string, ns: DurableObjectNamespace, rec: StorageRecorder, fresh = new WeakSet<object>()): DurableObjectNamespace {
  const cache = new Map<unknown, unknown>()
  return new Proxy(ns, {
    get(target, prop) {
      const hit = cache.get(prop)
      if (hit) return hit
      let v: unknown = Reflect.get(target, prop)
      if (prop === 'get' || prop === 'getByName') {
        const real = v as (...a: unknown[]) => DurableObjectStub
        v = (...args: unknown[]) => wrapStub(name, real.apply(target, args), rec, prop === 'get' && isObj(args[0]) && fresh.has(args[0]))
      } else if (prop === 'newUniqueId') {
        // an object addressed by a fresh unique id is created by its first call
        const real = v as (...a: unknown[]) => DurableObjectId
        v = (...args: unknown[]) => {
          const id = real.apply(target, args)
          fresh.add(id)
          return id
        }
      } else if (prop === 'jurisdiction') {
        const real = v as (j: string) => DurableObjectNamespace
        v = (j: string) => wrapNamespace(name, real.call(target, j), rec, fresh)
      } else if (typeof v === 'function') {
        // idFromName, idFromString: local computations, not storage calls
        v = (v as (...a: unknown[]) => unknown).bind(target)
      }
      cache.set(prop, v)
      return v
    },
  })
}

// ---------------------------------------------------------------- Queues

function wrapQueue(name: string, q: Queue<unknown>, rec: StorageRecorder): Queue<unknown> {
  return {
    send: (body: unknown, opts?: QueueSendOptions) => rec.track('queue', name, 'send', '1 message', () => q.send(body, opts)),
    sendBatch: (msgs: Iterable<MessageSendRequest<unknown>>, opts?: QueueSendBatchOptions) => {
      const list = [...msgs]
      return rec.track('queue', name, 'sendBatch', `${list.length} messages`, () => q.sendBatch(list, opts))
    },
  } as unknown as Queue<unknown>
}

// ---------------------------------------------------------------- env

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null
const has = (v: Record<string, unknown>, ...fns: string[]) => fns.every((f) => typeof v[f] === 'function')

/**
 * A copy of `env` in which every D1 database, KV namespace, Durable Object namespace and
 * queue records its calls on `rec` (recognised by their methods, so test-only bindings such
 * as ISOLATED_DB are covered too); everything else is passed as is.
 */
export function wrapEnv<E extends object>(env: E, rec: StorageRecorder): E {
  const out: Record<string, unknown> = {}
  for (const [name, v] of Object.entries(env)) {
    if (!isObj(v)) out[name] = v
    else if (has(v, 'prepare', 'batch', 'exec')) out[name] = wrapD1(name, v as unknown as D1Database, rec)
    else if (has(v, 'get', 'getWithMetadata', 'put', 'delete', 'list')) out[name] = wrapKv(name, v as unknown as KVNamespace, rec)
    else if (has(v, 'idFromName', 'get')) out[name] = wrapNamespace(name, v as unknown as DurableObjectNamespace, rec)
    else if (has(v, 'send', 'sendBatch')) out[name] = wrapQueue(name, v as unknown as Queue<unknown>, rec)
    else out[name] = v
  }
  return out as E
}

const recorder = new StorageRecorder()
let measuredEnv: Env | undefined
/** The one wrapped env every measurement uses (stable, so per-env isolate caches stay warm). */
export function storageEnv(): Env {
  return (measuredEnv ??= wrapEnv(realEnv as unknown as Env, recorder))
}

let queue: Promise<unknown> = Promise.resolve()

/**
 * Sends one request to the Worker with the recording env and waits for its waitUntil work.
 * Calls that settled before the response was returned are the request's path (`calls`,
 * `stages`, `log`); the ones that settled later are `background`. Measurements run one at
 * a time (they share the recorder), so concurrent callers are queued.
 */
export function measureStorage(input: Request | string, init?: RequestInit): Promise<StorageMeasurement> {
  const run = async (): Promise<StorageMeasurement> => {
    const request = typeof input === 'string' ? new Request(new URL(input, 'http://localhost'), init) : input
    const env = storageEnv()
    recorder.reset()
    const ctx = createExecutionContext()
    const response = await worker.fetch(request, env, ctx)
    const returnedAt = recorder.tick()
    await waitOnExecutionContext(ctx)
    const calls = recorder.calls
    recorder.reset()
    const foreground = calls.filter((c) => c.endSeq < returnedAt)
    const later = calls.filter((c) => c.endSeq > returnedAt)
    return { response, ...group(foreground), background: group(later) }
  }
  const next = queue.then(run, run)
  queue = next.catch(() => undefined)
  return next
}
