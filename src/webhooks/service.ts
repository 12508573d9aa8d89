import { and, asc, count, desc, eq, inArray, sql } from 'drizzle-orm'
import { getDb } from '../db'
import type { Env } from '../env'
import { dbErrorText } from '../lib/errors'
import { auditStatement, type AuditActor } from '../audit/service'
import { AppErrors } from '../apps/errors'
import type { Application } from '../apps/schema'
import { eventsByIdQuery } from '../mappings/service'
import type { OutboxEvent } from '../mappings/schema'
import { WebhookErrors } from './errors'
import { eventPayload, testPayload } from './payload'
import { signatureHeaders } from './signature'
import { DEFAULT_OVERLAP_S, findWebhookSecretRow, issueWebhookSecret, rotateWebhookSecretStatement, signingSecrets } from './secrets'
import { postWebhook } from './delivery'
import { isProduction, notificationUrlProblem } from './url'
import { deliverable, job, newLeaseSql, recordedAttempts, sendJobs } from './outbox'
import { DELIVERY_STATUSES, webhookAttempts, webhookDeliveries, type DeliveryStatus, type WebhookAttempt, type WebhookDelivery } from './schema'

/*
 * What admins see and do with an app's webhooks (docs/webhooks.md). Every change is one
 * db.batch with its audit row; queue messages are sent after it.
 */

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString())

/** Most failed events one retry-failed call re-schedules (call again for the rest). */
export const RETRY_FAILED_MAX = 500

function attemptView(a: WebhookAttempt) {
  return {
    attempt: a.attempt,
    origin: a.origin,
    at: new Date(a.at).toISOString(),
    duration_ms: a.durationMs,
    http_status: a.httpStatus,
    error: a.error,
    response_body: a.responseBody,
  }
}

/** An event's delivery: `unscheduled` when no delivery was ever scheduled for it (see docs/webhooks.md). */
function eventView(e: OutboxEvent, d: WebhookDelivery | undefined, attempts: WebhookAttempt[]) {
  return {
    event_id: e.eventId,
    seq: e.id,
    type: e.type,
    event_type: e.eventType,
    occurred_at: new Date(e.createdAt).toISOString(),
    status: (d?.status ?? 'unscheduled') as DeliveryStatus | 'unscheduled',
    attempt_count: attempts.length,
    next_attempt_at: d && d.status === 'pending' ? iso(d.nextAttemptAt) : null,
    last_attempt_at: iso(d?.lastAttemptAt ?? null),
    last_status: d?.lastStatus ?? null,
    last_error: d?.lastError ?? null,
    delivered_at: iso(d?.deliveredAt ?? null),
    failed_at: iso(d?.failedAt ?? null),
    attempts: attempts.map(attemptView),
  }
}

async function attemptsOf(env: Env, eventIds: string[]) {
  if (!eventIds.length) return new Map<string, WebhookAttempt[]>()
  const rows = await getDb(env.DB).select().from(webhookAttempts).where(inArray(webhookAttempts.eventId, eventIds)).orderBy(asc(webhookAttempts.eventId), asc(webhookAttempts.attempt))
  const out = new Map<string, WebhookAttempt[]>()
  for (const r of rows) out.set(r.eventId, [...(out.get(r.eventId) ?? []), r])
  return out
}

/** Newest first (by outbox sequence), with every attempt of each event. */
export async function listWebhookEvents(env: Env, appId: string, q: { status?: DeliveryStatus; page: number; pageSize: number }) {
  const db = getDb(env.DB)
  const where = and(eq(webhookDeliveries.appId, appId), q.status ? eq(webhookDeliveries.status, q.status) : undefined)
  const [rows, total] = await Promise.all([
    db.select().from(webhookDeliveries).where(where).orderBy(desc(webhookDeliveries.seq)).limit(q.pageSize).offset((q.page - 1) * q.pageSize),
    db.select({ n: count() }).from(webhookDeliveries).where(where).get(),
  ])
  const ids = rows.map((r) => r.eventId)
  const [events, attempts] = await Promise.all([ids.length ? eventsByIdQuery(db, ids) : Promise.resolve([] as OutboxEvent[]), attemptsOf(env, ids)])
  const byId = new Map(events.map((e) => [e.eventId, e]))
  return {
    items: rows.filter((r) => byId.has(r.eventId)).map((r) => eventView(byId.get(r.eventId)!, r, attempts.get(r.eventId) ?? [])),
    page: q.page,
    page_size: q.pageSize,
    total: total?.n ?? 0,
  }
}

