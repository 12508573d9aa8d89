import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core'

/** What one batch of an import job did with the rows it covered, and the rows it left. */
export interface LedgerOutcome {
  created: number
  updated: number
  skipped: number
  failed: number
  /** the rows not applied (skipped or failed), for the job's report */
  rows: { row: number; outcome: 'skipped' | 'failed'; reason: string; message: string }[]
}

/**
 * The import jobs' ledger: one row per write batch of a job, inserted in that batch.
 * Progress lives in the importer's Durable Object, which cannot commit together with D1;
 * if the object dies after a batch committed and before it recorded the progress, the
 * resumed job finds the batch here (same job, same first row) and adopts its outcome
 * instead of applying the rows again. The primary key makes a second attempt to write the
 * same batch fail as a whole. Rows are removed 7 days after they were written (cron).
 */
export const importLedger = sqliteTable(
  'import_ledger',
  {
    jobId: text('job_id').notNull(),
    /** first row (spreadsheet row number) the batch covered; 0 marks the job's closing batch */
    rowFrom: integer('row_from').notNull(),
    rowTo: integer('row_to').notNull(),
    outcome: text('outcome', { mode: 'json' }).$type<LedgerOutcome>().notNull(),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.rowFrom] }), index('import_ledger_created_idx').on(t.createdAt)],
)
