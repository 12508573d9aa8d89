import { and, asc, eq, sql, type SQL } from 'drizzle-orm'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { applications, type AccessPolicy } from '../apps/schema'
import { users } from '../users/schema'
import { appUserMappings } from '../mappings/schema'
import { mappingOn, userIdOfMappedKeySql } from '../mappings/service'
import { MembershipPaths, WALK_LIMIT, groupPathsSql, membershipChainCte, membershipGroupsJson, parseGroupPaths } from '../directory/service'
import type { E164 } from '../lib/mobile'
import { sha256Hex } from '../lib/crypto'
import { ACCESS_PERMISSION, appPermissions, permissionGrants, type AppPermission, type PermissionGrant } from './schema'
import { decide, parseCandidates, scopesOf, sourceOf, type Candidate, type Scope, type Source } from './resolution'

/*
 * Reads of app permissions and grants, and the statements other features put in their
 * batches. Every answer about one user is one statement: the user's membership paths
 * (src/directory/service.ts) and the grants that apply are scalar subqueries of the same
 * SELECT, and src/permissions/resolution.ts decides from what it returns.
 */

/**
 * A scalar subquery: the app's grants that apply to the user (the user's own, and those of
 * every group on the user's membership paths with its distance), as JSON for
 * parseCandidates(). `key` limits it to one permission. Uncorrelated (a bound value or a
 * subquery for `appId` and `userId`), so it can be a column of any read.
 */
export function grantsJson(appId: SQL, userId: SQL, key?: string): SQL<string> {
  const onlyKey = key === undefined ? sql`` : sql`AND gr.permission_key = ${key}`
  // index lookups on permission_grants_subject_idx per group of the chain, never a scan of
  // the app's grants: CROSS JOIN keeps SQLite's planner from looping over grants first
  return sql<string>`(WITH RECURSIVE ${membershipChainCte(userId)}
    SELECT json_group_array(json_array(id, permission_key, scope_type, scope_id, effect, subject_type, subject_id, distance)) FROM (
      SELECT gr.id, gr.permission_key, gr.scope_type, gr.scope_id, gr.effect, gr.subject_type, gr.subject_id, -1 AS distance
      FROM permission_grants gr WHERE gr.subject_type = 'user' AND gr.subject_id = ${userId} AND gr.app_id = ${appId} ${onlyKey}
      UNION ALL
      SELECT gr.id, gr.permission_key, gr.scope_type, gr.scope_id, gr.effect, gr.subject_type, gr.subject_id, n.distance
      FROM (SELECT group_id, min(distance) AS distance FROM chain GROUP BY group_id) n
      CROSS JOIN permission_grants gr ON gr.subject_type = 'group' AND gr.subject_id = n.group_id AND gr.app_id = ${appId} ${onlyKey}))`
}

/** The app's own permissions as JSON `[[key, name, description], ...]`, key order. */
function appPermissionsJson(appId: string): SQL<string> {
  return sql<string>`(SELECT json_group_array(json_array(key, name, description)) FROM (SELECT key, name, description FROM app_permissions WHERE app_id = ${appId} ORDER BY key))`
}

/** Removes the grants of a group; in a group delete's batch, after the group itself (src/directory/admin.ts). */
export function deleteGrantsOfGroupStatement(db: DB, groupId: string) {
  return db.delete(permissionGrants).where(and(eq(permissionGrants.subjectType, 'group'), eq(permissionGrants.subjectId, groupId)))
}

export async function listAppPermissions(env: Env, appId: string): Promise<AppPermission[]> {
  return getDb(env.DB).select().from(appPermissions).where(eq(appPermissions.appId, appId)).orderBy(asc(appPermissions.key))
}

export async function findAppPermission(env: Env, appId: string, key: string): Promise<AppPermission | undefined> {
  return getDb(env.DB).select().from(appPermissions).where(and(eq(appPermissions.appId, appId), eq(appPermissions.key, key))).get()
}

/** The built-in access permission as the API shows it (it has no row). */
export const ACCESS_VIEW = { key: ACCESS_PERMISSION, name: 'Access', description: 'May sign in to the app (required by the `permission` access policy)', built_in: true }

export function publicPermission(p: AppPermission) {
  return { key: p.key, name: p.name, description: p.description, built_in: false, created_at: new Date(p.createdAt).toISOString(), updated_at: new Date(p.updatedAt).toISOString() }
}

