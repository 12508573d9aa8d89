import type { Context } from 'hono'
import { sql, type SQL } from 'drizzle-orm'
import type { AppEnv } from '../context'
import { getDb } from '../db'
import { membersOfGroupsSql, subtreeGroupIdsSql } from '../directory/service'
import { appsCreatedBySql } from '../apps/service'
import { fullAdminIdsSql } from '../users/service'
import { mappingUserSql } from '../mappings/service'
import { grantSubjectSql } from '../permissions/service'
import { DelegationErrors } from './errors'
import type { Grant, Principal, Right } from './model'
import type { ObjectKind } from './rights'
import { adminGroupMemberIdsSql } from './service'

/*
 * What a delegated admin reaches with one right (docs/admin-rights.md): the union of the
 * scopes of their grants that hold that right, and nothing of a grant that does not (a right
 * of one admin group never reaches into another group's scope). A group reaches its whole
 * subtree and the users directly in any group of it; users and apps are listed by id; apps
 * the caller registered are theirs too. Each reach is a subquery over the directory tables
 * with the ids bound as one JSON value, so no scope size meets D1's parameter limit.
 */

export interface Reach {
  /** the user ids reached, a subquery */
  users: SQL
  /** the group ids reached (the scope groups and everything below them), a subquery */
  groups: SQL
  /** the app_ids reached, a subquery */
  apps: SQL
  /** the grants that hold the right, for the audit row */
  sources: Grant['source'][]
}

/** The reach of a delegated principal for a right; null for a full admin (everything). */
export function reachOf(p: Principal, right: Right): Reach | null {
  if (p.kind === 'admin') return null
  const holding = p.grants.filter((g) => g.rights.includes(right))
  const union = (pick: (g: Grant) => string[]) => JSON.stringify([...new Set(holding.flatMap(pick))])
  const groups = subtreeGroupIdsSql(union((g) => g.scope.groups))
  const ownerId = p.kind === 'client' ? p.clientId : p.userId
  return {
    groups,
    users: sql`${membersOfGroupsSql(groups)} UNION SELECT value FROM json_each(${union((g) => g.scope.users)})`,
    // what the caller registered is theirs under every right they hold at all
    apps: holding.length ? sql`SELECT value FROM json_each(${union((g) => g.scope.apps)}) UNION ${appsCreatedBySql(ownerId)}` : sql`SELECT NULL WHERE 0`,
    sources: holding.map((g) => g.source),
  }
}

/** The request's reach for the right its route declares (null: a full admin, or a route outside the admin guard). */
export function requestReach(c: Context<AppEnv>): Reach | null {
  const p = c.get('principal')
  const right = c.get('adminRight')
  if (!p || p.kind === 'admin' || !right) return null
  // an `admin` route never lets a delegated principal through the guard; reach nothing, to be safe
  if (right === 'admin') return { users: sql`SELECT NULL WHERE 0`, groups: sql`SELECT NULL WHERE 0`, apps: sql`SELECT NULL WHERE 0`, sources: [] }
  return reachOf(p, right)
}

/** For list filters: the subquery of ids of a kind the caller may see, or undefined (everything). */
export function within(c: Context<AppEnv>, kind: 'users' | 'groups' | 'apps'): SQL | undefined {
  return requestReach(c)?.[kind]
}

export interface Objects {
  users?: string[]
  groups?: string[]
  apps?: string[]
}

/** The ids among `ids` outside `reach` (one statement; the ids travel as one JSON value). */
async function outside(c: Context<AppEnv>, ids: string[], reach: SQL): Promise<string[]> {
  if (!ids.length) return []
  const rows = await getDb(c.env.DB).all<{ id: string }>(sql`SELECT value AS id FROM json_each(${JSON.stringify([...new Set(ids)])}) WHERE value NOT IN (${reach})`)
  return rows.map((r) => r.id)
}

