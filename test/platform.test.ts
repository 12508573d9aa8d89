import { describe, expect, it, vi } from 'vitest'
import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test'
import worker from '../src/index'
import { buildApp } from '../src/app'
import { MappingImporter, type ImportProgress } from '../src/importer/durable-object'
import { backoffSeconds, dispatchQueueBatch, DLQ_NAME, queueRetryDelay, retryDelaySeconds } from '../src/queue/dispatcher'
import { REFRESH_GRACE_MS } from '../src/auth/tokens'
import { api, createUser, env, login } from './helpers'

describe('probes', () => {
  it('GET /healthz reports D1 reachability', async () => {
    const r = await api('/healthz')
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ status: 'ok', d1: 'ok' })
    expect(Date.parse(r.body.time)).toBeGreaterThan(0)
  })

  it('GET /healthz answers 503 degraded when D1 fails', async () => {
    const brokenDb = { prepare: () => { throw new Error('D1 is down') } } as unknown as D1Database
    const res = await buildApp().fetch(new Request('http://localhost/healthz'), { ...env, DB: brokenDb }, createExecutionContext())
    expect(res.status).toBe(503)
    expect(await res.json()).toMatchObject({ status: 'degraded', d1: 'unreachable' })
  })

  it('GET /livez answers without any binding', async () => {
    const none = { ...env, DB: undefined, KV: undefined, WEBHOOK_QUEUE: undefined, MAPPING_IMPORTER: undefined, RATE_LIMITER: undefined } as unknown as typeof env
    const res = await buildApp().fetch(new Request('http://localhost/livez'), none, createExecutionContext())
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok' })
  })
})

describe('MappingImporter Durable Object (one per app)', () => {
  const stubFor = (appId: string) => env.MAPPING_IMPORTER.get(env.MAPPING_IMPORTER.idFromName(appId)) as DurableObjectStub<MappingImporter>

  it('begin → report → finish → status, and a second begin is refused while one runs', async () => {
    const stub = stubFor(`app_${crypto.randomUUID()}`)
    expect(await stub.status()).toBeNull()
    expect(await stub.begin('job-1', 100)).toEqual({ ok: true })
    const refused = (await stub.begin('job-2', 5)) as { ok: boolean; running?: ImportProgress }
    expect(refused.ok).toBe(false)
    expect(refused.running).toMatchObject({ jobId: 'job-1', state: 'running', total: 100 })

    expect(await stub.report('job-1', 40)).toMatchObject({ processed: 40 })
    expect(await stub.report('job-1', 500)).toMatchObject({ processed: 100 }) // capped at total
    expect(await stub.report('job-2', 1)).toBeNull() // not the running job
    expect(await stub.status()).toMatchObject({ jobId: 'job-1', state: 'running', processed: 100 })

    const done = (await stub.finish('job-1', 'done', { created: 100 })) as ImportProgress | null
    expect(done).toMatchObject({ state: 'done', processed: 100, result: { created: 100 } })
    expect(done!.finishedAt).toBeGreaterThanOrEqual(done!.startedAt)
    expect(await stub.report('job-1', 1)).toBeNull() // finished jobs take no more reports

    // once finished, the next job may start
    expect(await stub.begin('job-2', 5)).toEqual({ ok: true })
    expect(await stub.status()).toMatchObject({ jobId: 'job-2', processed: 0 })
  })

  it('imports for different apps do not block each other', async () => {
    const a = stubFor(`app_${crypto.randomUUID()}`)
    const b = stubFor(`app_${crypto.randomUUID()}`)
    expect(await a.begin('a', 1)).toEqual({ ok: true })
    expect(await b.begin('b', 1)).toEqual({ ok: true })
  })

  it('a job that keeps reporting stays running; one that stopped reporting for STALE_MS can be replaced', async () => {
    const stub = stubFor(`app_${crypto.randomUUID()}`)
    await stub.begin('slow', 10)
    const age = async (field: 'startedAt' | 'reportedAt', ms: number) =>
      runInDurableObject(stub, async (_i, state) => {
        const cur = (await state.storage.get<ImportProgress>('current'))!
        cur[field] -= ms
        await state.storage.put('current', cur)
      })
    // started long ago but reported just now: still alive
    await age('startedAt', MappingImporter.STALE_MS * 3)
    await stub.report('slow', 5)
    expect((await stub.begin('other', 1)).ok).toBe(false)
    // silent for longer than STALE_MS: presumed dead
    await age('reportedAt', MappingImporter.STALE_MS + 1000)
    expect(await stub.begin('other', 1)).toEqual({ ok: true })
    expect(await stub.status()).toMatchObject({ jobId: 'other', state: 'running' })
  })

  it('progress survives in the object storage', async () => {
    const stub = stubFor(`app_${crypto.randomUUID()}`)
    await stub.begin('persist', 3)
    const stored = await runInDurableObject(stub, (_i, state) => state.storage.get<ImportProgress>('current'))
    expect(stored).toMatchObject({ jobId: 'persist', total: 3 })
  })
})

