import { and, eq } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { dbErrorText } from '../lib/errors'
import { auditStatement, type AuditActor } from '../audit/service'
import { findUserById } from '../users/service'
import { findGroup } from '../directory/service'
import type { DirectoryGroup } from '../directory/schema'
import { deliverAfterCommit, type WaitUntil } from '../webhooks/outbox'
import { PermissionErrors } from './errors'
import { ACCESS_PERMISSION, appPermissions, permissionGrants, type AppPermission, type GrantEffect, type PermissionGrant, type SubjectType } from './schema'
import { findAppPermission, findGrant, findGrantFor } from './service'
import type { Scope } from './resolution'
import { permissionEventStatement, type PermissionEventData, type PermissionEventSubject } from './events'

/*
 * An admin's changes to app permissions and grants (docs/permissions.md), each one
 * db.batch with its audit row; grants, revokes and permission deletes also with their
 * `permission.changed` outbox event (src/permissions/events.ts).
 */

type Stmt = BatchItem<'sqlite'>

// ---------------------------------------------------------------------------------------
// Permission changes: what a grant, a revoke or a permission delete does to answers

export interface PermissionChange {
  /** the write, its `permission.changed` outbox row and its audit row, in batch order */
  statements: Stmt[]
  eventId: string
  data: PermissionEventData
}

/**
 * Commits one planned change: the single place its statements become a batch, so the
 * change, its outbox event and its audit row commit together or not at all. The event is
 * handed to webhook delivery after the batch (`waitUntil`: after the response).
 */
async function commitPermissionChange(env: Env, change: PermissionChange, waitUntil?: WaitUntil, explain?: (msg: string) => Error | null) {
  try {
    await getDb(env.DB).batch(change.statements as [Stmt, ...Stmt[]])
  } catch (e) {
    throw explain?.(dbErrorText(e)) ?? e
  }
  await deliverAfterCommit(env, [change.eventId], waitUntil)
  return { event_id: change.eventId, ...change.data }
}

const scopeOfGrant = (g: Pick<PermissionGrant, 'scopeType' | 'scopeId'>): Scope | null => (g.scopeType === '' ? null : { type: g.scopeType, id: g.scopeId })

/** The event's subject; a group's name as it is now (a user's mapping is filled in by the outbox statement). */
const eventSubject = (g: PermissionGrant, groupName: string | null): PermissionEventSubject =>
  g.subjectType === 'user' ? { type: 'user', id: g.subjectId, mapping: null } : { type: 'group', id: g.subjectId, name: groupName }

const refreshOf = (g: PermissionGrant) => (g.subjectType === 'user' ? 'user' : 'all') as PermissionEventData['refresh']

/** Sets the effect of (subject, permission, scope): one upsert on the grant's unique key. */
export function setGrantChange(db: DB, grant: PermissionGrant, previous: PermissionGrant | undefined, actor: AuditActor, groupName: string | null = null): PermissionChange {
  const eventId = crypto.randomUUID()
  const data: PermissionEventData = {
    permission: grant.permissionKey,
    change: 'granted',
    subject: eventSubject(grant, groupName),
    scope: scopeOfGrant(grant),
    effect: grant.effect,
    previous_effect: previous?.effect ?? null,
    refresh: refreshOf(grant),
  }
  return {
    eventId,
    data,
    statements: [
      db
        .insert(permissionGrants)
        .values(grant)
        .onConflictDoUpdate({
          target: [permissionGrants.appId, permissionGrants.permissionKey, permissionGrants.subjectType, permissionGrants.subjectId, permissionGrants.scopeType, permissionGrants.scopeId],
          set: { effect: grant.effect, updatedAt: grant.updatedAt },
        }),
      permissionEventStatement(db, { eventId, appId: grant.appId, data, now: grant.updatedAt }),
      auditStatement(db, { ...actor, action: 'admin.grant.set', targetType: 'grant', targetId: grant.id, details: eventDetails(grant.appId, eventId, data) }),
    ],
  }
}

/** Removes one grant (the subject inherits again). */
export function revokeGrantChange(db: DB, grant: PermissionGrant, actor: AuditActor, groupName: string | null = null, now = Date.now()): PermissionChange {
  const eventId = crypto.randomUUID()
  const data: PermissionEventData = {
    permission: grant.permissionKey,
    change: 'revoked',
    subject: eventSubject(grant, groupName),
    scope: scopeOfGrant(grant),
    effect: null,
    previous_effect: grant.effect,
    refresh: refreshOf(grant),
  }
  return {
    eventId,
    data,
    statements: [
      db.delete(permissionGrants).where(and(eq(permissionGrants.appId, grant.appId), eq(permissionGrants.id, grant.id))),
      permissionEventStatement(db, { eventId, appId: grant.appId, data, now }),
      auditStatement(db, { ...actor, action: 'admin.grant.revoke', targetType: 'grant', targetId: grant.id, details: eventDetails(grant.appId, eventId, data) }),
    ],
  }
}

/** Deletes a permission and every grant of it: one event, `subject` null. */
export function deletePermissionChange(db: DB, p: AppPermission, actor: AuditActor, now = Date.now()): PermissionChange {
  const eventId = crypto.randomUUID()
  const data: PermissionEventData = { permission: p.key, change: 'deleted', subject: null, scope: null, effect: null, previous_effect: null, refresh: 'all' }
  return {
    eventId,
    data,
    statements: [
      db.delete(permissionGrants).where(and(eq(permissionGrants.appId, p.appId), eq(permissionGrants.permissionKey, p.key))),
      db.delete(appPermissions).where(eq(appPermissions.id, p.id)),
      permissionEventStatement(db, { eventId, appId: p.appId, data, now }),
      auditStatement(db, { ...actor, action: 'admin.permission.delete', targetType: 'permission', targetId: p.id, details: { app_id: p.appId, key: p.key, name: p.name, event_id: eventId } }),
    ],
  }
}