async function loadEvent(env: Env, appId: string, eventId: string): Promise<OutboxEvent> {
  const [event] = await eventsByIdQuery(getDb(env.DB), [eventId])
  if (!event || event.appId !== appId) throw WebhookErrors.event_not_found()
  return event
}

/** One event of the app's outbox with its delivery, every attempt and the exact payload sent. */
export async function getWebhookEvent(env: Env, appId: string, eventId: string) {
  const event = await loadEvent(env, appId, eventId)
  const [d, attempts] = await Promise.all([getDb(env.DB).select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, eventId)).get(), attemptsOf(env, [eventId])])
  return { ...eventView(event, d, attempts.get(eventId) ?? []), payload: eventPayload(event) }
}

/** What the app's settings and secret say about deliveries, and the counts by status. */
export async function webhookSummary(env: Env, app: Application) {
  const db = getDb(env.DB)
  const [secret, counts] = await Promise.all([
    findWebhookSecretRow(env, app.appId),
    db.select({ status: webhookDeliveries.status, n: count() }).from(webhookDeliveries).where(eq(webhookDeliveries.appId, app.appId)).groupBy(webhookDeliveries.status),
  ])
  const byStatus = Object.fromEntries(DELIVERY_STATUSES.map((s) => [s, counts.find((c) => c.status === s)?.n ?? 0])) as Record<DeliveryStatus, number>
  const problem = !app.notificationUrl
    ? 'no notification_url: events stay in the changes feed only'
    : app.status !== 'ACTIVE'
      ? 'the application is disabled'
      : (notificationUrlProblem(app.notificationUrl, isProduction(env)) ?? (!secret ? 'no webhook secret: create one with POST …/webhooks/secret/rotate' : null))
  const now = Date.now()
  return {
    app_id: app.appId,
    notification_url: app.notificationUrl,
    delivering: problem === null,
    problem,
    secret: secret
      ? { created_at: iso(secret.createdAt), rotated_at: iso(secret.rotatedAt), previous_expires_at: secret.previousExpiresAt !== null && secret.previousExpiresAt > now ? iso(secret.previousExpiresAt) : null }
      : null,
    counts: byStatus,
  }
}

function requireDeliverable(env: Env, app: Application) {
  if (app.status !== 'ACTIVE') throw AppErrors.app_disabled()
  if (!deliverable(app)) throw WebhookErrors.notification_url_missing()
  const problem = notificationUrlProblem(app.notificationUrl!, isProduction(env))
  if (problem) throw WebhookErrors.notification_url_not_allowed({ message: problem })
}

/** D1 answers a failed guard (json('…') of a non-JSON text) with this. */
const isGuardFailure = (e: unknown) => /malformed JSON/.test(dbErrorText(e))

/**
 * Sends the event again, now, in a new message chain: a pending event's old chain stops at
 * its next message, a failed one starts over (attempts keep counting). An event that was
 * never scheduled (its app had no notification_url then) is scheduled now.
 */
export async function retryWebhookEvent(env: Env, app: Application, eventId: string, actor: AuditActor) {
  const event = await loadEvent(env, app.appId, eventId)
  requireDeliverable(env, app)
  const db = getDb(env.DB)
  const current = await db.select({ status: webhookDeliveries.status }).from(webhookDeliveries).where(eq(webhookDeliveries.eventId, eventId)).get()
  if (current?.status === 'delivered') throw WebhookErrors.already_delivered()
  const now = Date.now()
  const lease = crypto.randomUUID()
  try {
    await db.batch([
      db
        .insert(webhookDeliveries)
        .values({ eventId, appId: app.appId, seq: event.id, status: 'pending', lease, attempts: 0, nextAttemptAt: now, createdAt: now, updatedAt: now })
        .onConflictDoUpdate({
          target: webhookDeliveries.eventId,
          set: { status: 'pending', lease, attempts: recordedAttempts, nextAttemptAt: now, failedAt: null, updatedAt: now },
          setWhere: sql`${webhookDeliveries.status} <> 'delivered'`,
        }),
      // guard: delivered between the read and this batch, the row kept its lease; abort (and write no audit row)
      db
        .update(webhookDeliveries)
        .set({ updatedAt: sql`CASE WHEN ${webhookDeliveries.lease} = ${lease} THEN ${webhookDeliveries.updatedAt} ELSE json('guard') END` })
        .where(eq(webhookDeliveries.eventId, eventId)),
      auditStatement(db, { ...actor, action: 'admin.webhook.retry', targetType: 'webhook_event', targetId: eventId, details: { app_id: app.appId, previous_status: current?.status ?? 'unscheduled' } }),
    ])
  } catch (e) {
    if (isGuardFailure(e)) throw WebhookErrors.already_delivered()
    throw e
  }
  await sendJobs(env, [job({ eventId, appId: app.appId, lease }, 'retry')])
  return { event_id: eventId, status: 'pending' as const, previous_status: current?.status ?? ('unscheduled' as const) }
}

