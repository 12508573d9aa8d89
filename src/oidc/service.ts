import { and, desc, eq, sql } from 'drizzle-orm'
import { decodeJwt, type JWTPayload } from 'jose'
import { getDb, preparedOnce, type DB } from '../db'
import { getConfig, type Env } from '../env'
import type { Application } from '../apps/schema'
import { activeMappingOn } from '../mappings/service'
import { accessGrantsSql, accessHolds, admitUser } from '../permissions/admission'
import { grantsJson, groupsClaim, permissionKeysClaim, readClaims } from '../permissions/service'
import { parseCandidates } from '../permissions/resolution'
import { MembershipPaths, membershipGroupsJson } from '../directory/service'
import { readSession, revokeFamilyStatement, revokeRefreshTokensStatement, sessionState } from '../auth/sessions'
import { sessions } from '../auth/schema'
import { applications } from '../apps/schema'
import { appUserMappings } from '../mappings/schema'
import { users } from '../users/schema'
import { oidcCodes, oidcConsents, oidcSessionClients } from './schema'
import { auditStatement } from '../audit/service'
import { base64url, randomToken, sha256Hex, timingSafeEqual } from '../lib/crypto'
import { ACCESS_TOKEN_TYP, accessTokenDeniedSql, denyAccessToken, denyAccessTokenStatement, findRefreshToken, insertRefreshTokenWhenStatement, isAccessTokenDenied, mintAccessToken, newRefreshToken, readRefreshContext, refreshTokenRow, type RefreshContext } from '../auth/tokens'
import { signJwt, verifyJwt } from '../keys/service'
import { OAuthError } from './oauth'

/** Scopes we grant. Anything else is `invalid_scope`. The consent page's words for each are in src/pages/i18n (consentScopes). */
export const SUPPORTED_SCOPES = ['openid', 'profile', 'email', 'phone', 'offline_access', 'groups', 'permissions'] as const
export const CLAIMS_SUPPORTED = ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'at_hash', 'sid', 'email', 'preferred_username', 'name', 'phone_number', 'updated_at', 'groups', 'permissions']

/** RFC 9700 §4.2.1 / RFC 6749 §4.1.2: codes are short-lived (60 s) and single use. */
export const CODE_TTL_MS = 60_000
/** A pending authorization request waits this long for sign-in and consent (KV TTL). */
export const PENDING_TTL_S = 600
/** ID tokens live one hour (no longer than a retired signing key stays published). */
export const ID_TOKEN_TTL_S = 3600
/** After this many trips to the login page without a fresh enough sign-in, give up with login_required. */
export const MAX_LOGIN_REDIRECTS = 3

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'

/** Normalised scope list: unique, in a stable order. */
export function parseScope(scope: string | undefined | null): string[] {
  return [...new Set((scope ?? '').split(' ').filter(Boolean))].sort()
}

/** The claim the mapped key fills (applications.id_token_claim). */
export function claimNameOf(app: Pick<Application, 'idTokenClaim'>): 'email' | 'preferred_username' {
  return app.idTokenClaim === 'email' ? 'email' : 'preferred_username'
}

/**
 * An authorization request that passed validation and waits for sign-in or consent. Kept in
 * KV under a random id; best-effort storage is enough because nothing is granted from it
 * alone: the code is issued (strictly, in D1) only after the checks run again.
 */
export interface PendingAuthorization {
  id: string
  clientId: string
  redirectUri: string
  scope: string[]
  state?: string
  nonce?: string
  codeChallenge?: string
  prompt: string[]
  /** Sign-ins older than this (ms) do not count (prompt=login, max_age). */
  minAuthTime?: number
  loginHint?: string
  /** id_token_hint's subject: only this user's sign-in answers the request */
  hintSub?: string
  createdAt: number
  loginRedirects: number
  /** Set when the user was sent to the consent page: only that session may answer. */
  consentFor?: { userId: string; sessionId: string }
  stored?: boolean
}

const pendingKey = (id: string) => `oidc:authz:${id}`

export function newPending(fields: Omit<PendingAuthorization, 'id' | 'createdAt' | 'loginRedirects'> & { createdAt: number }): PendingAuthorization {
  return { ...fields, id: randomToken(32), loginRedirects: 0 }
}