export function publicGrant(g: PermissionGrant) {
  return {
    grant_id: g.id,
    app_id: g.appId,
    permission: g.permissionKey,
    subject: { type: g.subjectType, id: g.subjectId },
    scope: g.scopeType === '' ? null : { type: g.scopeType, id: g.scopeId },
    effect: g.effect,
    created_at: new Date(g.createdAt).toISOString(),
    updated_at: new Date(g.updatedAt).toISOString(),
  }
}

/** `within`: subqueries of the user and group ids a delegated admin may see (src/delegation/scope.ts); omitted, every grant. */
export async function listGrants(
  env: Env,
  appId: string,
  q: { permission?: string; subjectType?: 'user' | 'group'; subjectId?: string; page: number; pageSize: number; within?: { users: SQL; groups: SQL } },
) {
  const db = getDb(env.DB)
  const conds = [eq(permissionGrants.appId, appId)]
  if (q.within) {
    const { users, groups } = q.within
    conds.push(sql`((${permissionGrants.subjectType} = 'user' AND ${permissionGrants.subjectId} IN (${users})) OR (${permissionGrants.subjectType} = 'group' AND ${permissionGrants.subjectId} IN (${groups})))`)
  }
  if (q.permission) conds.push(eq(permissionGrants.permissionKey, q.permission))
  if (q.subjectType) conds.push(eq(permissionGrants.subjectType, q.subjectType))
  if (q.subjectId) conds.push(eq(permissionGrants.subjectId, q.subjectId))
  const where = and(...conds)
  const [rows, total] = await db.batch([
    db.select().from(permissionGrants).where(where).orderBy(asc(permissionGrants.permissionKey), asc(permissionGrants.createdAt), asc(permissionGrants.id)).limit(q.pageSize).offset((q.page - 1) * q.pageSize),
    db.select({ n: sql<number>`count(*)` }).from(permissionGrants).where(where),
  ])
  return { items: rows.map(publicGrant), page: q.page, page_size: q.pageSize, total: total[0]?.n ?? 0 }
}

export async function findGrant(env: Env, appId: string, grantId: string): Promise<PermissionGrant | undefined> {
  return getDb(env.DB).select().from(permissionGrants).where(and(eq(permissionGrants.appId, appId), eq(permissionGrants.id, grantId))).get()
}

export async function findGrantFor(env: Env, g: Pick<PermissionGrant, 'appId' | 'permissionKey' | 'subjectType' | 'subjectId' | 'scopeType' | 'scopeId'>): Promise<PermissionGrant | undefined> {
  return getDb(env.DB)
    .select()
    .from(permissionGrants)
    .where(
      and(
        eq(permissionGrants.appId, g.appId),
        eq(permissionGrants.permissionKey, g.permissionKey),
        eq(permissionGrants.subjectType, g.subjectType),
        eq(permissionGrants.subjectId, g.subjectId),
        eq(permissionGrants.scopeType, g.scopeType),
        eq(permissionGrants.scopeId, g.scopeId),
      ),
    )
    .get()
}

// ---------------------------------------------------------------------------------------
// One user's permissions in one app: one statement

/** Whom a read is about: a user id, or (partner calls) the app's user with this mobile or mapped_key. */
export type UserRef = { userId: string } | { mobile: E164 } | { mappedKey: string }

function userIdSql(db: DB, appId: string, who: UserRef): SQL {
  if ('userId' in who) return sql`${who.userId}`
  if ('mobile' in who) return sql`(${db.select({ id: users.id }).from(users).where(eq(users.mobile, who.mobile))})`
  return userIdOfMappedKeySql(db, appId, who.mappedKey)
}

export interface UserPermissionsRead {
  app: { appId: string; appName: string; accessPolicy: AccessPolicy; status: 'ACTIVE' | 'DISABLED' }
  user: { id: string; mobile: string; name: string | null; status: 'ACTIVE' | 'DISABLED' } | null
  mapping: { id: string; mappedKey: string; isActive: boolean } | null
  paths: MembershipPaths
  candidates: Candidate[]
  permissions: { key: string; name: string; description: string | null }[]
}

/**
 * The app, the user, the user's mapping in the app (any state), the user's groups, the
 * grants that apply and the app's permissions: one SELECT. Null when the app does not exist.
 * `key` limits the grants read to one permission (a check).
 */
