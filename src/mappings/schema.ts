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

export const MAPPING_EVENT_TYPES = ['ADD', 'UPDATE', 'DISABLE', 'DELETE'] as const
export type MappingEventType = (typeof MAPPING_EVENT_TYPES)[number]

export interface MappingEventPayload {
  mobile: string | null
  name: string | null
  mapped_key: string
  /** the mapping's status after the change (a DELETE carries the last status) */
  status: 'ACTIVE' | 'DISABLED'
  user_status: 'ACTIVE' | 'DISABLED' | null
}

/**
 * Outbox of mapping changes: one row per change, inserted in the same db.batch as the
 * change itself. `id` is the monotonic sequence the changes feed pages on (AUTOINCREMENT
 * never reuses a value; D1 serializes writes, so ids become visible in order). No foreign
 * keys: events outlive the mapping (DELETE) and the application (app delete).
 * `delivered_at` is set by webhook delivery.
 */
export const mappingEvents = sqliteTable(
  'mapping_events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    eventId: text('event_id').notNull().unique(),
    appId: text('app_id').notNull(),
    userId: text('user_id').notNull(),
    mappingId: text('mapping_id').notNull(),
    eventType: text('event_type', { enum: MAPPING_EVENT_TYPES }).notNull(),
    payload: text('payload', { mode: 'json' }).$type<MappingEventPayload>().notNull(),
    createdAt: integer('created_at').notNull(),
    deliveredAt: integer('delivered_at'),
  },
  (t) => [index('mapping_events_app_seq_idx').on(t.appId, t.id), index('mapping_events_undelivered_idx').on(t.deliveredAt, t.id)],
)

export type MappingEvent = typeof mappingEvents.$inferSelect