/**
 * Refuses the request (403 out_of_scope, the ids in details) unless every object is in the
 * caller's reach for the route's right: a batch with one object outside is refused whole.
 * An id that names nothing is outside too, so the answer tells a delegated admin nothing
 * about objects they cannot see.
 */
export async function assertInScope(c: Context<AppEnv>, objects: Objects): Promise<void> {
  const reach = requestReach(c)
  if (!reach) return
  const [users, groups, apps] = await Promise.all([outside(c, objects.users ?? [], reach.users), outside(c, objects.groups ?? [], reach.groups), outside(c, objects.apps ?? [], reach.apps)])
  if (users.length || groups.length || apps.length) {
    const details = Object.fromEntries(Object.entries({ user_ids: users, group_ids: groups, app_ids: apps }).filter(([, v]) => v.length))
    throw DelegationErrors.out_of_scope({ details })
  }
}

/** The ids among `ids` the caller may see (all of them for a full admin), for filtering computed lists. */
export async function visibleAmong(c: Context<AppEnv>, kind: 'users' | 'groups' | 'apps', ids: string[]): Promise<Set<string>> {
  const reach = requestReach(c)
  if (!reach) return new Set(ids)
  const out = new Set(await outside(c, ids, reach[kind]))
  return new Set(ids.filter((id) => !out.has(id)))
}

/**
 * Refuses a delegated admin's write to an account that holds admin power (role ADMIN or a
 * member of an admin group): resetting such a password would hand over more than the scope.
 */
export async function assertNotAdminTargets(c: Context<AppEnv>, userIds: string[]): Promise<void> {
  if (!requestReach(c) || !userIds.length) return
  const rows = await getDb(c.env.DB).all<{ id: string }>(
    sql`SELECT value AS id FROM json_each(${JSON.stringify(userIds)}) WHERE value IN (${fullAdminIdsSql()}) OR value IN (${adminGroupMemberIdsSql()})`,
  )
  if (rows.length) throw DelegationErrors.target_is_admin({ details: { user_ids: rows.map((r) => r.id) } })
}

/**
 * The objects a route's path parameters name (declared with `needs(right, params)`), checked
 * by the admin guard before the handler runs. A mapping or a grant is checked through its
 * user or subject, and passes only when it exists inside the reach: one that does not exist
 * is refused as out of scope too, so the answer does not tell a sub-admin whether an id they
 * cannot see exists (docs/admin-rights.md).
 */
export async function assertParamsInScope(c: Context<AppEnv>, declared: Partial<Record<ObjectKind, string>>, params: Record<string, string>): Promise<void> {
  const reach = requestReach(c)
  if (!reach) return
  const value = (k: ObjectKind) => (declared[k] ? params[declared[k]!] : undefined)
  const objects: Objects = {}
  const user = value('user')
  const group = value('group')
  const app = value('app')
  if (user !== undefined) objects.users = [user]
  if (group !== undefined) objects.groups = [group]
  if (app !== undefined) objects.apps = [app]
  await assertInScope(c, objects)
  const db = getDb(c.env.DB)
  const mapping = value('mapping')
  if (mapping !== undefined && app !== undefined) {
    const row = await db.get<{ out: number }>(sql`SELECT NOT EXISTS (SELECT 1 FROM (${mappingUserSql(app, mapping)}) m WHERE m.user_id IN (${reach.users})) AS out`)
    if (row?.out) throw DelegationErrors.out_of_scope({ details: { mapping_id: mapping } })
  }
  const grant = value('grant')
  if (grant !== undefined && app !== undefined) {
    const row = await db.get<{ out: number }>(sql`SELECT NOT EXISTS (SELECT 1 FROM (${grantSubjectSql(app, grant)}) s
      WHERE (s.subject_type = 'user' AND s.subject_id IN (${reach.users})) OR (s.subject_type = 'group' AND s.subject_id IN (${reach.groups}))) AS out`)
    if (row?.out) throw DelegationErrors.out_of_scope({ details: { grant_id: grant } })
  }
}
