import { and, asc, eq } from 'drizzle-orm'
import { getDb } from '../db'
import { getConfig, type Env } from '../env'
import { applications, type Application } from '../apps/schema'
import { appUserMappings } from '../mappings/schema'
import { activeMappingOn, userEventsStatement } from '../mappings/service'
import { deliverAfterCommit, type WaitUntil } from '../webhooks/outbox'
import { admitUser } from '../permissions/admission'
import { auditStatement, auditStatementIf, type AuditEntry } from '../audit/service'
import { countLiveSessionsOfUser, endSessionsStatements, liveSessionOfUser, liveSessionsOfUser, sessionNotEndedSql, type SessionSelector, type SessionWithUser } from '../auth/sessions'
import { runSessionEndHooks } from '../auth/session-hooks'
import { isMobileTaken, passwordHashStillSql, passwordParams, replacePasswordHashStatement, updateUserStatement } from '../users/service'
import { verifySmsCode } from '../sms/service'
import type { E164 } from '../lib/mobile'
import type { User } from '../users/schema'
import { hashPassword, verifyPassword } from '../lib/password'

/*
 * The user's own portal (/page/home, docs/portal.md). Everything here acts for the signed-in
 * user only: every read and write is scoped by that user's id, so no form field can name
 * another person's session, consent or profile. Other features' tables are written through
 * their owners' statement builders, each change in one db.batch with its audit row.
 */

/** Request facts for the audit rows. */
export interface PortalCtx {
  requestId: string
  ip: string
}

type PortalEntry = Pick<AuditEntry, 'action' | 'targetType' | 'targetId' | 'details'>
const entryOf = (user: User, ctx: PortalCtx, e: PortalEntry): AuditEntry => ({ actorType: 'user', actorId: user.id, requestId: ctx.requestId, ip: ctx.ip, ...e })
const audit = (db: ReturnType<typeof getDb>, user: User, ctx: PortalCtx, e: PortalEntry) => auditStatement(db, entryOf(user, ctx, e))

// ---------------------------------------------------------------------------------------
// My apps

export interface LaunchableApp {
  appId: string
  name: string
  description: string | null
  iconUrl: string | null
  protocol: Application['protocolType']
  /** Where a click goes; null when the app registered no way in from here. */
  href: string | null
}

/**
 * Where the portal opens an app, signed in:
 * - OIDC with initiate_login_uri: third-party-initiated login (OpenID Connect Core 1.0 §4),
 *   `iss` (REQUIRED) and `target_link_uri` (OPTIONAL, the home URL when there is one). No
 *   `login_hint`: the user's number would travel in a URL to the app for no gain, since the
 *   app's authorization request finds the session anyway.
 * - OIDC without it: the home URL (the app starts its own sign-in, which SSO completes).
 * - SIMPLE_API: the ticket hop /page/sso/simple (src/tickets/sso.ts), to the home URL when it
 *   is one of the app's registered callbacks, else to its first callback.
 */
export function launchHref(env: Env, app: Pick<Application, 'appId' | 'protocolType' | 'homeUrl' | 'initiateLoginUri' | 'redirectUris' | 'partnerApiEnabled'>): string | null {
  if (app.protocolType === 'OIDC') {
    if (app.initiateLoginUri) {
      const url = new URL(app.initiateLoginUri)
      url.searchParams.set('iss', getConfig(env).issuer)
      if (app.homeUrl) url.searchParams.set('target_link_uri', app.homeUrl)
      return url.toString()
    }
    return app.homeUrl
  }
  if (!app.partnerApiEnabled) return null // it could not redeem a ticket (src/tickets/sso.ts)
  const callback = app.homeUrl && app.redirectUris.includes(app.homeUrl) ? app.homeUrl : app.redirectUris[0]
  if (!callback) return null
  return `/page/sso/simple?${new URLSearchParams({ app_id: app.appId, redirect_uri: callback })}`
}

/**
 * The apps the user may enter: active apps where the user has an active mapping (the
 * mapping owner's rule, activeMappingOn) and, where the app's access_policy is `permission`,
 * the `access` permission (admitUser, the rule every entry point applies). Applications and
 * mappings are only read here.
 */
