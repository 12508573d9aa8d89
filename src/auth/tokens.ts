import { and, eq, sql, type Placeholder, type SQL } from 'drizzle-orm'
import { getDb, preparedOnce, statementOnce, type DB } from '../db'
import { refreshTokens, revokedAccessTokens, sessions } from './schema'
import { readSession, revokeFamilyStatement, sessionState, touchSessionStatement } from './sessions'
import { users } from '../users/schema'
import { applications } from '../apps/schema'
import { appUserMappings } from '../mappings/schema'
import { activeMappingOn } from '../mappings/service'
import { accessGrantsSql, accessHolds } from '../permissions/admission'
import { decryptSecret, encryptSecret, randomToken, sha256Hex } from '../lib/crypto'
import { getConfig, masterKeyRing, type Env } from '../env'
import { signJwt, verifyJwt } from '../keys/service'
import { auditStatement } from '../audit/service'
import { AuthErrors } from './errors'

/** Audience of tokens meant for UAP Edge's own API (`/api/v1/auth/me`, admin). */
export const API_AUDIENCE = 'uap-edge'
/** RFC 9068 access-token JWT type. */
export const ACCESS_TOKEN_TYP = 'at+jwt'
/**
 * Two refreshes of one token within this window (a client retrying, two tabs) both get
 * the same successor instead of tripping reuse detection. After it, reuse revokes the family.
 */
export const REFRESH_GRACE_MS = 10_000

export interface TokenSet {
  access_token: string
  refresh_token: string
  token_type: 'Bearer'
  expires_in: number
  scope?: string
}

export interface IssueOptions {
  userId: string
  sessionId: string
  /** OIDC client the tokens are for (app_id); audience defaults to it, or API_AUDIENCE. */
  clientId?: string | null
  scope?: string | null
}

export function audienceFor(clientId?: string | null): string {
  return clientId ?? API_AUDIENCE
}

export async function mintAccessToken(env: Env, o: IssueOptions): Promise<{ token: string; expiresIn: number }> {
  const { accessTokenTtl } = getConfig(env)
  const claims: Record<string, unknown> = { sub: o.userId, aud: audienceFor(o.clientId), sid: o.sessionId, jti: crypto.randomUUID() }
  if (o.clientId) claims.client_id = o.clientId
  if (o.scope) claims.scope = o.scope
  const token = await signJwt(env, claims, { typ: ACCESS_TOKEN_TYP, expiresInS: accessTokenTtl })
  return { token, expiresIn: accessTokenTtl }
}

export function newRefreshToken() {
  return randomToken(32, 'rt_')
}

/** A new refresh-token row (first of its family unless familyId is given). */
export async function refreshTokenRow(env: Env, o: IssueOptions & { token: string; familyId?: string; now: number }) {
  const { refreshTokenTtl } = getConfig(env)
  return {
    id: crypto.randomUUID(),
    tokenHash: await sha256Hex(o.token),
    familyId: o.familyId ?? crypto.randomUUID(),
    sessionId: o.sessionId,
    userId: o.userId,
    clientId: o.clientId ?? null,
    audience: audienceFor(o.clientId),
    scope: o.scope ?? null,
    status: 'ACTIVE' as const,
    createdAt: o.now,
    expiresAt: o.now + refreshTokenTtl * 1000,
  }
}

/**
 * A new refresh token as a plain D1 statement, written only if `when` (SQL text and its
 * parameters, the caller's own tables) holds as the batch runs: the code exchange issues
 * its token only if its claim on the code is the one that landed.
 */
export function insertRefreshTokenWhenStatement(d1: D1Database, rt: Awaited<ReturnType<typeof refreshTokenRow>>, when: { sql: string; params: unknown[] }) {
  return d1
    .prepare(
      `INSERT INTO refresh_tokens (id, token_hash, family_id, session_id, user_id, client_id, audience, scope, status, created_at, expires_at)
       SELECT ?, ?, ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ? WHERE ${when.sql}`,
    )
    .bind(rt.id, rt.tokenHash, rt.familyId, rt.sessionId, rt.userId, rt.clientId, rt.audience, rt.scope, rt.createdAt, rt.expiresAt, ...when.params)
}

