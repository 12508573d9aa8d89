import { describe, expect, it } from 'vitest'
import { env, runInDurableObject } from 'cloudflare:test'
import { MappingImporter, type ImportProgress } from '../src/importer/durable-object'

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
