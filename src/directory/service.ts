import { and, asc, count, eq, inArray, sql, type SQL } from 'drizzle-orm'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { users } from '../users/schema'
import { directoryGroups, groupMemberships, groupTypes, type DirectoryGroup, type GroupType } from './schema'

/*
 * The directory (docs/permissions.md): group types, one tree of groups per type, users in
 * any number of groups. Trees are stored as parent links; every question about ancestors or
 * descendants is one recursive CTE (SQLite WITH RECURSIVE), so it costs one statement.
 */

/** Levels a tree may have (a root is level 1). */
export const MAX_GROUP_LEVELS = 32
/**
 * Bound of every recursive walk. A valid tree never reaches it (moves refuse cycles and
 * the level limit is half of it); it only bounds the work if something were ever wrong.
 */
export const WALK_LIMIT = 64
/** Joins the names of a group path in messages and sources: "Sales ▸ East". */
export const PATH_SEPARATOR = ' ▸ '

/**
 * `chain(group_id, distance)`, to follow WITH RECURSIVE: every group on the user's
 * membership paths, with its distance from a group the user is directly in (0 = a direct
 * membership, 1 = that group's parent ...). A group reached on several paths appears once
 * per distance; readers take the smallest. `userId` is a bound value or an uncorrelated
 * subquery: SQLite does not let a CTE refer to the columns of an enclosing query.
 */
export function membershipChainCte(userId: SQL): SQL {
  return sql`chain(group_id, distance) AS (
    SELECT group_id, 0 FROM group_memberships WHERE user_id = ${userId}
    UNION
    SELECT g.parent_id, c.distance + 1 FROM chain c JOIN directory_groups g ON g.id = c.group_id
    WHERE g.parent_id IS NOT NULL AND c.distance < ${WALK_LIMIT})`
}

/**
 * A scalar subquery: the groups on the user's membership paths as JSON
 * `[[id, distance, parent_id, type_id, name], ...]`, to read with {@link MembershipPaths}.
 * As a column it joins any read (no extra round trip).
 */
export function membershipGroupsJson(userId: SQL): SQL<string> {
  return sql<string>`(WITH RECURSIVE ${membershipChainCte(userId)}
    SELECT json_group_array(json_array(g.id, c.distance, g.parent_id, g.type_id, g.name))
    FROM (SELECT group_id, min(distance) AS distance FROM chain GROUP BY group_id) c
    JOIN directory_groups g ON g.id = c.group_id)`
}

export interface PathGroup {
  id: string
  /** 0: the user is directly in it; n: the n-th ancestor of such a group (the smallest n) */
  distance: number
  parentId: string | null
  typeId: string
  name: string
}

/** The groups of {@link membershipGroupsJson}: every ancestor of a group is among them, so paths are built without another read. */
export class MembershipPaths {
  readonly groups: Map<string, PathGroup>

  constructor(json: string | null | undefined) {
    const rows = json ? (JSON.parse(json) as [string, number, string | null, string, string][]) : []
    this.groups = new Map(rows.map(([id, distance, parentId, typeId, name]) => [id, { id, distance, parentId, typeId, name }]))
  }

  /** The groups the user is directly in. */
  direct(): PathGroup[] {
    return [...this.groups.values()].filter((g) => g.distance === 0)
  }

  /** Names from the root down to the group. */
  names(id: string): string[] {
    const out: string[] = []
    for (let g = this.groups.get(id), n = 0; g && n < WALK_LIMIT; g = g.parentId ? this.groups.get(g.parentId) : undefined, n++) out.unshift(g.name)
    return out
  }

  /** The `groups` claim form: `department/Sales/East` (group names cannot contain "/"). */
  claimPath(id: string): string {
    return [this.groups.get(id)?.typeId ?? '', ...this.names(id)].join('/')
  }
}

/**
 * For the groups `ids` (a subquery) selects, their names up to the root: rows
 * `(start, name, n)` with n = 0 for the group itself; read with parseGroupPaths().
 */
export function groupPathsSql(ids: SQL): SQL {
  return sql`WITH RECURSIVE up(start, id, parent_id, name, n) AS (
      SELECT g.id, g.id, g.parent_id, g.name, 0 FROM directory_groups g WHERE g.id IN (${ids})
      UNION ALL
      SELECT up.start, p.id, p.parent_id, p.name, up.n + 1 FROM up JOIN directory_groups p ON p.id = up.parent_id WHERE up.n < ${WALK_LIMIT})
    SELECT start, name, n FROM up`
}

