import { and, eq, inArray, lt, sql } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { log } from '../lib/logger'
import type { QueueJob } from '../queue/dispatcher'
import { findApplications } from '../apps/service'
import type { Application } from '../apps/schema'
import { eventsAfterQuery, eventsByIdQuery } from '../mappings/service'
import { webhookDeliveries, webhookSweep, type AttemptOrigin } from './schema'

/*
 * From the outbox (mapping_events, written in the change's own batch) to the queue.
 *
 * Scheduling an event = inserting its webhook_deliveries row (pending, with a fresh lease)
 * if it has none, then sending one queue message carrying that lease. The insert is
 * INSERT ... ON CONFLICT DO NOTHING RETURNING, so of the paths that may schedule the same
 * event (right after the commit, the cron sweep) exactly one sends a message. Nothing is
 * lost between the commit and the queue:
 * - a crash before the row is written: the sweep finds the event (it scans the outbox in
 *   sequence order from a cursor) and schedules it;
 * - a failed send after the row is written: the row stays pending, past its
 *   next_attempt_at; the sweep gives it a new lease and sends again;
 * - a consumer that died between claiming an attempt and recording it: the claim made the
 *   row due back within the attempt's timeout, so it is overdue too; the sweep's new lease
 *   also closes the claim.
 * Only apps that are ACTIVE and have a notification_url get deliveries, decided when the
 * event is scheduled; other events stay in the changes feed only.
 */

export const WEBHOOK_JOB = 'webhook.deliver'
export type WebhookJob = QueueJob & { kind: typeof WEBHOOK_JOB; event_id: string; app_id: string; lease: string; origin: AttemptOrigin }

/** A write path's way to run work after its response (ctx.waitUntil). */
export type WaitUntil = (p: Promise<unknown>) => void

/** The request's waitUntil, for services that schedule deliveries after their batch. */
export const afterResponse = (c: { executionCtx: { waitUntil(p: Promise<unknown>): void } }): WaitUntil => (p) => c.executionCtx.waitUntil(p)

/** How long after a change (or after a message was due) the sweep steps in. */
export const SWEEP_GRACE_MS = 60_000
const SCAN_PAGE = 500
/** Pages per sweep run: a bulk import's events are scheduled at up to this × SCAN_PAGE per run. */
const SCAN_PAGES = 10
const REQUEUE_LIMIT = 500
/** Rows per INSERT: a single bound parameter (JSON) each, well under D1's statement size limit. */
const INSERT_CHUNK = 250
/** Queue sendBatch takes at most 100 messages. */
const SEND_CHUNK = 100
const CURSOR = 'outbox'

type Stmt = BatchItem<'sqlite'>

interface Candidate {
  eventId: string
  appId: string
  seq: number
}

export const deliverable = (a: Pick<Application, 'status' | 'notificationUrl'>) => a.status === 'ACTIVE' && !!a.notificationUrl

const chunk = <T>(xs: T[], n: number) => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n))

export const job = (r: { eventId: string; appId: string; lease: string }, origin: AttemptOrigin): WebhookJob => ({ kind: WEBHOOK_JOB, event_id: r.eventId, app_id: r.appId, lease: r.lease, origin })

/** Pending rows for candidates that have none; returns the inserted ones. Column order as in schema.ts. */
function insertPendingStatement(db: DB, rows: { e: string; a: string; s: number; l: string }[], now: number) {
  const v = (k: string) => sql.raw(`json_extract(j.value, '$.${k}')`)
  return db
    .insert(webhookDeliveries)
    .select(sql`SELECT ${v('e')}, ${v('a')}, ${v('s')}, 'pending', ${v('l')}, 0, ${now}, NULL, NULL, NULL, NULL, NULL, ${now}, ${now}
      FROM json_each(${JSON.stringify(rows)}) AS j WHERE true`)
    .onConflictDoNothing()
    .returning({ eventId: webhookDeliveries.eventId, appId: webhookDeliveries.appId, lease: webhookDeliveries.lease })
}

/** The apps of these events that get deliveries. */
async function deliverableApps(env: Env, appIds: string[]): Promise<Set<string>> {
  const apps = (await Promise.all(chunk([...new Set(appIds)], 90).map((ids) => findApplications(env, ids)))).flat()
  return new Set(apps.filter(deliverable).map((a) => a.appId))
}

/**
 * Writes pending rows for the candidates of deliverable apps (plus `extra` statements in
 * the same batch) and returns the jobs to send: one per row this call inserted.
 */
async function schedule(env: Env, candidates: Candidate[], origin: AttemptOrigin, now: number, extra: Stmt[] = []): Promise<WebhookJob[]> {
  const db = getDb(env.DB)
  const ok = candidates.length ? await deliverableApps(env, candidates.map((c) => c.appId)) : new Set<string>()
  const rows = candidates.filter((c) => ok.has(c.appId)).map((c) => ({ e: c.eventId, a: c.appId, s: c.seq, l: crypto.randomUUID() }))
  const inserts = chunk(rows, INSERT_CHUNK).map((part) => insertPendingStatement(db, part, now))
  const statements = [...inserts, ...extra]
  if (!statements.length) return []
  const results = await db.batch(statements as [Stmt, ...Stmt[]])
  return (results.slice(0, inserts.length) as { eventId: string; appId: string; lease: string }[][]).flat().map((r) => job(r, origin))
}