/**
 * insertRefreshTokenWhenStatement for a drizzle db.batch, which cannot take a plain D1
 * statement: written only if `when` holds as the batch runs (a password sign-in: while the
 * password is still the one verified). Values in the schema's column order, the column list
 * drizzle writes for INSERT … SELECT.
 */
export function insertRefreshTokenIfStatement(db: DB, rt: Awaited<ReturnType<typeof refreshTokenRow>>, when: SQL) {
  return db
    .insert(refreshTokens)
    .select(
      sql`SELECT ${rt.id}, ${rt.tokenHash}, ${rt.familyId}, ${rt.sessionId}, ${rt.userId}, ${rt.clientId}, ${rt.audience}, ${rt.scope}, ${rt.status}, NULL, NULL, NULL, ${rt.createdAt}, ${rt.expiresAt} WHERE ${when}`,
    )
}

/** Space-separated scope, de-duplicated and sorted, for comparison. */
const normalScope = (scope: string | null) => [...new Set((scope ?? '').split(' ').filter(Boolean))].sort().join(' ')

const invalidGrant = (message?: string) => AuthErrors.invalid_grant({ message })

/** Everything a refresh decides on, read in one query (the read stage of a refresh). */
export type RefreshContext = NonNullable<Awaited<ReturnType<typeof readRefreshContext>>>

/**
 * The token, its session and user, and for a token issued to an app the app's status, the
 * user's active mapping in it and, under the app's `permission` policy, the user's access
 * grants: one read. Cross-owner tables are only read here (joined), never written.
 */
const refreshContextQuery = preparedOnce((db) => {
  const hash = sql.placeholder('hash')
  // the grants subquery cannot refer to the joined row (SQLite CTEs are uncorrelated): it finds the token again by hash
  const ofToken = (column: typeof refreshTokens.clientId | typeof refreshTokens.userId) => sql`(${db.select({ v: column }).from(refreshTokens).where(eq(refreshTokens.tokenHash, hash))})`
  return db
    .select({
      token: refreshTokens,
      session: sessions,
      user: users,
      appStatus: applications.status,
      // the whole row: the token endpoint authenticates its client with it when it is the token's (src/oidc/oauth.ts)
      app: applications,
      mappingId: appUserMappings.id,
      accessPolicy: applications.accessPolicy,
      access: accessGrantsSql(applications.accessPolicy, ofToken(refreshTokens.clientId), ofToken(refreshTokens.userId)),
    })
    .from(refreshTokens)
    .innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .innerJoin(users, eq(users.id, refreshTokens.userId))
    .leftJoin(applications, eq(applications.appId, refreshTokens.clientId))
    .leftJoin(appUserMappings, activeMappingOn(refreshTokens.clientId, refreshTokens.userId))
    .where(eq(refreshTokens.tokenHash, hash))
    .prepare()
})

/** A refresh token's row by the token itself (stored as its SHA-256), whatever its status. */
export async function findRefreshToken(env: Env, presented: string) {
  return getDb(env.DB).select().from(refreshTokens).where(eq(refreshTokens.tokenHash, await sha256Hex(presented))).get()
}

export async function readRefreshContext(env: Env, presented: string) {
  return refreshContextQuery(env.DB).get({ hash: await sha256Hex(presented) })
}

// The rotation's write batch runs on every refresh: its statements are built once (statementOnce).
/** Claims the presented token for this rotation: only an ACTIVE one, so of two racing refreshes one wins. */
const claimRotation = statementOnce((db) =>
  db
    .update(refreshTokens)
    // set values as SQL: the update builder takes no bare placeholders (plain text and integer columns, no encoding)
    .set({ status: 'ROTATED', replacedBy: sql`${sql.placeholder('next')}`, rotatedAt: sql`${sql.placeholder('now')}`, successorEnc: sql`${sql.placeholder('enc')}` })
    .where(and(eq(refreshTokens.id, sql.placeholder('id')), eq(refreshTokens.status, 'ACTIVE'))),
)