export async function readUserPermissions(env: Env, appId: string, who: UserRef, o: { key?: string; withPermissions?: boolean } = {}): Promise<UserPermissionsRead | null> {
  const db = getDb(env.DB)
  const uid = userIdSql(db, appId, who)
  const row = await db
    .select({
      app: { appId: applications.appId, appName: applications.appName, accessPolicy: applications.accessPolicy, status: applications.status },
      user: { id: users.id, mobile: users.mobile, name: users.name, status: users.status },
      mapping: { id: appUserMappings.id, mappedKey: appUserMappings.mappedKey, isActive: appUserMappings.isActive },
      groups: membershipGroupsJson(uid),
      grants: grantsJson(sql`${appId}`, uid, o.key),
      permissions: o.withPermissions === false ? sql<string>`NULL` : appPermissionsJson(appId),
    })
    .from(applications)
    .leftJoin(users, eq(users.id, uid))
    .leftJoin(appUserMappings, mappingOn(applications.appId, users.id))
    .where(eq(applications.appId, appId))
    .get()
  if (!row) return null
  const perms = row.permissions ? (JSON.parse(row.permissions) as [string, string, string | null][]) : []
  return {
    app: row.app,
    user: row.user,
    mapping: row.mapping,
    paths: new MembershipPaths(row.groups),
    candidates: row.user ? parseCandidates(row.grants) : [],
    permissions: perms.map(([key, name, description]) => ({ key, name, description })),
  }
}

export interface CheckResult {
  permission: string
  scope: Scope | null
  allowed: boolean
  source: Source
}

export function checkFrom(read: UserPermissionsRead, key: string, scope: Scope | null): CheckResult {
  const d = decide(read.candidates, key, scope)
  return { permission: key, scope, allowed: d.allowed, source: sourceOf(d, read.paths) }
}

/** May the user enter the app under its policy (src/permissions/admission.ts has the same rule for entry points)? */
export function admittedFrom(read: UserPermissionsRead): boolean {
  if (!read.user || read.user.status !== 'ACTIVE' || read.app.status !== 'ACTIVE' || !read.mapping?.isActive) return false
  return read.app.accessPolicy === 'mapping' || decide(read.candidates, ACCESS_PERMISSION).allowed
}

/**
 * Everything the user has in the app: every permission (access first), its unscoped answer
 * and, for each scope some grant of it names, the scoped answer. Complete for a cache: a
 * scope not listed has the unscoped answer.
 */
export function snapshotFrom(read: UserPermissionsRead) {
  const defined = [{ key: ACCESS_PERMISSION, name: ACCESS_VIEW.name, built_in: true }, ...read.permissions.map((p) => ({ key: p.key, name: p.name, built_in: false }))]
  return {
    app_id: read.app.appId,
    user_id: read.user!.id,
    mapped_key: read.mapping?.mappedKey ?? null,
    access_policy: read.app.accessPolicy,
    admitted: admittedFrom(read),
    permissions: defined.map((p) => {
      const d = decide(read.candidates, p.key)
      return {
        key: p.key,
        name: p.name,
        built_in: p.built_in,
        allowed: d.allowed,
        source: sourceOf(d, read.paths),
        scopes: scopesOf(read.candidates, p.key).map((scope) => {
          const s = decide(read.candidates, p.key, scope)
          return { scope, allowed: s.allowed, source: sourceOf(s, read.paths) }
        }),
      }
    }),
  }
}

export type PermissionSnapshot = ReturnType<typeof snapshotFrom>

/**
 * Strong ETag of a snapshot: a hash of exactly what is sent, so any change that alters the
 * answer (grant, revoke, membership, a group moved, renamed or deleted, a permission
 * deleted, the policy) alters the tag, with nothing to invalidate (docs/permissions.md).
 */
export async function snapshotEtag(snapshot: PermissionSnapshot): Promise<string> {
  return `"${(await sha256Hex(JSON.stringify(snapshot))).slice(0, 40)}"`
}

/** RFC 9110 §13.1.2: If-None-Match with `*` or a list of (weak or strong) tags; weak comparison. */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false
  if (ifNoneMatch.trim() === '*') return true
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)
}

// ---------------------------------------------------------------------------------------
// Claims (OIDC scopes `groups` and `permissions`)

/** The `permissions` claim: the keys the user is granted (unscoped) in the client; `access` is implied by the token. */
export function permissionKeysClaim(candidates: Candidate[]): string[] {
  const keys = [...new Set(candidates.map((c) => c.key))].filter((k) => k !== ACCESS_PERMISSION)
  return keys.filter((k) => decide(candidates, k).allowed).sort()
}

/** The `groups` claim: the user's groups as paths (`department/Sales/East`). */
export function groupsClaim(paths: MembershipPaths): string[] {
  return paths
    .direct()
    .map((g) => paths.claimPath(g.id))
    .sort()
}