/** group id → names from the root down to it. */
export function parseGroupPaths(rows: { start: string; name: string; n: number }[]): Map<string, string[]> {
  const byStart = new Map<string, { name: string; n: number }[]>()
  for (const r of rows) byStart.set(r.start, [...(byStart.get(r.start) ?? []), r])
  return new Map([...byStart].map(([id, list]) => [id, list.sort((a, b) => b.n - a.n).map((x) => x.name)]))
}

/** The user's groups and their ancestors, one read. */
export async function userMembershipPaths(env: Env, userId: string): Promise<MembershipPaths> {
  const row = await getDb(env.DB).get<{ groups: string }>(sql`SELECT ${membershipGroupsJson(sql`${userId}`)} AS groups`)
  return new MembershipPaths(row?.groups)
}

// ---------------------------------------------------------------------------------------
// Group types

export async function listGroupTypes(env: Env) {
  const db = getDb(env.DB)
  return db
    .select({ type: groupTypes, groups: sql<number>`(SELECT count(*) FROM directory_groups g WHERE g.type_id = ${groupTypes.id})` })
    .from(groupTypes)
    .orderBy(sql`${groupTypes.builtIn} DESC`, asc(groupTypes.createdAt), asc(groupTypes.id))
}

export async function findGroupType(env: Env, id: string): Promise<GroupType | undefined> {
  return getDb(env.DB).select().from(groupTypes).where(eq(groupTypes.id, id)).get()
}

export function publicGroupType(t: GroupType, groupCount?: number) {
  return {
    id: t.id,
    name: t.name,
    built_in: t.builtIn,
    ...(groupCount !== undefined ? { group_count: groupCount } : {}),
    created_at: new Date(t.createdAt).toISOString(),
    updated_at: new Date(t.updatedAt).toISOString(),
  }
}

// ---------------------------------------------------------------------------------------
// Groups

export async function findGroup(env: Env, id: string): Promise<DirectoryGroup | undefined> {
  return getDb(env.DB).select().from(directoryGroups).where(eq(directoryGroups.id, id)).get()
}

/** The group and its ancestors, root first, as a statement. */
function ancestorsQuery(db: DB, groupId: string) {
  return db.all<{ id: string; name: string; type_id: string; level: number }>(sql`WITH RECURSIVE up(id, parent_id, name, type_id, n) AS (
      SELECT id, parent_id, name, type_id, 0 FROM directory_groups WHERE id = ${groupId}
      UNION ALL
      SELECT g.id, g.parent_id, g.name, g.type_id, up.n + 1 FROM directory_groups g JOIN up ON g.id = up.parent_id WHERE up.n < ${WALK_LIMIT})
    SELECT id, name, type_id, n FROM up ORDER BY n DESC`)
}

/**
 * What a move or a new child needs to know, in one read: the level of `parentId` (root = 1)
 * and, for a group that moves, how many levels its subtree has and whether `parentId` is
 * inside it.
 */
export async function treeFacts(env: Env, o: { parentId: string; groupId?: string }) {
  const db = getDb(env.DB)
  const [parentLevel, subtree] = await Promise.all([
    db.get<{ n: number }>(sql`WITH RECURSIVE up(id, parent_id, n) AS (
        SELECT id, parent_id, 1 FROM directory_groups WHERE id = ${o.parentId}
        UNION ALL
        SELECT g.id, g.parent_id, up.n + 1 FROM directory_groups g JOIN up ON g.id = up.parent_id WHERE up.n < ${WALK_LIMIT})
      SELECT max(n) AS n FROM up`),
    o.groupId
      ? db.get<{ levels: number; contains: number }>(sql`WITH RECURSIVE ${descendantsCte(o.groupId)}
          SELECT max(n) + 1 AS levels, max(id = ${o.parentId}) AS contains FROM down`)
      : undefined,
  ])
  return { parentLevel: parentLevel?.n ?? 0, subtreeLevels: subtree?.levels ?? 1, parentInSubtree: !!subtree?.contains }
}

/** `down(id, n)`: the group (n = 0) and every group below it, to follow WITH RECURSIVE. */
export function descendantsCte(groupId: string | SQL): SQL {
  return sql`down(id, n) AS (
    SELECT ${groupId}, 0
    UNION ALL
    SELECT g.id, down.n + 1 FROM directory_groups g JOIN down ON g.parent_id = down.id WHERE down.n < ${WALK_LIMIT})`
}

/**
 * Reach of a delegated admin's scope (docs/admin-rights.md), as subqueries to use in `IN (…)`:
 * every group in the subtrees of the groups a JSON array names. The ids travel as one bound
 * JSON value, so a scope of any size costs one parameter.
 */
