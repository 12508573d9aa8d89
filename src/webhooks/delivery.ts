import { and, eq, inArray, ne, sql } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { isProduction, notificationUrlProblem } from './url'
import { log } from '../lib/logger'
import { queueRetryDelay, type QueueJob } from '../queue/dispatcher'
import { findApplications } from '../apps/service'
import { eventsByIdQuery, markEventDeliveredStatement } from '../mappings/service'
import { eventPayload } from './payload'
import { signatureHeaders } from './signature'
import { findWebhookSecretRows, signingSecrets } from './secrets'
import { webhookAttempts, webhookDeliveries, type AttemptOrigin } from './schema'
import { recordedAttempts, type WebhookJob } from './outbox'

type Stmt = BatchItem<'sqlite'>

export const TIMEOUT_MS = 10_000
/** How much of a receiver's answer is kept with the attempt. */
export const RESPONSE_BODY_BYTES = 1024
const USER_AGENT = 'uap-edge-webhooks/1'

// ---------------------------------------------------------------------------------------
// One HTTP attempt

export interface AttemptResult {
  ok: boolean
  at: number
  durationMs: number
  httpStatus: number | null
  error: string | null
  responseBody: string | null
}

/** The first `limit` bytes of a body as text; the rest is not read. */
async function bodyPrefix(res: Response, limit = RESPONSE_BODY_BYTES): Promise<string | null> {
  if (!res.body) return null
  const reader = res.body.getReader()
  const parts: Uint8Array[] = []
  let size = 0
  try {
    while (size < limit) {
      const { done, value } = await reader.read()
      if (done) break
      parts.push(value)
      size += value.byteLength
    }
  } finally {
    reader.cancel().catch(() => {})
  }
  const all = new Uint8Array(Math.min(size, limit))
  let off = 0
  for (const p of parts) {
    const take = Math.min(p.byteLength, all.length - off)
    all.set(p.subarray(0, take), off)
    off += take
    if (off >= all.length) break
  }
  return new TextDecoder().decode(all)
}

/**
 * POSTs a signed webhook body once: 10 s timeout (the answer's first KiB included),
 * redirects not followed (a 3xx is a failed attempt), 2xx means delivered.
 */
export async function postWebhook(url: string, body: string, headers: Record<string, string>, fetcher: typeof fetch = fetch): Promise<AttemptResult> {
  const at = Date.now()
  const started = performance.now()
  const elapsed = () => Math.max(0, Math.round(performance.now() - started))
  try {
    const res = await fetcher(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'User-Agent': USER_AGENT, ...headers },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    })
    const responseBody = await bodyPrefix(res).catch(() => null)
    const ok = res.status >= 200 && res.status < 300
    const error = ok ? null : res.status >= 300 && res.status < 400 ? `redirect not followed (${res.status} to ${res.headers.get('Location') ?? 'no Location'})` : `HTTP ${res.status}`
    return { ok, at, durationMs: elapsed(), httpStatus: res.status, error, responseBody }
  } catch (err) {
    const e = err as Error
    const error = e?.name === 'TimeoutError' ? `timeout after ${TIMEOUT_MS / 1000} s` : `network error: ${e?.message ?? String(err)}`
    return { ok: false, at, durationMs: elapsed(), httpStatus: null, error, responseBody: null }
  }
}

// ---------------------------------------------------------------------------------------
// Recording

/**
 * The attempt row (numbered 1, 2, 3 ... per event by the statement itself, so concurrent
 * chains never share a number) and the delivery row's counters; a 2xx also settles the
 * delivery (whichever chain got it; the first delivered_at is kept) and the outbox row.
 * Column order as in schema.ts.
 */
function attemptStatements(db: DB, eventId: string, origin: AttemptOrigin, r: AttemptResult): [Stmt, ...Stmt[]] {
  const counters = {
    attempts: sql`(SELECT count(*) FROM webhook_attempts WHERE event_id = ${eventId})`,
    lastAttemptAt: r.at,
    lastStatus: r.httpStatus,
    lastError: r.error,
    updatedAt: r.at,
  }
  const insert = db.insert(webhookAttempts).select(sql`SELECT NULL, ${eventId}, (SELECT count(*) + 1 FROM webhook_attempts WHERE event_id = ${eventId}), ${origin}, ${r.at}, ${r.durationMs}, ${r.httpStatus}, ${r.error}, ${r.responseBody}`)
  if (r.ok) {
    return [
      insert,
      db
        .update(webhookDeliveries)
        .set({ ...counters, status: 'delivered', deliveredAt: sql`coalesce(${webhookDeliveries.deliveredAt}, ${r.at})`, failedAt: null })
        .where(eq(webhookDeliveries.eventId, eventId)),
      markEventDeliveredStatement(db, eventId, r.at),
    ]
  }
  // a late failure of a stale chain does not overwrite a delivered event's record
  return [insert, db.update(webhookDeliveries).set(counters).where(and(eq(webhookDeliveries.eventId, eventId), ne(webhookDeliveries.status, 'delivered')))]
}