function eventDetails(appId: string, eventId: string, d: PermissionEventData) {
  const subject = d.subject && { type: d.subject.type, id: d.subject.id }
  return { app_id: appId, permission: d.permission, subject, scope: d.scope, effect: d.effect, previous_effect: d.previous_effect, event_id: eventId }
}

// ---------------------------------------------------------------------------------------
// Permissions

const builtIn = () => PermissionErrors.permission_built_in()

export async function loadAppPermission(env: Env, appId: string, key: string): Promise<AppPermission> {
  if (key === ACCESS_PERMISSION) throw builtIn()
  const p = await findAppPermission(env, appId, key)
  if (!p) throw PermissionErrors.permission_not_found()
  return p
}

export async function createPermissionAsAdmin(env: Env, appId: string, input: { key: string; name: string; description?: string | null }, actor: AuditActor): Promise<AppPermission> {
  if (input.key === ACCESS_PERMISSION) throw builtIn()
  const now = Date.now()
  const row: AppPermission = { id: crypto.randomUUID(), appId, key: input.key, name: input.name, description: input.description ?? null, createdAt: now, updatedAt: now }
  const db = getDb(env.DB)
  try {
    await db.batch([
      db.insert(appPermissions).values(row),
      auditStatement(db, { ...actor, action: 'admin.permission.create', targetType: 'permission', targetId: row.id, details: { app_id: appId, key: row.key, name: row.name } }),
    ])
  } catch (e) {
    if (/UNIQUE constraint failed: app_permissions\./.test(dbErrorText(e))) throw PermissionErrors.permission_exists()
    throw e
  }
  return row
}

export async function updatePermissionAsAdmin(env: Env, appId: string, key: string, patch: { name?: string; description?: string | null }, actor: AuditActor): Promise<AppPermission> {
  const p = await loadAppPermission(env, appId, key)
  const updated: AppPermission = { ...p, name: patch.name ?? p.name, description: patch.description === undefined ? p.description : patch.description, updatedAt: Date.now() }
  const db = getDb(env.DB)
  await db.batch([
    db.update(appPermissions).set({ name: updated.name, description: updated.description, updatedAt: updated.updatedAt }).where(eq(appPermissions.id, p.id)),
    auditStatement(db, { ...actor, action: 'admin.permission.update', targetType: 'permission', targetId: p.id, details: { app_id: appId, key, ...patch } }),
  ])
  return updated
}

export async function deletePermissionAsAdmin(env: Env, appId: string, key: string, actor: AuditActor, waitUntil?: WaitUntil) {
  const p = await loadAppPermission(env, appId, key)
  return commitPermissionChange(env, deletePermissionChange(getDb(env.DB), p, actor), waitUntil)
}

// ---------------------------------------------------------------------------------------
// Grants

export interface GrantInput {
  permission: string
  subject: { type: SubjectType; id: string }
  scope?: Scope | null
  effect: GrantEffect
}

async function checkGrantTarget(env: Env, appId: string, g: Pick<GrantInput, 'permission' | 'subject' | 'scope'>) {
  if (g.permission === ACCESS_PERMISSION) {
    if (g.scope) throw PermissionErrors.access_not_scoped()
  } else if (!(await findAppPermission(env, appId, g.permission))) {
    throw PermissionErrors.permission_not_found({ message: `The app has no permission "${g.permission}"; create it first` })
  }
  const exists = g.subject.type === 'user' ? await findUserById(env, g.subject.id) : await findGroup(env, g.subject.id)
  if (!exists) throw PermissionErrors.subject_not_found({ message: `No ${g.subject.type} with id ${g.subject.id}` })
  return { groupName: g.subject.type === 'group' ? (exists as DirectoryGroup).name : null }
}

/** Allow or deny for (subject, permission, scope); returns the grant and whether it is new. */
export async function setGrantAsAdmin(env: Env, appId: string, input: GrantInput, actor: AuditActor, waitUntil?: WaitUntil) {
  const { groupName } = await checkGrantTarget(env, appId, input)
  const key = { appId, permissionKey: input.permission, subjectType: input.subject.type, subjectId: input.subject.id, scopeType: input.scope?.type ?? '', scopeId: input.scope?.id ?? '' }
  const previous = await findGrantFor(env, key)
  const now = Date.now()
  const grant: PermissionGrant = previous ? { ...previous, effect: input.effect, updatedAt: now } : { id: crypto.randomUUID(), ...key, effect: input.effect, createdAt: now, updatedAt: now }
  if (previous?.effect === input.effect) return { grant: previous, created: false, event: null }
  const event = await commitPermissionChange(env, setGrantChange(getDb(env.DB), grant, previous, actor, groupName), waitUntil)
  // a concurrent set of the same key may have inserted first: the upsert updated that row
  const stored = previous ? grant : ((await findGrantFor(env, key)) ?? grant)
  return { grant: stored, created: !previous && stored.id === grant.id, event }
}

export async function loadGrant(env: Env, appId: string, grantId: string): Promise<PermissionGrant> {
  const g = await findGrant(env, appId, grantId)
  if (!g) throw PermissionErrors.grant_not_found()
  return g
}

export async function revokeGrantAsAdmin(env: Env, appId: string, grantId: string, actor: AuditActor, waitUntil?: WaitUntil) {
  const g = await loadGrant(env, appId, grantId)
  const groupName = g.subjectType === 'group' ? ((await findGroup(env, g.subjectId))?.name ?? null) : null
  const event = await commitPermissionChange(env, revokeGrantChange(getDb(env.DB), g, actor, groupName), waitUntil)
  return { grant: g, event }
}