export async function savePending(env: Env, p: PendingAuthorization) {
  p.stored = true
  await env.KV.put(pendingKey(p.id), JSON.stringify(p), { expirationTtl: PENDING_TTL_S })
}

export async function loadPending(env: Env, id: string): Promise<PendingAuthorization | null> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return null
  return env.KV.get<PendingAuthorization>(pendingKey(id), 'json')
}

export async function deletePending(env: Env, p: PendingAuthorization) {
  if (p.stored) await env.KV.delete(pendingKey(p.id))
}

/** What the `groups` and `permissions` scopes add to the ID token and userinfo (docs/permissions.md). */
export function claimScopes(scope: string[]) {
  return { groups: scope.includes('groups'), permissions: scope.includes('permissions') }
}

/** True when the user already granted every requested scope to this app. */
export async function consentCovers(env: Env, userId: string, clientId: string, scope: string[]): Promise<boolean> {
  const row = await getDb(env.DB).select({ scope: oidcConsents.scope }).from(oidcConsents).where(and(eq(oidcConsents.userId, userId), eq(oidcConsents.clientId, clientId))).get()
  if (!row) return false
  const granted = new Set(parseScope(row.scope))
  return scope.every((s) => granted.has(s))
}

/** Remembers consent: the union of what was granted before and now. */
export async function recordConsent(env: Env, o: { userId: string; clientId: string; scope: string[]; requestId: string; ip: string }) {
  const db = getDb(env.DB)
  const now = Date.now()
  const prev = await db.select({ scope: oidcConsents.scope }).from(oidcConsents).where(and(eq(oidcConsents.userId, o.userId), eq(oidcConsents.clientId, o.clientId))).get()
  const scope = parseScope([prev?.scope ?? '', ...o.scope].join(' ')).join(' ')
  await db.batch([
    db.insert(oidcConsents).values({ userId: o.userId, clientId: o.clientId, scope, createdAt: now, updatedAt: now }).onConflictDoUpdate({ target: [oidcConsents.userId, oidcConsents.clientId], set: { scope, updatedAt: now } }),
    auditStatement(db, { action: 'oidc.consent.granted', actorType: 'user', actorId: o.userId, targetType: 'application', targetId: o.clientId, requestId: o.requestId, ip: o.ip, details: { scope: o.scope.join(' ') } }),
  ])
}

/** The user said no on the consent page: audited, nothing stored. */
export async function recordConsentDenied(env: Env, o: { userId: string; clientId: string; scope: string[]; requestId: string; ip: string }) {
  const db = getDb(env.DB)
  await db.batch([auditStatement(db, { action: 'oidc.consent.denied', actorType: 'user', actorId: o.userId, targetType: 'application', targetId: o.clientId, requestId: o.requestId, ip: o.ip, details: { scope: o.scope.join(' ') } })])
}

/** The apps the user consented to, with the scopes granted and when (the portal's "Authorized apps"). */
export async function listUserConsents(env: Env, userId: string) {
  return getDb(env.DB)
    .select({ clientId: oidcConsents.clientId, scope: oidcConsents.scope, createdAt: oidcConsents.createdAt, updatedAt: oidcConsents.updatedAt, appName: applications.appName, iconUrl: applications.iconUrl })
    .from(oidcConsents)
    .innerJoin(applications, eq(applications.appId, oidcConsents.clientId))
    .where(eq(oidcConsents.userId, userId))
    .orderBy(desc(oidcConsents.updatedAt))
}

/**
 * The user withdraws consent from an app: the consent goes, and so does every refresh token
 * the app holds for the user (RFC 7009 §2.1 spirit: the grant behind them is gone), with the
 * audit row in the same batch. The next authorization asks for consent again. False when
 * there was no such consent (nothing written).
 */