/**
 * Takes the delivery's next attempt before anything is sent, so a message sends only if
 * this conditional write changed the row: it must be the owning chain's (lease), the
 * delivery pending, and no attempt in flight (`attempts` runs one ahead of the recorded
 * attempt rows from the claim until attemptStatements records it). A duplicate of the
 * message, in this batch or in a consumer running at the same time, finds the claim taken
 * and sends nothing. The claim makes the row due back within the attempt's timeout: if the
 * consumer dies before recording, the row turns overdue and the sweep re-leases it (which
 * closes the claim, outbox.ts recordedAttempts), as it does for a lost message.
 */
function claimStatement(db: DB, j: Pick<WebhookJob, 'event_id' | 'lease'>, now: number) {
  return db
    .update(webhookDeliveries)
    .set({ attempts: sql`${recordedAttempts} + 1`, nextAttemptAt: now + TIMEOUT_MS })
    .where(and(eq(webhookDeliveries.eventId, j.event_id), eq(webhookDeliveries.lease, j.lease), eq(webhookDeliveries.status, 'pending'), sql`${webhookDeliveries.attempts} <= ${recordedAttempts}`))
}

/**
 * Gives back a claim whose attempt never ran (the handler threw before the POST, a secret
 * that did not decrypt, say), due again when the queue retries the message: without it the
 * retry would find its own claim taken and only the sweep could go on.
 */
function releaseStatement(db: DB, j: Pick<WebhookJob, 'event_id' | 'lease'>, nextAttemptAt: number) {
  return db
    .update(webhookDeliveries)
    .set({ attempts: recordedAttempts, nextAttemptAt })
    .where(and(eq(webhookDeliveries.eventId, j.event_id), eq(webhookDeliveries.lease, j.lease), eq(webhookDeliveries.status, 'pending')))
}

/** The owning chain's next state: due again at `nextAttemptAt`, or failed for good. */
function chainStatement(db: DB, j: Pick<WebhookJob, 'event_id' | 'lease'>, set: { nextAttemptAt: number } | { failed: number; error?: string }) {
  const owned = and(eq(webhookDeliveries.eventId, j.event_id), eq(webhookDeliveries.lease, j.lease), eq(webhookDeliveries.status, 'pending'))
  if ('nextAttemptAt' in set) return db.update(webhookDeliveries).set({ nextAttemptAt: set.nextAttemptAt }).where(owned)
  return db
    .update(webhookDeliveries)
    .set({ status: 'failed', failedAt: set.failed, updatedAt: set.failed, ...(set.error ? { lastError: set.error } : {}) })
    .where(owned)
}

// ---------------------------------------------------------------------------------------
// The queue handler

interface Planned {
  job: WebhookJob
  attempt: number
  /** whether it writes an attempt, and so must win the claim first */
  claims: boolean
  /** what to write once the attempt (if any) is over, and whether the message is retried */
  run(): Promise<{ statements: Stmt[]; retry: Error | null }>
}

const SKIP = async () => ({ statements: [] as Stmt[], retry: null })

const chunk = <T>(xs: T[], n: number) => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n))

/**
 * Queue job `webhook.deliver` (src/wiring.ts), a batch at a time: the batch's deliveries,
 * events, apps and secrets are read in one round of queries, the POSTs go out side by side
 * and every outcome is written in one db.batch (each message on its own if that batch fails).
 *
 * Idempotent: a message whose lease is not the delivery's current one (a chain the sweep
 * or an admin replaced), whose delivery is settled, or that loses the attempt's claim (a
 * duplicate, side by side in this batch or in another consumer), does nothing. An
 * event that cannot be sent (app disabled or without notification_url, URL not allowed, no
 * webhook secret) fails at once: retrying would not help; an admin fixes the cause and
 * retries. Anything else but a 2xx asks for a retry, so the queue retries with backoff and
 * finally dead-letters it (webhookDeadLetter).
 */
