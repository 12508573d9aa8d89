import type { Context } from 'hono'
import type { BatchItem } from 'drizzle-orm/batch'
import { getCookie, setCookie, deleteCookie } from 'hono/cookie'
import type { AppEnv } from '../context'
import { getDb } from '../db'
import type { User } from '../users/schema'
import { sql, type SQL } from 'drizzle-orm'
import { auditStatement, auditStatementIf, type AuditEntry } from '../audit/service'
import { endSessionsStatements, insertSessionIfStatement, insertSessionStatement, liveSessionByCookie, needsTouch, reauthenticateSessionStatement, sessionByCookie, sessionRow, sessionState, touchSessionStatement, type Session, type SessionWithUser } from './sessions'
import { randomToken, sha256Hex } from '../lib/crypto'
import { log } from '../lib/logger'
import { getConfig } from '../env'
import { runSessionEndHooks } from './session-hooks'
import { passwordChangedAudit, passwordChangedError } from './service'
import { passwordHashStillSql } from '../users/service'

/**
 * The hosted pages' sign-in cookie. Only its SHA-256 is stored (sessions.cookie_hash). The
 * `__Host-` prefix (RFC 6265bis §4.1.3.2) means Secure, Path=/ and no Domain, so a sibling
 * subdomain cannot plant a session cookie on this site (session fixation).
 */
export const SESSION_COOKIE = '__Host-AUTH_SESSION_ID'
/** The cookie's earlier name: never read (it could have been planted), only cleared. */
const LEGACY_SESSION_COOKIE = 'AUTH_SESSION_ID'

export type BrowserSession = SessionWithUser

/**
 * Signs the user in on this browser: a session row plus the HttpOnly, Secure, SameSite=Lax
 * cookie. The browser's previous session, if it had one, ends in the same batch (whoever
 * signed in before on this browser is signed out, and a planted or stale id is never reused),
 * unless it is the same user's live session: then this is a re-authentication (OIDC Core
 * §3.1.2.1 prompt=login, max_age), which asks for a fresh sign-in, not a sign-out of every
 * app; that session gets the new auth_time and a new cookie value instead.
 * `statements` join that batch (a sign-in that also links an identity or creates the account).
 * `verifiedPasswordHash` (a password sign-in: the hash authenticatePassword checked the
 * password against) makes every write conditional on it still being the user's: a reset or
 * new password that landed meanwhile wins, and this sign-in is refused (audited login.failed,
 * thrown as invalid_credentials) with nothing else written.
 */
export async function startBrowserSession(
  c: Context<AppEnv>,
  user: User,
  opts: { appId?: string | null; audit?: Partial<AuditEntry>; statements?: BatchItem<'sqlite'>[]; verifiedPasswordHash?: string } = {},
) {
  const db = getDb(c.env.DB)
  const now = Date.now()
  const still = opts.verifiedPasswordHash === undefined ? undefined : passwordHashStillSql(user.id, opts.verifiedPasswordHash)
  const previousCookie = getCookie(c, SESSION_COOKIE)
  const previous = previousCookie && previousCookie.length <= 128 ? await sessionByCookie(c.env, previousCookie) : null
  if (previous && previous.user.id === user.id && !opts.statements?.length && sessionState(c.env, previous, now) === 'live') {
    const row = await reauthenticate(c, previous, now, opts.audit, still)
    if (row) return row
  }
  const endPrevious = previous && previous.session.revokedAt === null ? previous : null
  const { row, cookie } = await sessionRow(c.env, user.id, { ip: c.get('clientIp'), userAgent: c.req.header('User-Agent') }, { appId: opts.appId, withCookie: true, now })
  const audit: AuditEntry = {
    action: 'login.succeeded',
    actorType: 'user',
    actorId: user.id,
    targetType: 'session',
    targetId: row.id,
    requestId: c.get('requestId'),
    ip: c.get('clientIp'),
    ...opts.audit,
    // merged, not replaced: a caller's details (registered, the provider) must not drop which session this sign-in ended
    details: { via: 'page', ...(endPrevious ? { previous_session_ended: endPrevious.session.id } : {}), ...(opts.audit?.details as Record<string, unknown> | undefined) },
  }
  // given statements first: a new account's row must exist before its session references it
  const statements: BatchItem<'sqlite'>[] = [
    ...(opts.statements ?? []),
    still ? insertSessionIfStatement(db, row, still) : insertSessionStatement(db, row),
    ...(endPrevious ? endSessionsStatements(db, { sessionIds: [endPrevious.session.id] }, now, still) : []),
    still ? auditStatementIf(db, audit, still) : auditStatement(db, audit),
    ...(still ? [auditStatementIf(db, passwordChangedAudit(user.mobile, { requestId: c.get('requestId'), ip: c.get('clientIp') }), sql`NOT ${still}`)] : []),
  ]
  const results = await db.batch(statements as [BatchItem<'sqlite'>, ...BatchItem<'sqlite'>[]])
  if (still && !(results[opts.statements?.length ?? 0] as unknown[]).length) throw passwordChangedError()
  if (endPrevious) await runSessionEndHooks(c.env, { userId: endPrevious.user.id, sessionIds: [endPrevious.session.id], reason: 'signed_in_again' })
  setSessionCookie(c, cookie!)
  return row
}

