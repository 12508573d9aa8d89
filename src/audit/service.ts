import type { Context } from 'hono'
import { and, desc, eq, gte, inArray, lt, lte, or, sql, type SQL } from 'drizzle-orm'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { auditLogs, ACTOR_TYPES } from './schema'
import type { AppEnv } from '../context'
import type { Principal } from '../delegation/model'
import type { RouteRight } from '../delegation/rights'

export type ActorType = (typeof ACTOR_TYPES)[number]

export interface AuditEntry {
  /** when it happened (ms); defaults to when the statement is built */
  at?: number
  action: string
  actorType: ActorType
  actorId?: string | null
  /** the right an admin route needed and where the caller holds it (auditActor fills it) */
  authority?: unknown
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
  return db.insert(auditLogs).values(auditRow(entry))
}

/**
 * An audit row written only if `when` holds as the batch runs: for a write that may do
 * nothing (INSERT … ON CONFLICT DO NOTHING), so the row says what did happen, in the same
 * batch. Columns in table order, the id left to AUTOINCREMENT.
 */
export function auditStatementIf(db: DB, entry: AuditEntry, when: SQL) {
  const r = auditRow(entry)
  return db
    .insert(auditLogs)
    .select(sql`SELECT NULL, ${r.at}, ${r.actorType}, ${r.actorId}, ${r.action}, ${r.targetType}, ${r.targetId}, ${r.requestId}, ${r.ip}, ${json(r.details)}, ${json(r.authority)} WHERE ${when}`)
}

/** Rows per multi-row INSERT: 10 bound values each, under D1's 100 per statement. */
export const AUDIT_ROWS_PER_STATEMENT = 9

/** The columns a bulk insert writes, in the order its values are bound (every column but the id). */
const BULK_COLUMNS = [auditLogs.at, auditLogs.actorType, auditLogs.actorId, auditLogs.action, auditLogs.targetType, auditLogs.targetId, auditLogs.requestId, auditLogs.ip, auditLogs.details, auditLogs.authority]
// SQL text per row count (1 to AUDIT_ROWS_PER_STATEMENT): built once per isolate, placeholders only
const bulkSql = new Map<number, string>()
// JSON-mode columns as drizzle writes them: JSON text, or NULL when absent
const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v))

/**
 * Many audit rows as few D1 statements (AUDIT_ROWS_PER_STATEMENT rows each), for writers that
 * ship rows in bulk (the AppGate's outbox, hundreds of rows a second on the ticket paths):
 * each statement is D1 work of its own, and the SQL text is not rebuilt for every batch. The
 * values are the ones auditStatement writes (JSON columns as JSON text, absent as NULL).
 */
export function auditRowsStatements(d1: D1Database, entries: AuditEntry[]): D1PreparedStatement[] {
  const out: D1PreparedStatement[] = []
  for (let i = 0; i < entries.length; i += AUDIT_ROWS_PER_STATEMENT) {
    const rows = entries.slice(i, i + AUDIT_ROWS_PER_STATEMENT).map(auditRow)
    let text = bulkSql.get(rows.length)
    if (!text) {
      const one = `(${BULK_COLUMNS.map(() => '?').join(', ')})`
      text = `INSERT INTO "audit_logs" (${BULK_COLUMNS.map((col) => `"${col.name}"`).join(', ')}) VALUES ${rows.map(() => one).join(', ')}`
      bulkSql.set(rows.length, text)
    }
    out.push(d1.prepare(text).bind(...rows.flatMap((r) => [r.at, r.actorType, r.actorId, r.action, r.targetType, r.targetId, r.requestId, r.ip, json(r.details), json(r.authority)])))
  }
  return out
}

function auditRow(entry: AuditEntry) {
  return {
    at: entry.at ?? Date.now(),
    actorType: entry.actorType,
    actorId: entry.actorId ?? null,
    action: entry.action,
    targetType: entry.targetType ?? null,
    targetId: entry.targetId ?? null,
    requestId: entry.requestId ?? null,
    ip: entry.ip ?? null,
    details: entry.details ?? null,
    authority: entry.authority ?? null,
  }
}

/** Who did it, from where: the part of an audit row a route knows and a service does not. */
export type AuditActor = Pick<AuditEntry, 'actorType' | 'actorId' | 'requestId' | 'ip' | 'authority'>

/** The right used and where the principal holds it: their role, or the grants (admin groups, the API client's own) holding it. */
export function authorityOf(p: Principal, right: RouteRight | undefined) {
  if (p.kind === 'admin') return { right: right ?? null, via: 'role:ADMIN' }
  return { right: right ?? null, via: p.grants.filter((g) => right && right !== 'admin' && g.rights.includes(right)).map((g) => g.source) }
}

/**
 * The request's actor: on the admin API the principal the guard resolved (full admin,
 * sub-admin, API client) with the authority it acted under; elsewhere the bearer token's
 * user (admin or user), else anonymous. Request id and client IP always.
 */
export function auditActor(c: Context<AppEnv>): AuditActor {
  const from = { requestId: c.get('requestId'), ip: c.get('clientIp') }
  const p = c.get('principal')
  if (p) {
    const authority = authorityOf(p, c.get('adminRight'))
    if (p.kind === 'client') return { ...from, actorType: 'api_client', actorId: p.clientId, authority }
    return { ...from, actorType: p.kind, actorId: p.userId, authority }
  }
  const auth = c.get('auth')
  return { ...from, actorType: auth ? (auth.role === 'ADMIN' ? 'admin' : 'user') : 'anonymous', actorId: auth?.userId ?? null }
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
  actor_type?: ActorType
  actor_id?: string
  target_type?: string
  target_id?: string
  /** ms, inclusive */
  from?: number
  /** ms, inclusive */
  to?: number
}

/** Subqueries of the targets a delegated reader may see (src/delegation/scope.ts). */
export interface AuditWithin {
  users: SQL
  groups: SQL
  apps: SQL
}

/**
 * Newest first; page backwards with `before` (the smallest id of the previous page). With
 * `within`, only rows whose target is a user, group or application inside it.
 */
export async function listAudit(env: Env, q: AuditQuery, within?: AuditWithin) {
  const conds = []
  if (q.before) conds.push(lt(auditLogs.id, q.before))
  if (q.action) conds.push(eq(auditLogs.action, q.action))
  if (q.actor_type) conds.push(eq(auditLogs.actorType, q.actor_type))
  if (q.actor_id) conds.push(eq(auditLogs.actorId, q.actor_id))
  if (q.target_type) conds.push(eq(auditLogs.targetType, q.target_type))
  if (q.target_id) conds.push(eq(auditLogs.targetId, q.target_id))
  if (q.from !== undefined) conds.push(gte(auditLogs.at, q.from))
  if (q.to !== undefined) conds.push(lte(auditLogs.at, q.to))
  if (within) {
    conds.push(sql`((${auditLogs.targetType} = 'user' AND ${auditLogs.targetId} IN (${within.users}))
      OR (${auditLogs.targetType} = 'group' AND ${auditLogs.targetId} IN (${within.groups}))
      OR (${auditLogs.targetType} = 'application' AND ${auditLogs.targetId} IN (${within.apps})))`)
  }
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
      authority: r.authority ?? null,
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
