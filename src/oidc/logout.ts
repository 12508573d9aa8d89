import type { Context } from 'hono'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { and, eq, inArray, isNull, lt, type SQL } from 'drizzle-orm'
import type { AppEnv } from '../context'
import { getConfig, type Env } from '../env'
import { getDb } from '../db'
import type { Application } from '../apps/schema'
import { findApplication, findApplications } from '../apps/service'
import { endBrowserSession, readBrowserSession } from '../auth/browser-session'
import { revokeRefreshTokensStatement } from '../auth/sessions'
import { oidcCodes, oidcSessionClients } from './schema'
import type { SessionsEnded } from '../auth/session-hooks'
import type { QueueJob } from '../queue/dispatcher'
import { signJwt, SIGNING_ALG, verifyCompactJws } from '../keys/service'
import { auditStatement } from '../audit/service'
import { log } from '../lib/logger'
import { isProduction, notificationUrlProblem } from '../webhooks/url'
import { isRegisteredPostLogoutRedirectUri } from '../lib/redirect-uri'
import { csrfToken, csrfValid, errorPage, logoutConfirmPage, signedOutPage, stillSignedInPage } from './pages'
import { BACKCHANNEL_LOGOUT_EVENT } from './service'

export interface EndSessionParams {
  id_token_hint?: string
  client_id?: string
  post_logout_redirect_uri?: string
  state?: string
  csrf_token?: string
  confirm?: string
}

/**
 * An ID token we issued, used as a hint (RP-Initiated Logout 1.0 §2). The signature must
 * verify; expiry is not checked, because RPs often hold an expired ID token when the user
 * signs out (§4). Nor can every hint's key still be checked: a retired key leaves the JWKS an
 * hour after its successor takes over, while RPs keep the ID token of a sign-in for the
 * session's life. Such a hint (`verified: false`) names its client, as a client_id would,
 * and vouches for nobody: the user confirms, as without a hint.
 */
export type IdTokenHint = { verified: true; sub: string; aud: string[]; sid?: string } | { verified: false; aud: string[] }

export async function verifyIdTokenHint(env: Env, token: string): Promise<IdTokenHint | null> {
  let header: { alg?: string; typ?: string }
  let claims: Record<string, unknown>
  let verified = true
  try {
    const { payload, protectedHeader } = await verifyCompactJws(env, token)
    header = protectedHeader
    claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY') return null
    try {
      header = decodeProtectedHeader(token)
      claims = decodeJwt(token)
    } catch {
      return null
    }
    if (header.alg !== SIGNING_ALG) return null
    verified = false
  }
  if (header.typ !== 'JWT') return null // not an access token (at+jwt) or logout token
  if (claims.iss !== getConfig(env).issuer || typeof claims.sub !== 'string' || typeof claims.auth_time !== 'number') return null
  const aud = Array.isArray(claims.aud) ? claims.aud.filter((a): a is string => typeof a === 'string') : typeof claims.aud === 'string' ? [claims.aud] : []
  // OIDC Core §2: an ID token has an audience; without one it is none of ours
  if (!aud.length) return null
  if (!verified) return { verified, aud }
  return { verified, sub: claims.sub, aud, sid: typeof claims.sid === 'string' ? claims.sid : undefined }
}

/**
 * RP-initiated logout. With a valid id_token_hint for the signed-in user the session ends at
 * once; otherwise (no hint, someone else's hint) the user confirms on a CSRF-protected page,
 * so a third-party site cannot sign people out. post_logout_redirect_uri must be registered
 * for the client named by client_id or the hint, and `state` is passed back.
 */
