import { index, integer, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core'
import { users } from '../users/schema'
import { applications } from '../apps/schema'

/** A user's account in an app (`mapped_key`): the app admits only users with an active mapping. */
export const appUserMappings = sqliteTable(
  'app_user_mappings',
  {
    id: text('id').primaryKey(),
    appId: text('app_id').notNull().references(() => applications.appId, { onDelete: 'cascade' }),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    mappedKey: text('mapped_key').notNull(),
    /** The person's display name as the app knows it (sync `name`); the user's own name is used when null. */
    name: text('name'),
    isActive: integer('is_active', { mode: 'boolean' }).notNull().default(true),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    /**
     * event_id of the outbox event written with the latest change. Doubles as the
     * compare-and-set token of every write (src/mappings/service.ts), so a change and its
     * event commit together or not at all even under concurrent writers.
     */
    lastEventId: text('last_event_id'),
  },
  (t) => [
    uniqueIndex('mappings_app_user_uq').on(t.appId, t.userId),
    uniqueIndex('mappings_app_key_uq').on(t.appId, t.mappedKey),
    index('mappings_user_idx').on(t.userId),
  ],
)

export type AppUserMapping = typeof appUserMappings.$inferSelect

/** The source design's action for the receiving app: what to do with `mapped_key` (docs/webhooks.md). */
export const MAPPING_EVENT_TYPES = ['ADD', 'UPDATE', 'DISABLE', 'DELETE'] as const
export type MappingEventType = (typeof MAPPING_EVENT_TYPES)[number]

/**
 * What happened: a change of the mapping itself, or of the user it maps (one event per app
 * the user is mapped in). Receivers branch on `type`; `event_type` is derived from it
 * (user.enabled is ADD where the mapping is active, UPDATE where it is not).
 */
export const MAPPING_EVENT_KINDS = ['mapping.added', 'mapping.updated', 'mapping.disabled', 'mapping.deleted', 'user.disabled', 'user.enabled', 'user.updated'] as const
export type MappingEventKind = (typeof MAPPING_EVENT_KINDS)[number]
export type UserEventKind = Extract<MappingEventKind, `user.${string}`>

/**
 * Outbox kinds that are not about one mapping (no mapping_id, often no user_id): delivered
 * as webhooks like the others, never shown in the changes feed, which is the feed of an
 * app's mappings. Their payload is the owning feature's (permission.changed:
 * src/permissions/events.ts), their event_type APP_EVENT_TYPE.
 */
export const APP_EVENT_KINDS = ['permission.changed'] as const
export type AppEventKind = (typeof APP_EVENT_KINDS)[number]
/** event_type of an APP_EVENT_KINDS row: the source design has no account action for it. */
export const APP_EVENT_TYPE = 'PERMISSION'

export const OUTBOX_EVENT_KINDS = [...MAPPING_EVENT_KINDS, ...APP_EVENT_KINDS] as const
export type OutboxEventKind = (typeof OUTBOX_EVENT_KINDS)[number]
export const OUTBOX_EVENT_TYPES = [...MAPPING_EVENT_TYPES, APP_EVENT_TYPE] as const
export type OutboxEventType = (typeof OUTBOX_EVENT_TYPES)[number]

/** A mapping change's kind, from its action (a re-enabled mapping is `mapping.added`). */
export const MAPPING_KIND: Record<MappingEventType, MappingEventKind> = {
  ADD: 'mapping.added',
  UPDATE: 'mapping.updated',
  DISABLE: 'mapping.disabled',
  DELETE: 'mapping.deleted',
}

export interface MappingEventPayload {
  mobile: string | null
  name: string | null
  mapped_key: string
  /** the mapping's status after the change (a DELETE carries the last status) */
  status: 'ACTIVE' | 'DISABLED'
  user_status: 'ACTIVE' | 'DISABLED' | null
}

/** The payload of an APP_EVENT_KINDS row: the webhook body's kind-specific part, as its feature built it. */
export type AppEventPayload = Record<string, unknown>

/**
 * Outbox of mapping changes, of changes to mapped users and of app events
 * (APP_EVENT_KINDS): one row per change and app, inserted in the same db.batch as the
 * change itself. `id` is the monotonic sequence the changes feed pages on (AUTOINCREMENT
 * never reuses a value; D1 serializes writes, so ids become visible in order). No foreign
 * keys: events outlive the mapping (DELETE) and the application (app delete).
 * `delivered_at` is set by webhook delivery (src/webhooks/, through markEventDeliveredStatement).
 */
export const mappingEvents = sqliteTable(
  'mapping_events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    eventId: text('event_id').notNull().unique(),
    appId: text('app_id').notNull(),
    /** null only on app events (a grant to a group) */
    userId: text('user_id'),
    /** null only on app events */
    mappingId: text('mapping_id'),
    eventType: text('event_type', { enum: OUTBOX_EVENT_TYPES }).notNull(),
    payload: text('payload', { mode: 'json' }).$type<MappingEventPayload | AppEventPayload>().notNull(),
    createdAt: integer('created_at').notNull(),
    deliveredAt: integer('delivered_at'),
    /** OutboxEventKind. Last column (added by a migration that derived it from event_type for older rows). */
    type: text('type', { enum: OUTBOX_EVENT_KINDS }).notNull().default('mapping.updated'),
  },
  (t) => [index('mapping_events_app_seq_idx').on(t.appId, t.id), index('mapping_events_undelivered_idx').on(t.deliveredAt, t.id)],
)

/** Any outbox row. */
export type OutboxEvent = typeof mappingEvents.$inferSelect
/** A row of the changes feed (a mapping change or a mapped user's change). */
export type MappingEvent = OutboxEvent & { type: MappingEventKind; eventType: MappingEventType; userId: string; mappingId: string; payload: MappingEventPayload }

export const isMappingEvent = (e: OutboxEvent): e is MappingEvent => (MAPPING_EVENT_KINDS as readonly string[]).includes(e.type)