export async function revokeConsent(env: Env, o: { userId: string; clientId: string; requestId: string; ip: string }): Promise<boolean> {
  const db = getDb(env.DB)
  const where = and(eq(oidcConsents.userId, o.userId), eq(oidcConsents.clientId, o.clientId))
  const existing = await db.select({ scope: oidcConsents.scope }).from(oidcConsents).where(where).get()
  if (!existing) return false
  await db.batch([
    db.delete(oidcConsents).where(where),
    revokeRefreshTokensStatement(db, { userId: o.userId }, { clientId: o.clientId }),
    auditStatement(db, { action: 'oidc.consent.revoked', actorType: 'user', actorId: o.userId, targetType: 'application', targetId: o.clientId, requestId: o.requestId, ip: o.ip, details: { scope: existing.scope, via: 'portal' } }),
  ])
  return true
}

/**
 * Issues an authorization code for a request whose checks all passed. One batch: the
 * hashed code, the session↔client link single sign-out needs, and the audit row.
 */
export async function issueCode(env: Env, p: PendingAuthorization, s: { userId: string; sessionId: string; authTime: number }, ctx: { requestId: string; ip: string }) {
  const db = getDb(env.DB)
  const now = Date.now()
  const code = randomToken(32)
  await db.batch([
    db.insert(oidcCodes).values({
      codeHash: await sha256Hex(code),
      clientId: p.clientId,
      userId: s.userId,
      sessionId: s.sessionId,
      redirectUri: p.redirectUri,
      scope: p.scope.join(' '),
      nonce: p.nonce ?? null,
      codeChallenge: p.codeChallenge ?? null,
      authTime: s.authTime,
      createdAt: now,
      expiresAt: now + CODE_TTL_MS,
      usedAt: null,
    }),
    db.insert(oidcSessionClients).values({ sessionId: s.sessionId, clientId: p.clientId, userId: s.userId, createdAt: now }).onConflictDoNothing(),
    auditStatement(db, { action: 'oidc.authorized', actorType: 'user', actorId: s.userId, targetType: 'application', targetId: p.clientId, requestId: ctx.requestId, ip: ctx.ip, details: { scope: p.scope.join(' '), session_id: s.sessionId } }),
  ])
  return code
}

/** RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))). */
export async function s256(verifier: string): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))))
}

/** OIDC Core §3.1.3.6: left half of the SHA-256 of the access token (ES256 uses SHA-256). */
export async function atHash(accessToken: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken)))
  return base64url(digest.slice(0, 16))
}

const invalidGrant = (description: string) => new OAuthError('invalid_grant', description)

export interface CodeTokens {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  scope: string
  id_token?: string
  refresh_token?: string
}

/**
 * authorization_code grant (RFC 6749 §4.1.3, RFC 7636 §4.6). The redemption is one D1 batch:
 * `UPDATE oidc_codes ... WHERE used_at IS NULL` claims the code, and the refresh token is only
 * inserted if that claim recorded this redemption's access-token id. A second redemption finds
 * used_at set and revokes what the first one issued (RFC 6749 §4.1.2).
 */
