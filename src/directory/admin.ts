import { and, eq, inArray, sql } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb } from '../db'
import type { Env } from '../env'
import { auditStatement, type AuditActor } from '../audit/service'
import { deleteGrantsOfGroupStatement } from '../permissions/service'
import { CommonErrors, dbErrorText } from '../lib/errors'
import { DirectoryErrors } from './errors'
import { directoryGroups, groupMemberships, groupTypes, type DirectoryGroup, type GroupType } from './schema'
import { MAX_GROUP_LEVELS, WALK_LIMIT, countChildrenAndMembers, descendantsCte, existingUserIds, findGroup, findGroupType, memberIdsAmong, treeFacts } from './service'

/*
 * An admin's changes to the directory (docs/permissions.md). Each is one db.batch with its
 * audit row. The rules that concurrent writers could break are held by the database itself,
 * not only by the reads before: sibling names by a unique index, "no children, no members"
 * by the foreign keys a delete would violate, and "no cycle" by the move's own UPDATE.
 */

type Stmt = BatchItem<'sqlite'>

async function commit(env: Env, statements: Stmt[], explain: (msg: string) => Promise<Error | null> | Error | null) {
  try {
    return await getDb(env.DB).batch(statements as [Stmt, ...Stmt[]])
  } catch (e) {
    const err = await explain(dbErrorText(e))
    throw err ?? e
  }
}

// ---------------------------------------------------------------------------------------
// Group types

export async function loadGroupType(env: Env, id: string): Promise<GroupType> {
  const t = await findGroupType(env, id)
  if (!t) throw DirectoryErrors.group_type_not_found()
  return t
}

export async function createGroupTypeAsAdmin(env: Env, input: { id: string; name: string }, actor: AuditActor): Promise<GroupType> {
  const now = Date.now()
  const row: GroupType = { id: input.id, name: input.name, builtIn: false, createdAt: now, updatedAt: now }
  const db = getDb(env.DB)
  await commit(env, [db.insert(groupTypes).values(row), auditStatement(db, { ...actor, action: 'admin.group_type.create', targetType: 'group_type', targetId: row.id, details: { name: row.name } })], (m) =>
    /UNIQUE constraint failed: group_types\.id/.test(m) ? DirectoryErrors.group_type_exists() : null,
  )
  return row
}

export async function renameGroupTypeAsAdmin(env: Env, id: string, name: string, actor: AuditActor): Promise<GroupType> {
  const t = await loadGroupType(env, id)
  if (t.builtIn) throw DirectoryErrors.group_type_built_in()
  const updated = { ...t, name, updatedAt: Date.now() }
  const db = getDb(env.DB)
  await db.batch([
    db.update(groupTypes).set({ name, updatedAt: updated.updatedAt }).where(and(eq(groupTypes.id, id), eq(groupTypes.builtIn, false))),
    auditStatement(db, { ...actor, action: 'admin.group_type.update', targetType: 'group_type', targetId: id, details: { name, previous_name: t.name } }),
  ])
  return updated
}

export async function deleteGroupTypeAsAdmin(env: Env, id: string, actor: AuditActor): Promise<void> {
  const t = await loadGroupType(env, id)
  if (t.builtIn) throw DirectoryErrors.group_type_built_in()
  const db = getDb(env.DB)
  const inUse = await db.select({ id: directoryGroups.id }).from(directoryGroups).where(eq(directoryGroups.typeId, id)).limit(1)
  if (inUse.length) throw DirectoryErrors.group_type_in_use()
  // a group created meanwhile holds the type through its foreign key: the delete then fails whole
  await commit(
    env,
    [
      db.delete(groupTypes).where(and(eq(groupTypes.id, id), eq(groupTypes.builtIn, false))),
      auditStatement(db, { ...actor, action: 'admin.group_type.delete', targetType: 'group_type', targetId: id, details: { name: t.name } }),
    ],
    (m) => (/FOREIGN KEY constraint failed/.test(m) ? DirectoryErrors.group_type_in_use() : null),
  )
}

// ---------------------------------------------------------------------------------------
// Groups

export async function loadGroup(env: Env, id: string): Promise<DirectoryGroup> {
  const g = await findGroup(env, id)
  if (!g) throw DirectoryErrors.group_not_found()
  return g
}

async function loadParent(env: Env, parentId: string, typeId: string | undefined): Promise<DirectoryGroup> {
  const parent = await findGroup(env, parentId)
  if (!parent) throw DirectoryErrors.parent_not_found()
  if (typeId !== undefined && parent.typeId !== typeId) throw DirectoryErrors.parent_type_mismatch({ message: `The parent group is a ${parent.typeId} group, not ${typeId}` })
  return parent
}

