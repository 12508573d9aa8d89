import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { users } from '../users/schema'
import type { Right } from './model'

/**
 * Admin groups (ArkID's 子管理员): a set of rights over a scope of directory groups (each with
 * its whole subtree), users and apps. Scope ids are kept as JSON arrays: a caller's grants
 * are read in one statement per request, and the scope is handed to SQL as one bound JSON
 * value (json_each), so however large it is it never meets D1's 100-parameter limit. An id
 * whose object is deleted later simply reaches nothing.
 */
export const adminGroups = sqliteTable('admin_groups', {
  id: text('id').primaryKey(),
  name: text('name').notNull().unique(),
  description: text('description'),
  rights: text('rights', { mode: 'json' }).$type<Right[]>().notNull(),
  scopeGroups: text('scope_groups', { mode: 'json' }).$type<string[]>().notNull(),
  scopeUsers: text('scope_users', { mode: 'json' }).$type<string[]>().notNull(),
  scopeApps: text('scope_apps', { mode: 'json' }).$type<string[]>().notNull(),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
})

/** The users holding an admin group's grant: their power is the union of their admin groups. */
export const adminGroupMembers = sqliteTable(
  'admin_group_members',
  {
    adminGroupId: text('admin_group_id')
      .notNull()
      .references(() => adminGroups.id, { onDelete: 'cascade' }),
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.adminGroupId, t.userId] }), index('admin_group_members_user_idx').on(t.userId)],
)

export type AdminGroup = typeof adminGroups.$inferSelect
