import { sql } from 'drizzle-orm'
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'

/** The header carrying an app's long-lived machine credential (mapping API). */
export const APP_TOKEN_HEADER = 'X-App-Access-Token'

/** OAuth 2.0 grants an application can be registered for; the token endpoint serves each (src/oidc/grants.ts). */
export const GRANT_TYPES = ['authorization_code', 'refresh_token', 'client_credentials'] as const
export type GrantType = (typeof GRANT_TYPES)[number]

/** Who may enter an app (docs/permissions.md): `mapping`, an active mapping; `permission`, that and the app's `access` permission. */
export const ACCESS_POLICIES = ['mapping', 'permission'] as const
export type AccessPolicy = (typeof ACCESS_POLICIES)[number]

/** Applications of the family: OIDC clients and SIMPLE_API (legacy, HMAC-signed) apps. */
export const applications = sqliteTable('applications', {
  id: text('id').primaryKey(),
  /** Public identifier (also the OIDC client_id). */
  appId: text('app_id').notNull().unique(),
  /** AES-GCM envelope under the master key: HMAC signing needs the raw secret. */
  appSecretEnc: text('app_secret_enc').notNull(),
  /** SHA-256 of the app access token (X-App-Access-Token). */
  accessTokenHash: text('access_token_hash').notNull().unique(),
  appName: text('app_name').notNull(),
  iconUrl: text('icon_url'),
  /** One or two sentences shown under the name on the user's portal (/page/home). */
  description: text('description'),
  /** Where the portal sends a user who opens the app (when it has no initiate_login_uri, or as target_link_uri). */
  homeUrl: text('home_url'),
  /** OIDC third-party-initiated login endpoint (OpenID Connect Core 1.0 §4; Registration §2: https only). */
  initiateLoginUri: text('initiate_login_uri'),
  protocolType: text('protocol_type', { enum: ['OIDC', 'SIMPLE_API'] }).notNull(),
  redirectUris: text('redirect_uris', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
  postLogoutRedirectUris: text('post_logout_redirect_uris', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
  grantTypes: text('grant_types', { mode: 'json' }).$type<string[]>().notNull().default(sql`'["authorization_code","refresh_token"]'`),
  responseTypes: text('response_types', { mode: 'json' }).$type<string[]>().notNull().default(sql`'["code"]'`),
  /** OIDC client authentication: client_secret_basic | client_secret_post | none (public client). */
  tokenEndpointAuthMethod: text('token_endpoint_auth_method').notNull().default('client_secret_basic'),
  /** Which ID token claim the user's mapped_key fills: email | preferred_username. */
  idTokenClaim: text('id_token_claim').notNull().default('preferred_username'),
  notificationUrl: text('notification_url'),
  backchannelLogoutUri: text('backchannel_logout_uri'),
  /** PKCE (RFC 7636) required at the authorization endpoint; only a confidential client may be opted out by an admin. */
  requirePkce: integer('require_pkce', { mode: 'boolean' }).notNull().default(true),
  /** First-party apps skip the consent page. */
  firstParty: integer('first_party', { mode: 'boolean' }).notNull().default(false),
  /** Checked wherever the app admits a user (src/permissions/admission.ts). */
  accessPolicy: text('access_policy', { enum: ACCESS_POLICIES }).notNull().default('mapping'),
  /**
   * May the app call the signed partner API (/api/v1/open/*, /api/v1/simple/*)? Set at
   * creation from the protocol (SIMPLE_API on, OIDC off: an OIDC client secret is the same
   * secret, and must not open the partner API by itself); an admin may change it.
   */
  partnerApiEnabled: integer('partner_api_enabled', { mode: 'boolean' }).notNull().default(false),
  /** App ids this app may exchange its users' tickets into (docs/tickets.md); empty: no exchange. */
  ssoTargets: text('sso_targets', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
  status: text('status', { enum: ['ACTIVE', 'DISABLED'] }).notNull().default('ACTIVE'),
  /**
   * Bumped by every admin change of the row (settings, status, credentials). Signed calls
   * may use an isolate's cached copy of the row only while the app's AppGate object vouches
   * for this version (docs/security.md, "Caches").
   */
  version: integer('version').notNull().default(1),
  /**
   * Who registered the app: a user id (admin or sub-admin) or an API client's id. A
   * delegated admin manages the apps they created besides those in their scope
   * (docs/admin-rights.md); NULL for apps registered before it was recorded.
   */
  createdBy: text('created_by'),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
})

export type Application = typeof applications.$inferSelect
