import type { Context } from 'hono'
import type { DB } from '../db'
import { auditLogs } from './schema'
import type { AppEnv } from '../context'

export interface AuditEntry {
  action: string
  actorType: 'admin' | 'user' | 'app' | 'system' | 'anonymous'
  actorId?: string | null
  targetType?: string | null
  targetId?: string | null
  requestId?: string | null
  ip?: string | null
  details?: unknown
}

/**
 * An audit insert as a statement, so it can go in the same `db.batch` as the write it
 * records: the change and its audit row land together or not at all.
 */
export function auditStatement(db: DB, entry: AuditEntry) {
  return db.insert(auditLogs).values({
    at: Date.now(),
    actorType: entry.actorType,
    actorId: entry.actorId ?? null,
    action: entry.action,
    targetType: entry.targetType ?? null,
    targetId: entry.targetId ?? null,
    requestId: entry.requestId ?? null,
    ip: entry.ip ?? null,
    details: entry.details ?? null,
  })
}

/** Request-derived audit fields: actor from the bearer token, request id, client IP. */
export function auditFrom(c: Context<AppEnv>, entry: Omit<AuditEntry, 'requestId' | 'ip' | 'actorType' | 'actorId'> & Partial<Pick<AuditEntry, 'actorType' | 'actorId'>>): AuditEntry {
  const auth = c.get('auth')
  return {
    actorType: entry.actorType ?? (auth ? (auth.role === 'ADMIN' ? 'admin' : 'user') : 'anonymous'),
    actorId: entry.actorId ?? auth?.userId ?? null,
    requestId: c.get('requestId'),
    ip: c.get('clientIp'),
    ...entry,
  }
}