export function subtreeGroupIdsSql(groupIdsJson: string): SQL {
  return sql`WITH RECURSIVE scope_down(id, n) AS (
      SELECT g.id, 0 FROM directory_groups g WHERE g.id IN (SELECT value FROM json_each(${groupIdsJson}))
      UNION
      SELECT g.id, d.n + 1 FROM directory_groups g JOIN scope_down d ON g.parent_id = d.id WHERE d.n < ${WALK_LIMIT})
    SELECT id FROM scope_down`
}

/** The users directly in any of the groups `groupIds` (a subquery) selects. */
export function membersOfGroupsSql(groupIds: SQL): SQL {
  return sql`SELECT user_id FROM group_memberships WHERE group_id IN (${groupIds})`
}

/** The group a user joins, as a statement for the batch that creates the user. */
export function membershipStatement(db: DB, userId: string, groupId: string, now: number) {
  return db.insert(groupMemberships).values({ userId, groupId, createdAt: now })
}

export interface GroupNode {
  id: string
  type_id: string
  parent_id: string | null
  name: string
  path: string[]
  level: number
  child_count: number
  member_count: number
  subtree_member_count: number
  created_at: string
  updated_at: string
}

/**
 * The groups of one type (or all), depth first with siblings by name: each with its path,
 * its level, its direct members and the distinct users in it and every group below it.
 */
export async function listGroupTree(env: Env, typeId?: string, within?: SQL): Promise<GroupNode[]> {
  const db = getDb(env.DB)
  const where = typeId ? sql`WHERE type_id = ${typeId}` : sql``
  const [rows, subtree, shown] = await Promise.all([
    db.all<{ id: string; type_id: string; parent_id: string | null; name: string; created_at: number; updated_at: number; members: number }>(
      sql`SELECT g.id, g.type_id, g.parent_id, g.name, g.created_at, g.updated_at, (SELECT count(*) FROM group_memberships m WHERE m.group_id = g.id) AS members
        FROM directory_groups g ${where}`,
    ),
    db.all<{ ancestor: string; users: number }>(sql`WITH RECURSIVE sub(ancestor, group_id, n) AS (
        SELECT id, id, 0 FROM directory_groups ${where}
        UNION ALL
        SELECT s.ancestor, g.id, s.n + 1 FROM sub s JOIN directory_groups g ON g.parent_id = s.group_id WHERE s.n < ${WALK_LIMIT})
      SELECT s.ancestor, count(DISTINCT m.user_id) AS users FROM sub s JOIN group_memberships m ON m.group_id = s.group_id GROUP BY s.ancestor`),
    // a delegated admin's list: the whole tree is walked (paths name every ancestor), only groups in reach are shown
    within ? db.all<{ id: string }>(sql`SELECT id FROM directory_groups WHERE id IN (${within})`) : undefined,
  ])
  const visible = shown && new Set(shown.map((r) => r.id))
  const totals = new Map(subtree.map((r) => [r.ancestor, r.users]))
  const children = new Map<string | null, typeof rows>()
  for (const r of rows) children.set(r.parent_id, [...(children.get(r.parent_id) ?? []), r])
  for (const list of children.values()) list.sort((a, b) => (a.type_id === b.type_id ? a.name.localeCompare(b.name) : a.type_id.localeCompare(b.type_id)))
  const out: GroupNode[] = []
  const visit = (parent: string | null, path: string[]) => {
    for (const r of children.get(parent) ?? []) {
      const p = [...path, r.name]
      if (!visible || visible.has(r.id)) out.push({
        id: r.id,
        type_id: r.type_id,
        parent_id: r.parent_id,
        name: r.name,
        path: p,
        level: p.length,
        child_count: children.get(r.id)?.length ?? 0,
        member_count: r.members,
        subtree_member_count: totals.get(r.id) ?? 0,
        created_at: new Date(r.created_at).toISOString(),
        updated_at: new Date(r.updated_at).toISOString(),
      })
      if (p.length < WALK_LIMIT) visit(r.id, p)
    }
  }
  visit(null, [])
  return out
}