/** Both claims for a user and a client, one read. */
export async function readClaims(env: Env, appId: string, userId: string, want: { groups: boolean; permissions: boolean }) {
  const db = getDb(env.DB)
  const uid = sql`${userId}`
  const row = await db.get<{ groups: string | null; grants: string | null }>(
    sql`SELECT ${want.groups ? membershipGroupsJson(uid) : sql`NULL`} AS groups, ${want.permissions ? grantsJson(sql`${appId}`, uid) : sql`NULL`} AS grants`,
  )
  const out: { groups?: string[]; permissions?: string[] } = {}
  if (want.groups) out.groups = groupsClaim(new MembershipPaths(row?.groups))
  if (want.permissions) out.permissions = permissionKeysClaim(parseCandidates(row?.grants))
  return out
}

// ---------------------------------------------------------------------------------------
// Who has a permission

/**
 * Every user whose answer for `key` (at `scope`) is allow, with its source: the users with
 * an own grant and the members of every granted group and its subgroups, each resolved by
 * the same rule. Reads in parallel: the candidates per user, the grants' groups' paths.
 */
/** A grant's subject (none when the app has no such grant), as a subquery of (subject_type, subject_id). */
export function grantSubjectSql(appId: string, grantId: string): SQL {
  return sql`SELECT subject_type, subject_id FROM permission_grants WHERE app_id = ${appId} AND id = ${grantId}`
}

export async function listHolders(env: Env, appId: string, key: string, scope: Scope | null) {
  const db = getDb(env.DB)
  const scopeFilter = scope ? sql`AND (gr.scope_type = '' OR (gr.scope_type = ${scope.type} AND gr.scope_id = ${scope.id}))` : sql`AND gr.scope_type = ''`
  const granted = sql`SELECT gr.subject_id FROM permission_grants gr WHERE gr.app_id = ${appId} AND gr.permission_key = ${key} AND gr.subject_type = 'group' ${scopeFilter}`
  const [rows, paths] = await Promise.all([
    db.all<{ user_id: string; mobile: string; name: string | null; status: 'ACTIVE' | 'DISABLED'; grant_id: string; scope_type: string; scope_id: string; effect: 'allow' | 'deny'; subject_type: 'user' | 'group'; subject_id: string; distance: number }>(sql`
      WITH RECURSIVE down(grant_id, group_id, distance) AS (
        SELECT gr.id, gr.subject_id, 0 FROM permission_grants gr WHERE gr.app_id = ${appId} AND gr.permission_key = ${key} AND gr.subject_type = 'group' ${scopeFilter}
        UNION
        SELECT d.grant_id, g.id, d.distance + 1 FROM down d JOIN directory_groups g ON g.parent_id = d.group_id WHERE d.distance < ${WALK_LIMIT}
      ),
      reached(user_id, grant_id, distance) AS (
        SELECT m.user_id, d.grant_id, min(d.distance) FROM down d JOIN group_memberships m ON m.group_id = d.group_id GROUP BY m.user_id, d.grant_id
        UNION ALL
        SELECT gr.subject_id, gr.id, -1 FROM permission_grants gr WHERE gr.app_id = ${appId} AND gr.permission_key = ${key} AND gr.subject_type = 'user' ${scopeFilter}
      )
      SELECT r.user_id, u.mobile, u.name, u.status, r.grant_id, gr.scope_type, gr.scope_id, gr.effect, gr.subject_type, gr.subject_id, r.distance
      FROM reached r JOIN permission_grants gr ON gr.id = r.grant_id JOIN users u ON u.id = r.user_id`),
    db.all<{ start: string; name: string; n: number }>(groupPathsSql(granted)),
  ])
  const names = parseGroupPaths(paths)
  const byUser = new Map<string, { user: { user_id: string; mobile: string; name: string | null; status: string }; candidates: Candidate[] }>()
  for (const r of rows) {
    const entry = byUser.get(r.user_id) ?? { user: { user_id: r.user_id, mobile: r.mobile, name: r.name, status: r.status }, candidates: [] }
    entry.candidates.push({ grantId: r.grant_id, key, scopeType: r.scope_type, scopeId: r.scope_id, effect: r.effect, subjectType: r.subject_type, subjectId: r.subject_id, distance: r.distance })
    byUser.set(r.user_id, entry)
  }
  const holders = []
  for (const { user, candidates } of byUser.values()) {
    const d = decide(candidates, key, scope)
    if (d.allowed) holders.push({ ...user, source: sourceOf(d, (id) => names.get(id) ?? []) })
  }
  return holders.sort((a, b) => a.mobile.localeCompare(b.mobile))
}
