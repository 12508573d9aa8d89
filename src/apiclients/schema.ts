import { sql } from 'drizzle-orm'
import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import type { Right, Scope } from '../delegation/model'

/** The headers a machine authenticates with on the admin API (docs/api-clients.md). */
export const CLIENT_KEY_HEADER = 'X-Client-Key'
export const API_KEY_HEADER = 'X-API-Key'

/** Requests per minute a client may make when its creator sets no limit. */
export const DEFAULT_RATE_LIMIT_PER_MINUTE = 600

/**
 * API clients: machine credentials for the admin API (memberapi's api_clients). A client is
 * named by its public `client_key` and proves itself with an API key, of which only the
 * SHA-256 is kept (the key is 256 random bits, shown once). Its power is one grant (rights
 * over a scope, src/delegation/model.ts); the allowlists narrow where it may call from and
 * what it may call, each kind unrestricted while its list is empty.
 */
export const apiClients = sqliteTable(
  'api_clients',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    /** public, random; sent as X-Client-Key */
    clientKey: text('client_key').notNull().unique(),
    /** SHA-256 (hex) of the API key sent as X-API-Key */
    apiKeyHash: text('api_key_hash').notNull(),
    status: text('status', { enum: ['ACTIVE', 'DISABLED'] }).notNull().default('ACTIVE'),
    /** ms; refused from this instant on; NULL: never expires */
    expiresAt: integer('expires_at'),
    rights: text('rights', { mode: 'json' }).$type<Right[]>().notNull().default(sql`'[]'`),
    scope: text('scope', { mode: 'json' }).$type<Scope>().notNull().default(sql`'{"groups":[],"users":[],"apps":[]}'`),
    /** canonical CIDR blocks (src/lib/cidr.ts formatCidr) */
    allowedIps: text('allowed_ips', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
    /** serialized origins (scheme://host[:port], lower case) */
    allowedOrigins: text('allowed_origins', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
    /** path prefixes, matched at a segment boundary */
    allowedPaths: text('allowed_paths', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
    rateLimitPerMinute: integer('rate_limit_per_minute').notNull().default(DEFAULT_RATE_LIMIT_PER_MINUTE),
    /** the admin's user id */
    createdBy: text('created_by'),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    /** ms, to the minute: written at most once a minute per client (src/apiclients/auth.ts) */
    lastUsedAt: integer('last_used_at'),
  },
  (t) => [index('api_clients_created_idx').on(t.createdAt)],
)

export type ApiClient = typeof apiClients.$inferSelect
