import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'

/** Every admin write and every security event: who, what, target, when, request id, IP. */
export const auditLogs = sqliteTable(
  'audit_logs',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: integer('at').notNull(),
    actorType: text('actor_type', { enum: ['admin', 'user', 'app', 'system', 'anonymous'] }).notNull(),
    actorId: text('actor_id'),
    action: text('action').notNull(),
    targetType: text('target_type'),
    targetId: text('target_id'),
    requestId: text('request_id'),
    ip: text('ip'),
    details: text('details', { mode: 'json' }),
  },
  (t) => [index('audit_logs_at_idx').on(t.at), index('audit_logs_action_idx').on(t.action)],
)