describe('queue consumer', () => {
  const auditFor = (msgId: string) => env.DB.prepare("SELECT * FROM audit_logs WHERE action = 'queue.dead_letter' AND target_id = ?").bind(msgId).first<Record<string, any>>()

  it('an unknown job kind is acked and recorded as queue.dead_letter', async () => {
    const id = `msg-${crypto.randomUUID()}`
    const batch = createMessageBatch('uap-edge-webhooks', [{ id, timestamp: new Date(), attempts: 1, body: { kind: 'no.such.kind', x: 1 } }])
    const ctx = createExecutionContext()
    await worker.queue(batch, env, ctx)
    const result = await getQueueResult(batch, ctx)
    expect(result.explicitAcks).toEqual([id])
    expect(result.retryMessages).toEqual([])
    const row = await auditFor(id)
    expect(row).toMatchObject({ action: 'queue.dead_letter', actor_type: 'system', target_type: 'queue_message', target_id: id })
    expect(JSON.parse(row!.details)).toEqual({ queue: 'uap-edge-webhooks', body: { kind: 'no.such.kind', x: 1 } })
  })

  it('a failing handler asks for a retry with backoff; a succeeding one acks', async () => {
    const failKind = `test.fail.${crypto.randomUUID()}`
    const okKind = `test.ok.${crypto.randomUUID()}`
    const seen: number[] = []
    const handlers = {
      [failKind]: async () => {
        throw new Error('receiver down')
      },
      [okKind]: async (_job: unknown, _env: unknown, attempt: number) => {
        seen.push(attempt)
      },
    }
    const batch = createMessageBatch('uap-edge-webhooks', [
      { id: 'fail-1', timestamp: new Date(), attempts: 3, body: { kind: failKind } },
      { id: 'ok-1', timestamp: new Date(), attempts: 1, body: { kind: okKind } },
    ])
    const retrySpy = vi.spyOn(batch.messages[0], 'retry')
    const ctx = createExecutionContext()
    await dispatchQueueBatch(handlers, batch, { ...env, QUEUE_RETRY_BASE_S: '10' })
    const result = await getQueueResult(batch, ctx)
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(['fail-1'])
    expect(retrySpy).toHaveBeenCalledWith({ delaySeconds: retryDelaySeconds(3) })
    // the base is QUEUE_RETRY_BASE_S (the suite runs with 0, so real-queue retries come at once)
    expect(queueRetryDelay(env, 3)).toBe(0)
    expect([1, 2, 3, 10].map((a) => backoffSeconds(a, 1))).toEqual([1, 2, 4, 512])
    expect(result.explicitAcks).toEqual(['ok-1'])
    expect(seen).toEqual([1])
    expect([1, 2, 3, 10, 20].map(retryDelaySeconds)).toEqual([10, 20, 40, 900, 900])
  })

  it('a batch handler gets every message of its kind at once and settles each by its own result', async () => {
    const kind = `test.batch.${crypto.randomUUID()}`
    const calls: { job: { n: number }; attempt: number }[][] = []
    const handlers = {
      [kind]: {
        batch: async (items: { job: any; attempt: number }[]) => {
          calls.push(items)
          return items.map((i) => (i.job.n % 2 ? new Error(`odd ${i.job.n}`) : null))
        },
      },
    }
    const batch = createMessageBatch('uap-edge-webhooks', [1, 2, 3, 4].map((n) => ({ id: `b-${n}`, timestamp: new Date(), attempts: n, body: { kind, n } })))
    const ctx = createExecutionContext()
    await dispatchQueueBatch(handlers, batch, env)
    const result = await getQueueResult(batch, ctx)
    expect(calls).toHaveLength(1)
    expect(calls[0].map((i) => [i.job.n, i.attempt])).toEqual([[1, 1], [2, 2], [3, 3], [4, 4]])
    expect(result.explicitAcks.sort()).toEqual(['b-2', 'b-4'])
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId).sort()).toEqual(['b-1', 'b-3'])
  })

  it('messages arriving on the dead-letter queue are recorded and acked', async () => {
    const id = `dlq-${crypto.randomUUID()}`
    const batch = createMessageBatch(DLQ_NAME, [{ id, timestamp: new Date(), attempts: 6, body: { kind: 'webhook.deliver', event_id: 'evt_1' } }])
    const ctx = createExecutionContext()
    await worker.queue(batch, env, ctx)
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual([id])
    expect(JSON.parse((await auditFor(id))!.details)).toMatchObject({ queue: DLQ_NAME, body: { event_id: 'evt_1' } })
  })
})

