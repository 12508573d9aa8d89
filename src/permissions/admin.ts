import { and, eq } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { auditStatement, type AuditActor } from '../audit/service'
import { findUserById } from '../users/service'
import { findGroup } from '../directory/service'
import { PermissionErrors } from './errors'
import { ACCESS_PERMISSION, appPermissions, permissionGrants, type AppPermission, type GrantEffect, type PermissionGrant, type SubjectType } from './schema'
import { findAppPermission, findGrant, findGrantFor } from './service'
import type { Scope } from './resolution'

/*
 * An admin's changes to app permissions and grants (docs/permissions.md), each one
 * db.batch with its audit row.
 */

type Stmt = BatchItem<'sqlite'>

const messageOf = (e: unknown) => [e, (e as { cause?: unknown })?.cause].map((x) => String((x as Error)?.message ?? x ?? '')).join(' ')

// ---------------------------------------------------------------------------------------
// Permission changes: what a grant, a revoke or a permission delete does to answers

/**
 * The `permission.changed` event of one change: which answers may differ afterwards.
 * `effect` null means no grant any more (inherit). A permission delete is one event with
 * `subject` null (every grant of the key went).
 */
export interface PermissionChangedEvent {
  type: 'permission.changed'
  app_id: string
  permission: string
  subject: { type: SubjectType; id: string } | null
  scope: Scope | null
  effect: GrantEffect | null
  previous_effect: GrantEffect | null
  at: string
}

export interface PermissionChange {
  /** the write and its audit row, in batch order */
  statements: Stmt[]
  event: PermissionChangedEvent
}

/**
 * Commits one planned change. The single place the change's statements become a batch, so
 * the webhook outbox statement for `change.event` can join the same batch once the outbox
 * exists (docs/permissions.md, "Webhooks").
 */
async function commitPermissionChange(env: Env, change: PermissionChange, explain?: (msg: string) => Error | null) {
  try {
    await getDb(env.DB).batch(change.statements as [Stmt, ...Stmt[]])
  } catch (e) {
    throw explain?.(messageOf(e)) ?? e
  }
  return change.event
}

const scopeOfGrant = (g: Pick<PermissionGrant, 'scopeType' | 'scopeId'>): Scope | null => (g.scopeType === '' ? null : { type: g.scopeType, id: g.scopeId })

/** Sets the effect of (subject, permission, scope): one upsert on the grant's unique key. */
export function setGrantChange(db: DB, grant: PermissionGrant, previous: PermissionGrant | undefined, actor: AuditActor): PermissionChange {
  const event: PermissionChangedEvent = {
    type: 'permission.changed',
    app_id: grant.appId,
    permission: grant.permissionKey,
    subject: { type: grant.subjectType, id: grant.subjectId },
    scope: scopeOfGrant(grant),
    effect: grant.effect,
    previous_effect: previous?.effect ?? null,
    at: new Date(grant.updatedAt).toISOString(),
  }
  return {
    event,
    statements: [
      db
        .insert(permissionGrants)
        .values(grant)
        .onConflictDoUpdate({
          target: [permissionGrants.appId, permissionGrants.permissionKey, permissionGrants.subjectType, permissionGrants.subjectId, permissionGrants.scopeType, permissionGrants.scopeId],
          set: { effect: grant.effect, updatedAt: grant.updatedAt },
        }),
      auditStatement(db, { ...actor, action: 'admin.grant.set', targetType: 'grant', targetId: grant.id, details: eventDetails(event) }),
    ],
  }
}

/** Removes one grant (the subject inherits again). */
export function revokeGrantChange(db: DB, grant: PermissionGrant, actor: AuditActor, now = Date.now()): PermissionChange {
  const event: PermissionChangedEvent = {
    type: 'permission.changed',
    app_id: grant.appId,
    permission: grant.permissionKey,
    subject: { type: grant.subjectType, id: grant.subjectId },
    scope: scopeOfGrant(grant),
    effect: null,
    previous_effect: grant.effect,
    at: new Date(now).toISOString(),
  }
  return {
    event,
    statements: [
      db.delete(permissionGrants).where(and(eq(permissionGrants.appId, grant.appId), eq(permissionGrants.id, grant.id))),
      auditStatement(db, { ...actor, action: 'admin.grant.revoke', targetType: 'grant', targetId: grant.id, details: eventDetails(event) }),
    ],
  }
}

/** Deletes a permission and every grant of it. */
export function deletePermissionChange(db: DB, p: AppPermission, actor: AuditActor, now = Date.now()): PermissionChange {
  const event: PermissionChangedEvent = { type: 'permission.changed', app_id: p.appId, permission: p.key, subject: null, scope: null, effect: null, previous_effect: null, at: new Date(now).toISOString() }
  return {
    event,
    statements: [
      db.delete(permissionGrants).where(and(eq(permissionGrants.appId, p.appId), eq(permissionGrants.permissionKey, p.key))),
      db.delete(appPermissions).where(eq(appPermissions.id, p.id)),
      auditStatement(db, { ...actor, action: 'admin.permission.delete', targetType: 'permission', targetId: p.id, details: { app_id: p.appId, key: p.key, name: p.name } }),
    ],
  }
}

function eventDetails(e: PermissionChangedEvent) {
  return { app_id: e.app_id, permission: e.permission, subject: e.subject, scope: e.scope, effect: e.effect, previous_effect: e.previous_effect }
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
    if (/UNIQUE constraint failed: app_permissions\./.test(messageOf(e))) throw PermissionErrors.permission_exists()
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

export async function deletePermissionAsAdmin(env: Env, appId: string, key: string, actor: AuditActor): Promise<PermissionChangedEvent> {
  const p = await loadAppPermission(env, appId, key)
  return commitPermissionChange(env, deletePermissionChange(getDb(env.DB), p, actor))
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
}

/** Allow or deny for (subject, permission, scope); returns the grant and whether it is new. */
export async function setGrantAsAdmin(env: Env, appId: string, input: GrantInput, actor: AuditActor) {
  await checkGrantTarget(env, appId, input)
  const key = { appId, permissionKey: input.permission, subjectType: input.subject.type, subjectId: input.subject.id, scopeType: input.scope?.type ?? '', scopeId: input.scope?.id ?? '' }
  const previous = await findGrantFor(env, key)
  const now = Date.now()
  const grant: PermissionGrant = previous ? { ...previous, effect: input.effect, updatedAt: now } : { id: crypto.randomUUID(), ...key, effect: input.effect, createdAt: now, updatedAt: now }
  if (previous?.effect === input.effect) return { grant: previous, created: false, event: null }
  const event = await commitPermissionChange(env, setGrantChange(getDb(env.DB), grant, previous, actor))
  // a concurrent set of the same key may have inserted first: the upsert updated that row
  const stored = previous ? grant : ((await findGrantFor(env, key)) ?? grant)
  return { grant: stored, created: !previous && stored.id === grant.id, event }
}

export async function loadGrant(env: Env, appId: string, grantId: string): Promise<PermissionGrant> {
  const g = await findGrant(env, appId, grantId)
  if (!g) throw PermissionErrors.grant_not_found()
  return g
}

export async function revokeGrantAsAdmin(env: Env, appId: string, grantId: string, actor: AuditActor) {
  const g = await loadGrant(env, appId, grantId)
  const event = await commitPermissionChange(env, revokeGrantChange(getDb(env.DB), g, actor))
  return { grant: g, event }
}