/** The successor, every column of refresh_tokens in table order; the row appears only if the claim above is this refresh's. */
const insertSuccessor = statementOnce((db) => {
  const p = (name: string) => sql.placeholder(name)
  return db.insert(refreshTokens).select(
    sql`SELECT ${p('id')}, ${p('tokenHash')}, ${p('familyId')}, ${p('sessionId')}, ${p('userId')}, ${p('clientId')}, ${p('audience')}, ${p('scope')}, 'ACTIVE', NULL, NULL, NULL, ${p('createdAt')}, ${p('expiresAt')}
      WHERE EXISTS (SELECT 1 FROM refresh_tokens WHERE id = ${p('prev')} AND replaced_by = ${p('id')})`,
  )
})

/**
 * Refresh-token rotation (OAuth 2.0 Security BCP, RFC 9700 §4.14.2): one read, one write batch.
 * The swap is atomic: the UPDATE only matches an ACTIVE row, and the INSERT of the successor
 * only happens if that UPDATE pointed the row at *this* successor. Of two concurrent
 * refreshes exactly one wins (its UPDATE changed one row); the other finds the row ROTATED
 * within the grace window and returns the winner's successor, so one family stays alive,
 * never two. A token issued to an app is refused, and its family revoked, once the app is
 * disabled or deleted, the user's mapping in it is no longer active or, under its `permission`
 * policy, the user's access permission was revoked (src/permissions/admission.ts).
 */
export async function rotateRefreshToken(
  env: Env,
  presented: string,
  ctx: {
    requestId?: string
    ip?: string
    clientId?: string | null
    /** RFC 6749 §6: if given, it must equal the original grant's */
    scope?: string
    /** readRefreshContext started earlier (the token endpoint runs it beside client authentication) */
    prefetched?: Promise<RefreshContext | undefined>
    /** the first-party refresh API: the app the call authenticated as (signature or secret), if any */
    authenticatedApp?: string | null
  },
): Promise<TokenSet & { userId: string; sessionId: string }> {
  const db = getDb(env.DB)
  const now = Date.now()
  const rc = await (ctx.prefetched ?? readRefreshContext(env, presented))
  if (!rc) throw invalidGrant()
  const row = rc.token
  // RFC 6749 §6: the token is bound to the client it was issued to.
  if (ctx.clientId !== undefined && (ctx.clientId ?? null) !== row.clientId) throw invalidGrant('The refresh token was not issued to this client')
  // Tokens from the OIDC token endpoint (they carry a scope) are refreshed there, with client
  // authentication; the first-party refresh API must not become a way around it.
  if (ctx.clientId === undefined && row.scope !== null) throw invalidGrant('This refresh token belongs to an OAuth client; use the token endpoint')
  // And the other way round: a sign-in API token (no scope) is refreshed only by the sign-in
  // API, which asks its app to authenticate; at the token endpoint a public client with the
  // same client_id would refresh it with nothing but that id.
  if (ctx.clientId !== undefined && row.scope === null) throw invalidGrant('This refresh token was issued by the sign-in API; refresh it at /api/v1/auth/refresh')
  // A token from a login with app_id is refreshed by that app's server, authenticated as it is for the login.
  if (ctx.clientId === undefined && row.clientId !== null && ctx.authenticatedApp !== row.clientId) {
    if (!ctx.authenticatedApp) throw AuthErrors.app_auth_required({ message: "This refresh token was issued for an app: authenticate the call as that app (signature or HTTP Basic app_id:app_secret)" })
    throw invalidGrant('The refresh token was not issued to this app')
  }
  if (ctx.clientId === undefined && row.clientId === null && ctx.authenticatedApp) throw invalidGrant('The refresh token was not issued to this app')
  if (ctx.scope !== undefined && normalScope(ctx.scope) !== normalScope(row.scope)) throw AuthErrors.invalid_scope()
  if (row.status === 'REVOKED' || row.expiresAt <= now) throw invalidGrant()
  if (row.clientId !== null && (rc.appStatus !== 'ACTIVE' || rc.mappingId === null || !accessHolds(rc.accessPolicy, rc.access))) {
    const reason = rc.appStatus === null ? 'app_deleted' : rc.appStatus !== 'ACTIVE' ? 'app_disabled' : rc.mappingId === null ? 'mapping_inactive' : 'access_revoked'
    await db.batch([
      revokeFamilyStatement(db, row.familyId),
      auditStatement(db, { action: 'refresh_token.offboarded', actorType: 'system', targetType: 'user', targetId: row.userId, requestId: ctx.requestId, ip: ctx.ip, details: { reason, client_id: row.clientId, family_id: row.familyId } }),
    ])
    throw invalidGrant(
      reason === 'mapping_inactive'
        ? 'The user no longer has an active account in this application'
        : reason === 'access_revoked'
          ? 'The user no longer has the access permission of this application'
          : 'The application of this refresh token is disabled',
    )
  }
  if (row.status === 'ROTATED') return replayOrReuse(env, db, row, now, ctx)

  const state = sessionState(env, { session: rc.session, user: rc.user }, now)
  if (state === 'ended') throw invalidGrant('The session has ended')
  if (state === 'user_disabled') throw invalidGrant('The account is disabled')

  const successor = newRefreshToken()
  const next = await refreshTokenRow(env, { userId: row.userId, sessionId: row.sessionId, clientId: row.clientId, scope: row.scope, token: successor, familyId: row.familyId, now })
  const { masterKey } = getConfig(env)
  const successorEnc = await encryptSecret(masterKey, successor, `rt-successor:${row.id}`)
  const [claim] = await env.DB.batch([
    claimRotation(env.DB, { id: row.id, next: next.id, now, enc: successorEnc }),
    insertSuccessor(env.DB, { ...next, prev: row.id }),
    touchSessionStatement(env.DB, row.sessionId, now),
  ])
  if (claim.meta.changes !== 1) {
    // Lost the race: another request rotated it first.
    const after = await db.select().from(refreshTokens).where(eq(refreshTokens.id, row.id)).get()
    if (!after) throw invalidGrant()
    return replayOrReuse(env, db, after, now, ctx)
  }
  const access = await mintAccessToken(env, { userId: row.userId, sessionId: row.sessionId, clientId: row.clientId, scope: row.scope })
  return tokenSet(access, successor, row.scope, row.userId, row.sessionId)
}

