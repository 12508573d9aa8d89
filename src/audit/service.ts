import type { Context } from 'hono'
import { and, desc, eq, inArray, lt, or } from 'drizzle-orm'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { auditLogs } from './schema'
import type { AppEnv } from '../context'

export interface AuditEntry {
  /** when it happened (ms); defaults to when the statement is built */
  at?: number
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
    at: entry.at ?? Date.now(),
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

/** Who did it, from where: the part of an audit row a route knows and a service does not. */
export type AuditActor = Pick<AuditEntry, 'actorType' | 'actorId' | 'requestId' | 'ip'>

/** The request's actor: the bearer token's user (admin or user), else anonymous; request id; client IP. */
export function auditActor(c: Context<AppEnv>): AuditActor {
  const auth = c.get('auth')
  return { actorType: auth ? (auth.role === 'ADMIN' ? 'admin' : 'user') : 'anonymous', actorId: auth?.userId ?? null, requestId: c.get('requestId'), ip: c.get('clientIp') }
}

/** Request-derived audit fields: actor from the bearer token, request id, client IP. */
export function auditFrom(c: Context<AppEnv>, entry: Omit<AuditEntry, 'requestId' | 'ip' | 'actorType' | 'actorId'> & Partial<Pick<AuditEntry, 'actorType' | 'actorId'>>): AuditEntry {
  const actor = auditActor(c)
  return { ...actor, ...entry, actorType: entry.actorType ?? actor.actorType, actorId: entry.actorId ?? actor.actorId }
}

export interface AuditQuery {
  limit: number
  before?: number
  action?: string
  target_id?: string
}

/** Newest first; page backwards with `before` (the smallest id of the previous page). */
export async function listAudit(env: Env, q: AuditQuery) {
  const conds = []
  if (q.before) conds.push(lt(auditLogs.id, q.before))
  if (q.action) conds.push(eq(auditLogs.action, q.action))
  if (q.target_id) conds.push(eq(auditLogs.targetId, q.target_id))
  const rows = await getDb(env.DB).select().from(auditLogs).where(conds.length ? and(...conds) : undefined).orderBy(desc(auditLogs.id)).limit(q.limit)
  return {
    items: rows.map((r) => ({
      id: r.id,
      at: new Date(r.at).toISOString(),
      actor_type: r.actorType,
      actor_id: r.actorId,
      action: r.action,
      target_type: r.targetType,
      target_id: r.targetId,
      request_id: r.requestId,
      ip: r.ip,
      details: r.details,
    })),
    next_before: rows.length === q.limit ? rows[rows.length - 1].id : null,
  }
}

/**
 * Audit actions a person sees as their own security activity on the portal (src/portal/),
 * whoever recorded them: their sign-ins and sign-outs, password and profile changes, consents.
 */
export const USER_SECURITY_ACTIONS = [
  'login.succeeded',
  'logout',
  'logout_all',
  'password.reset',
  'admin.user.set_password',
  'portal.password_changed',
  'portal.password_change_failed',
  'portal.profile_updated',
  'portal.mobile_changed',
  'portal.mobile_change_failed',
  'portal.session_ended',
  'portal.other_sessions_ended',
  'oidc.consent.granted',
  'oidc.consent.revoked',
] as const

export interface SecurityActivity {
  at: number
  action: string
  ip: string | null
  targetId: string | null
  details: unknown
}

/**
 * The user's recent security activity, newest first: rows about the user (as actor or target)
 * with one of USER_SECURITY_ACTIONS, and failed sign-ins for their number (recorded against
 * the mobile, since a failure proves no identity).
 */
export async function userSecurityActivity(env: Env, user: { id: string; mobile: string }, limit = 20): Promise<SecurityActivity[]> {
  const actions = [...USER_SECURITY_ACTIONS]
  const rows = await getDb(env.DB)
    .select({ at: auditLogs.at, action: auditLogs.action, ip: auditLogs.ip, targetId: auditLogs.targetId, details: auditLogs.details })
    .from(auditLogs)
    .where(
      or(
        and(inArray(auditLogs.action, actions), or(eq(auditLogs.actorId, user.id), eq(auditLogs.targetId, user.id))),
        and(eq(auditLogs.action, 'login.failed'), eq(auditLogs.targetId, user.mobile)),
      ),
    )
    .orderBy(desc(auditLogs.id))
    .limit(limit)
  return rows
}