export async function redeemCode(
  env: Env,
  app: Application,
  input: { code: string; redirectUri: string; codeVerifier?: string },
  ctx: { requestId: string; ip: string },
): Promise<CodeTokens> {
  const db = getDb(env.DB)
  const now = Date.now()
  const codeHash = await sha256Hex(input.code)
  const row = await db.select().from(oidcCodes).where(eq(oidcCodes.codeHash, codeHash)).get()
  if (!row) throw invalidGrant('The authorization code is invalid')
  if (row.clientId !== app.appId) throw invalidGrant('The authorization code was issued to another client')
  if (row.usedAt !== null) {
    await revokeCodeGrant(env, row, ctx)
    throw invalidGrant('The authorization code was already used; the tokens issued with it have been revoked')
  }
  if (row.expiresAt <= now) throw invalidGrant('The authorization code has expired')
  if (row.redirectUri !== input.redirectUri) throw invalidGrant('redirect_uri does not match the one of the authorization request')
  if (row.codeChallenge) {
    if (!input.codeVerifier) throw invalidGrant('code_verifier is required: the authorization request used PKCE')
    if (!/^[A-Za-z0-9._~-]{43,128}$/.test(input.codeVerifier)) throw invalidGrant('code_verifier must be 43-128 characters of [A-Z a-z 0-9 - . _ ~] (RFC 7636 §4.1)')
    if (!timingSafeEqual(await s256(input.codeVerifier), row.codeChallenge)) throw invalidGrant('code_verifier does not match the code_challenge')
  } else if (input.codeVerifier !== undefined) {
    // RFC 9700 §2.1.1: a verifier without a challenge is refused (PKCE downgrade).
    throw invalidGrant('code_verifier was sent but the authorization request had no code_challenge')
  }
  const state = sessionState(env, await readSession(env, row.sessionId), now)
  if (state === 'ended') throw invalidGrant('The sign-in session of this code has ended')
  if (state === 'user_disabled') throw invalidGrant('The account is disabled')
  const scope = parseScope(row.scope)
  const want = claimScopes(scope)
  // admission (src/permissions/admission.ts) and the directory claims read side by side
  const [admission, extra] = await Promise.all([
    admitUser(env, app.appId, row.userId),
    scope.includes('openid') && (want.groups || want.permissions) ? readClaims(env, app.appId, row.userId, want) : undefined,
  ])
  if (!admission.ok) throw invalidGrant(admission.reason === 'no_access' ? 'The user is not allowed to use this application' : 'The user has no active account in this application')
  const mapped = admission.mapping.mappedKey

  const access = await mintAccessToken(env, { userId: row.userId, sessionId: row.sessionId, clientId: app.appId, scope: scope.join(' ') })
  const { jti, exp } = decodeJwt(access.token) as { jti: string; exp: number }
  const wantsRefresh = scope.includes('offline_access') && app.grantTypes.includes('refresh_token')
  const refresh = wantsRefresh ? newRefreshToken() : undefined
  const rt = refresh ? await refreshTokenRow(env, { userId: row.userId, sessionId: row.sessionId, clientId: app.appId, scope: scope.join(' '), token: refresh, now }) : undefined

  const statements = [
    env.DB.prepare('UPDATE oidc_codes SET used_at = ?, family_id = ?, access_jti = ?, access_exp = ? WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?').bind(
      now,
      rt?.familyId ?? null,
      jti,
      exp,
      codeHash,
      now,
    ),
  ]
  if (rt) {
    statements.push(insertRefreshTokenWhenStatement(env.DB, rt, { sql: 'EXISTS (SELECT 1 FROM oidc_codes WHERE code_hash = ? AND access_jti = ?)', params: [codeHash, jti] }))
  }
  const [claim] = await env.DB.batch(statements)
  if (claim.meta.changes !== 1) {
    // A concurrent redemption won: that is a replay too, so revoke what it issued.
    const after = await db.select().from(oidcCodes).where(eq(oidcCodes.codeHash, codeHash)).get()
    if (after && after.usedAt !== null) await revokeCodeGrant(env, after, ctx)
    throw invalidGrant('The authorization code was already used; the tokens issued with it have been revoked')
  }

  const body: CodeTokens = { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, scope: scope.join(' ') }
  if (scope.includes('openid')) {
    body.id_token = await buildIdToken(env, app, { userId: row.userId, sessionId: row.sessionId, authTime: row.authTime, nonce: row.nonce, accessToken: access.token, mappedKey: mapped, claims: extra })
  }
  if (refresh) body.refresh_token = refresh
  return body
}

/** RFC 6749 §4.1.2: a replayed code revokes the refresh-token family and access token it issued. */
async function revokeCodeGrant(env: Env, row: typeof oidcCodes.$inferSelect, ctx: { requestId: string; ip: string }) {
  const db = getDb(env.DB)
  const revokeFamily = row.familyId ? [revokeFamilyStatement(db, row.familyId)] : []
  await db.batch([
    auditStatement(db, {
      action: 'oidc.code_reuse_detected',
      actorType: 'app',
      actorId: row.clientId,
      targetType: 'user',
      targetId: row.userId,
      requestId: ctx.requestId,
      ip: ctx.ip,
      details: { session_id: row.sessionId, family_id: row.familyId, access_jti: row.accessJti },
    }),
    ...revokeFamily,
    ...(row.accessJti && row.accessExp ? [denyAccessTokenStatement(db, row.accessJti, row.accessExp)] : []),
  ])
}

