import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'

/**
 * JWT signing keys. Life cycle (all times in ms):
 *   created_at  published in the JWKS, not yet signing
 *   activate_at starts signing (at least one JWKS cache lifetime after publication)
 *   retired_at  stops signing (a newer key took over)
 *   expires_at  leaves the JWKS: retired_at + the longest lifetime of anything it signed
 */
export const signingKeys = sqliteTable('signing_keys', {
  kid: text('kid').primaryKey(),
  alg: text('alg').notNull(),
  publicJwk: text('public_jwk').notNull(),
  /** Private JWK, AES-GCM encrypted under the master key (lib/crypto.ts envelope). */
  privateJwkEnc: text('private_jwk_enc').notNull(),
  createdAt: integer('created_at').notNull(),
  activateAt: integer('activate_at').notNull(),
  retiredAt: integer('retired_at'),
  expiresAt: integer('expires_at'),
})