const tooDeep = () => DirectoryErrors.tree_too_deep({ message: `A group tree has at most ${MAX_GROUP_LEVELS} levels` })

export async function createGroupAsAdmin(env: Env, input: { typeId?: string; parentId?: string | null; name: string }, actor: AuditActor): Promise<DirectoryGroup> {
  let typeId = input.typeId
  if (input.parentId) {
    const parent = await loadParent(env, input.parentId, typeId)
    typeId = parent.typeId
    if ((await treeFacts(env, { parentId: parent.id })).parentLevel + 1 > MAX_GROUP_LEVELS) throw tooDeep()
  } else {
    if (!typeId) throw CommonErrors.invalid_request({ message: "type_id: required for a root group (a child takes its parent's type)" })
    await loadGroupType(env, typeId)
  }
  const now = Date.now()
  const row = { id: crypto.randomUUID(), typeId: typeId!, parentId: input.parentId ?? null, name: input.name, createdAt: now, updatedAt: now }
  const db = getDb(env.DB)
  await commit(
    env,
    [
      db.insert(directoryGroups).values(row),
      auditStatement(db, { ...actor, action: 'admin.group.create', targetType: 'group', targetId: row.id, details: { type_id: row.typeId, parent_id: row.parentId, name: row.name } }),
    ],
    (m) => (/UNIQUE constraint failed: directory_groups\./.test(m) ? DirectoryErrors.group_name_taken() : /FOREIGN KEY constraint failed/.test(m) ? DirectoryErrors.parent_not_found() : null),
  )
  return { ...row, siblingKey: row.parentId ?? '' }
}

/**
 * Renames and/or moves a group (parentId null: to the root of its tree). The move is one
 * UPDATE whose type_id turns NULL, which the NOT NULL constraint refuses, when the new
 * parent is inside the group's own subtree or of another type at the moment of writing:
 * a concurrent move can never close a cycle. Members keep their memberships; what they
 * inherit follows the group to its new place at once.
 */
export async function updateGroupAsAdmin(env: Env, id: string, patch: { name?: string; parentId?: string | null }, actor: AuditActor): Promise<DirectoryGroup> {
  const g = await loadGroup(env, id)
  const moving = patch.parentId !== undefined && patch.parentId !== g.parentId
  if (moving && patch.parentId) {
    if (patch.parentId === id) throw DirectoryErrors.move_into_own_subtree()
    await loadParent(env, patch.parentId, g.typeId)
    const facts = await treeFacts(env, { parentId: patch.parentId, groupId: id })
    if (facts.parentInSubtree) throw DirectoryErrors.move_into_own_subtree()
    if (facts.parentLevel + facts.subtreeLevels > MAX_GROUP_LEVELS) throw tooDeep()
  }
  const next = { name: patch.name ?? g.name, parentId: moving ? (patch.parentId ?? null) : g.parentId }
  if (next.name === g.name && !moving) return g
  const now = Date.now()
  const db = getDb(env.DB)
  // The walk down stops at WALK_LIMIT levels; a subtree deeper than that (only concurrent
  // moves, each within the depth limit by its own read, can make one) could hide the new
  // parent below the cut, so a walk that reaches the cut refuses the move too.
  const guard =
    moving && next.parentId
      ? sql`CASE WHEN ${next.parentId} NOT IN (WITH RECURSIVE ${descendantsCte(id)} SELECT id FROM down)
          AND NOT EXISTS (WITH RECURSIVE ${descendantsCte(id)} SELECT 1 FROM down WHERE n >= ${WALK_LIMIT})
          AND (SELECT p.type_id FROM directory_groups p WHERE p.id = ${next.parentId}) = type_id THEN type_id END`
      : sql`type_id`
  const details: Record<string, unknown> = {}
  if (next.name !== g.name) Object.assign(details, { name: next.name, previous_name: g.name })
  if (moving) Object.assign(details, { parent_id: next.parentId, previous_parent_id: g.parentId })
  await commit(
    env,
    [
      db.update(directoryGroups).set({ name: next.name, parentId: next.parentId, updatedAt: now, typeId: guard }).where(eq(directoryGroups.id, id)),
      auditStatement(db, { ...actor, action: moving ? 'admin.group.move' : 'admin.group.rename', targetType: 'group', targetId: id, details }),
    ],
    async (m) => {
      if (/UNIQUE constraint failed: directory_groups\./.test(m)) return DirectoryErrors.group_name_taken()
      if (/FOREIGN KEY constraint failed/.test(m)) return DirectoryErrors.parent_not_found()
      if (/NOT NULL constraint failed: directory_groups\.type_id/.test(m)) {
        const parent = next.parentId ? await findGroup(env, next.parentId) : undefined
        if (!parent) return DirectoryErrors.parent_not_found()
        return (await treeFacts(env, { parentId: parent.id, groupId: id })).parentInSubtree ? DirectoryErrors.move_into_own_subtree() : DirectoryErrors.concurrent_modification()
      }
      return null
    },
  )
  return { ...g, name: next.name, parentId: next.parentId, siblingKey: next.parentId ?? '', updatedAt: now }
}

