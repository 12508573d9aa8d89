import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb } from '../db'
import type { Env } from '../env'
import { dbErrorText } from '../lib/errors'
import { auditStatement, type AuditActor } from '../audit/service'
import { existingGroupIds, existingUserIds } from '../directory/service'
import { existingAppIds } from '../apps/service'
import { DelegationErrors } from './errors'
import type { Grant, Right, Scope } from './model'
import { adminGroupMembers, adminGroups, type AdminGroup } from './schema'

/*
 * Admin groups (docs/admin-rights.md): each change is one db.batch with its audit row. Only
 * full admins reach these functions (the routes declare `admin`), so a sub-admin can never
 * widen their own grants.
 */

type Stmt = BatchItem<'sqlite'>

/** A user's grants: one per admin group they are in (one statement). */
export async function grantsOfUser(env: Env, userId: string): Promise<Grant[]> {
  const rows = await getDb(env.DB)
    .select({ id: adminGroups.id, rights: adminGroups.rights, groups: adminGroups.scopeGroups, users: adminGroups.scopeUsers, apps: adminGroups.scopeApps })
    .from(adminGroupMembers)
    .innerJoin(adminGroups, eq(adminGroups.id, adminGroupMembers.adminGroupId))
    .where(eq(adminGroupMembers.userId, userId))
    .orderBy(asc(adminGroups.id))
  return rows.map((r) => ({ rights: r.rights, scope: { groups: r.groups, users: r.users, apps: r.apps }, source: { type: 'admin_group' as const, id: r.id } }))
}

/** Every user in some admin group, as a subquery of user ids. */
export function adminGroupMemberIdsSql(): SQL {
  return sql`SELECT user_id FROM admin_group_members`
}

export function publicAdminGroup(g: AdminGroup, memberCount?: number) {
  return {
    id: g.id,
    name: g.name,
    description: g.description,
    rights: g.rights,
    scope: { groups: g.scopeGroups, users: g.scopeUsers, apps: g.scopeApps },
    ...(memberCount !== undefined ? { member_count: memberCount } : {}),
    created_at: new Date(g.createdAt).toISOString(),
    updated_at: new Date(g.updatedAt).toISOString(),
  }
}

export async function listAdminGroups(env: Env) {
  const rows = await getDb(env.DB)
    .select({ group: adminGroups, members: sql<number>`(SELECT count(*) FROM admin_group_members m WHERE m.admin_group_id = ${adminGroups.id})` })
    .from(adminGroups)
    .orderBy(asc(adminGroups.name))
  return rows.map((r) => publicAdminGroup(r.group, r.members))
}

export async function loadAdminGroup(env: Env, id: string): Promise<AdminGroup> {
  const g = await getDb(env.DB).select().from(adminGroups).where(eq(adminGroups.id, id)).get()
  if (!g) throw DelegationErrors.admin_group_not_found()
  return g
}

const dedupe = <T>(l: T[]) => [...new Set(l)]

/**
 * Every id a scope adds must name an existing object; the unknown ones are listed. Ids the
 * scope already had are not asked again: an object deleted since stays named (it reaches
 * nothing) rather than blocking every later change of the group.
 */
async function checkScope(env: Env, next: Scope, previous: Scope = { groups: [], users: [], apps: [] }) {
  const added = (k: keyof Scope) => next[k].filter((id) => !previous[k].includes(id))
  const scope = { groups: added('groups'), users: added('users'), apps: added('apps') }
  const [groups, users, apps] = await Promise.all([existingGroupIds(env, scope.groups), existingUserIds(env, scope.users), existingAppIds(env, scope.apps)])
  const missing = { groups: scope.groups.filter((id) => !groups.has(id)), users: scope.users.filter((id) => !users.has(id)), apps: scope.apps.filter((id) => !apps.has(id)) }
  if (missing.groups.length || missing.users.length || missing.apps.length) throw DelegationErrors.scope_not_found({ details: missing })
}

const nameTaken = (e: unknown) => /UNIQUE constraint failed: admin_groups\.name/.test(dbErrorText(e))

async function commit(env: Env, statements: Stmt[]) {
  try {
    return await getDb(env.DB).batch(statements as [Stmt, ...Stmt[]])
  } catch (e) {
    if (nameTaken(e)) throw DelegationErrors.admin_group_name_taken()
    throw e
  }
}

export interface AdminGroupInput {
  name: string
  description?: string | null
  rights: Right[]
  scope: Scope
}

export async function createAdminGroup(env: Env, input: AdminGroupInput, actor: AuditActor): Promise<AdminGroup> {
  const scope = { groups: dedupe(input.scope.groups), users: dedupe(input.scope.users), apps: dedupe(input.scope.apps) }
  await checkScope(env, scope)
  const now = Date.now()
  const row: AdminGroup = {
    id: crypto.randomUUID(),
    name: input.name,
    description: input.description ?? null,
    rights: dedupe(input.rights),
    scopeGroups: scope.groups,
    scopeUsers: scope.users,
    scopeApps: scope.apps,
    createdAt: now,
    updatedAt: now,
  }
  const db = getDb(env.DB)
  await commit(env, [db.insert(adminGroups).values(row), auditStatement(db, { ...actor, action: 'admin.admin_group.create', targetType: 'admin_group', targetId: row.id, details: { name: row.name, rights: row.rights, scope } })])
  return row
}