export async function myApps(env: Env, userId: string): Promise<LaunchableApp[]> {
  const rows = await getDb(env.DB)
    .select({ app: applications })
    .from(applications)
    .innerJoin(appUserMappings, activeMappingOn(applications.appId, appUserMappings.userId))
    .where(and(eq(appUserMappings.userId, userId), eq(applications.status, 'ACTIVE')))
    .orderBy(asc(applications.appName))
  // an app whose access_policy asks for the `access` permission admits only whom it grants (src/permissions/admission.ts)
  const admitted = await Promise.all(rows.map(({ app }) => (app.accessPolicy === 'permission' ? admitUser(env, app.appId, userId).then((a) => a.ok) : true)))
  return rows.filter((_, i) => admitted[i]).map(({ app }) => ({
    appId: app.appId,
    name: app.appName,
    description: app.description,
    iconUrl: app.iconUrl?.startsWith('https://') ? app.iconUrl : null,
    protocol: app.protocolType,
    href: launchHref(env, app),
  }))
}

// ---------------------------------------------------------------------------------------
// Sessions

export const mySessions = (env: Env, userId: string) => liveSessionsOfUser(env, userId)

/**
 * Ends sessions (refresh tokens with them) in one batch with the audit row, then the
 * session-end hooks (back-channel logout) for every session the batch ended, as its UPDATE
 * returned them: a list read beforehand could miss some, and one bound id list could not hold them all.
 */
async function endSessions(env: Env, user: User, where: SessionSelector, row: Pick<AuditEntry, 'action' | 'targetType' | 'targetId' | 'details'>, ctx: PortalCtx, reason: string) {
  const db = getDb(env.DB)
  const [, ended] = await db.batch([audit(db, user, ctx, row), ...endSessionsStatements(db, where, Date.now())])
  if (ended.length) await runSessionEndHooks(env, { userId: user.id, sessionIds: ended.map((s) => s.id), reason })
}

/**
 * Signs one of the user's own live sessions out. False (nothing written) when the id is not
 * a live session of this user: another user's session reads exactly like a made-up id.
 */
export async function endMySession(env: Env, user: User, sessionId: string, ctx: PortalCtx): Promise<boolean> {
  if (!(await liveSessionOfUser(env, user.id, sessionId))) return false
  await endSessions(env, user, { sessionIds: [sessionId] }, { action: 'portal.session_ended', targetType: 'session', targetId: sessionId }, ctx, 'portal_sign_out')
  return true
}

/** Signs out every session of the user but `keep` (this browser's). Returns how many live ones ended. */
export async function endOtherSessions(env: Env, user: User, keep: string, ctx: PortalCtx): Promise<number> {
  const n = await countLiveSessionsOfUser(env, user, keep)
  if (!n) return 0
  await endSessions(env, user, { userId: user.id, exceptSessionId: keep }, { action: 'portal.other_sessions_ended', targetType: 'user', targetId: user.id, details: { sessions: n, kept: keep } }, ctx, 'portal_sign_out_others')
  return n
}

// ---------------------------------------------------------------------------------------
// Password and profile

export type PasswordChange = { ok: true; othersEnded: number } | { ok: false }

/**
 * Changes the password after checking the current one (constant-time PHC verification). With
 * `signOutOthers`, every other live session ends in the same batch. A wrong current password
 * is audited and changes nothing.
 */