/** The Worker's own `scheduled` export, as the cron trigger calls it. */
async function runCron() {
  const ctx = createExecutionContext()
  await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: '*/5 * * * *' }), env, ctx)
  await waitOnExecutionContext(ctx)
}

describe('scheduled handler (cron)', () => {
  it('deletes sessions and refresh tokens a day past expiry or revocation, and drops stale successor copies', async () => {
    const u = await createUser()
    const live = await login(u.mobile, u.password)
    const now = Date.now()
    const day = 86400_000
    const insertSession = (id: string, expiresAt: number, revokedAt: number | null) =>
      env.DB.prepare('INSERT INTO sessions (id, user_id, auth_time, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)').bind(id, u.id, now - 40 * day, now - 40 * day, expiresAt, revokedAt).run()
    const insertToken = (id: string, sessionId: string, expiresAt: number) =>
      env.DB.prepare("INSERT INTO refresh_tokens (id, token_hash, family_id, session_id, user_id, audience, status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, 'uap-edge', 'ACTIVE', ?, ?)")
        .bind(id, crypto.randomUUID(), crypto.randomUUID(), sessionId, u.id, now - 40 * day, expiresAt)
        .run()
    const expired = crypto.randomUUID()
    const revoked = crypto.randomUUID()
    const recentlyRevoked = crypto.randomUUID()
    await insertSession(expired, now - 2 * day, null)
    await insertSession(revoked, now + 10 * day, now - 2 * day)
    await insertSession(recentlyRevoked, now + 10 * day, now - 3600_000)
    const oldToken = crypto.randomUUID()
    await insertToken(oldToken, recentlyRevoked, now - 2 * day)
    // a rotation long past the grace window still holding the successor copy
    const rotated = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: live.refresh_token } })
    expect(rotated.status).toBe(200)
    await env.DB.prepare('UPDATE refresh_tokens SET rotated_at = ? WHERE user_id = ? AND successor_enc IS NOT NULL').bind(now - REFRESH_GRACE_MS - 60_000, u.id).run()

    await runCron() // throws if any cron task failed

    const sessionIds = (await env.DB.prepare('SELECT id FROM sessions WHERE user_id = ?').bind(u.id).all<{ id: string }>()).results.map((r) => r.id)
    expect(sessionIds).not.toContain(expired)
    expect(sessionIds).not.toContain(revoked)
    expect(sessionIds).toContain(recentlyRevoked)
    expect(sessionIds.length).toBe(2) // the live login session + recentlyRevoked
    expect(await env.DB.prepare('SELECT id FROM refresh_tokens WHERE id = ?').bind(oldToken).first()).toBeNull()
    const withCopy = await env.DB.prepare('SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ? AND successor_enc IS NOT NULL').bind(u.id).first<{ n: number }>()
    expect(withCopy!.n).toBe(0)
    // the live session keeps working
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: rotated.body.refresh_token } })).status).toBe(200)
  })
})

describe('structured logs', () => {
  it('one JSON line per request with the request id; LOG_LEVEL=warn silences the access log', async () => {
    const lines: string[] = []
    const spy = vi.spyOn(console, 'log').mockImplementation((l: string) => void lines.push(l))
    try {
      const app = buildApp()
      await app.fetch(new Request('http://localhost/livez', { headers: { 'X-Request-Id': 'log-test-0001' } }), env, createExecutionContext())
      const entry = lines.map((l) => JSON.parse(l)).find((l) => l.request_id === 'log-test-0001')
      expect(entry).toMatchObject({ level: 'info', msg: 'request', method: 'GET', path: '/livez', status: 200 })
      lines.length = 0
      await app.fetch(new Request('http://localhost/livez', { headers: { 'X-Request-Id': 'log-test-0002' } }), { ...env, LOG_LEVEL: 'warn' }, createExecutionContext())
      expect(lines.filter((l) => l.includes('log-test-0002'))).toEqual([])
    } finally {
      spy.mockRestore()
      await buildApp().fetch(new Request('http://localhost/livez'), env, createExecutionContext()) // back to the default level
    }
  })
})