export async function updateAdminGroup(env: Env, id: string, patch: Partial<AdminGroupInput>, actor: AuditActor): Promise<AdminGroup> {
  const g = await loadAdminGroup(env, id)
  const scope = patch.scope ? { groups: dedupe(patch.scope.groups), users: dedupe(patch.scope.users), apps: dedupe(patch.scope.apps) } : undefined
  if (scope) await checkScope(env, scope, { groups: g.scopeGroups, users: g.scopeUsers, apps: g.scopeApps })
  const set: Partial<AdminGroup> = { updatedAt: Date.now() }
  if (patch.name !== undefined) set.name = patch.name
  if (patch.description !== undefined) set.description = patch.description
  if (patch.rights) set.rights = dedupe(patch.rights)
  if (scope) Object.assign(set, { scopeGroups: scope.groups, scopeUsers: scope.users, scopeApps: scope.apps })
  const db = getDb(env.DB)
  await commit(env, [
    db.update(adminGroups).set(set).where(eq(adminGroups.id, id)),
    auditStatement(db, { ...actor, action: 'admin.admin_group.update', targetType: 'admin_group', targetId: id, details: { ...patch, ...(scope ? { scope } : {}), previous: publicAdminGroup(g) } }),
  ])
  return { ...g, ...set }
}

export async function deleteAdminGroup(env: Env, id: string, actor: AuditActor): Promise<void> {
  const g = await loadAdminGroup(env, id)
  const db = getDb(env.DB)
  // members go with the group (ON DELETE CASCADE), in the same statement
  await db.batch([db.delete(adminGroups).where(eq(adminGroups.id, id)), auditStatement(db, { ...actor, action: 'admin.admin_group.delete', targetType: 'admin_group', targetId: id, details: publicAdminGroup(g) })])
}

export async function listAdminGroupMembers(env: Env, id: string) {
  await loadAdminGroup(env, id)
  const rows = await getDb(env.DB).all<{ user_id: string; mobile: string; name: string | null; role: string; since: number }>(
    sql`SELECT u.id AS user_id, u.mobile, u.name, u.role, m.created_at AS since FROM admin_group_members m JOIN users u ON u.id = m.user_id WHERE m.admin_group_id = ${id} ORDER BY m.created_at DESC, u.id`,
  )
  return rows.map((r) => ({ user_id: r.user_id, mobile: r.mobile, name: r.name, member_since: new Date(r.since).toISOString() }))
}

export const ADMIN_GROUP_MAX_USERS = 500
/** Rows per INSERT: 3 bound parameters each, under D1's 100 per statement. */
const INSERT_ROWS = 30
const DELETE_IDS = 90

/** Adds users to an admin group; all or nothing (an unknown user id refuses the call). */
export async function addAdminGroupMembers(env: Env, id: string, userIds: string[], actor: AuditActor) {
  await loadAdminGroup(env, id)
  const ids = dedupe(userIds)
  const known = await existingUserIds(env, ids)
  const missing = ids.filter((u) => !known.has(u))
  if (missing.length) throw DelegationErrors.members_not_found({ details: { user_ids: missing } })
  const db = getDb(env.DB)
  const now = Date.now()
  const statements: Stmt[] = []
  for (let i = 0; i < ids.length; i += INSERT_ROWS) {
    statements.push(db.insert(adminGroupMembers).values(ids.slice(i, i + INSERT_ROWS).map((userId) => ({ adminGroupId: id, userId, createdAt: now }))).onConflictDoNothing())
  }
  statements.push(auditStatement(db, { ...actor, action: 'admin.admin_group.members_add', targetType: 'admin_group', targetId: id, details: { user_ids: ids } }))
  await db.batch(statements as [Stmt, ...Stmt[]])
  return { user_ids: ids }
}

export async function removeAdminGroupMembers(env: Env, id: string, userIds: string[], actor: AuditActor) {
  await loadAdminGroup(env, id)
  const ids = dedupe(userIds)
  const db = getDb(env.DB)
  const statements: Stmt[] = []
  for (let i = 0; i < ids.length; i += DELETE_IDS) {
    statements.push(db.delete(adminGroupMembers).where(and(eq(adminGroupMembers.adminGroupId, id), inArray(adminGroupMembers.userId, ids.slice(i, i + DELETE_IDS)))))
  }
  statements.push(auditStatement(db, { ...actor, action: 'admin.admin_group.members_remove', targetType: 'admin_group', targetId: id, details: { user_ids: ids } }))
  await db.batch(statements as [Stmt, ...Stmt[]])
  return { user_ids: ids }
}