/**
 * ID token (OIDC Core §2, §3.1.3.6) with the app's chosen claim filled from the mapping and,
 * for the `groups` / `permissions` scopes, those claims (read by readClaims).
 */
export async function buildIdToken(
  env: Env,
  app: Application,
  o: { userId: string; sessionId: string; authTime: number; nonce: string | null; accessToken: string; mappedKey: string; claims?: { groups?: string[]; permissions?: string[] } },
) {
  const claims: Record<string, unknown> = {
    sub: o.userId,
    aud: app.appId,
    auth_time: Math.floor(o.authTime / 1000),
    sid: o.sessionId,
    at_hash: await atHash(o.accessToken),
    [claimNameOf(app)]: o.mappedKey,
  }
  if (o.nonce) claims.nonce = o.nonce
  if (o.claims?.groups) claims.groups = o.claims.groups
  if (o.claims?.permissions) claims.permissions = o.claims.permissions
  return signJwt(env, claims, { typ: 'JWT', expiresInS: ID_TOKEN_TTL_S })
}

/** client_credentials (RFC 6749 §4.4): an access token for the client itself, no user, no refresh token. */
export async function mintClientToken(env: Env, app: Application) {
  const { accessTokenTtl } = getConfig(env)
  const token = await signJwt(env, { sub: app.appId, aud: app.appId, client_id: app.appId, jti: crypto.randomUUID() }, { typ: ACCESS_TOKEN_TYP, expiresInS: accessTokenTtl })
  return { access_token: token, token_type: 'Bearer' as const, expires_in: accessTokenTtl }
}

export interface UserInfoClaims {
  sub: string
  email?: string
  preferred_username?: string
  name?: string
  phone_number?: string
  updated_at?: number
  groups?: string[]
  permissions?: string[]
}

/**
 * What a client's access token stands for, in one read: its session and user, the client
 * app, the user's active mapping in that app (null when there is none) and, under the app's
 * `permission` policy, the user's access grants; with `want`, the directory claims' inputs
 * too. Other owners' tables are only read here; their rules (sessionState, activeMappingOn,
 * accessHolds) decide.
 */
function buildClientSessionQuery(db: DB, want: { groups: boolean; permissions: boolean }) {
  const [sid, clientId, userId, jti] = [sql.placeholder('sid'), sql.placeholder('client'), sql.placeholder('user'), sql.placeholder('jti')]
  const uid = sql`${userId}`
  return db
    .select({
      denied: accessTokenDeniedSql(jti),
      session: sessions,
      user: users,
      app: applications,
      mappedKey: appUserMappings.mappedKey,
      access: accessGrantsSql(applications.accessPolicy, sql`${clientId}`, uid),
      groups: want.groups ? membershipGroupsJson(uid) : sql<string | null>`NULL`,
      grants: want.permissions ? grantsJson(sql`${clientId}`, uid) : sql<string | null>`NULL`,
    })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .innerJoin(applications, eq(applications.appId, clientId))
    .leftJoin(appUserMappings, activeMappingOn(applications.appId, users.id))
    .where(eq(sessions.id, sid))
    .prepare()
}

// every userinfo and introspection call runs one of these four: built once each (src/db preparedOnce)
const clientSessionQueries = new Map<string, (d1: D1Database) => ReturnType<typeof buildClientSessionQuery>>()

async function readClientSession(env: Env, sessionId: string, clientId: string, userId: string, jti: string | null, want = { groups: false, permissions: false }) {
  const variant = `${want.groups}/${want.permissions}`
  let query = clientSessionQueries.get(variant)
  if (!query) clientSessionQueries.set(variant, (query = preparedOnce((db) => buildClientSessionQuery(db, want))))
  // no jti: no denylist row can match '', and readClientAccess treats the token as denied anyway
  return query(env.DB).get({ sid: sessionId, client: clientId, user: userId, jti: jti ?? '' })
}

/** The token's user may still use this client: live session, app active, admitted (mapping active and, by policy, access). */
function clientSessionLive(env: Env, row: Awaited<ReturnType<typeof readClientSession>>, userId: unknown): row is NonNullable<typeof row> & { mappedKey: string } {
  return !!row && row.user.id === userId && sessionState(env, row) === 'live' && row.app.status === 'ACTIVE' && row.mappedKey !== null && accessHolds(row.app.accessPolicy, row.access)
}

