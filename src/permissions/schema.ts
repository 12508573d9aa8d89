import { index, integer, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core'
import { applications } from '../apps/schema'

/** The permission every app has without defining it: "may sign in to the app" (access policy `permission`). */
export const ACCESS_PERMISSION = 'access'

/** An app's own permission (memberapi's module:action), e.g. `orders:read`. `access` is built in and never stored here. */
export const appPermissions = sqliteTable(
  'app_permissions',
  {
    id: text('id').primaryKey(),
    appId: text('app_id')
      .notNull()
      .references(() => applications.appId, { onDelete: 'cascade' }),
    key: text('key').notNull(),
    name: text('name').notNull(),
    description: text('description'),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [uniqueIndex('app_permissions_app_key_uq').on(t.appId, t.key)],
)

export const GRANT_EFFECTS = ['allow', 'deny'] as const
export type GrantEffect = (typeof GRANT_EFFECTS)[number]
export const SUBJECT_TYPES = ['user', 'group'] as const
export type SubjectType = (typeof SUBJECT_TYPES)[number]

/**
 * Grants: subject (a user or a group) × permission × scope × effect. No row is "inherit".
 * An unscoped grant has scope_type = scope_id = '' (not NULL, so the unique index holds).
 * `subject_id` names a user or a group (no foreign key: it is one of two tables); grants of
 * a group go with the group (src/directory/admin.ts), users are never deleted.
 */
export const permissionGrants = sqliteTable(
  'permission_grants',
  {
    id: text('id').primaryKey(),
    appId: text('app_id')
      .notNull()
      .references(() => applications.appId, { onDelete: 'cascade' }),
    permissionKey: text('permission_key').notNull(),
    subjectType: text('subject_type', { enum: SUBJECT_TYPES }).notNull(),
    subjectId: text('subject_id').notNull(),
    scopeType: text('scope_type').notNull().default(''),
    scopeId: text('scope_id').notNull().default(''),
    effect: text('effect', { enum: GRANT_EFFECTS }).notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [
    uniqueIndex('permission_grants_uq').on(t.appId, t.permissionKey, t.subjectType, t.subjectId, t.scopeType, t.scopeId),
    index('permission_grants_subject_idx').on(t.subjectType, t.subjectId, t.appId),
  ],
)

export type AppPermission = typeof appPermissions.$inferSelect
export type PermissionGrant = typeof permissionGrants.$inferSelect
