import { and, eq, gte, lte, lt } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { dbErrorText } from '../lib/errors'
import { auditStatement } from '../audit/service'
import { importLedger, type LedgerOutcome } from './schema'
import type { Applied, JobContext, PreviewRow } from './rows'
import { REASONS } from './rows'

type Stmt = BatchItem<'sqlite'>

/**
 * What a kind (mappings, users) plans for some rows against the database as it is now.
 * `applied` is in row order and may stop short of the last row (a batch that would hold
 * too many statements): the rows after it are planned in the next batch.
 */
export interface Plan {
  statements: Stmt[]
  applied: Applied[]
  /** run once the batch committed (e.g. session-end hooks) */
  after?: () => Promise<void>
}

export interface ImportKind {
  /** rows planned and written per batch */
  chunkRows: number
  /** D1 queries a plan reads, and the most statements a batch of `rows` rows can hold (bounds a batch before it is planned) */
  planReads: number
  maxStatements(rows: number): number
  /** audit action of a write batch, e.g. admin.mapping.import */
  auditAction(job: JobContext): string
  auditTarget(job: JobContext): { targetType: string; targetId: string | null }
  plan(env: Env, job: JobContext, rows: PreviewRow[]): Promise<Plan>
  /** a failed batch that a fresh plan may get through (a concurrent writer won a race) */
  isConflict(e: unknown): boolean
}

export interface LedgerEntry {
  rowFrom: number
  rowTo: number
  outcome: LedgerOutcome
}

const PLAN_ATTEMPTS = 3

/**
 * D1 queries left in this invocation (D1 allows 1,000 per invocation; each statement of a
 * batch counted as one, to be safe). Work stops before a step that could go over, and the
 * next alarm carries on from the ledger.
 */
export interface QueryBudget {
  left: number
}

/** The most queries one attempt at `rows` rows can cost: the plan's reads, its statements, the ledger entry, the audit row, a ledger read. */
export const attemptCost = (kind: ImportKind, rows: number) => kind.planReads + kind.maxStatements(rows) + 3

function entryOf(rows: PreviewRow[], applied: Applied[]): LedgerEntry {
  const outcome: LedgerOutcome = { created: 0, updated: 0, skipped: 0, failed: 0, rows: [] }
  for (const a of applied) {
    outcome[a.outcome]++
    if (a.outcome === 'skipped' || a.outcome === 'failed') outcome.rows.push({ row: a.row, outcome: a.outcome, reason: a.reason ?? '', message: a.message ?? '' })
  }
  return { rowFrom: rows[0].row, rowTo: applied[applied.length - 1].row, outcome }
}

function ledgerStatement(db: DB, jobId: string, e: LedgerEntry, now: number) {
  return db.insert(importLedger).values({ jobId, rowFrom: e.rowFrom, rowTo: e.rowTo, outcome: e.outcome, createdAt: now })
}

const isLedgerConflict = (e: unknown) =>
  /UNIQUE constraint failed: import_ledger\.job_id, import_ledger\.row_from/.test(dbErrorText(e))

/** The batches of a job already committed for rows `from`..`to` (a resumed job adopts them). */
export async function ledgerEntries(env: Env, jobId: string, from: number, to: number): Promise<LedgerEntry[]> {
  const rows = await getDb(env.DB)
    .select()
    .from(importLedger)
    .where(and(eq(importLedger.jobId, jobId), gte(importLedger.rowFrom, from), lte(importLedger.rowFrom, to)))
  return rows.map((r) => ({ rowFrom: r.rowFrom, rowTo: r.rowTo, outcome: r.outcome }))
}

/**
 * One write batch: the kind's statements, the ledger entry and the audit row. Answers the
 * entry, or null when a concurrent writer broke the plan. If the ledger already has this
 * batch (a resumed job racing its own earlier run), the stored entry is the answer.
 */
async function commit(env: Env, job: JobContext, kind: ImportKind, rows: PreviewRow[], plan: Plan): Promise<LedgerEntry | null> {
  const db = getDb(env.DB)
  const entry = entryOf(rows, plan.applied)
  const now = Date.now()
  const { created, updated, skipped, failed } = entry.outcome
  const statements: Stmt[] = [...plan.statements, ledgerStatement(db, job.jobId, entry, now)]
  if (created + updated > 0) {
    statements.push(
      auditStatement(db, { ...job.actor, action: kind.auditAction(job), ...kind.auditTarget(job), details: { job_id: job.jobId, rows: [entry.rowFrom, entry.rowTo], created, updated, skipped, failed } }),
    )
  }
  try {
    await db.batch(statements as [Stmt, ...Stmt[]])
  } catch (e) {
    if (isLedgerConflict(e)) return (await ledgerEntries(env, job.jobId, entry.rowFrom, entry.rowFrom))[0] ?? null
    if (kind.isConflict(e)) return null
    throw e
  }
  await plan.after?.()
  return entry
}

/**
 * Applies rows none of which is in the ledger yet. The rows are planned together and
 * written in one batch; when a concurrent writer breaks the plan, they are planned again
 * against fresh reads, and after that one at a time, so each row is still all-or-nothing
 * with its outbox event, its ledger entry and its audit row.
 */
export async function applyRows(env: Env, job: JobContext, kind: ImportKind, rows: PreviewRow[], budget: QueryBudget): Promise<LedgerEntry[]> {
  const attempt = async (part: PreviewRow[]) => {
    const plan = await kind.plan(env, job, part)
    budget.left -= kind.planReads + plan.statements.length + 3
    return commit(env, job, kind, part, plan)
  }
  // what does not fit this invocation's budget waits for the next one; what is done is in the ledger
  for (let n = 0; n < PLAN_ATTEMPTS; n++) {
    if (budget.left < attemptCost(kind, rows.length)) return []
    const entry = await attempt(rows)
    if (entry) return [entry]
  }
  const out: LedgerEntry[] = []
  for (const r of rows) {
    if (budget.left < PLAN_ATTEMPTS * attemptCost(kind, 1) + 1) break
    let entry: LedgerEntry | null = null
    for (let n = 0; n < PLAN_ATTEMPTS && !entry; n++) entry = await attempt([r])
    entry ??= await commit(env, job, kind, [r], { statements: [], applied: [{ row: r.row, outcome: 'failed', reason: 'concurrent_modification', message: REASONS.concurrent_modification }] })
    if (!entry) throw new Error('import: could not record a failed row')
    out.push(entry)
  }
  return out
}

/** The closing batch of a job: its ledger entry (row 0) and the audit row with the totals, exactly once. */
export async function closeJob(env: Env, job: JobContext, kind: ImportKind, totals: Omit<LedgerOutcome, 'rows'> & { total: number }) {
  const db = getDb(env.DB)
  try {
    await db.batch([
      db.insert(importLedger).values({ jobId: job.jobId, rowFrom: 0, rowTo: 0, outcome: { ...totals, rows: [] }, createdAt: Date.now() }),
      auditStatement(db, { ...job.actor, action: `${kind.auditAction(job)}.finish`, ...kind.auditTarget(job), details: { job_id: job.jobId, strategy: job.strategy, ...totals } }),
    ])
  } catch (e) {
    if (!isLedgerConflict(e)) throw e
  }
}

export const LEDGER_RETENTION_MS = 7 * 24 * 3600_000

/** Cron: ledger entries outlive their job's report (7 days), then go. */
export async function cleanupImportLedger(env: Env, now = Date.now()) {
  await getDb(env.DB).delete(importLedger).where(lt(importLedger.createdAt, now - LEDGER_RETENTION_MS))
}
