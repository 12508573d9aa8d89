import type { Env } from '../env'
import { getDb } from '../db'
import { auditStatement, type AuditActor } from '../audit/service'
import { endSessionsStatements } from '../auth/sessions'
import { runSessionEndHooks } from '../auth/session-hooks'
import { UserErrors } from './errors'
import { hashPassword } from '../lib/password'
import type { User } from './schema'
import type { E164 } from '../lib/mobile'
import { dbErrorText } from '../lib/errors'
import { findUserById, insertUserStatement, isMobileTaken, newUserRow, passwordParams, updateUserStatement } from './service'
import { userEventsStatement } from '../mappings/service'
import type { UserEventKind } from '../mappings/schema'
import { deliverAfterCommit, type WaitUntil } from '../webhooks/outbox'
import { membershipStatement } from '../directory/service'
import { DirectoryErrors } from '../directory/errors'

/*
 * What an admin does to accounts. Each change is one db.batch with its audit row; a
 * change that ends the user's sessions (disable, new password) revokes them in the same
 * batch and then runs the session-end hooks (back-channel logout). A change the user's
 * apps are told about (disabled, enabled, name or mobile) writes one outbox event per app
 * the user is mapped in, in the same batch, handed to webhook delivery after it.
 */

/** `groupId`: a directory group the user joins in the same batch (a sub-admin creates users into their scope). */
export async function createUserAsAdmin(
  env: Env,
  input: { mobile: E164; password: string; name?: string | null; email?: string | null; role?: 'USER' | 'ADMIN'; groupId?: string },
  actor: AuditActor,
): Promise<User> {
  const db = getDb(env.DB)
  const row = await newUserRow(env, input)
  try {
    await db.batch([
      insertUserStatement(db, row),
      ...(input.groupId ? [membershipStatement(db, row.id, input.groupId, row.createdAt)] : []),
      auditStatement(db, { ...actor, action: 'admin.user.create', targetType: 'user', targetId: row.id, details: { mobile: row.mobile, role: row.role, ...(input.groupId ? { group_id: input.groupId } : {}) } }),
    ])
  } catch (e) {
    if (isMobileTaken(e)) throw UserErrors.mobile_taken()
    if (input.groupId && /FOREIGN KEY constraint failed/.test(dbErrorText(e))) throw DirectoryErrors.group_not_found()
    throw e
  }
  return row
}

async function loadUser(env: Env, id: string): Promise<User> {
  const user = await findUserById(env, id)
  if (!user) throw UserErrors.user_not_found()
  return user
}

/** What the user's apps hear about a change, if anything (email and role are not in the payload). */
export function userEventKind(user: User, patch: { name?: string | null; status?: 'ACTIVE' | 'DISABLED'; mobile?: E164 }): UserEventKind | null {
  if (patch.status && patch.status !== user.status) return patch.status === 'DISABLED' ? 'user.disabled' : 'user.enabled'
  if ((patch.name !== undefined && patch.name !== user.name) || (patch.mobile !== undefined && patch.mobile !== user.mobile)) return 'user.updated'
  return null
}

export async function updateUserAsAdmin(
  env: Env,
  id: string,
  patch: { name?: string | null; email?: string | null; status?: 'ACTIVE' | 'DISABLED'; mobile?: E164 },
  actor: AuditActor,
  waitUntil?: WaitUntil,
): Promise<User> {
  const db = getDb(env.DB)
  const user = await loadUser(env, id)
  const now = Date.now()
  const disabling = patch.status === 'DISABLED' && user.status !== 'DISABLED'
  const kind = userEventKind(user, patch)
  const events = kind ? userEventsStatement(db, id, kind, now) : null
  let results: unknown[]
  try {
    results = await db.batch([
      updateUserStatement(db, id, patch, now),
      ...(events ? [events] : []),
      ...(disabling ? endSessionsStatements(db, { userId: id }, now) : []),
      auditStatement(db, { ...actor, action: disabling ? 'admin.user.disable' : 'admin.user.update', targetType: 'user', targetId: id, details: patch }),
    ])
  } catch (e) {
    if (isMobileTaken(e)) throw UserErrors.mobile_taken()
    throw e
  }
  if (disabling) await runSessionEndHooks(env, { userId: id, reason: 'account_disabled' })
  if (events) await deliverAfterCommit(env, (results[1] as { eventId: string }[]).map((e) => e.eventId), waitUntil)
  return { ...user, ...patch, updatedAt: now }
}

export async function setPasswordAsAdmin(env: Env, id: string, password: string, actor: AuditActor): Promise<void> {
  const db = getDb(env.DB)
  await loadUser(env, id)
  const now = Date.now()
  const passwordHash = await hashPassword(password, passwordParams(env))
  await db.batch([
    updateUserStatement(db, id, { passwordHash }, now),
    ...endSessionsStatements(db, { userId: id }, now),
    auditStatement(db, { ...actor, action: 'admin.user.set_password', targetType: 'user', targetId: id }),
  ])
  await runSessionEndHooks(env, { userId: id, reason: 'password_set' })
}

