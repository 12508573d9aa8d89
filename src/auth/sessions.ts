import { and, desc, eq, gt, inArray, isNotNull, isNull, lt, ne, or, sql, type SQL } from 'drizzle-orm'
import { getDb, statementOnce, type DB } from '../db'
import { getConfig, type Env } from '../env'
import { users, type User } from '../users/schema'
import { randomToken, sha256Hex } from '../lib/crypto'
import { refreshTokens, sessions } from './schema'

/*
 * The store of sign-ins: session rows and the refresh tokens issued under them (both
 * tables are owned here). Other features end sessions or revoke tokens through the
 * statement builders below, inside their own db.batch, so a password change, its
 * revocations and its audit row land together.
 */

export type Session = typeof sessions.$inferSelect
export type SessionWithUser = { session: Session; user: User }

export interface SessionContext {
  ip: string
  userAgent?: string | null
}

/** A session row plus, for browsers, the cookie value (only its hash is stored). */
export async function sessionRow(env: Env, userId: string, ctx: SessionContext, opts: { appId?: string | null; withCookie?: boolean; now: number }) {
  const { refreshTokenTtl } = getConfig(env)
  const cookieValue = opts.withCookie ? randomToken(32) : undefined
  const row: Session = {
    id: crypto.randomUUID(),
    userId,
    cookieHash: cookieValue ? await sha256Hex(cookieValue) : null,
    appId: opts.appId ?? null,
    authTime: opts.now,
    createdAt: opts.now,
    expiresAt: opts.now + refreshTokenTtl * 1000,
    revokedAt: null,
    lastSeenAt: opts.now,
    ip: ctx.ip,
    userAgent: ctx.userAgent ?? null,
  }
  return { row, cookie: cookieValue }
}

export function insertSessionStatement(db: DB, row: Session) {
  return db.insert(sessions).values(row)
}

/**
 * The same, written only if `when` holds as the batch runs (a password sign-in: while the
 * password is still the one verified). Returns the id when it was written. Values in the
 * table's column order, as INSERT … SELECT fills them.
 */
export function insertSessionIfStatement(db: DB, r: Session, when: SQL) {
  return db
    .insert(sessions)
    .select(sql`SELECT ${r.id}, ${r.userId}, ${r.cookieHash}, ${r.appId}, ${r.authTime}, ${r.createdAt}, ${r.expiresAt}, ${r.revokedAt}, ${r.lastSeenAt}, ${r.ip}, ${r.userAgent} WHERE ${when}`)
    .returning({ id: sessions.id })
}

/**
 * The same user signed in again on this browser (prompt=login, max_age): the session lives
 * on with a fresh auth_time and a new cookie (the old value stops working, as after any
 * sign-in), so the apps signed in under it stay signed in. Only a session not ended yet, and only
 * if `when` holds (a password sign-in: while the password is still the one verified).
 */
export function reauthenticateSessionStatement(db: DB, id: string, o: { cookieHash: string; now: number; when?: SQL } & SessionContext) {
  return db
    .update(sessions)
    .set({ cookieHash: o.cookieHash, authTime: o.now, lastSeenAt: o.now, ip: o.ip, userAgent: o.userAgent ?? null })
    .where(and(eq(sessions.id, id), isNull(sessions.revokedAt), o.when))
    .returning({ id: sessions.id })
}

export type SessionState = 'live' | 'ended' | 'user_disabled'

/**
 * The one rule for "may this session still act": not ended, within its absolute lifetime
 * (REFRESH_TOKEN_TTL, ADMIN_SESSION_TTL for admins), used within the idle timeout
 * (SESSION_IDLE_TIMEOUT, ADMIN_SESSION_IDLE_TIMEOUT for admins), and its user active.
 * `adminGrade` holds any session to the admin lifetimes: the admin API asks it of a
 * sub-admin's session (src/delegation/guard.ts), whose user role is USER.
 */