export async function changeMyPassword(env: Env, current: SessionWithUser, input: { currentPassword: string; newPassword: string; signOutOthers: boolean }, ctx: PortalCtx): Promise<PasswordChange> {
  const { user, session } = current
  const db = getDb(env.DB)
  if (!(await verifyPassword(input.currentPassword, user.passwordHash))) {
    await db.batch([audit(db, user, ctx, { action: 'portal.password_change_failed', targetType: 'user', targetId: user.id, details: { reason: 'wrong_current_password' } })])
    return { ok: false }
  }
  const passwordHash = await hashPassword(input.newPassword, passwordParams(env))
  const now = Date.now()
  const others = input.signOutOthers ? await countLiveSessionsOfUser(env, user, session.id, now) : 0
  // Written only over the hash just verified and while this session is live: a reset or an
  // admin's new password (which ends every session) landing meanwhile wins, and whoever held
  // this session cannot set a password of their own after it. The rest follows the new hash.
  const written = passwordHashStillSql(user.id, passwordHash)
  const [changed, , ended] = await db.batch([
    replacePasswordHashStatement(db, user.id, { verified: user.passwordHash, passwordHash, when: sessionNotEndedSql(session.id) }, now),
    auditStatementIf(db, entryOf(user, ctx, { action: 'portal.password_changed', targetType: 'user', targetId: user.id, details: { other_sessions_ended: others } }), written),
    // every other session, in SQL: a list of ids read first would leave out those it did not hold
    ...(input.signOutOthers ? endSessionsStatements(db, { userId: user.id, exceptSessionId: session.id }, now, written) : []),
  ])
  if (!changed.length) return { ok: false }
  if (ended?.length) await runSessionEndHooks(env, { userId: user.id, sessionIds: ended.map((s) => s.id), reason: 'password_changed' })
  return { ok: true, othersEnded: others }
}

/**
 * Name and email; the audit row names the fields that changed (not their values). A new name
 * is news for the apps the user is mapped in: a `user.updated` outbox event per app in the same
 * batch (the users feature's rule, users/admin.ts), delivered as webhooks after it commits.
 */
export async function updateMyProfile(env: Env, user: User, input: { name: string | null; email: string | null }, ctx: PortalCtx, waitUntil?: WaitUntil) {
  const changed = (['name', 'email'] as const).filter((k) => (user[k] ?? null) !== input[k])
  if (!changed.length) return
  const db = getDb(env.DB)
  const now = Date.now()
  const events = changed.includes('name') ? userEventsStatement(db, user.id, 'user.updated', now) : null
  const results = await db.batch([
    updateUserStatement(db, user.id, input, now),
    audit(db, user, ctx, { action: 'portal.profile_updated', targetType: 'user', targetId: user.id, details: { fields: changed } }),
    ...(events ? [events] : []),
  ])
  if (events) await deliverAfterCommit(env, (results[2] as { eventId: string }[]).map((e) => e.eventId), waitUntil)
}

export type MobileChange = 'changed' | 'wrong_password' | 'taken'

/**
 * A new mobile number: the current password first (so a wrong one spends no code), then the
 * SMS code sent to the new number (purpose change_mobile; its failures throw the SMS errors),
 * then the number in one batch with its audit row and a `user.updated` event per app the
 * user is mapped in (webhooks after the commit). A number that already has an account is
 * reported only now, after its code proved the person holds it (as registration does).
 */
export async function changeMyMobile(env: Env, user: User, input: { mobile: E164; code: string; currentPassword: string }, ctx: PortalCtx, waitUntil?: WaitUntil): Promise<MobileChange> {
  const db = getDb(env.DB)
  if (!(await verifyPassword(input.currentPassword, user.passwordHash))) {
    await db.batch([audit(db, user, ctx, { action: 'portal.mobile_change_failed', targetType: 'user', targetId: user.id, details: { reason: 'wrong_current_password' } })])
    return 'wrong_password'
  }
  await verifySmsCode(env, { mobile: input.mobile, purpose: 'change_mobile', code: input.code }, { requestId: ctx.requestId, ip: ctx.ip })
  const now = Date.now()
  // the apps the user is mapped in hear of the new number (user.updated), as for an admin's change
  const events = userEventsStatement(db, user.id, 'user.updated', now)
  let results: unknown[]
  try {
    results = await db.batch([
      updateUserStatement(db, user.id, { mobile: input.mobile }, now),
      events,
      audit(db, user, ctx, { action: 'portal.mobile_changed', targetType: 'user', targetId: user.id, details: { from: user.mobile, to: input.mobile } }),
    ])
  } catch (e) {
    if (isMobileTaken(e)) return 'taken'
    throw e
  }
  await deliverAfterCommit(env, (results[1] as { eventId: string }[]).map((e) => e.eventId), waitUntil)
  return 'changed'
}
