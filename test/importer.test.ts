import { describe, expect, it } from 'vitest'
import { env, runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import type { MappingImporter } from '../src/importer/durable-object'

// The importer object's own interface; the HTTP flows are in import.test.ts and import-users.test.ts.
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