/** The same user's live session, signed in to again; null when it ended meanwhile or `when` fails (then a new session is tried). */
async function reauthenticate(c: Context<AppEnv>, previous: SessionWithUser, now: number, audit: Partial<AuditEntry> | undefined, when: SQL | undefined): Promise<Session | null> {
  const db = getDb(c.env.DB)
  const cookie = randomToken(32)
  const cookieHash = await sha256Hex(cookie)
  const ctx = { ip: c.get('clientIp'), userAgent: c.req.header('User-Agent') }
  const id = previous.session.id
  const details = { via: 'page', ...(audit?.details as Record<string, unknown> | undefined), reauthenticated: true }
  const [updated] = await db.batch([
    reauthenticateSessionStatement(db, id, { cookieHash, now, when, ...ctx }),
    // the row only if the update above took (the session had not ended meanwhile)
    auditStatementIf(db, { action: 'login.succeeded', actorType: 'user', actorId: previous.user.id, targetType: 'session', targetId: id, requestId: c.get('requestId'), ip: ctx.ip, ...audit, details }, sql`EXISTS (SELECT 1 FROM sessions WHERE id = ${id} AND cookie_hash = ${cookieHash})`),
  ])
  if (!updated.length) return null
  setSessionCookie(c, cookie)
  return { ...previous.session, cookieHash, authTime: now, lastSeenAt: now, ip: ctx.ip, userAgent: ctx.userAgent ?? null }
}

function setSessionCookie(c: Context<AppEnv>, cookie: string) {
  deleteCookie(c, LEGACY_SESSION_COOKIE, { path: '/' })
  setCookie(c, SESSION_COOKIE, cookie, {
    httpOnly: true,
    secure: true,
    sameSite: 'Lax',
    path: '/',
    maxAge: getConfig(c.env).refreshTokenTtl,
  })
}

/** The live session behind this browser's cookie, or null (no cookie, unknown, ended, expired, user disabled). */
export async function readBrowserSession(c: Context<AppEnv>): Promise<BrowserSession | null> {
  const value = getCookie(c, SESSION_COOKIE)
  if (!value || value.length > 128) return null
  const live = await liveSessionByCookie(c.env, value)
  const now = Date.now()
  if (live && needsTouch(live.session, now)) {
    // the idle timeout counts from the last use; written after the response, at most once a minute
    const touch = c.env.DB.batch([touchSessionStatement(c.env.DB, live.session.id, now)]).catch((e: Error) => log.warn('session.touch_failed', { error: e.message }))
    try {
      c.executionCtx.waitUntil(touch)
    } catch {
      await touch // no execution context (direct calls)
    }
  }
  return live
}

/** Signs this browser out: ends the session and every refresh token issued under it. */
export async function endBrowserSession(c: Context<AppEnv>) {
  const current = await readBrowserSession(c)
  deleteCookie(c, SESSION_COOKIE, { path: '/', secure: true })
  deleteCookie(c, LEGACY_SESSION_COOKIE, { path: '/' })
  if (!current) return null
  const db = getDb(c.env.DB)
  await db.batch([
    ...endSessionsStatements(db, { sessionIds: [current.session.id] }, Date.now()),
    auditStatement(db, { action: 'logout', actorType: 'user', actorId: current.user.id, targetType: 'session', targetId: current.session.id, requestId: c.get('requestId'), ip: c.get('clientIp'), details: { via: 'page' } }),
  ])
  await runSessionEndHooks(c.env, { userId: current.user.id, sessionIds: [current.session.id], reason: 'logout' })
  return current
}