/** A verified client access token (RFC 9068) and what is known about it after one storage round trip. */
export interface ClientAccess {
  payload: JWTPayload
  denied: boolean
  row: Awaited<ReturnType<typeof readClientSession>>
}

/**
 * Verifies an access token issued by the token endpoint and reads the client session with
 * the revocation denylist in the same query (one stage). Null when the JWT itself is bad.
 */
export async function readClientAccess(env: Env, token: string, o: { claims?: boolean } = {}): Promise<ClientAccess | null> {
  let payload: JWTPayload
  try {
    ;({ payload } = await verifyJwt(env, token, { typ: ACCESS_TOKEN_TYP }))
  } catch {
    return null
  }
  const clientId = typeof payload.client_id === 'string' ? payload.client_id : null
  const jti = typeof payload.jti === 'string' ? payload.jti : null
  // a token without a jti cannot be revoked one by one, so it is not one of ours (RFC 9068 §2.2 requires jti)
  if (!jti) return { payload, denied: true, row: undefined }
  if (clientId && typeof payload.sid === 'string' && typeof payload.sub === 'string') {
    const row = await readClientSession(env, payload.sid, clientId, payload.sub, jti, o.claims ? claimScopes(parseScope(typeof payload.scope === 'string' ? payload.scope : '')) : undefined)
    return { payload, denied: !!row?.denied, row }
  }
  // A client's own token (client_credentials) names no session, so the denylist is its only
  // state: RFC 7009 §2 revokes it like any other.
  return { payload, denied: clientId ? await isAccessTokenDenied(env, jti) : false, row: undefined }
}

/**
 * UserInfo claims by scope (OIDC Core §5.3, §5.4), or why the token is refused. The mapped
 * claim is always there: a user without an active mapping, or an app disabled, gets none.
 */
export function userinfoClaims(env: Env, a: ClientAccess): { claims: UserInfoClaims } | { error: 'invalid_token' | 'insufficient_scope'; description: string } {
  const { payload, row } = a
  if (a.denied) return { error: 'invalid_token', description: 'The access token has been revoked' }
  if (typeof payload.client_id !== 'string' || typeof payload.sid !== 'string') return { error: 'insufficient_scope', description: 'The access token was not issued with the openid scope' }
  const scope = parseScope(typeof payload.scope === 'string' ? payload.scope : '')
  if (!scope.includes('openid')) return { error: 'insufficient_scope', description: 'The access token was not issued with the openid scope' }
  if (!row || row.user.id !== payload.sub || sessionState(env, row) !== 'live') return { error: 'invalid_token', description: 'The session of this access token has ended' }
  if (!clientSessionLive(env, row, payload.sub)) return { error: 'invalid_token', description: 'The account or application of this access token is gone or disabled' }
  const { user, app } = row
  const claimName = claimNameOf(app)
  const claims: UserInfoClaims = { sub: user.id, [claimName]: row.mappedKey }
  if (scope.includes('profile')) {
    if (user.name) claims.name = user.name
    claims.updated_at = Math.floor(user.updatedAt / 1000)
  }
  if (scope.includes('email') && claimName !== 'email' && user.email) claims.email = user.email
  if (scope.includes('phone')) claims.phone_number = user.mobile
  if (scope.includes('groups')) claims.groups = groupsClaim(new MembershipPaths(row.groups))
  if (scope.includes('permissions')) claims.permissions = permissionKeysClaim(parseCandidates(row.grants))
  return { claims }
}

const looksLikeJwt = (t: string) => t.split('.').length === 3

/**
 * Introspection (RFC 7662 §2.2). Anything not valid, or not issued to the caller, is
 * `{ active: false }` and nothing more, so no client learns about another's tokens.
 */
export interface IntrospectionResult {
  active: boolean
  client_id?: string
  sub?: string
  scope?: string
  exp?: number
  iat?: number
  iss?: string
  aud?: string | string[]
  jti?: string
  token_type?: string
}

