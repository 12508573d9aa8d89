import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env'
import { getDb } from '../db'
import { auditStatement, type AuditActor } from '../audit/service'
import { log } from '../lib/logger'
import { applyRows, attemptCost, closeJob, ledgerEntries, type ImportKind, type LedgerEntry, type QueryBudget } from './apply'
import { mappingKind } from './mappings'
import { userKind } from './users'
import { summaryOf, type PreviewRow, type PreviewStatus, type Strategy } from './rows'

/*
 * One object per application (`idFromName(app_id)`) for mapping imports, and one named
 * "users" for the users import. It keeps previews (the parsed, classified file) and jobs
 * in its own SQLite storage and runs each job from its alarm, a chunk of rows at a time:
 * - one job at a time per object: startImport refuses a second one while one runs;
 * - a job survives eviction and restarts: everything it needs is in storage, and the
 *   alarm (at-least-once, retried) picks the work up where the storage says it stopped;
 * - no row is applied twice: each write batch carries a ledger entry in D1 (apply.ts),
 *   which a resumed job consults before applying a chunk again.
 * Why here and not in D1 or KV: docs/import.md ("Where a preview is kept").
 */

export type ImportKindName = 'mappings' | 'users'
const KINDS: Record<ImportKindName, ImportKind> = { mappings: mappingKind, users: userKind }

/** Previews not imported are dropped after this long. */
export const PREVIEW_TTL_MS = 3600_000
/** Finished jobs and their reports are kept this long. */
export const JOB_RETENTION_MS = 7 * 24 * 3600_000
/** Rows per mapping batch (a handful of D1 statements whatever the count, see apply.ts). */
export const CHUNK_ROWS = mappingKind.chunkRows
/** Work done per alarm invocation before the next alarm continues: bounded CPU, wall time and D1 queries. */
const ROWS_PER_ALARM = 10_000
const WALL_PER_ALARM_MS = 5_000
const QUERIES_PER_ALARM = 900
/** Consecutive failed alarm runs before a job is marked failed. */
const MAX_ATTEMPTS = 6

export type JobState = 'running' | 'done' | 'failed'

export interface JobView {
  job_id: string
  kind: ImportKindName
  scope: string
  preview_id: string
  strategy: Strategy
  state: JobState
  total: number
  processed: number
  created: number
  updated: number
  skipped: number
  failed: number
  error: string | null
  created_at: number
  finished_at: number | null
}

export interface StoredPreview {
  preview_id: string
  kind: ImportKindName
  scope: string
  expires_at: number
  summary: ReturnType<typeof summaryOf>
  columns: Record<string, string>
  ignored_columns: string[]
  job_id: string | null
}

export interface ReportRow {
  row: number
  outcome: 'skipped' | 'failed'
  reason: string
  message: string
  data: Record<string, string | null>
}

type StartResult =
  | { ok: true; job: JobView }
  | { ok: false; error: 'import_running'; job_id: string }
  | { ok: false; error: 'preview_not_found' }
  | { ok: false; error: 'preview_already_imported'; job_id: string }

interface JobRow extends Record<string, SqlStorageValue> {
  id: string
  kind: string
  scope: string
  preview_id: string
  strategy: string
  state: string
  total: number
  processed: number
  created: number
  updated: number
  skipped: number
  failed: number
  cursor: number
  actor: string
  attempts: number
  error: string | null
  created_at: number
  finished_at: number | null
}

const jobView = (j: JobRow): JobView => ({
  job_id: j.id,
  kind: j.kind as ImportKindName,
  scope: j.scope,
  preview_id: j.preview_id,
  strategy: j.strategy as Strategy,
  state: j.state as JobState,
  total: j.total,
  processed: j.processed,
  created: j.created,
  updated: j.updated,
  skipped: j.skipped,
  failed: j.failed,
  error: j.error,
  created_at: j.created_at,
  finished_at: j.finished_at,
})

