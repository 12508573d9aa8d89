import { sql } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb } from '../db'
import { refreshTokens } from './schema'
import { users, type User } from '../users/schema'
import { applications, type Application } from '../apps/schema'
import { findApplication, getAppSecret } from '../apps/service'
import { timingSafeEqual } from '../lib/crypto'
import { admitUser } from '../permissions/admission'
import type { Env } from '../env'
import { decoyHash, hashPassword, needsRehash, verifyPassword } from '../lib/password'
import type { E164 } from '../lib/mobile'
import { AuthErrors } from './errors'
import { SigningErrors } from '../signing/errors'
import { CaptchaErrors } from '../captcha/errors'
import { verifyCaptcha } from '../captcha/service'
import { captchaRequiredNext, reserveLoginAttempt, settleLoginSuccess, thresholdAudits } from './login-attempts'
import { auditStatement, auditStatementIf, type AuditEntry } from '../audit/service'
import { insertRefreshTokenIfStatement, mintAccessToken, newRefreshToken, refreshTokenRow, type TokenSet } from './tokens'
import { endSessionsStatements, insertSessionIfStatement, insertSessionStatement, sessionRow } from './sessions'
import { findUserByMobile, passwordHashStillSql, passwordParams, replacePasswordHashStatement } from '../users/service'
import { runSessionEndHooks } from './session-hooks'

type Ctx = { requestId: string; ip: string; userAgent?: string | null }

/** A captcha the caller solved: `captcha_id` and what the user read (`captcha_code`). */
export interface CaptchaAnswer {
  id: string
  code: string
}

/**
 * Password check shared by the login API and the hosted login page, behind the failure
 * counters of ./login-attempts (exact, per mobile and per IP; captcha tier, then lock).
 * A captcha that is sent is checked, and spent right or wrong, before anything else.
 * Unknown mobiles verify against a decoy hash and are counted the same way, so both
 * failures cost the same time and read the same.
 */
export async function authenticatePassword(env: Env, mobile: E164, password: string, ctx: Ctx, captcha?: CaptchaAnswer | null): Promise<User> {
  const db = getDb(env.DB)
  if (captcha && !(await verifyCaptcha(env, captcha.id, captcha.code))) throw CaptchaErrors.invalid_captcha()
  const attempt = await reserveLoginAttempt(env, mobile, ctx.ip, !!captcha)
  const params = passwordParams(env)
  const user = await findUserByMobile(env, mobile)
  const ok = await verifyPassword(password, user?.passwordHash ?? (await decoyHash(params)))
  if (!user || !ok) {
    const base = { actorType: 'anonymous' as const, targetType: 'mobile', targetId: mobile, requestId: ctx.requestId, ip: ctx.ip }
    await db.batch([
      auditStatement(db, { ...base, action: 'login.failed', details: captcha ? { captcha: true } : undefined }),
      ...thresholdAudits(attempt, base).map((e) => auditStatement(db, e)),
    ])
    // Tells the caller to show a captcha now rather than after one more typed password.
    throw AuthErrors.invalid_credentials({ details: { captcha_required: captchaRequiredNext(attempt) } })
  }
  await settleLoginSuccess(env, attempt)
  // Only after the password proved who it is do we say the account is disabled.
  if (user.status !== 'ACTIVE') {
    await db.batch([auditStatement(db, { action: 'login.refused_disabled', actorType: 'user', actorId: user.id, targetType: 'user', targetId: user.id, requestId: ctx.requestId, ip: ctx.ip })])
    throw AuthErrors.account_disabled()
  }
  if (needsRehash(user.passwordHash, params)) {
    // Parameters were raised since this hash was made: upgrade it now that we know the password,
    // over the verified hash only (a password set during the check is kept, and this sign-in refused).
    const passwordHash = await hashPassword(password, params)
    const [upgraded] = await replacePasswordHashStatement(db, user.id, { verified: user.passwordHash, passwordHash }, Date.now())
    if (!upgraded) {
      await db.batch([auditStatement(db, passwordChangedAudit(mobile, ctx))])
      throw passwordChangedError()
    }
    user.passwordHash = passwordHash
  }
  return user
}

/**
 * A password sign-in whose password was replaced (reset, admin, portal) while it was being
 * checked: audited as a failed sign-in, with the reason.
 */
export function passwordChangedAudit(mobile: string, ctx: { requestId: string; ip: string }): AuditEntry {
  return { action: 'login.failed', actorType: 'anonymous', targetType: 'mobile', targetId: mobile, requestId: ctx.requestId, ip: ctx.ip, details: { reason: 'password_changed' } }
}