export type IntrospectionRead = { kind: 'access'; access: ClientAccess | null } | { kind: 'refresh'; rc: RefreshContext | undefined }

/**
 * The reads introspection needs, started before the client is authenticated so both share
 * one storage round trip. Nothing read is revealed unless the caller is the token's client.
 */
export async function readForIntrospection(env: Env, token: string): Promise<IntrospectionRead> {
  if (looksLikeJwt(token)) return { kind: 'access', access: await readClientAccess(env, token) }
  return { kind: 'refresh', rc: await readRefreshContext(env, token) }
}

/** The app row the introspection read joined to the token (its client), if any. */
export function introspectedClient(read: IntrospectionRead): Application | null | undefined {
  return read.kind === 'access' ? read.access?.row?.app : read.rc?.app
}

export function introspect(env: Env, app: Application, read: IntrospectionRead): IntrospectionResult {
  const inactive = { active: false }
  const now = Date.now()
  const { issuer } = getConfig(env)
  if (read.kind === 'access') {
    const a = read.access
    if (!a || a.denied) return inactive
    const { payload } = a
    if (payload.client_id !== app.appId || typeof payload.jti !== 'string') return inactive
    // a user's token (it names a session) is active while that user may still use the app
    if (typeof payload.sid === 'string' && !clientSessionLive(env, a.row, payload.sub)) return inactive
    const out: IntrospectionResult = { active: true, client_id: app.appId, token_type: 'Bearer', sub: payload.sub, aud: payload.aud, iss: issuer, exp: payload.exp, iat: payload.iat, jti: payload.jti }
    if (typeof payload.scope === 'string') out.scope = payload.scope
    return out
  }
  const rc = read.rc
  if (!rc) return inactive
  const row = rc.token
  if (row.clientId !== app.appId || row.status !== 'ACTIVE' || row.expiresAt <= now) return inactive
  if (sessionState(env, rc, now) !== 'live' || rc.appStatus !== 'ACTIVE' || rc.mappingId === null || !accessHolds(rc.accessPolicy, rc.access)) return inactive
  const out: IntrospectionResult = { active: true, client_id: app.appId, sub: row.userId, iss: issuer, exp: Math.floor(row.expiresAt / 1000), iat: Math.floor(row.createdAt / 1000) }
  if (row.scope) out.scope = row.scope
  return out
}

/**
 * Revocation (RFC 7009 §2.1). Access tokens go on the jti denylist until they expire;
 * refresh tokens revoke their whole family. Unknown tokens and other clients' tokens are
 * left alone and still answered with 200 (§2.2), so the caller learns nothing.
 */
export async function revokeToken(env: Env, app: Application, token: string, ctx: { requestId: string; ip: string }) {
  const db = getDb(env.DB)
  if (looksLikeJwt(token)) {
    let payload
    try {
      ;({ payload } = await verifyJwt(env, token, { typ: ACCESS_TOKEN_TYP }))
    } catch {
      return
    }
    if (payload.client_id !== app.appId || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return
    await db.batch([
      denyAccessTokenStatement(db, payload.jti, payload.exp),
      auditStatement(db, { action: 'oidc.token_revoked', actorType: 'app', actorId: app.appId, targetType: 'access_token', targetId: payload.jti, requestId: ctx.requestId, ip: ctx.ip }),
    ])
    return
  }
  const row = await findRefreshToken(env, token)
  if (!row || row.clientId !== app.appId) return
  await db.batch([
    revokeFamilyStatement(db, row.familyId),
    auditStatement(db, { action: 'oidc.token_revoked', actorType: 'app', actorId: app.appId, targetType: 'refresh_token_family', targetId: row.familyId, requestId: ctx.requestId, ip: ctx.ip, details: { user_id: row.userId } }),
  ])
  // §2.1: access tokens of the same grant go too. The one the code exchange issued is on
  // record (oidc_codes.access_jti); those minted by later refreshes expire on their own.
  const grant = await db.select({ jti: oidcCodes.accessJti, exp: oidcCodes.accessExp }).from(oidcCodes).where(eq(oidcCodes.familyId, row.familyId)).get()
  if (grant?.jti && grant.exp) await denyAccessToken(env, grant.jti, grant.exp)
}
