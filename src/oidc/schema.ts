import { index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import { users } from '../users/schema'
import { sessions } from '../auth/schema'
import { applications } from '../apps/schema'

/**
 * Authorization codes (RFC 6749 §4.1.2), stored as SHA-256 hashes. Single use is strict:
 * redemption is `UPDATE ... WHERE used_at IS NULL` in D1. The row is kept after use (until
 * the cleanup cron) so a replayed code can revoke what its first redemption issued.
 */
export const oidcCodes = sqliteTable(
  'oidc_codes',
  {
    codeHash: text('code_hash').primaryKey(),
    clientId: text('client_id').notNull().references(() => applications.appId, { onDelete: 'cascade' }),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    sessionId: text('session_id').notNull().references(() => sessions.id, { onDelete: 'cascade' }),
    redirectUri: text('redirect_uri').notNull(),
    scope: text('scope').notNull(),
    nonce: text('nonce'),
    /** S256 PKCE challenge (RFC 7636); null when a confidential client sent none. */
    codeChallenge: text('code_challenge'),
    /** When the user authenticated (ms), for the ID token's auth_time. */
    authTime: integer('auth_time').notNull(),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    usedAt: integer('used_at'),
    /** What the redemption issued, so a replay can revoke it (RFC 6749 §4.1.2). */
    familyId: text('family_id'),
    accessJti: text('access_jti'),
    accessExp: integer('access_exp'),
  },
  (t) => [index('oidc_codes_expires_idx').on(t.expiresAt)],
)

/** Consent a user gave an app: the union of the scopes granted so far (space-separated). */
export const oidcConsents = sqliteTable(
  'oidc_consents',
  {
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    clientId: text('client_id').notNull().references(() => applications.appId, { onDelete: 'cascade' }),
    scope: text('scope').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.clientId] })],
)

/**
 * Which apps a browser session signed into (one row per session and client), so single
 * sign-out knows whom to notify. `notified_at` is set when the sign-out was processed.
 */
export const oidcSessionClients = sqliteTable(
  'oidc_session_clients',
  {
    sessionId: text('session_id').notNull().references(() => sessions.id, { onDelete: 'cascade' }),
    clientId: text('client_id').notNull().references(() => applications.appId, { onDelete: 'cascade' }),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    createdAt: integer('created_at').notNull(),
    notifiedAt: integer('notified_at'),
  },
  (t) => [primaryKey({ columns: [t.sessionId, t.clientId] }), index('oidc_session_clients_user_idx').on(t.userId)],
)
