import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'

/** Who an audit row's actor is: a full admin, a sub-admin (admin groups), an API client, a user, an app, the system, nobody known. */
export const ACTOR_TYPES = ['admin', 'subadmin', 'api_client', 'user', 'app', 'system', 'anonymous'] as const

/** Every admin write and every security event: who, what, target, when, request id, IP, and by what authority. */
export const auditLogs = sqliteTable(
  'audit_logs',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: integer('at').notNull(),
    actorType: text('actor_type', { enum: ACTOR_TYPES }).notNull(),
    actorId: text('actor_id'),
    action: text('action').notNull(),
    targetType: text('target_type'),
    targetId: text('target_id'),
    requestId: text('request_id'),
    ip: text('ip'),
    details: text('details', { mode: 'json' }),
    /**
     * On admin API rows: the right the route needed and where the caller holds it, e.g.
     * `{"right":"users.write","via":[{"type":"admin_group","id":"…"}]}` or `{"right":"users.write","via":"role:ADMIN"}`.
     */
    authority: text('authority', { mode: 'json' }),
  },
  (t) => [
    index('audit_logs_at_idx').on(t.at),
    index('audit_logs_action_idx').on(t.action),
    index('audit_logs_actor_idx').on(t.actorType, t.actorId),
    index('audit_logs_target_idx').on(t.targetType, t.targetId),
  ],
)