function tokenSet(access: { token: string; expiresIn: number }, refresh: string, scope: string | null, userId: string, sessionId: string) {
  const set: TokenSet & { userId: string; sessionId: string } = {
    access_token: access.token,
    refresh_token: refresh,
    token_type: 'Bearer',
    expires_in: access.expiresIn,
    userId,
    sessionId,
  }
  if (scope) set.scope = scope
  return set
}

async function replayOrReuse(
  env: Env,
  db: DB,
  row: typeof refreshTokens.$inferSelect,
  now: number,
  ctx: { requestId?: string; ip?: string },
) {
  const withinGrace = row.rotatedAt !== null && now - row.rotatedAt <= REFRESH_GRACE_MS && row.successorEnc
  if (withinGrace && row.replacedBy) {
    const successorRow = await db.select().from(refreshTokens).where(eq(refreshTokens.id, row.replacedBy)).get()
    if (successorRow && successorRow.status === 'ACTIVE') {
      const successor = await decryptSecret(masterKeyRing(env), row.successorEnc!, `rt-successor:${row.id}`)
      const access = await mintAccessToken(env, { userId: row.userId, sessionId: row.sessionId, clientId: row.clientId, scope: row.scope })
      return tokenSet(access, successor, row.scope, row.userId, row.sessionId)
    }
  }
  // Reuse of a rotated token: someone holds a stolen copy. Revoke the whole family.
  await db.batch([
    revokeFamilyStatement(db, row.familyId),
    auditStatement(db, {
      action: 'refresh_token.reuse_detected',
      actorType: 'anonymous',
      targetType: 'user',
      targetId: row.userId,
      requestId: ctx.requestId,
      ip: ctx.ip,
      details: { family_id: row.familyId, session_id: row.sessionId, client_id: row.clientId },
    }),
  ])
  throw invalidGrant('The refresh token was already used; its token family has been revoked')
}