export function sessionState(env: Env, row: SessionWithUser | undefined | null, now = Date.now(), o: { adminGrade?: boolean } = {}): SessionState {
  if (!row || row.session.revokedAt !== null || row.session.expiresAt <= now) return 'ended'
  const cfg = getConfig(env)
  const admin = row.user.role === 'ADMIN' || o.adminGrade === true
  if (admin && now - row.session.createdAt >= cfg.adminSessionTtl * 1000) return 'ended'
  const idleS = admin ? cfg.adminSessionIdleTimeout : cfg.sessionIdleTimeout
  if (now - (row.session.lastSeenAt ?? row.session.createdAt) >= idleS * 1000) return 'ended'
  if (row.user.status !== 'ACTIVE') return 'user_disabled'
  return 'live'
}

/** last_seen_at is written at most this often per session (the idle timeout is minutes to days). */
export const TOUCH_EVERY_MS = 60_000

// Built once (statementOnce): the refresh-token rotation writes it on every refresh.
const touchSessionOnce = statementOnce((db) =>
  db
    .update(sessions)
    .set({ lastSeenAt: sql`${sql.placeholder('now')}` })
    .where(and(eq(sessions.id, sql.placeholder('id')), or(isNull(sessions.lastSeenAt), lt(sessions.lastSeenAt, sql.placeholder('stale'))))),
)

/**
 * Marks a session used now (for the idle timeout); a no-op statement-wise when it was marked
 * within TOUCH_EVERY_MS. A plain D1 statement, for `d1.batch` (src/db statementOnce).
 */
export function touchSessionStatement(d1: D1Database, sessionId: string, now: number) {
  return touchSessionOnce(d1, { id: sessionId, now, stale: now - TOUCH_EVERY_MS })
}

export function needsTouch(session: Session, now: number): boolean {
  return session.lastSeenAt === null || session.lastSeenAt < now - TOUCH_EVERY_MS
}

const withUser = (db: DB) => db.select({ session: sessions, user: users }).from(sessions).innerJoin(users, eq(users.id, sessions.userId))

/** The session and its user in one read (null when there is no such session). */
export async function readSession(env: Env, sessionId: string): Promise<SessionWithUser | null> {
  return (await withUser(getDb(env.DB)).where(eq(sessions.id, sessionId)).get()) ?? null
}

/** The session and its user when the session is live (see sessionState), else null. */
export async function liveSession(env: Env, sessionId: string): Promise<SessionWithUser | null> {
  const row = await readSession(env, sessionId)
  return sessionState(env, row) === 'live' ? row : null
}

/** The session behind a browser cookie's value, live or not. */
export async function sessionByCookie(env: Env, cookieValue: string): Promise<SessionWithUser | null> {
  return (await withUser(getDb(env.DB)).where(eq(sessions.cookieHash, await sha256Hex(cookieValue))).get()) ?? null
}

/** Same, when the session is live (see sessionState), else null. */
export async function liveSessionByCookie(env: Env, cookieValue: string): Promise<SessionWithUser | null> {
  const row = await sessionByCookie(env, cookieValue)
  return sessionState(env, row) === 'live' ? row : null
}

/**
 * The user's sessions that may still act (sessionState 'live'), most recently used first: a
 * list to show, so at most the 200 most recently used. Never the set a sign-out ends
 * (endSessionsStatements with a user selector does that in SQL, however many there are).
 */
export async function liveSessionsOfUser(env: Env, userId: string, now = Date.now()): Promise<SessionWithUser[]> {
  const rows = await withUser(getDb(env.DB))
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, now)))
    .orderBy(desc(sessions.lastSeenAt), desc(sessions.createdAt))
    .limit(200)
  return rows.filter((r) => sessionState(env, r, now) === 'live')
}

/** How many of the user's sessions but `except` may still act (sessionState 'live'), all of them counted. */
export async function countLiveSessionsOfUser(env: Env, user: User, except: string, now = Date.now()): Promise<number> {
  const rows = await getDb(env.DB)
    .select()
    .from(sessions)
    .where(and(eq(sessions.userId, user.id), ne(sessions.id, except), isNull(sessions.revokedAt), gt(sessions.expiresAt, now)))
  return rows.filter((session) => sessionState(env, { session, user }, now) === 'live').length
}