/**
 * Deletes an empty group and its grants. "Empty" is checked first for a clear answer and
 * held by the foreign keys: a child or a member added meanwhile makes the DELETE fail, and
 * the batch (grants, audit row) with it.
 */
export async function deleteGroupAsAdmin(env: Env, id: string, actor: AuditActor): Promise<void> {
  const g = await loadGroup(env, id)
  const refuse = async () => {
    const n = await countChildrenAndMembers(env, id)
    if (n.children) return DirectoryErrors.group_has_children({ message: `The group has ${n.children} subgroup(s); move or delete them first` })
    if (n.members) return DirectoryErrors.group_has_members({ message: `The group has ${n.members} member(s); remove them first` })
    return null
  }
  const early = await refuse()
  if (early) throw early
  const db = getDb(env.DB)
  await commit(
    env,
    [
      db.delete(directoryGroups).where(eq(directoryGroups.id, id)),
      deleteGrantsOfGroupStatement(db, id),
      auditStatement(db, { ...actor, action: 'admin.group.delete', targetType: 'group', targetId: id, details: { type_id: g.typeId, parent_id: g.parentId, name: g.name } }),
    ],
    (m) => (/FOREIGN KEY constraint failed/.test(m) ? refuse().then((e) => e ?? DirectoryErrors.concurrent_modification()) : null),
  )
}

// ---------------------------------------------------------------------------------------
// Memberships

export const MEMBERSHIP_MAX_USERS = 500
/** Rows per INSERT: 3 bound parameters each, under D1's 100 per statement. */
const INSERT_ROWS = 30
const DELETE_IDS = 90

/** Adds users to a group; all or nothing (an unknown user id refuses the whole call). */
export async function addMembersAsAdmin(env: Env, groupId: string, userIds: string[], actor: AuditActor) {
  await loadGroup(env, groupId)
  const ids = [...new Set(userIds)]
  const known = await existingUserIds(env, ids)
  const missing = ids.filter((u) => !known.has(u))
  if (missing.length) throw DirectoryErrors.users_not_found({ details: { user_ids: missing } })
  const already = await memberIdsAmong(env, groupId, ids)
  const added = ids.filter((u) => !already.has(u))
  if (!added.length) return { added: [], already_members: [...already] }
  const db = getDb(env.DB)
  const now = Date.now()
  const statements: Stmt[] = []
  for (let i = 0; i < added.length; i += INSERT_ROWS) {
    statements.push(db.insert(groupMemberships).values(added.slice(i, i + INSERT_ROWS).map((userId) => ({ userId, groupId, createdAt: now }))).onConflictDoNothing())
  }
  statements.push(auditStatement(db, { ...actor, action: 'admin.group.members_add', targetType: 'group', targetId: groupId, details: { user_ids: added } }))
  await commit(env, statements, (m) => (/FOREIGN KEY constraint failed/.test(m) ? DirectoryErrors.concurrent_modification() : null))
  return { added, already_members: [...already] }
}

export async function removeMembersAsAdmin(env: Env, groupId: string, userIds: string[], actor: AuditActor) {
  await loadGroup(env, groupId)
  const ids = [...new Set(userIds)]
  const members = await memberIdsAmong(env, groupId, ids)
  const removed = ids.filter((u) => members.has(u))
  const notMembers = ids.filter((u) => !members.has(u))
  if (!removed.length) return { removed: [], not_members: notMembers }
  const db = getDb(env.DB)
  const statements: Stmt[] = []
  for (let i = 0; i < removed.length; i += DELETE_IDS) {
    statements.push(db.delete(groupMemberships).where(and(eq(groupMemberships.groupId, groupId), inArray(groupMemberships.userId, removed.slice(i, i + DELETE_IDS)))))
  }
  statements.push(auditStatement(db, { ...actor, action: 'admin.group.members_remove', targetType: 'group', targetId: groupId, details: { user_ids: removed } }))
  await db.batch(statements as [Stmt, ...Stmt[]])
  return { removed, not_members: notMembers }
}
