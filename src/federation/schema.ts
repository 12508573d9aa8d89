import { sql } from 'drizzle-orm'
import { index, integer, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core'
import { users } from '../users/schema'

/** Upstream protocols: OpenID Connect (discovery + ID token), plain OAuth 2.0 (user-info + claim mapping), GitHub's OAuth apps. */
export const PROVIDER_TYPES = ['oidc', 'oauth2', 'github'] as const
export type ProviderType = (typeof PROVIDER_TYPES)[number]

/** Where the profile fields of a plain OAuth 2.0 provider's user-info answer are (dot paths). */
export interface ClaimMapping {
  /** the provider's stable user id (never a renameable login name) */
  subject: string
  email?: string
  email_verified?: string
  name?: string
  username?: string
}

/** Identity providers users may sign in with (docs/federation.md). Owner: src/federation/providers.ts. */
export const identityProviders = sqliteTable('identity_providers', {
  /** Admin-chosen slug, part of every URL of the provider (`/page/federation/<id>/callback`). */
  id: text('id').primaryKey(),
  type: text('type', { enum: PROVIDER_TYPES }).notNull(),
  /** The button's label on /page/login ("Sign in with …"). */
  displayName: text('display_name').notNull(),
  /** oidc: the issuer; its discovery document names the endpoints and the JWKS. */
  issuer: text('issuer'),
  /** oauth2: required; github: GitHub Enterprise Server overrides of the github.com defaults; oidc: unused. */
  authorizationEndpoint: text('authorization_endpoint'),
  tokenEndpoint: text('token_endpoint'),
  userinfoEndpoint: text('userinfo_endpoint'),
  clientId: text('client_id').notNull(),
  /** AES-GCM envelope under the master key (AAD names the provider): the token endpoint needs the raw secret. */
  clientSecretEnc: text('client_secret_enc').notNull(),
  /** How the client authenticates at the token endpoint (RFC 6749 §2.3.1). */
  tokenEndpointAuthMethod: text('token_endpoint_auth_method', { enum: ['client_secret_basic', 'client_secret_post'] }).notNull().default('client_secret_basic'),
  scopes: text('scopes', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
  /** oauth2 only. */
  claimMapping: text('claim_mapping', { mode: 'json' }).$type<ClaimMapping>(),
  enabled: integer('enabled', { mode: 'boolean' }).notNull().default(true),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
})

export type IdentityProvider = typeof identityProviders.$inferSelect

/**
 * Upstream identities linked to accounts: (provider, subject) → user. The subject is the
 * provider's stable id (OIDC `sub`, GitHub's numeric `id`). Owner: src/federation/identities.ts.
 */
export const linkedIdentities = sqliteTable(
  'linked_identities',
  {
    id: text('id').primaryKey(),
    providerId: text('provider_id').notNull().references(() => identityProviders.id, { onDelete: 'cascade' }),
    subject: text('subject').notNull(),
    userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
    /** What the user recognises the identity by (login name or email at the provider), for lists. */
    display: text('display'),
    /** As the provider reported it; informational, never used to link (docs/federation.md). */
    email: text('email'),
    emailVerified: integer('email_verified', { mode: 'boolean' }).notNull().default(false),
    createdAt: integer('created_at').notNull(),
    lastUsedAt: integer('last_used_at'),
  },
  (t) => [uniqueIndex('linked_identities_provider_subject_uq').on(t.providerId, t.subject), index('linked_identities_user_idx').on(t.userId)],
)

export type LinkedIdentity = typeof linkedIdentities.$inferSelect

/** What the upstream said about the person, kept on a flow between the callback and the binding step. */
export interface UpstreamProfile {
  subject: string
  display: string | null
  email: string | null
  emailVerified: boolean
  name: string | null
}

/**
 * One upstream sign-in attempt (owner: src/federation/flows.ts). Two single-use stages,
 * each redeemed by a conditional UPDATE (never KV read-then-write):
 * - the callback: `state` (stored as its hash) redeems the row once (`used_at`), and only
 *   with the secret it is bound to (`binding_hash`: SHA-256 of the browser's
 *   `__Host-uap_federation` cookie, or of an API flow's `flow_secret`);
 * - an unknown identity then waits for a mobile to be bound: `ticket_hash` (the binding
 *   ticket), `verified_mobile` once an SMS code proved the number, `completed_at` once.
 */
export const federationFlows = sqliteTable(
  'federation_flows',
  {
    id: text('id').primaryKey(),
    providerId: text('provider_id').notNull().references(() => identityProviders.id, { onDelete: 'cascade' }),
    /** `page`: the hosted pages; `api`: GET/POST /api/v1/auth/federation/{provider}/… */
    channel: text('channel', { enum: ['page', 'api'] }).notNull(),
    stateHash: text('state_hash').notNull().unique(),
    bindingHash: text('binding_hash').notNull(),
    /** PKCE code_verifier (RFC 7636 §4.1), encrypted under the master key. */
    codeVerifierEnc: text('code_verifier_enc').notNull(),
    /** OIDC Core §3.1.2.1 nonce, echoed in the ID token. */
    nonce: text('nonce').notNull(),
    /** The redirect_uri sent upstream; the token request repeats it (RFC 6749 §4.1.3). */
    redirectUri: text('redirect_uri').notNull(),
    /** page: where the browser continues after signing in (checked by safeReturnTo). */
    returnTo: text('return_to'),
    /** api: the application whose registered redirect URI is used; tokens are issued for it. */
    appId: text('app_id'),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    usedAt: integer('used_at'),
    /** After the callback, for an identity no account is linked to yet. */
    profile: text('profile', { mode: 'json' }).$type<UpstreamProfile>(),
    ticketHash: text('ticket_hash').unique(),
    ticketExpiresAt: integer('ticket_expires_at'),
    verifiedMobile: text('verified_mobile'),
    completedAt: integer('completed_at'),
    userId: text('user_id'),
  },
  (t) => [index('federation_flows_expires_idx').on(t.expiresAt)],
)

export type FederationFlow = typeof federationFlows.$inferSelect