export const deliverWebhooks = {
  async batch(items: { job: QueueJob; attempt: number }[], env: Env, fetcher: typeof fetch = fetch): Promise<(Error | null)[]> {
    const db = getDb(env.DB)
    const jobs = items.map((i) => i.job as WebhookJob)
    const eventIds = [...new Set(jobs.map((j) => j.event_id))]
    const appIds = [...new Set(jobs.map((j) => j.app_id))]
    // IN lists of at most 90 values: under D1's 100 bound parameters per statement
    const inParts = async <T>(ids: string[], read: (part: string[]) => Promise<T[]>) => (await Promise.all(chunk(ids, 90).map(read))).flat()
    const [states, events, apps, secretRows] = await Promise.all([
      inParts(eventIds, (part) => db.select().from(webhookDeliveries).where(inArray(webhookDeliveries.eventId, part))),
      inParts(eventIds, async (part) => eventsByIdQuery(db, part)),
      inParts(appIds, (part) => findApplications(env, part)),
      inParts(appIds, (part) => findWebhookSecretRows(env, part)),
    ])
    const state = new Map(states.map((r) => [r.eventId, r]))
    const event = new Map(events.map((r) => [r.eventId, r]))
    const app = new Map(apps.map((r) => [r.appId, r]))
    const secretRow = new Map(secretRows.map((r) => [r.appId, r]))
    const secrets = new Map<string, Promise<string[]>>()
    const production = isProduction(env)

    // copies of one message in this batch: the first claims, the others are duplicates (their
    // claim could only lose, in the same db.batch)
    const planned = new Set<string>()
    const plans: Planned[] = items.map(({ attempt }, i) => {
      const j = jobs[i]
      const st = state.get(j.event_id)
      if (!st || st.lease !== j.lease || st.status !== 'pending' || planned.has(j.event_id)) {
        log.info('webhook.message_skipped', { event_id: j.event_id, reason: !st ? 'no delivery' : st.status !== 'pending' ? st.status : st.lease !== j.lease ? 'stale lease' : 'duplicate in batch' })
        return { job: j, attempt, claims: false, run: SKIP }
      }
      planned.add(j.event_id)
      const e = event.get(j.event_id)
      const a = app.get(j.app_id)
      const url = a?.notificationUrl
      const secret = secretRow.get(j.app_id)
      const problem = !e
        ? 'the event is not in the outbox'
        : !a
          ? 'the application was deleted'
          : a.status !== 'ACTIVE'
            ? 'the application is disabled'
            : !url
              ? 'the application has no notification_url'
              : (notificationUrlProblem(url, production) ?? (!secret ? 'the application has no webhook secret (create one with POST /api/v1/admin/apps/{app_id}/webhooks/secret/rotate)' : null))
      if (problem) {
        return {
          job: j,
          attempt,
          claims: true,
          run: async () => {
            const now = Date.now()
            const r: AttemptResult = { ok: false, at: now, durationMs: 0, httpStatus: null, error: `not sent: ${problem.replace(/^notification_url /, 'the notification_url ')}`, responseBody: null }
            log.warn('webhook.not_sent', { event_id: j.event_id, app_id: j.app_id, reason: r.error })
            return { statements: [...attemptStatements(db, j.event_id, j.origin, r), chainStatement(db, j, { failed: now })], retry: null }
          },
        }
      }
      return {
        job: j,
        attempt,
        claims: true,
        run: async () => {
          if (!secrets.has(j.app_id)) secrets.set(j.app_id, signingSecrets(env, secret))
          const body = JSON.stringify(eventPayload(e!))
          const r = await postWebhook(url!, body, await signatureHeaders(await secrets.get(j.app_id)!, e!.eventId, body), fetcher)
          if (r.ok) return { statements: attemptStatements(db, j.event_id, j.origin, r), retry: null }
          const next = r.at + queueRetryDelay(env, attempt) * 1000
          return {
            statements: [...attemptStatements(db, j.event_id, j.origin, r), chainStatement(db, j, { nextAttemptAt: next })],
            retry: new Error(`webhook ${j.event_id} to ${j.app_id}: ${r.error} (attempt ${attempt})`),
          }
        },
      }
    })

    const claiming = plans.filter((p) => p.claims)
    const won = new Set<Planned>()
    if (claiming.length) {
      const now = Date.now()
      try {
        const [first, ...rest] = claiming.map((p) => claimStatement(db, p.job, now))
        const results = (await db.batch([first, ...rest])) as D1Result[]
        claiming.forEach((p, i) => (results[i].meta.changes === 1 ? won.add(p) : log.info('webhook.message_skipped', { event_id: p.job.event_id, reason: 'attempt claimed by another message' })))
      } catch (err) {
        // the batch is one transaction: nothing was claimed, so every claiming message may retry
        return plans.map((p) => (p.claims ? (err as Error) : null))
      }
    }
    const outcomes = await Promise.all(
      plans.map((p) => {
        if (!won.has(p)) return SKIP()
        return p.run().catch((err: Error) => ({ statements: [releaseStatement(db, p.job, Date.now() + queueRetryDelay(env, p.attempt) * 1000)] as Stmt[], retry: err }))
      }),
    )
    const all = outcomes.flatMap((o) => o.statements)
    if (!all.length) return outcomes.map((o) => o.retry)
    try {
      await db.batch(all as [Stmt, ...Stmt[]])
      return outcomes.map((o) => o.retry)
    } catch (err) {
      // one message's write failed (its app deleted meanwhile, say): write the others on their own
      log.warn('webhook.batch_write_failed', { error: (err as Error).message })
      return Promise.all(
        outcomes.map(async (o) => {
          if (!o.statements.length) return o.retry
          try {
            await db.batch(o.statements as [Stmt, ...Stmt[]])
            return o.retry
          } catch (e) {
            return e as Error
          }
        }),
      )
    }
  },
}

/** Dead-letter hook of `webhook.deliver` (src/wiring.ts): the queue gave up on the owning chain. */
export function webhookDeadLetter(job: QueueJob, db: DB): Stmt[] {
  const j = job as WebhookJob
  if (typeof j.event_id !== 'string' || typeof j.lease !== 'string') return []
  const now = Date.now()
  return [chainStatement(db, j, { failed: now })]
}