export async function endSession(c: Context<AppEnv>, p: EndSessionParams, isPost: boolean): Promise<Response> {
  let client: Application | undefined
  let hint: Awaited<ReturnType<typeof verifyIdTokenHint>> = null
  if (p.id_token_hint !== undefined) {
    hint = await verifyIdTokenHint(c.env, p.id_token_hint)
    if (!hint) return errorPage(c, (t) => ({ title: t.invalidSignOutTitle, message: t.idTokenHintInvalid }))
  }
  if (p.client_id !== undefined) {
    client = await findApplication(c.env, p.client_id)
    // a disabled app's post-logout URIs are not followed, as none of its other redirects are
    if (!client || client.protocolType !== 'OIDC' || client.status !== 'ACTIVE') return errorPage(c, (t) => ({ title: t.invalidSignOutTitle, message: t.clientNotOidc }))
    // §2: with both, the client_id must be one the hint was issued to
    if (hint && !hint.aud.includes(client.appId)) return errorPage(c, (t) => ({ title: t.invalidSignOutTitle, message: t.clientHintMismatch }))
  } else if (hint) {
    const named = await findApplication(c.env, hint.aud[0])
    client = named && named.protocolType === 'OIDC' && named.status === 'ACTIVE' ? named : undefined
  }
  // §3: only a post_logout_redirect_uri registered for that client, and `state` goes back on it
  let redirectUri: string | undefined
  if (p.post_logout_redirect_uri !== undefined) {
    if (!client) return errorPage(c, (t) => ({ title: t.invalidSignOutTitle, message: t.postLogoutNeedsClient }))
    if (!isRegisteredPostLogoutRedirectUri(client, p.post_logout_redirect_uri)) return errorPage(c, (t) => ({ title: t.invalidSignOutTitle, message: t.postLogoutNotRegistered(client.appName) }))
    redirectUri = p.post_logout_redirect_uri
  }

  const confirmation = isPost && p.confirm !== undefined
  if (confirmation && !csrfValid(c, p.csrf_token)) return errorPage(c, (t) => ({ title: t.signOutNotConfirmedTitle, message: t.signOutFormExpired }), 403)
  if (confirmation && p.confirm !== 'yes') return stillSignedInPage(c)

  // §6: a logout the hint does not vouch for is confirmed by the user, so no third-party
  // site can sign people out
  const current = await readBrowserSession(c)
  const trusted = confirmation || (!!hint?.verified && !!current && hint.sub === current.user.id)
  if (current && !trusted) {
    return logoutConfirmPage(c, { csrf: csrfToken(c), clientId: client?.appId, postLogoutRedirectUri: redirectUri, state: p.state, appName: client?.appName })
  }
  // Ends the session (refresh tokens revoked in the same batch) and runs the session-end hooks: back-channel logout below.
  await endBrowserSession(c)
  if (redirectUri) {
    const url = new URL(redirectUri)
    if (p.state !== undefined) url.searchParams.set('state', p.state)
    c.header('Cache-Control', 'no-store')
    return c.redirect(url.toString(), 302)
  }
  return signedOutPage(c)
}

export const BACKCHANNEL_JOB = 'oidc.backchannel_logout'
export type BackchannelJob = QueueJob & { kind: typeof BACKCHANNEL_JOB; client_id: string; user_id: string; session_id: string }

const chunk = <T>(xs: T[], n: number) => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n))

/**
 * Single sign-out, run when sessions end (logout, logout-all, end_session, password change,
 * account disabled). Revokes the refresh tokens apps hold under those sessions and queues a
 * back-channel logout for every app the sessions signed into that registered a URI. Each
 * session↔app pair is claimed once (`UPDATE ... RETURNING`), so two hooks never both notify.
 */
