import { eq } from 'drizzle-orm'
import { getConfig, type Env } from '../env'
import type { E164 } from '../lib/mobile'
import { getDb } from '../db'
import { users, type User } from '../users/schema'
import { findUserByMobile, insertUserStatement, isMobileTaken, newUserRow, passwordParams, updateUserStatement } from '../users/service'
import { auditStatement } from '../audit/service'
import { endSessionsStatements } from '../auth/sessions'
import { runSessionEndHooks } from '../auth/session-hooks'
import { AccountErrors } from './errors'
import { SmsErrors } from '../sms/errors'
import { hashPassword } from '../lib/password'
import { clearLoginFailures } from '../auth/login-attempts'
import { verifySmsCode } from '../sms/service'


export interface AccountCtx {
  requestId?: string
  ip?: string
  appId?: string | null
}

export function registrationOpen(env: Env): boolean {
  return getConfig(env).registrationOpen
}

export const registrationClosed = () => AccountErrors.registration_closed()

/**
 * Creates an account once an SMS code (purpose `register`) proved the number belongs to
 * the caller. Only after that proof may the answer say the number is taken (409).
 */
export async function registerUser(env: Env, input: { mobile: E164; password: string; name?: string | null; smsCode: string }, ctx: AccountCtx): Promise<User> {
  if (!registrationOpen(env)) throw registrationClosed()
  await verifySmsCode(env, { mobile: input.mobile, purpose: 'register', code: input.smsCode }, ctx)
  const db = getDb(env.DB)
  const row = await newUserRow(env, { mobile: input.mobile, password: input.password, name: input.name?.trim() || null })
  try {
    await db.batch([
      insertUserStatement(db, row),
      auditStatement(db, { action: 'user.registered', actorType: 'user', actorId: row.id, targetType: 'user', targetId: row.id, requestId: ctx.requestId, ip: ctx.ip, details: ctx.appId ? { app_id: ctx.appId } : { via: 'self' } }),
    ])
  } catch (e) {
    if (isMobileTaken(e)) throw AccountErrors.mobile_taken()
    throw e
  }
  return row
}

/**
 * Sets a new password after an SMS code (purpose `reset`), then ends every session and
 * refresh token of the user. Password, revocation and audit row are one db.batch.
 */
export async function resetPassword(env: Env, input: { mobile: E164; smsCode: string; newPassword: string }, ctx: AccountCtx): Promise<User> {
  await verifySmsCode(env, { mobile: input.mobile, purpose: 'reset', code: input.smsCode }, ctx)
  const user = await findUserByMobile(env, input.mobile)
  // No code is ever stored for unknown numbers, so this only happens if the account was deleted meanwhile.
  if (!user) throw SmsErrors.invalid_sms_code()
  if (user.status !== 'ACTIVE') throw AccountErrors.account_disabled()
  const db = getDb(env.DB)
  const now = Date.now()
  const passwordHash = await hashPassword(input.newPassword, passwordParams(env))
  await db.batch([
    updateUserStatement(db, user.id, { passwordHash }, now),
    ...endSessionsStatements(db, { userId: user.id }, now),
    auditStatement(db, { action: 'password.reset', actorType: ctx.appId ? 'app' : 'user', actorId: ctx.appId ?? user.id, targetType: 'user', targetId: user.id, requestId: ctx.requestId, ip: ctx.ip, details: { via: ctx.appId ? 'open_api' : 'page', sessions_revoked: 'all' } }),
  ])
  await runSessionEndHooks(env, { userId: user.id, reason: 'password_reset' })
  // The owner just proved control of the number: lift a sign-in lockout on it.
  await clearLoginFailures(env, input.mobile)
  return { ...user, passwordHash, updatedAt: now }
}