/** Holds while this session has not been ended: a condition for writes another feature makes in the session's name. */
export function sessionNotEndedSql(sessionId: string): SQL {
  return sql`EXISTS (SELECT 1 FROM sessions WHERE id = ${sessionId} AND revoked_at IS NULL)`
}

/** One session of this user, with the user, when it is live; null for another user's session or a made-up id. */
export async function liveSessionOfUser(env: Env, userId: string, sessionId: string): Promise<SessionWithUser | null> {
  const row = await withUser(getDb(env.DB)).where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId))).get()
  return sessionState(env, row) === 'live' ? row! : null
}

/** Device facts (user agent, IP) of sessions by id, for the user's own security activity; any state. */
export async function sessionDevices(env: Env, userId: string, ids: string[]): Promise<Map<string, Pick<Session, 'ip' | 'userAgent'>>> {
  const out = new Map<string, Pick<Session, 'ip' | 'userAgent'>>()
  const db = getDb(env.DB)
  // bound parameters per statement stay under D1's limit of 100
  for (let i = 0; i < ids.length; i += 90) {
    const part = ids.slice(i, i + 90)
    const rows = await db.select({ id: sessions.id, ip: sessions.ip, userAgent: sessions.userAgent }).from(sessions).where(and(eq(sessions.userId, userId), inArray(sessions.id, part)))
    for (const r of rows) out.set(r.id, { ip: r.ip, userAgent: r.userAgent })
  }
  return out
}

/**
 * Which sessions: these ids (at most 100 bound parameters per D1 statement, so callers send
 * few), or every session of a user, but `exceptSessionId` when given ("sign out every other
 * session", in SQL so no list of ids has to be read or bound, however many there are).
 */
export type SessionSelector = { sessionIds: string[] } | { userId: string; exceptSessionId?: string }

/**
 * Revokes refresh tokens: of some sessions or of a user; `clientTokensOnly` keeps first-party
 * ones, `clientId` only those issued to that app (a consent withdrawn on the portal); `when`,
 * only if that holds as the batch runs.
 */
export function revokeRefreshTokensStatement(db: DB, where: SessionSelector, opts: { clientTokensOnly?: boolean; clientId?: string; when?: SQL } = {}) {
  const scope =
    'sessionIds' in where
      ? inArray(refreshTokens.sessionId, where.sessionIds)
      : and(eq(refreshTokens.userId, where.userId), where.exceptSessionId === undefined ? undefined : ne(refreshTokens.sessionId, where.exceptSessionId))!
  const conds = [scope, ne(refreshTokens.status, 'REVOKED')]
  if (opts.clientTokensOnly) conds.push(isNotNull(refreshTokens.clientId))
  if (opts.clientId !== undefined) conds.push(eq(refreshTokens.clientId, opts.clientId))
  if (opts.when) conds.push(opts.when)
  return db.update(refreshTokens).set({ status: 'REVOKED', successorEnc: null }).where(and(...conds))
}

/** Revokes every token of one refresh-token family (reuse detected, code replayed, RFC 7009 revocation). */
export function revokeFamilyStatement(db: DB, familyId: string) {
  return db.update(refreshTokens).set({ status: 'REVOKED', successorEnc: null }).where(eq(refreshTokens.familyId, familyId))
}

/**
 * Ends sessions and revokes every refresh token issued under them (for a db.batch); with
 * `when`, only if that holds as the batch runs. The first statement returns the ids of the
 * sessions it ended, for the session-end hooks.
 */
export function endSessionsStatements(db: DB, where: SessionSelector, now: number, when?: SQL) {
  const scope =
    'sessionIds' in where
      ? inArray(sessions.id, where.sessionIds)
      : and(eq(sessions.userId, where.userId), where.exceptSessionId === undefined ? undefined : ne(sessions.id, where.exceptSessionId))!
  return [
    db.update(sessions).set({ revokedAt: now }).where(and(scope, isNull(sessions.revokedAt), when)).returning({ id: sessions.id }),
    revokeRefreshTokensStatement(db, where, { when }),
  ] as const
}
