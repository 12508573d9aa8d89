import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env'

export interface ImportProgress {
  jobId: string
  state: 'running' | 'done' | 'failed'
  total: number
  processed: number
  startedAt: number
  /** last begin/report: a running job that stops reporting is considered dead after STALE_MS */
  reportedAt: number
  finishedAt?: number
  result?: unknown
}

/**
 * One instance per application (`idFromName(app_id)`). A Durable Object runs one request
 * at a time per id, so bulk work for an app is serialized here: `begin` refuses a second
 * job while one runs, and progress survives restarts in the object's SQLite storage.
 */
export class MappingImporter extends DurableObject<Env> {
  /** A job that has not reported for this long is considered dead and can be replaced. */
  static STALE_MS = 10 * 60_000

  async begin(jobId: string, total: number): Promise<{ ok: true } | { ok: false; running: ImportProgress }> {
    const current = await this.ctx.storage.get<ImportProgress>('current')
    const now = Date.now()
    if (current && current.state === 'running' && now - (current.reportedAt ?? current.startedAt) < MappingImporter.STALE_MS) {
      return { ok: false, running: current }
    }
    await this.ctx.storage.put('current', { jobId, state: 'running', total, processed: 0, startedAt: now, reportedAt: now } satisfies ImportProgress)
    return { ok: true }
  }

  async report(jobId: string, processed: number): Promise<ImportProgress | null> {
    const current = await this.ctx.storage.get<ImportProgress>('current')
    if (!current || current.jobId !== jobId || current.state !== 'running') return null
    current.processed = Math.min(current.total, processed)
    current.reportedAt = Date.now()
    await this.ctx.storage.put('current', current)
    return current
  }

  async finish(jobId: string, state: 'done' | 'failed', result?: unknown): Promise<ImportProgress | null> {
    const current = await this.ctx.storage.get<ImportProgress>('current')
    if (!current || current.jobId !== jobId) return null
    const next: ImportProgress = { ...current, state, finishedAt: Date.now(), result, processed: state === 'done' ? current.total : current.processed }
    await this.ctx.storage.put('current', next)
    return next
  }

  async status(): Promise<ImportProgress | null> {
    return (await this.ctx.storage.get<ImportProgress>('current')) ?? null
  }
}
