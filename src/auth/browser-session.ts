import type { Context } from 'hono'
import { getCookie, setCookie, deleteCookie } from 'hono/cookie'
import { eq } from 'drizzle-orm'
import type { AppEnv } from '../context'
import { getDb } from '../db'
import { sessions } from './schema'
import { users, type User } from '../users/schema'
import { sha256Hex } from '../lib/crypto'
import { sessionRow } from './service'
import { auditStatement, type AuditEntry } from '../audit/service'
import { revokeSessionsStatements } from './tokens'
import { getConfig } from '../env'
import { runSessionEndHooks } from './session-hooks'

/** The hosted pages' sign-in cookie. Only its SHA-256 is stored (sessions.cookie_hash). */
export const SESSION_COOKIE = 'AUTH_SESSION_ID'

export type BrowserSession = { session: typeof sessions.$inferSelect; user: User }

/** Signs the user in on this browser: a session row plus the HttpOnly, Secure, SameSite=Lax cookie. */
export async function startBrowserSession(c: Context<AppEnv>, user: User, opts: { appId?: string | null; audit?: Partial<AuditEntry> } = {}) {
  const db = getDb(c.env.DB)
  const now = Date.now()
  const { row, cookie } = await sessionRow(c.env, user.id, { requestId: c.get('requestId'), ip: c.get('clientIp'), userAgent: c.req.header('User-Agent') }, { appId: opts.appId, withCookie: true, now })
  await db.batch([
    db.insert(sessions).values(row),
    auditStatement(db, { action: 'login.succeeded', actorType: 'user', actorId: user.id, targetType: 'session', targetId: row.id, requestId: c.get('requestId'), ip: c.get('clientIp'), details: { via: 'page' }, ...opts.audit }),
  ])
  setCookie(c, SESSION_COOKIE, cookie!, {
    httpOnly: true,
    secure: true,
    sameSite: 'Lax',
    path: '/',
    maxAge: getConfig(c.env).refreshTokenTtl,
  })
  return row
}

/** The live session behind this browser's cookie, or null (no cookie, unknown, ended, expired, user disabled). */
export async function readBrowserSession(c: Context<AppEnv>): Promise<BrowserSession | null> {
  const value = getCookie(c, SESSION_COOKIE)
  if (!value || value.length > 128) return null
  const db = getDb(c.env.DB)
  const row = await db
    .select({ session: sessions, user: users })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(sessions.cookieHash, await sha256Hex(value)))
    .get()
  if (!row || row.session.revokedAt !== null || row.session.expiresAt <= Date.now() || row.user.status !== 'ACTIVE') return null
  return row
}

/** Signs this browser out: ends the session and every refresh token issued under it. */
export async function endBrowserSession(c: Context<AppEnv>) {
  const current = await readBrowserSession(c)
  deleteCookie(c, SESSION_COOKIE, { path: '/', secure: true })
  if (!current) return null
  const db = getDb(c.env.DB)
  await db.batch([
    ...revokeSessionsStatements(db, { sessionIds: [current.session.id] }, Date.now()),
    auditStatement(db, { action: 'logout', actorType: 'user', actorId: current.user.id, targetType: 'session', targetId: current.session.id, requestId: c.get('requestId'), ip: c.get('clientIp'), details: { via: 'page' } }),
  ])
  await runSessionEndHooks(c.env, { userId: current.user.id, sessionIds: [current.session.id], reason: 'logout' })
  return current
}