/** Sends the jobs; a failure is logged and left to the sweep (the rows stay pending). */
export async function sendJobs(env: Env, jobs: WebhookJob[]): Promise<void> {
  for (const part of chunk(jobs, SEND_CHUNK)) {
    try {
      await env.WEBHOOK_QUEUE.sendBatch(part.map((body) => ({ body, contentType: 'json' as const })))
    } catch (err) {
      log.warn('webhook.enqueue_failed', { count: part.length, event_ids: part.map((j) => j.event_id), error: (err as Error).message })
    }
  }
}

/**
 * Schedules the events a write path has just committed. Every path that writes outbox
 * events calls this after its batch (with its waitUntil, so the response does not wait);
 * paths that do not (bulk work) are covered by the sweep. Never throws: whatever fails
 * here, the sweep picks up.
 */
export function deliverAfterCommit(env: Env, eventIds: string[], waitUntil?: WaitUntil): Promise<void> {
  const ids = [...new Set(eventIds.filter(Boolean))]
  if (!ids.length) return Promise.resolve()
  const work = (async () => {
    try {
      const db = getDb(env.DB)
      const events = (await Promise.all(chunk(ids, 90).map((part) => eventsByIdQuery(db, part)))).flat()
      await sendJobs(env, await schedule(env, events.map((e) => ({ eventId: e.eventId, appId: e.appId, seq: e.id })), 'commit', Date.now()))
    } catch (err) {
      log.warn('webhook.schedule_failed', { event_ids: ids, error: (err as Error).message })
    }
  })()
  if (waitUntil) {
    waitUntil(work)
    return Promise.resolve()
  }
  return work
}

const cursorStatement = (db: DB, seq: number) =>
  db
    .insert(webhookSweep)
    .values({ name: CURSOR, seq })
    .onConflictDoUpdate({ target: webhookSweep.name, set: { seq: sql`max(${webhookSweep.seq}, excluded.seq)` } })

/** A fresh lease per row, in SQL (one UPDATE re-leases many rows). */
export const newLeaseSql = sql`lower(hex(randomblob(16)))`

/**
 * The delivery's recorded attempts, as `attempts` holds them when no attempt is claimed
 * (the claim, src/webhooks/delivery.ts, runs it one ahead until the attempt is recorded).
 * Every new chain writes it next to its lease: an attempt claimed by a chain whose consumer
 * died before recording it would otherwise block the new chain's messages too.
 */
export const recordedAttempts = sql`(SELECT count(*) FROM webhook_attempts WHERE webhook_attempts.event_id = webhook_deliveries.event_id)`

/**
 * Cron (src/wiring.ts): schedules outbox events older than the grace that nothing has
 * scheduled yet (cursor scan), then re-sends pending deliveries whose message is overdue
 * by more than the grace (a failed send, a lost message). Returns what it did.
 */
export async function sweepWebhooks(env: Env, now = Date.now()): Promise<{ scanned: number; scheduled: number; requeued: number }> {
  const db = getDb(env.DB)
  let scanned = 0
  let scheduled = 0
  for (let page = 0; page < SCAN_PAGES; page++) {
    const cursor = (await db.select({ seq: webhookSweep.seq }).from(webhookSweep).where(eq(webhookSweep.name, CURSOR)).get())?.seq ?? 0
    const events = await eventsAfterQuery(db, cursor, SCAN_PAGE)
    const young = events.findIndex((e) => e.createdAt > now - SWEEP_GRACE_MS)
    const ready = young === -1 ? events : events.slice(0, young)
    if (!ready.length) break
    const jobs = await schedule(env, ready, 'sweep', now, [cursorStatement(db, ready[ready.length - 1].seq)])
    await sendJobs(env, jobs)
    scanned += ready.length
    scheduled += jobs.length
    if (ready.length < SCAN_PAGE) break
  }

  const overdue = db
    .select({ id: webhookDeliveries.eventId })
    .from(webhookDeliveries)
    .where(and(eq(webhookDeliveries.status, 'pending'), lt(webhookDeliveries.nextAttemptAt, now - SWEEP_GRACE_MS)))
    .limit(REQUEUE_LIMIT)
  const lost = await db
    .update(webhookDeliveries)
    .set({ lease: newLeaseSql, attempts: recordedAttempts, nextAttemptAt: now, updatedAt: now })
    .where(and(inArray(webhookDeliveries.eventId, overdue), eq(webhookDeliveries.status, 'pending')))
    .returning({ eventId: webhookDeliveries.eventId, appId: webhookDeliveries.appId, lease: webhookDeliveries.lease })
  await sendJobs(env, lost.map((r) => job(r, 'sweep')))
  if (scheduled || lost.length) log.info('webhook.sweep', { scanned, scheduled, requeued: lost.length })
  return { scanned, scheduled, requeued: lost.length }
}
