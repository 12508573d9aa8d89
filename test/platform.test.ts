import { describe, expect, it, vi } from 'vitest'
import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test'
import worker from '../src/index'
import { buildApp } from '../src/app'
import type { MappingImporter } from '../src/importer/durable-object'
import { dispatchQueueBatch, DLQ_NAME, retryDelaySeconds } from '../src/queue/dispatcher'
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
  const actor = { actorType: 'admin' as const, actorId: null, requestId: 'r', ip: '127.0.0.1' }
  const row = (n: number) => ({ row: n, status: 'invalid' as const, reason: 'invalid_mobile', message: 'bad', fixed: true, data: { mobile: 'x', mapped_key: 'k', name: null } })
  const previewFor = (stub: DurableObjectStub<MappingImporter>, appId: string, rows = 3) =>
    stub.storePreview({ kind: 'mappings', scope: appId, rows: Array.from({ length: rows }, (_, i) => row(i + 2)), columns: {}, ignored_columns: [] })
  const start = (stub: DurableObjectStub<MappingImporter>, previewId: string) => stub.startImport({ previewId, strategy: 'SKIP', actor, auditAction: 'admin.mapping.import', targetType: 'application' })

  it('starts one job at a time, keeps its progress in storage, and the next one may start once it is done', async () => {
    const appId = `app_${crypto.randomUUID()}`
    const stub = stubFor(appId)
    const [p1, p2] = [await previewFor(stub, appId), await previewFor(stub, appId)]
    expect(p1.summary).toEqual({ total: 3, new: 0, duplicate: 0, invalid: 3 })
    const a = await start(stub, p1.preview_id)
    expect(a).toMatchObject({ ok: true, job: { state: 'running', total: 3, processed: 0 } })
    const jobId = (a as { job: { job_id: string } }).job.job_id
    expect(await start(stub, p2.preview_id)).toEqual({ ok: false, error: 'import_running', job_id: jobId })
    expect(await start(stub, p1.preview_id)).toMatchObject({ ok: false })
    // the object's own storage holds the job, whatever happens to the instance
    const stored = await runInDurableObject(stub, (_i, state) => state.storage.sql.exec<{ id: string; total: number }>('SELECT id, total FROM jobs').toArray())
    expect(stored).toEqual([{ id: jobId, total: 3 }])
    await runDurableObjectAlarm(stub)
    for (let i = 0; i < 100 && (await stub.job(jobId))?.state === 'running'; i++) await new Promise((r) => setTimeout(r, 20))
    expect(await stub.job(jobId)).toMatchObject({ state: 'done', processed: 3, failed: 3 })
    expect(await start(stub, p1.preview_id)).toEqual({ ok: false, error: 'preview_already_imported', job_id: jobId })
    expect(await start(stub, p2.preview_id)).toMatchObject({ ok: true })
  })

  it('imports for different apps do not block each other', async () => {
    const [x, y] = [`app_${crypto.randomUUID()}`, `app_${crypto.randomUUID()}`]
    const a = stubFor(x)
    const b = stubFor(y)
    expect(await start(a, (await previewFor(a, x)).preview_id)).toMatchObject({ ok: true })
    expect(await start(b, (await previewFor(b, y)).preview_id)).toMatchObject({ ok: true })
  })

  it('a preview expires (alarm) unless imported', async () => {
    const appId = `app_${crypto.randomUUID()}`
    const stub = stubFor(appId)
    const p = await previewFor(stub, appId)
    await runInDurableObject(stub, (_i, state) => void state.storage.sql.exec('UPDATE previews SET expires_at = ? WHERE id = ?', Date.now() - 1, p.preview_id))
    await runDurableObjectAlarm(stub)
    expect(await stub.previewPage(p.preview_id, { page: 1, pageSize: 10 })).toBeNull()
    const left = await runInDurableObject(stub, (_i, state) => state.storage.sql.exec('SELECT count(*) AS n FROM preview_rows WHERE preview_id = ?', p.preview_id).one().n)
    expect(left).toBe(0)
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
    await dispatchQueueBatch(handlers, batch, env)
    const result = await getQueueResult(batch, ctx)
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(['fail-1'])
    expect(retrySpy).toHaveBeenCalledWith({ delaySeconds: retryDelaySeconds(3) })
    expect(result.explicitAcks).toEqual(['ok-1'])
    expect(seen).toEqual([1])
    expect([1, 2, 3, 10, 20].map(retryDelaySeconds)).toEqual([10, 20, 40, 900, 900])
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
