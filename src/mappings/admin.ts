import type { Env } from '../env'
import { getDb } from '../db'
import { MappingErrors } from './errors'
import { auditStatement, type AuditActor } from '../audit/service'
import { deliverAfterCommit, type WaitUntil } from '../webhooks/outbox'
import {
  commitMappingChange,
  deleteMappingStatements,
  findMapping,
  findMappingByKey,
  syncErrorToApiError,
  syncMappings,
  updateMappingStatements,
  type MappingWithUser,
} from './service'

/*
 * An admin's single-mapping changes. The same write paths as sync: every change writes
 * its outbox event and its audit row in one batch, compare-and-set on the row version;
 * after the batch the event is handed to webhook delivery (`waitUntil`: after the response).
 */

export async function loadMapping(env: Env, appId: string, mappingId: string): Promise<MappingWithUser> {
  const m = await findMapping(env, appId, mappingId)
  if (!m) throw MappingErrors.not_found()
  return m
}

/** Sync's ADD rules: created (201), or re-enabled / unchanged (200). */
export async function createMappingAsAdmin(env: Env, appId: string, b: { mobile: string; mapped_key: string; name?: string | null }, actor: AuditActor, waitUntil?: WaitUntil) {
  const [r] = await syncMappings(env, appId, [{ mobile: b.mobile, mapped_key: b.mapped_key, name: b.name, action: 'ADD' }], {
    audit: (res, userId) => ({ ...actor, action: 'admin.mapping.create', targetType: 'mapping', targetId: res.mapping_id, details: { app_id: appId, user_id: userId, mapped_key: b.mapped_key, result: res.code } }),
  })
  if (r.status === 'error') throw syncErrorToApiError(r)
  if (r.event_id) await deliverAfterCommit(env, [r.event_id], waitUntil)
  const mapping = await findMapping(env, appId, r.mapping_id!)
  if (!mapping) throw MappingErrors.concurrent_modification()
  return { mapping, created: r.code === 'created' }
}

function stripUser(m: MappingWithUser) {
  const { mobile: _mobile, userName: _userName, userStatus: _userStatus, ...row } = m
  return row
}

export async function updateMappingAsAdmin(
  env: Env,
  appId: string,
  mappingId: string,
  patch: { mapped_key?: string; name?: string | null; is_active?: boolean },
  action: string,
  actor: AuditActor,
  waitUntil?: WaitUntil,
): Promise<MappingWithUser> {
  const m = await loadMapping(env, appId, mappingId)
  const next = {
    mappedKey: patch.mapped_key ?? m.mappedKey,
    name: patch.name === undefined ? m.name : patch.name,
    isActive: patch.is_active ?? m.isActive,
  }
  if (next.mappedKey === m.mappedKey && next.name === m.name && next.isActive === m.isActive) return m
  if (next.mappedKey !== m.mappedKey) {
    const owner = await findMappingByKey(env, appId, next.mappedKey)
    if (owner && owner.id !== m.id) throw MappingErrors.mapped_key_taken()
  }
  // an activation change is what receivers care about most; key/name travel in the payload either way
  const type = next.isActive !== m.isActive ? (next.isActive ? 'ADD' : 'DISABLE') : 'UPDATE'
  const db = getDb(env.DB)
  const u = updateMappingStatements(db, stripUser(m), next, type)
  await commitMappingChange(env, [
    ...u.statements,
    auditStatement(db, { ...actor, action, targetType: 'mapping', targetId: m.id, details: { app_id: appId, user_id: m.userId, event_type: type, ...patch } }),
  ])
  await deliverAfterCommit(env, [u.row.lastEventId!], waitUntil)
  return { ...m, ...u.row }
}

export async function deleteMappingAsAdmin(env: Env, appId: string, mappingId: string, actor: AuditActor, waitUntil?: WaitUntil): Promise<MappingWithUser> {
  const m = await loadMapping(env, appId, mappingId)
  const db = getDb(env.DB)
  const eventId = crypto.randomUUID()
  await commitMappingChange(env, [
    ...deleteMappingStatements(db, stripUser(m), Date.now(), eventId),
    auditStatement(db, { ...actor, action: 'admin.mapping.delete', targetType: 'mapping', targetId: m.id, details: { app_id: appId, user_id: m.userId, mapped_key: m.mappedKey } }),
  ])
  await deliverAfterCommit(env, [eventId], waitUntil)
  return m
}