export interface VerifiedAccess {
  userId: string
  sessionId: string
  role: 'USER' | 'ADMIN'
  audience: string[]
  clientId?: string
  scope?: string
  /** the session is also within the admin lifetimes (ADMIN_SESSION_TTL, ADMIN_SESSION_IDLE_TIMEOUT), whatever the user's role */
  adminGradeLive: boolean
}

/**
 * Verify an access token for UAP Edge's own endpoints: signature and claims statelessly,
 * then the session row (one primary-key read), so logout takes effect at once here.
 * Other services verifying with the JWKS alone accept it until `exp` (≤ ACCESS_TOKEN_TTL).
 */
export async function verifyAccessToken(env: Env, token: string, audience?: string): Promise<VerifiedAccess> {
  let payload
  try {
    ;({ payload } = await verifyJwt(env, token, { typ: ACCESS_TOKEN_TYP, audience }))
  } catch {
    throw AuthErrors.invalid_token()
  }
  const sid = typeof payload.sid === 'string' ? payload.sid : null
  if (!sid || !payload.sub) throw AuthErrors.invalid_token()
  // Only client tokens can be revoked one by one (POST /oauth2/revoke); their denylist read
  // runs beside the session's. One read for the session and its user: logout, expiry and
  // disabling take effect at once.
  const clientJti = typeof payload.client_id === 'string' && typeof payload.jti === 'string' ? payload.jti : null
  const [denied, session] = await Promise.all([clientJti ? isAccessTokenDenied(env, clientJti) : false, readSession(env, sid)])
  if (denied) throw AuthErrors.invalid_token({ message: 'The access token has been revoked' })
  const state = sessionState(env, session)
  if (state === 'ended') throw AuthErrors.invalid_token({ message: 'The session of this access token has ended' })
  if (state === 'user_disabled') throw AuthErrors.invalid_token({ message: 'The account of this access token is disabled' })
  const aud = Array.isArray(payload.aud) ? payload.aud : payload.aud ? [payload.aud] : []
  return {
    userId: payload.sub,
    sessionId: sid,
    role: session!.user.role,
    audience: aud,
    clientId: typeof payload.client_id === 'string' ? payload.client_id : undefined,
    scope: typeof payload.scope === 'string' ? payload.scope : undefined,
    adminGradeLive: sessionState(env, session, undefined, { adminGrade: true }) === 'live',
  }
}

/**
 * Access-token denylist (RFC 7009 revocation, replayed authorization codes) as a statement,
 * so a revocation and its audit row land in one batch. The row lives until the token's own
 * expiry (the cron drops it then); D1's primary answers every check, so a revocation holds
 * at every location from the moment the batch commits.
 */
export function denyAccessTokenStatement(db: DB, jti: string, expS: number, nowMs = Date.now()) {
  return db
    .insert(revokedAccessTokens)
    .values({ jti, expiresAt: expS * 1000, revokedAt: nowMs })
    .onConflictDoNothing()
}

export async function denyAccessToken(env: Env, jti: string, expS: number, nowMs = Date.now()) {
  if (expS * 1000 <= nowMs) return
  await denyAccessTokenStatement(getDb(env.DB), jti, expS, nowMs)
}

export async function isAccessTokenDenied(env: Env, jti: string): Promise<boolean> {
  return !!(await getDb(env.DB).select({ jti: revokedAccessTokens.jti }).from(revokedAccessTokens).where(eq(revokedAccessTokens.jti, jti)).get())
}

/** A select field: 1 when this jti is on the denylist, else 0; read beside the session, not after it. */
export const accessTokenDeniedSql = (jti: string | Placeholder | null) =>
  jti === null ? sql<number>`1` : sql<number>`exists(select 1 from ${revokedAccessTokens} where ${revokedAccessTokens.jti} = ${jti})`