/**
 * ...and answered as a wrong password: the password given is no longer the account's. The
 * failure counters were settled as for a right one, so no captcha is due from this number.
 */
export const passwordChangedError = () => AuthErrors.invalid_credentials({ details: { captcha_required: false } })

/**
 * HTTP Basic app authentication of a login with app_id: the app's server proves itself
 * with its secret, compared in constant time. An unknown app and a wrong secret read the
 * same; only a wrong secret for an existing app is audited (a made-up app_id has no one to
 * warn, and must not buy one audit row per request).
 */
export async function authenticateAppSecret(env: Env, appId: string, secret: string, ctx: { requestId: string; ip: string }): Promise<Application> {
  const app = appId.length <= 64 ? await findApplication(env, appId) : undefined
  if (!app) throw AuthErrors.invalid_app_credentials()
  if (!timingSafeEqual(await getAppSecret(env, app), secret)) {
    const db = getDb(env.DB)
    await db.batch([auditStatement(db, { action: 'login.app_auth_failed', actorType: 'app', actorId: app.appId, targetType: 'application', targetId: app.appId, requestId: ctx.requestId, ip: ctx.ip, details: { method: 'basic' } })])
    throw AuthErrors.invalid_app_credentials()
  }
  // the same trust switch as a signed call: an OIDC client's secret is this secret, and alone it
  // opens nothing but the token endpoint (docs/apps.md partner_api_enabled)
  if (!app.partnerApiEnabled) {
    const db = getDb(env.DB)
    await db.batch([auditStatement(db, { action: 'login.app_auth_failed', actorType: 'app', actorId: app.appId, targetType: 'application', targetId: app.appId, requestId: ctx.requestId, ip: ctx.ip, details: { method: 'basic', reason: 'partner_api_disabled' } })])
    throw SigningErrors.partner_api_disabled()
  }
  return app
}

/**
 * POST /api/v1/auth/login: password → session + access token + refresh token. With
 * `app_id` the route has already authenticated the app itself (signature or secret).
 */
export async function login(env: Env, input: { mobile: E164; password: string; app_id?: string; captcha?: CaptchaAnswer | null }, ctx: Ctx): Promise<TokenSet> {
  const db = getDb(env.DB)
  if (input.app_id) {
    const app = await findApplication(env, input.app_id)
    if (!app || app.status !== 'ACTIVE') throw AuthErrors.invalid_app()
  }
  const user = await authenticatePassword(env, input.mobile, input.password, ctx, input.captcha)
  // A token for an app (aud = app_id) only for users the app has an active mapping for, as
  // OIDC (access_denied) and SSO tickets (user_not_mapped) do. Said only after the password
  // proved who is asking, so it reveals nothing to strangers.
  const admission = input.app_id ? await admitUser(env, input.app_id, user.id) : null
  if (admission && !admission.ok) {
    const noAccess = admission.reason === 'no_access'
    await db.batch([auditStatement(db, { action: noAccess ? 'login.refused_no_access' : 'login.refused_not_mapped', actorType: 'user', actorId: user.id, targetType: 'application', targetId: input.app_id, requestId: ctx.requestId, ip: ctx.ip })])
    throw noAccess ? AuthErrors.no_access() : AuthErrors.user_not_mapped()
  }
  const now = Date.now()
  const { row: session } = await sessionRow(env, user.id, ctx, { appId: input.app_id, now })
  const refresh = newRefreshToken()
  const rt = await refreshTokenRow(env, { userId: user.id, sessionId: session.id, clientId: input.app_id ?? null, token: refresh, now })
  // Written only while the password is still the one verified: a reset or new password that
  // landed meanwhile ended every session, and a sign-in with the old one must not outlive it.
  const still = passwordHashStillSql(user.id, user.passwordHash)
  const [created] = await db.batch([
    insertSessionIfStatement(db, session, still),
    insertRefreshTokenIfStatement(db, rt, still),
    auditStatementIf(db, { action: 'login.succeeded', actorType: 'user', actorId: user.id, targetType: 'session', targetId: session.id, requestId: ctx.requestId, ip: ctx.ip, details: input.app_id ? { app_id: input.app_id } : undefined }, still),
    auditStatementIf(db, passwordChangedAudit(input.mobile, ctx), sql`NOT ${still}`),
  ])
  if (!created.length) throw passwordChangedError()
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
