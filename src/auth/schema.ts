import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { users } from '../users/schema'

/**
 * A sign-in. API logins and hosted-page logins (cookie AUTH_SESSION_ID, stored as
 * cookie_hash) are both sessions; access tokens carry the id as `sid`.
 */
export const sessions = sqliteTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    /** SHA-256 of the AUTH_SESSION_ID cookie value, for browser sessions. */
    cookieHash: text('cookie_hash').unique(),
    /** The app the user logged in for, when there was one. */
    appId: text('app_id'),
    authTime: integer('auth_time').notNull(),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    revokedAt: integer('revoked_at'),
    /** Last use (refresh, hosted page), for the idle timeout; written at most once a minute. */
    lastSeenAt: integer('last_seen_at'),
    ip: text('ip'),
    userAgent: text('user_agent'),
  },
  (t) => [index('sessions_user_idx').on(t.userId)],
)

/**
 * Opaque refresh tokens, stored as SHA-256 hashes. Each use rotates the token: the old
 * row becomes ROTATED and points at its successor; a family shares `family_id`.
 */
export const refreshTokens = sqliteTable(
  'refresh_tokens',
  {
    id: text('id').primaryKey(),
    tokenHash: text('token_hash').notNull().unique(),
    familyId: text('family_id').notNull(),
    sessionId: text('session_id').notNull().references(() => sessions.id, { onDelete: 'cascade' }),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    /** OIDC client (app_id) the token was issued to; null for first-party API logins. */
    clientId: text('client_id'),
    audience: text('audience').notNull(),
    scope: text('scope'),
    status: text('status', { enum: ['ACTIVE', 'ROTATED', 'REVOKED'] }).notNull().default('ACTIVE'),
    replacedBy: text('replaced_by'),
    /** The successor token encrypted under the master key, kept only for the concurrency grace window. */
    successorEnc: text('successor_enc'),
    rotatedAt: integer('rotated_at'),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
  },
  (t) => [index('refresh_tokens_family_idx').on(t.familyId), index('refresh_tokens_session_idx').on(t.sessionId)],
)

/**
 * Access tokens revoked before their expiry (RFC 7009 revocation, replayed authorization
 * codes), by jti. In D1 rather than KV: the check rides in the same read as the session, so
 * it costs no extra round trip, and a revocation holds everywhere at once (KV takes up to a
 * minute to reach other locations). Rows go once the token itself has expired.
 */
export const revokedAccessTokens = sqliteTable('revoked_access_tokens', {
  jti: text('jti').primaryKey(),
  /** the token's own `exp`, in ms: after it the row is dropped (src/auth/cleanup.ts) */
  expiresAt: integer('expires_at').notNull(),
  revokedAt: integer('revoked_at').notNull(),
})
