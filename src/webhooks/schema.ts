import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { applications } from '../apps/schema'

/**
 * An app's webhook signing secret (`whsec_…`, Standard Webhooks format), AES-GCM envelope
 * under the master key. After a rotation the previous secret keeps signing next to the new
 * one until `previous_expires_at`, so a receiver can switch without missing a delivery.
 */
export const webhookSecrets = sqliteTable('webhook_secrets', {
  appId: text('app_id')
    .primaryKey()
    .references(() => applications.appId, { onDelete: 'cascade' }),
  secretEnc: text('secret_enc').notNull(),
  previousSecretEnc: text('previous_secret_enc'),
  previousExpiresAt: integer('previous_expires_at'),
  createdAt: integer('created_at').notNull(),
  rotatedAt: integer('rotated_at').notNull(),
})

export type WebhookSecretRow = typeof webhookSecrets.$inferSelect

export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number]

/**
 * Delivery state of one outbox event (mapping_events.event_id) to its app's
 * notification_url. A row exists once the event is scheduled: right after the change
 * commits, or by the cron sweep. `lease` names the queue message chain that owns the
 * delivery: a message carrying another lease is stale and does nothing, so a sweep or an
 * admin retry can take over from a lost message without two chains retrying side by side.
 */
export const webhookDeliveries = sqliteTable(
  'webhook_deliveries',
  {
    eventId: text('event_id').primaryKey(),
    appId: text('app_id')
      .notNull()
      .references(() => applications.appId, { onDelete: 'cascade' }),
    /** the event's outbox sequence (mapping_events.id) */
    seq: integer('seq').notNull(),
    status: text('status', { enum: DELIVERY_STATUSES }).notNull(),
    lease: text('lease').notNull(),
    /** the attempts recorded, one more while an attempt is claimed and in flight (delivery.ts claimStatement) */
    attempts: integer('attempts').notNull().default(0),
    /** when the owning message is due next; a pending row far past it has lost its message (the sweep re-enqueues it) */
    nextAttemptAt: integer('next_attempt_at').notNull(),
    lastAttemptAt: integer('last_attempt_at'),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    deliveredAt: integer('delivered_at'),
    failedAt: integer('failed_at'),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [index('webhook_deliveries_app_status_idx').on(t.appId, t.status, t.seq), index('webhook_deliveries_due_idx').on(t.status, t.nextAttemptAt)],
)

export type WebhookDelivery = typeof webhookDeliveries.$inferSelect

/** Who started the message chain an attempt belongs to. */
export const ATTEMPT_ORIGINS = ['commit', 'sweep', 'retry'] as const
export type AttemptOrigin = (typeof ATTEMPT_ORIGINS)[number]

/** One row per delivery attempt: what was sent when, and what came back. */
export const webhookAttempts = sqliteTable(
  'webhook_attempts',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    eventId: text('event_id')
      .notNull()
      .references(() => webhookDeliveries.eventId, { onDelete: 'cascade' }),
    /** 1, 2, 3 ... per event, across every chain */
    attempt: integer('attempt').notNull(),
    origin: text('origin', { enum: ATTEMPT_ORIGINS }).notNull(),
    at: integer('at').notNull(),
    durationMs: integer('duration_ms').notNull(),
    /** the receiver's HTTP status; null when no response came (network error, timeout, not sent) */
    httpStatus: integer('http_status'),
    error: text('error'),
    /** the first 1 KiB of the response body */
    responseBody: text('response_body'),
  },
  (t) => [index('webhook_attempts_event_idx').on(t.eventId, t.attempt)],
)

export type WebhookAttempt = typeof webhookAttempts.$inferSelect

/**
 * How far the sweep has scanned the outbox: every event up to `seq` is scheduled or was
 * not deliverable when scanned (its app had no notification_url). One row, `outbox`.
 */
export const webhookSweep = sqliteTable('webhook_sweep', {
  name: text('name').primaryKey(),
  seq: integer('seq').notNull(),
})