export async function signOutClients(env: Env, ended: SessionsEnded) {
  const db = getDb(env.DB)
  const now = Date.now()
  const claimed: { sessionId: string; clientId: string; userId: string }[] = []
  const claim = (scope: SQL) =>
    db
      .update(oidcSessionClients)
      .set({ notifiedAt: now })
      .where(and(isNull(oidcSessionClients.notifiedAt), scope))
      .returning({ sessionId: oidcSessionClients.sessionId, clientId: oidcSessionClients.clientId, userId: oidcSessionClients.userId })
  // The logout batch revoked these already; repeating it keeps every path that ends a session safe.
  if (ended.sessionIds) {
    // bound parameters per statement stay under D1's limit of 100
    for (const ids of chunk(ended.sessionIds, 50)) {
      const [, rows] = await db.batch([revokeRefreshTokensStatement(db, { sessionIds: ids }, { clientTokensOnly: true }), claim(inArray(oidcSessionClients.sessionId, ids))])
      claimed.push(...rows)
    }
  } else {
    const [, rows] = await db.batch([revokeRefreshTokensStatement(db, { userId: ended.userId }, { clientTokensOnly: true }), claim(eq(oidcSessionClients.userId, ended.userId))])
    claimed.push(...rows)
  }
  if (!claimed.length) return
  const clientIds = [...new Set(claimed.map((r) => r.clientId))]
  // findApplications reads at most 90 ids per call
  const apps = (await Promise.all(chunk(clientIds, 90).map((ids) => findApplications(env, ids)))).flat()
  const notify = new Set(apps.filter((a) => a.backchannelLogoutUri && a.status === 'ACTIVE').map((a) => a.appId))
  const jobs: BackchannelJob[] = claimed
    .filter((r) => notify.has(r.clientId))
    .map((r) => ({ kind: BACKCHANNEL_JOB, client_id: r.clientId, user_id: r.userId, session_id: r.sessionId }))
  try {
    for (const part of chunk(jobs, 100)) await env.WEBHOOK_QUEUE.sendBatch(part.map((body) => ({ body })))
  } catch (err) {
    // Give the pairs back so a later sign-out can try again.
    await db
      .update(oidcSessionClients)
      .set({ notifiedAt: null })
      .where(and(eq(oidcSessionClients.notifiedAt, now), eq(oidcSessionClients.userId, ended.userId)))
    throw err
  }
}

/** Logout token (OIDC Back-Channel Logout 1.0 §2.4): never a nonce, typ logout+jwt, short-lived. */
export async function buildLogoutToken(env: Env, job: { client_id: string; user_id: string; session_id: string }) {
  return signJwt(
    env,
    { aud: job.client_id, sub: job.user_id, sid: job.session_id, jti: crypto.randomUUID(), events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } },
    { typ: 'logout+jwt', expiresInS: 120 },
  )
}

/**
 * Delivers one back-channel logout (§2.5): POST logout_token form-encoded to the app's URI.
 * Anything but a 2xx throws, so the Queue retries with backoff and finally dead-letters it.
 * A fresh token is made per attempt, so a late retry is never rejected as expired.
 */
export async function deliverBackchannelLogout(job: QueueJob, env: Env, attempt: number, fetcher: typeof fetch = fetch) {
  const j = job as BackchannelJob
  const app = await findApplication(env, j.client_id)
  if (!app || app.status !== 'ACTIVE' || !app.backchannelLogoutUri) {
    log.info('oidc.backchannel_logout.skipped', { client_id: j.client_id, reason: 'no longer registered' })
    return
  }
  // checked when it was set, and again here: one stored before the rule, or under a development
  // configuration, is not fetched in production
  const problem = notificationUrlProblem(app.backchannelLogoutUri, isProduction(env), 'backchannel_logout_uri')
  if (problem) {
    log.warn('oidc.backchannel_logout.skipped', { client_id: j.client_id, reason: problem })
    return
  }
  const token = await buildLogoutToken(env, j)
  const res = await fetcher(app.backchannelLogoutUri, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({ logout_token: token }).toString(),
    redirect: 'manual',
    signal: AbortSignal.timeout(10_000),
  })
  if (res.status < 200 || res.status > 299) {
    throw new Error(`back-channel logout to ${j.client_id} answered ${res.status} (attempt ${attempt})`)
  }
  const db = getDb(env.DB)
  await db.batch([
    auditStatement(db, { action: 'oidc.backchannel_logout.delivered', actorType: 'system', targetType: 'application', targetId: j.client_id, details: { session_id: j.session_id, user_id: j.user_id, attempt } }),
  ])
}

/** Used codes stay a day past expiry (replay detection, support), then go. */
export async function cleanupCodes(env: Env, now: number) {
  await getDb(env.DB).delete(oidcCodes).where(lt(oidcCodes.expiresAt, now - 86400_000))
}