export class MappingImporter extends DurableObject<Env> {
  private sql: SqlStorage

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    this.sql = ctx.storage.sql
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS previews (id TEXT PRIMARY KEY, kind TEXT NOT NULL, scope TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        summary TEXT NOT NULL, columns TEXT NOT NULL, ignored TEXT NOT NULL, job_id TEXT, complete INTEGER NOT NULL DEFAULT 1);
      CREATE TABLE IF NOT EXISTS preview_rows (preview_id TEXT NOT NULL, row INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, message TEXT, fixed INTEGER NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (preview_id, row));
      CREATE INDEX IF NOT EXISTS preview_rows_status ON preview_rows (preview_id, status, row);
      CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, scope TEXT NOT NULL, preview_id TEXT NOT NULL, strategy TEXT NOT NULL, state TEXT NOT NULL,
        total INTEGER NOT NULL, processed INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL DEFAULT 0, updated INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, cursor INTEGER NOT NULL DEFAULT 0, actor TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, error TEXT, created_at INTEGER NOT NULL, finished_at INTEGER);
      CREATE TABLE IF NOT EXISTS job_rows (job_id TEXT NOT NULL, row INTEGER NOT NULL, outcome TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (job_id, row));
    `)
  }

  // ------------------------------------------------------------------ previews

  /**
   * Keeps a classified file until it is imported or expires. A large file comes in slices
   * (`more`: appendPreviewRows follows), so no single call carries all of it; a preview is
   * usable once its last slice is in.
   */
  async storePreview(input: {
    kind: ImportKindName
    scope: string
    rows: PreviewRow[]
    columns: Record<string, string>
    ignored_columns: string[]
    summary?: ReturnType<typeof summaryOf>
    more?: boolean
  }): Promise<StoredPreview> {
    const id = crypto.randomUUID()
    const now = Date.now()
    const summary = input.summary ?? summaryOf(input.rows)
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        'INSERT INTO previews (id, kind, scope, created_at, expires_at, summary, columns, ignored, complete) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        id, input.kind, input.scope, now, now + PREVIEW_TTL_MS, JSON.stringify(summary), JSON.stringify(input.columns), JSON.stringify(input.ignored_columns), input.more ? 0 : 1,
      )
      this.insertRows(id, input.rows)
    })
    await this.schedule()
    return { preview_id: id, kind: input.kind, scope: input.scope, expires_at: now + PREVIEW_TTL_MS, summary, columns: input.columns, ignored_columns: input.ignored_columns, job_id: null }
  }

  async appendPreviewRows(id: string, rows: PreviewRow[], last: boolean): Promise<boolean> {
    const ok = this.sql.exec('SELECT 1 FROM previews WHERE id = ? AND complete = 0', id).toArray().length > 0
    if (!ok) return false
    this.ctx.storage.transactionSync(() => {
      this.insertRows(id, rows)
      if (last) this.sql.exec('UPDATE previews SET complete = 1 WHERE id = ?', id)
    })
    return true
  }

  private insertRows(id: string, rows: PreviewRow[]) {
    for (const r of rows) {
      this.sql.exec('INSERT INTO preview_rows (preview_id, row, status, reason, message, fixed, data) VALUES (?, ?, ?, ?, ?, ?, ?)', id, r.row, r.status, r.reason, r.message, r.fixed ? 1 : 0, JSON.stringify(r.data))
    }
  }

  private preview(id: string): StoredPreview | null {
    const p = this.sql.exec<{ id: string; kind: string; scope: string; expires_at: number; summary: string; columns: string; ignored: string; job_id: string | null }>('SELECT * FROM previews WHERE id = ? AND complete = 1', id).toArray()[0]
    if (!p || (p.expires_at <= Date.now() && !p.job_id)) return null
    return { preview_id: p.id, kind: p.kind as ImportKindName, scope: p.scope, expires_at: p.expires_at, summary: JSON.parse(p.summary), columns: JSON.parse(p.columns), ignored_columns: JSON.parse(p.ignored), job_id: p.job_id }
  }

  /** A page of a preview's rows in file order, optionally of one status. */
  async previewPage(id: string, q: { status?: PreviewStatus; page: number; pageSize: number }) {
    const p = this.preview(id)
    if (!p || p.job_id) return null
    const where = q.status ? 'preview_id = ? AND status = ?' : 'preview_id = ?'
    const args = q.status ? [id, q.status] : [id]
    const rows = this.sql
      .exec<{ row: number; status: string; reason: string | null; message: string | null; fixed: number; data: string }>(`SELECT * FROM preview_rows WHERE ${where} ORDER BY row LIMIT ? OFFSET ?`, ...args, q.pageSize, (q.page - 1) * q.pageSize)
      .toArray()
      .map((r) => ({ row: r.row, status: r.status as PreviewStatus, reason: r.reason, message: r.message, fixed: !!r.fixed, data: JSON.parse(r.data) }) satisfies PreviewRow)
    const matching = q.status ? p.summary[q.status] : p.summary.total
    return { preview: p, rows, matching }
  }

  // ------------------------------------------------------------------ jobs

  /**
   * Starts importing a preview. The check for a running job and the job's insert happen
   * without an await between them, so two requests cannot both start one.
   */
  async startImport(input: { previewId: string; strategy: Strategy; actor: AuditActor; auditAction: string; targetType: string }): Promise<StartResult> {
    const running = this.sql.exec<{ id: string }>("SELECT id FROM jobs WHERE state = 'running' LIMIT 1").toArray()[0]
    if (running) return { ok: false, error: 'import_running', job_id: running.id }
    const p = this.preview(input.previewId)
    if (!p) return { ok: false, error: 'preview_not_found' }
    if (p.job_id) return { ok: false, error: 'preview_already_imported', job_id: p.job_id }
    const id = crypto.randomUUID()
    const now = Date.now()
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "INSERT INTO jobs (id, kind, scope, preview_id, strategy, state, total, actor, created_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)",
        id, p.kind, p.scope, p.preview_id, input.strategy, p.summary.total, JSON.stringify(input.actor), now,
      )
      this.sql.exec('UPDATE previews SET job_id = ? WHERE id = ?', id, p.preview_id)
    })
    try {
      const db = getDb(this.env.DB)
      await db.batch([auditStatement(db, { ...input.actor, action: `${input.auditAction}.start`, targetType: input.targetType, targetId: p.kind === 'mappings' ? p.scope : null, details: { job_id: id, preview_id: p.preview_id, strategy: input.strategy, summary: p.summary } })])
    } catch (e) {
      // not audited, not started
      this.ctx.storage.transactionSync(() => {
        this.sql.exec('DELETE FROM jobs WHERE id = ?', id)
        this.sql.exec('UPDATE previews SET job_id = NULL WHERE id = ?', p.preview_id)
      })
      throw e
    }
    await this.ctx.storage.setAlarm(Date.now())
    return { ok: true, job: jobView(this.jobRow(id)!) }
  }

  private jobRow(id: string): JobRow | undefined {
    return this.sql.exec<JobRow>('SELECT * FROM jobs WHERE id = ?', id).toArray()[0]
  }

  async job(id: string): Promise<JobView | null> {
    const j = this.jobRow(id)
    return j ? jobView(j) : null
  }

  /** The rows of a job that were not applied, in file order (the CSV report). */
  async report(id: string): Promise<{ job: JobView; rows: ReportRow[] } | null> {
    const j = this.jobRow(id)
    if (!j) return null
    const rows = this.sql
      .exec<{ row: number; outcome: string; reason: string; message: string; data: string }>('SELECT row, outcome, reason, message, data FROM job_rows WHERE job_id = ? ORDER BY row', id)
      .toArray()
      .map((r) => ({ row: r.row, outcome: r.outcome as ReportRow['outcome'], reason: r.reason, message: r.message, data: JSON.parse(r.data) }))
    return { job: jobView(j), rows }
  }

  // ------------------------------------------------------------------ the work

  async alarm() {
    const j = this.sql.exec<JobRow>("SELECT * FROM jobs WHERE state = 'running' ORDER BY created_at LIMIT 1").toArray()[0]
    if (j) await this.work(j)
    this.cleanup()
    await this.schedule()
  }

  private async work(j: JobRow) {
    const kind = KINDS[j.kind as ImportKindName]
    const ctx = { jobId: j.id, scope: j.scope, strategy: j.strategy as Strategy, actor: JSON.parse(j.actor) as AuditActor }
    const started = Date.now()
    let done = 0
    const budget: QueryBudget = { left: QUERIES_PER_ALARM }
    try {
      while (done < ROWS_PER_ALARM && Date.now() - started < WALL_PER_ALARM_MS && budget.left >= attemptCost(kind, kind.chunkRows) + 1) {
        const rows = this.sql
          .exec<{ row: number; status: string; reason: string | null; message: string | null; fixed: number; data: string }>('SELECT * FROM preview_rows WHERE preview_id = ? AND row > ? ORDER BY row LIMIT ?', j.preview_id, j.cursor, kind.chunkRows)
          .toArray()
          .map((r) => ({ row: r.row, status: r.status as PreviewStatus, reason: r.reason, message: r.message, fixed: !!r.fixed, data: JSON.parse(r.data) }) satisfies PreviewRow)
        if (!rows.length) {
          await closeJob(this.env, ctx, kind, { total: j.total, created: j.created, updated: j.updated, skipped: j.skipped, failed: j.failed })
          this.ctx.storage.transactionSync(() => {
            this.sql.exec("UPDATE jobs SET state = 'done', processed = total, attempts = 0, error = NULL, finished_at = ? WHERE id = ?", Date.now(), j.id)
            this.sql.exec('DELETE FROM preview_rows WHERE preview_id = ?', j.preview_id)
          })
          return
        }
        // a batch committed before the object stopped is in the ledger: adopt it, do not apply it again
        const entries = await ledgerEntries(this.env, j.id, rows[0].row, rows[rows.length - 1].row)
        budget.left--
        const covered = (row: number) => entries.some((e) => row >= e.rowFrom && row <= e.rowTo)
        const unapplied = rows.filter((r) => !covered(r.row))
        if (unapplied.length) entries.push(...(await applyRows(this.env, ctx, kind, unapplied, budget)))
        done += this.record(j, rows, entries)
      }
    } catch (e) {
      const attempts = j.attempts + 1
      const message = String((e as Error)?.message ?? e).slice(0, 500)
      log.error('import.chunk_failed', { job_id: j.id, attempts, error: message })
      if (attempts >= MAX_ATTEMPTS) {
        this.sql.exec("UPDATE jobs SET state = 'failed', attempts = ?, error = ?, finished_at = ? WHERE id = ?", attempts, message, Date.now(), j.id)
      } else {
        this.sql.exec('UPDATE jobs SET attempts = ?, error = ? WHERE id = ?', attempts, message, j.id)
        // back off: 1, 2, 4, 8, 16 s
        await this.ctx.storage.setAlarm(Date.now() + 1000 * 2 ** (attempts - 1))
      }
    }
  }

  /**
   * Progress and the report rows of one chunk, in one storage transaction. The cursor moves
   * past the rows the ledger entries cover, in order (all of them, unless the invocation's
   * query budget cut the chunk short). Answers the number of rows done.
   */
  private record(j: JobRow, rows: PreviewRow[], entries: LedgerEntry[]): number {
    const data = new Map(rows.map((r) => [r.row, r.data]))
    let n = 0
    for (const r of rows) {
      if (!entries.some((e) => r.row >= e.rowFrom && r.row <= e.rowTo)) break
      n++
    }
    if (!n) return 0
    const last = rows[n - 1].row
    this.ctx.storage.transactionSync(() => {
      for (const e of entries) {
        if (e.rowFrom > last) continue
        j.created += e.outcome.created
        j.updated += e.outcome.updated
        j.skipped += e.outcome.skipped
        j.failed += e.outcome.failed
        for (const r of e.outcome.rows) {
          const { password_hash: _hash, ...shown } = data.get(r.row) ?? {}
          this.sql.exec('INSERT OR REPLACE INTO job_rows (job_id, row, outcome, reason, message, data) VALUES (?, ?, ?, ?, ?, ?)', j.id, r.row, r.outcome, r.reason, r.message, JSON.stringify(shown))
        }
      }
      j.processed += n
      j.cursor = last
      j.attempts = 0
      this.sql.exec('UPDATE jobs SET processed = ?, created = ?, updated = ?, skipped = ?, failed = ?, cursor = ?, attempts = 0, error = NULL WHERE id = ?', j.processed, j.created, j.updated, j.skipped, j.failed, j.cursor, j.id)
    })
    return n
  }

  /** Drops expired previews and old jobs. */
  private cleanup(now = Date.now()) {
    this.ctx.storage.transactionSync(() => {
      for (const { id } of this.sql.exec<{ id: string }>('SELECT id FROM previews WHERE job_id IS NULL AND expires_at <= ?', now).toArray()) {
        this.sql.exec('DELETE FROM preview_rows WHERE preview_id = ?', id)
        this.sql.exec('DELETE FROM previews WHERE id = ?', id)
      }
      for (const { id, preview_id } of this.sql.exec<{ id: string; preview_id: string }>("SELECT id, preview_id FROM jobs WHERE state != 'running' AND finished_at <= ?", now - JOB_RETENTION_MS).toArray()) {
        this.sql.exec('DELETE FROM job_rows WHERE job_id = ?', id)
        this.sql.exec('DELETE FROM preview_rows WHERE preview_id = ?', preview_id)
        this.sql.exec('DELETE FROM previews WHERE id = ?', preview_id)
        this.sql.exec('DELETE FROM jobs WHERE id = ?', id)
      }
    })
  }

  /** The next alarm: now while a job runs (unless a back-off is set), else the next expiry. */
  private async schedule() {
    const running = this.sql.exec("SELECT 1 FROM jobs WHERE state = 'running' LIMIT 1").toArray().length > 0
    const current = await this.ctx.storage.getAlarm()
    if (running) {
      if (current === null) await this.ctx.storage.setAlarm(Date.now())
      return
    }
    const next = this.sql
      .exec<{ at: number | null }>(
        `SELECT min(at) AS at FROM (SELECT min(expires_at) AS at FROM previews WHERE job_id IS NULL UNION ALL SELECT min(finished_at) + ${JOB_RETENTION_MS} FROM jobs WHERE state != 'running')`,
      )
      .one().at
    if (next === null) {
      if (current !== null) await this.ctx.storage.deleteAlarm()
    } else if (current === null || current > next) await this.ctx.storage.setAlarm(next)
  }
}