/** One group as the admin API shows it. */
export async function groupNode(env: Env, groupId: string): Promise<GroupNode | undefined> {
  const db = getDb(env.DB)
  const [group, ancestors, counts] = await Promise.all([
    findGroup(env, groupId),
    ancestorsQuery(db, groupId),
    db.get<{ children: number; members: number; subtree: number }>(sql`WITH RECURSIVE ${descendantsCte(groupId)}
      SELECT (SELECT count(*) FROM directory_groups WHERE parent_id = ${groupId}) AS children,
        (SELECT count(*) FROM group_memberships WHERE group_id = ${groupId}) AS members,
        (SELECT count(DISTINCT user_id) FROM group_memberships WHERE group_id IN (SELECT id FROM down)) AS subtree`),
  ])
  if (!group) return undefined
  const path = ancestors.map((a) => a.name)
  return {
    id: group.id,
    type_id: group.typeId,
    parent_id: group.parentId,
    name: group.name,
    path,
    level: path.length,
    child_count: counts?.children ?? 0,
    member_count: counts?.members ?? 0,
    subtree_member_count: counts?.subtree ?? 0,
    created_at: new Date(group.createdAt).toISOString(),
    updated_at: new Date(group.updatedAt).toISOString(),
  }
}

// ---------------------------------------------------------------------------------------
// Memberships

/**
 * Members of a group, or of the group and every group below it (each user once, with the
 * groups of that subtree they are directly in). Newest membership first, paginated.
 */
export async function listMembers(env: Env, groupId: string, q: { subgroups: boolean; page: number; pageSize: number }) {
  const db = getDb(env.DB)
  const scope = q.subgroups ? sql`m.group_id IN (SELECT id FROM down)` : sql`m.group_id = ${groupId}`
  const cte = sql`WITH RECURSIVE ${descendantsCte(groupId)}`
  const [rows, total] = await Promise.all([
    db.all<{ id: string; mobile: string; name: string | null; status: 'ACTIVE' | 'DISABLED'; group_ids: string; since: number }>(sql`${cte}
      SELECT u.id, u.mobile, u.name, u.status, json_group_array(m.group_id) AS group_ids, max(m.created_at) AS since
      FROM group_memberships m JOIN users u ON u.id = m.user_id
      WHERE ${scope}
      GROUP BY u.id ORDER BY since DESC, u.id LIMIT ${q.pageSize} OFFSET ${(q.page - 1) * q.pageSize}`),
    db.get<{ n: number }>(sql`${cte} SELECT count(DISTINCT m.user_id) AS n FROM group_memberships m WHERE ${scope}`),
  ])
  return {
    items: rows.map((r) => ({ user_id: r.id, mobile: r.mobile, name: r.name, status: r.status, group_ids: JSON.parse(r.group_ids) as string[], member_since: new Date(r.since).toISOString() })),
    page: q.page,
    page_size: q.pageSize,
    total: total?.n ?? 0,
  }
}

/** Which of these user ids exist (for adding members: unknown ids refuse the whole call). */
export async function existingUserIds(env: Env, ids: string[]): Promise<Set<string>> {
  const db = getDb(env.DB)
  const found = new Set<string>()
  // 100 bound parameters per D1 statement
  for (let i = 0; i < ids.length; i += 90) {
    for (const r of await db.select({ id: users.id }).from(users).where(inArray(users.id, ids.slice(i, i + 90)))) found.add(r.id)
  }
  return found
}

/** Which of these group ids exist (any number of them: the list travels as one JSON value). */
export async function existingGroupIds(env: Env, ids: string[]): Promise<Set<string>> {
  if (!ids.length) return new Set()
  const rows = await getDb(env.DB).all<{ id: string }>(sql`SELECT id FROM directory_groups WHERE id IN (SELECT value FROM json_each(${JSON.stringify(ids)}))`)
  return new Set(rows.map((r) => r.id))
}

/** Which of these users are already direct members of the group. */
export async function memberIdsAmong(env: Env, groupId: string, ids: string[]): Promise<Set<string>> {
  const db = getDb(env.DB)
  const found = new Set<string>()
  for (let i = 0; i < ids.length; i += 90) {
    const rows = await db
      .select({ id: groupMemberships.userId })
      .from(groupMemberships)
      .where(and(eq(groupMemberships.groupId, groupId), inArray(groupMemberships.userId, ids.slice(i, i + 90))))
    for (const r of rows) found.add(r.id)
  }
  return found
}

export async function countChildrenAndMembers(env: Env, groupId: string) {
  const db = getDb(env.DB)
  const [children, members] = await Promise.all([
    db.select({ n: count() }).from(directoryGroups).where(eq(directoryGroups.parentId, groupId)),
    db.select({ n: count() }).from(groupMemberships).where(eq(groupMemberships.groupId, groupId)),
  ])
  return { children: children[0]?.n ?? 0, members: members[0]?.n ?? 0 }
}
