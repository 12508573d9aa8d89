import type { Context } from 'hono'
import { getCookie, setCookie, deleteCookie } from 'hono/cookie'
import type { AppEnv } from '../context'
import { getDb } from '../db'
import type { User } from '../users/schema'
import { auditStatement, type AuditEntry } from '../audit/service'
import { endSessionsStatements, insertSessionStatement, liveSessionByCookie, sessionRow, type SessionWithUser } from './sessions'
import { getConfig } from '../env'
import { runSessionEndHooks } from './session-hooks'

/** The hosted pages' sign-in cookie. Only its SHA-256 is stored (sessions.cookie_hash). */
export const SESSION_COOKIE = 'AUTH_SESSION_ID'

export type BrowserSession = SessionWithUser

/** Signs the user in on this browser: a session row plus the HttpOnly, Secure, SameSite=Lax cookie. */
export async function startBrowserSession(c: Context<AppEnv>, user: User, opts: { appId?: string | null; audit?: Partial<AuditEntry> } = {}) {
  const db = getDb(c.env.DB)
  const now = Date.now()
  const { row, cookie } = await sessionRow(c.env, user.id, { ip: c.get('clientIp'), userAgent: c.req.header('User-Agent') }, { appId: opts.appId, withCookie: true, now })
  await db.batch([
    insertSessionStatement(db, row),
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
  return liveSessionByCookie(c.env, value)
}

/** Signs this browser out: ends the session and every refresh token issued under it. */
export async function endBrowserSession(c: Context<AppEnv>) {
  const current = await readBrowserSession(c)
  deleteCookie(c, SESSION_COOKIE, { path: '/', secure: true })
  if (!current) return null
  const db = getDb(c.env.DB)
  await db.batch([
    ...endSessionsStatements(db, { sessionIds: [current.session.id] }, Date.now()),
    auditStatement(db, { action: 'logout', actorType: 'user', actorId: current.user.id, targetType: 'session', targetId: current.session.id, requestId: c.get('requestId'), ip: c.get('clientIp'), details: { via: 'page' } }),
  ])
  await runSessionEndHooks(c.env, { userId: current.user.id, sessionIds: [current.session.id], reason: 'logout' })
  return current
}
