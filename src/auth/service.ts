import { eq } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb } from '../db'
import { refreshTokens } from './schema'
import { users, type User } from '../users/schema'
import { applications } from '../apps/schema'
import { activeMapping } from '../mappings/service'
import type { Env } from '../env'
import { decoyHash, hashPassword, needsRehash, verifyPassword } from '../lib/password'
import type { E164 } from '../lib/mobile'
import { lockedFor, recordFailure, clearFailures, type AttemptPolicy } from '../lib/attempts'
import { AuthErrors } from './errors'
import { auditStatement, type AuditEntry } from '../audit/service'
import { mintAccessToken, newRefreshToken, refreshTokenRow, type TokenSet } from './tokens'
import { endSessionsStatements, insertSessionStatement, sessionRow } from './sessions'
import { passwordParams } from '../users/service'
import { runSessionEndHooks } from './session-hooks'

export const LOGIN_PER_MOBILE: AttemptPolicy = { max: 5, windowS: 15 * 60 }
export const LOGIN_PER_IP: AttemptPolicy = { max: 30, windowS: 15 * 60 }

type Ctx = { requestId: string; ip: string; userAgent?: string | null }

const invalidCredentials = () => AuthErrors.invalid_credentials()

/**
 * Password check shared by the login API and the hosted login page. Unknown mobiles
 * verify against a decoy hash so both failures cost the same time and read the same.
 */
export async function authenticatePassword(env: Env, mobile: E164, password: string, ctx: Ctx): Promise<User> {
  const db = getDb(env.DB)
  const retryIp = await lockedFor(env.KV, 'login-ip', ctx.ip, LOGIN_PER_IP)
  const retryMobile = await lockedFor(env.KV, 'login-mobile', mobile, LOGIN_PER_MOBILE)
  const retry = Math.max(retryIp, retryMobile)
  if (retry > 0) {
    await db.batch([auditStatement(db, { action: 'login.locked', actorType: 'anonymous', targetType: 'mobile', targetId: mobile, requestId: ctx.requestId, ip: ctx.ip })])
    throw AuthErrors.too_many_attempts({ headers: { 'Retry-After': String(retry) } })
  }
  const params = passwordParams(env)
  const user = await db.select().from(users).where(eq(users.mobile, mobile)).get()
  const ok = await verifyPassword(password, user?.passwordHash ?? (await decoyHash(params)))
  if (!user || !ok) {
    await Promise.all([recordFailure(env.KV, 'login-ip', ctx.ip, LOGIN_PER_IP), recordFailure(env.KV, 'login-mobile', mobile, LOGIN_PER_MOBILE)])
    await db.batch([auditStatement(db, { action: 'login.failed', actorType: 'anonymous', targetType: 'mobile', targetId: mobile, requestId: ctx.requestId, ip: ctx.ip })])
    throw invalidCredentials()
  }
  // Only after the password proved who it is do we say the account is disabled.
  if (user.status !== 'ACTIVE') {
    await db.batch([auditStatement(db, { action: 'login.refused_disabled', actorType: 'user', actorId: user.id, targetType: 'user', targetId: user.id, requestId: ctx.requestId, ip: ctx.ip })])
    throw AuthErrors.account_disabled()
  }
  await clearFailures(env.KV, 'login-mobile', mobile)
  if (needsRehash(user.passwordHash, params)) {
    // Parameters were raised since this hash was made: upgrade it now that we know the password.
    const passwordHash = await hashPassword(password, params)
    await db.update(users).set({ passwordHash, updatedAt: Date.now() }).where(eq(users.id, user.id))
    user.passwordHash = passwordHash
  }
  return user
}

