import { sql } from 'drizzle-orm'
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex, type AnySQLiteColumn } from 'drizzle-orm/sqlite-core'
import { users } from '../users/schema'

/** The group types every installation has (ArkID's 部门 / 角色 / 标签): never renamed, never deleted. */
export const BUILT_IN_GROUP_TYPES = [
  { id: 'department', name: 'Department' },
  { id: 'role', name: 'Role' },
  { id: 'label', name: 'Label' },
] as const

/**
 * Kinds of group tree (docs/permissions.md). The id is a slug chosen at creation and never
 * changes (it prefixes the `groups` claim paths); the name is what admins read.
 */
export const groupTypes = sqliteTable('group_types', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  builtIn: integer('built_in', { mode: 'boolean' }).notNull().default(false),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
})

/**
 * Groups, one tree per type: each row names its parent (NULL for a root). "The user's
 * membership paths with depths" is one recursive CTE up `parent_id` (src/directory/service.ts);
 * a move is one conditional UPDATE of `parent_id` that refuses a cycle in the same statement.
 * Sibling names are unique, so a path (Sales ▸ East) names one group.
 */
export const directoryGroups = sqliteTable(
  'directory_groups',
  {
    id: text('id').primaryKey(),
    typeId: text('type_id')
      .notNull()
      .references(() => groupTypes.id),
    parentId: text('parent_id').references((): AnySQLiteColumn => directoryGroups.id),
    name: text('name').notNull(),
    /** parent_id, or '' for a root: NULLs are distinct in a unique index, '' is not */
    siblingKey: text('sibling_key').generatedAlwaysAs(sql`coalesce(parent_id, '')`, { mode: 'virtual' }),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [index('directory_groups_parent_idx').on(t.parentId), uniqueIndex('directory_groups_sibling_name_uq').on(t.typeId, t.siblingKey, t.name)],
)

/** A user in a group: any number of groups, of any types. */
export const groupMemberships = sqliteTable(
  'group_memberships',
  {
    userId: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    groupId: text('group_id')
      .notNull()
      .references(() => directoryGroups.id),
    createdAt: integer('created_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.groupId] }), index('group_memberships_group_idx').on(t.groupId)],
)

export type GroupType = typeof groupTypes.$inferSelect
export type DirectoryGroup = typeof directoryGroups.$inferSelect