/** Re-schedules the app's failed events, oldest first, at most RETRY_FAILED_MAX per call. */
export async function retryFailedWebhookEvents(env: Env, app: Application, actor: AuditActor) {
  requireDeliverable(env, app)
  const db = getDb(env.DB)
  const failed = and(eq(webhookDeliveries.appId, app.appId), eq(webhookDeliveries.status, 'failed'))
  const picked = await db.select({ id: webhookDeliveries.eventId }).from(webhookDeliveries).where(failed).orderBy(asc(webhookDeliveries.seq)).limit(RETRY_FAILED_MAX)
  if (!picked.length) return { retried: 0, remaining: 0 }
  const now = Date.now()
  const [rows] = await db.batch([
    db
      .update(webhookDeliveries)
      .set({ status: 'pending', lease: newLeaseSql, attempts: recordedAttempts, nextAttemptAt: now, failedAt: null, updatedAt: now })
      .where(and(failed, sql`${webhookDeliveries.eventId} IN (SELECT value FROM json_each(${JSON.stringify(picked.map((p) => p.id))}))`))
      .returning({ eventId: webhookDeliveries.eventId, appId: webhookDeliveries.appId, lease: webhookDeliveries.lease }),
    auditStatement(db, { ...actor, action: 'admin.webhook.retry_failed', targetType: 'application', targetId: app.appId, details: { count: picked.length } }),
  ])
  await sendJobs(env, rows.map((r) => job(r, 'retry')))
  const left = await db.select({ n: count() }).from(webhookDeliveries).where(failed).get()
  return { retried: rows.length, remaining: left?.n ?? 0 }
}

/**
 * A `webhook.test` event, sent once and at once (no queue, no retry), signed like every
 * delivery; the answer says what the receiver said. Audited with the outcome.
 */
export async function sendTestWebhook(env: Env, app: Application, actor: AuditActor, fetcher: typeof fetch = fetch) {
  requireDeliverable(env, app)
  const secret = await findWebhookSecretRow(env, app.appId)
  if (!secret) throw WebhookErrors.webhook_secret_missing()
  const payload = testPayload(app.appId)
  const body = JSON.stringify(payload)
  const r = await postWebhook(app.notificationUrl!, body, await signatureHeaders(await signingSecrets(env, secret), payload.id, body), fetcher)
  const result = { event_id: payload.id, delivered: r.ok, at: new Date(r.at).toISOString(), duration_ms: r.durationMs, http_status: r.httpStatus, error: r.error, response_body: r.responseBody }
  const db = getDb(env.DB)
  await db.batch([auditStatement(db, { ...actor, action: 'admin.webhook.test', targetType: 'application', targetId: app.appId, details: { event_id: payload.id, delivered: r.ok, http_status: r.httpStatus, error: r.error } })])
  return { ...result, payload }
}

/**
 * A new webhook secret, returned once. The previous one keeps signing next to it for
 * `overlapS` seconds (receivers accept either meanwhile), then stops.
 */
export async function rotateWebhookSecretAsAdmin(env: Env, appId: string, overlapS: number = DEFAULT_OVERLAP_S, actor: AuditActor) {
  const issued = await issueWebhookSecret(env, appId)
  const db = getDb(env.DB)
  const now = Date.now()
  const [rows] = await db.batch([
    rotateWebhookSecretStatement(db, appId, issued, overlapS, now).returning({ createdAt: sql<number>`created_at`, previousExpiresAt: sql<number | null>`previous_expires_at`, hadPrevious: sql<number>`previous_secret_enc IS NOT NULL` }),
    auditStatement(db, { ...actor, action: 'admin.webhook.rotate_secret', targetType: 'application', targetId: appId, details: { overlap_seconds: overlapS } }),
  ])
  const row = rows[0]
  return { app_id: appId, webhook_secret: issued.secret, previous_secret_expires_at: row?.hadPrevious ? iso(row.previousExpiresAt) : null }
}