/** POST /api/v1/auth/login: password → session + access token + refresh token. */
export async function login(env: Env, input: { mobile: E164; password: string; app_id?: string }, ctx: Ctx): Promise<TokenSet> {
  const db = getDb(env.DB)
  if (input.app_id) {
    const app = await db.select({ status: applications.status }).from(applications).where(eq(applications.appId, input.app_id)).get()
    if (!app || app.status !== 'ACTIVE') throw AuthErrors.invalid_app()
  }
  const user = await authenticatePassword(env, input.mobile, input.password, ctx)
  // A token for an app (aud = app_id) only for users the app has an active mapping for, as
  // OIDC (access_denied) and SSO tickets (user_not_mapped) do. Said only after the password
  // proved who is asking, so it reveals nothing to strangers.
  if (input.app_id && !(await activeMapping(env, input.app_id, user.id))) {
    await db.batch([auditStatement(db, { action: 'login.refused_not_mapped', actorType: 'user', actorId: user.id, targetType: 'application', targetId: input.app_id, requestId: ctx.requestId, ip: ctx.ip })])
    throw AuthErrors.user_not_mapped()
  }
  const now = Date.now()
  const { row: session } = await sessionRow(env, user.id, ctx, { appId: input.app_id, now })
  const refresh = newRefreshToken()
  const rt = await refreshTokenRow(env, { userId: user.id, sessionId: session.id, clientId: input.app_id ?? null, token: refresh, now })
  await db.batch([
    insertSessionStatement(db, session),
    db.insert(refreshTokens).values(rt),
    auditStatement(db, { action: 'login.succeeded', actorType: 'user', actorId: user.id, targetType: 'session', targetId: session.id, requestId: ctx.requestId, ip: ctx.ip, details: input.app_id ? { app_id: input.app_id } : undefined }),
  ])
  const access = await mintAccessToken(env, { userId: user.id, sessionId: session.id, clientId: input.app_id ?? null })
  return { access_token: access.token, refresh_token: refresh, token_type: 'Bearer', expires_in: access.expiresIn }
}

export async function logoutSession(env: Env, userId: string, sessionId: string, audit: Omit<AuditEntry, 'action'>) {
  const db = getDb(env.DB)
  await db.batch([
    ...endSessionsStatements(db, { sessionIds: [sessionId] }, Date.now()),
    auditStatement(db, { ...audit, action: 'logout', targetType: 'session', targetId: sessionId }),
  ])
  await runSessionEndHooks(env, { userId, sessionIds: [sessionId], reason: 'logout' })
}

export async function logoutAll(env: Env, userId: string, audit: Omit<AuditEntry, 'action'>) {
  const db = getDb(env.DB)
  await db.batch([
    ...endSessionsStatements(db, { userId }, Date.now()),
    auditStatement(db, { ...audit, action: 'logout_all', targetType: 'user', targetId: userId }),
  ])
  await runSessionEndHooks(env, { userId, reason: 'logout_all' })
}

/**
 * Tokens for a user whose identity something other than the password proved (an upstream
 * identity provider, src/federation/): the same first-party tokens as `login` without
 * app_id. `sessionAppId` only records which app the sign-in came through; `statements`
 * (the link of an identity, a new account) land in the same batch as the session.
 */
export async function issueSignInTokens(
  env: Env,
  user: User,
  opts: { sessionAppId?: string | null; details?: Record<string, unknown>; statements?: BatchItem<'sqlite'>[] },
  ctx: Ctx,
): Promise<TokenSet> {
  if (user.status !== 'ACTIVE') throw AuthErrors.account_disabled()
  const db = getDb(env.DB)
  const now = Date.now()
  const { row: session } = await sessionRow(env, user.id, ctx, { appId: opts.sessionAppId, now })
  const refresh = newRefreshToken()
  const rt = await refreshTokenRow(env, { userId: user.id, sessionId: session.id, clientId: null, token: refresh, now })
  // given statements first: a new account's row must exist before its session references it
  const statements: BatchItem<'sqlite'>[] = [
    ...(opts.statements ?? []),
    insertSessionStatement(db, session),
    db.insert(refreshTokens).values(rt),
    auditStatement(db, { action: 'login.succeeded', actorType: 'user', actorId: user.id, targetType: 'session', targetId: session.id, requestId: ctx.requestId, ip: ctx.ip, details: opts.details }),
  ]
  await db.batch(statements as [BatchItem<'sqlite'>, ...BatchItem<'sqlite'>[]])
  const access = await mintAccessToken(env, { userId: user.id, sessionId: session.id, clientId: null })
  return { access_token: access.token, refresh_token: refresh, token_type: 'Bearer', expires_in: access.expiresIn }
}
