import { and, asc, count, eq, sql } from 'drizzle-orm'
import { getDb } from '../db'
import { getConfig, masterKeyRing, type Env } from '../env'
import { currentEnvelopePrefix, decryptSecret, encryptSecret } from '../lib/crypto'
import { outboundUrlProblem, type OutboundPolicy } from '../lib/outbound'
import { auditStatement, type AuditActor } from '../audit/service'
import { CommonErrors, dbErrorText } from '../lib/errors'
import { FederationErrors } from './errors'
import { identityProviders, linkedIdentities, type ClaimMapping, type IdentityProvider, type ProviderType } from './schema'

/*
 * The identity providers table (owned here): admin changes, each one db.batch with its
 * audit row; the client secret is encrypted at rest and never leaves this module except to
 * the token request (src/federation/upstream.ts).
 */

/** GitHub's OAuth app endpoints and REST API (docs.github.com: "Authorizing OAuth apps", "Users", "Emails"). */
export const GITHUB = {
  authorizationEndpoint: 'https://github.com/login/oauth/authorize',
  tokenEndpoint: 'https://github.com/login/oauth/access_token',
  /** GET /user; its /emails sibling lists the addresses with `primary` and `verified` */
  userinfoEndpoint: 'https://api.github.com/user',
  scopes: ['read:user', 'user:email'],
} as const

export const DEFAULT_SCOPES: Record<ProviderType, string[]> = {
  oidc: ['openid', 'email', 'profile'],
  oauth2: [],
  github: [...GITHUB.scopes],
}

export const PROVIDER_ID_RE = /^[a-z0-9][a-z0-9-]{0,30}[a-z0-9]$/

/** Whether plain http to this machine is allowed for upstream URLs (never in production). */
export function outboundPolicy(env: Env): OutboundPolicy {
  return { allowLoopbackHttp: getConfig(env).environment !== 'production' }
}

const secretAad = (providerId: string) => `idp-client-secret:${providerId}`

export async function providerClientSecret(env: Env, p: Pick<IdentityProvider, 'id' | 'clientSecretEnc'>): Promise<string> {
  return decryptSecret(masterKeyRing(env), p.clientSecretEnc, secretAad(p.id))
}

const REENCRYPT_BATCH = 50

/**
 * After a master key rotation (docs/apps.md), moves client secrets to the current master key
 * and envelope version, a batch per cron run, so MASTER_KEY_PREVIOUS can be removed without
 * breaking sign-ins. Each UPDATE is conditional on the envelope it read: a secret an admin
 * replaced meanwhile is left alone. Returns how many were re-encrypted.
 */
export async function reencryptProviderSecrets(env: Env): Promise<number> {
  const db = getDb(env.DB)
  const { masterKey } = getConfig(env)
  const current = await currentEnvelopePrefix(masterKey)
  const stale = await db
    .select({ id: identityProviders.id, clientSecretEnc: identityProviders.clientSecretEnc })
    .from(identityProviders)
    .where(sql`substr(${identityProviders.clientSecretEnc}, 1, ${current.length}) <> ${current}`)
    .limit(REENCRYPT_BATCH)
  if (!stale.length) return 0
  const fresh = await Promise.all(stale.map(async (p) => encryptSecret(masterKey, await providerClientSecret(env, p), secretAad(p.id))))
  await db.batch([
    auditStatement(db, { action: 'system.idp_secrets_reencrypted', actorType: 'system', targetType: 'identity_provider', details: { count: stale.length, provider_ids: stale.map((p) => p.id) } }),
    ...stale.map((p, i) =>
      db
        .update(identityProviders)
        .set({ clientSecretEnc: fresh[i] })
        .where(and(eq(identityProviders.id, p.id), eq(identityProviders.clientSecretEnc, p.clientSecretEnc))),
    ),
  ])
  return stale.length
}

/** The endpoints a provider is called at; for oidc they come from discovery (src/federation/upstream.ts). */
export function effectiveEndpoints(p: IdentityProvider) {
  if (p.type === 'github') {
    return {
      authorizationEndpoint: p.authorizationEndpoint ?? GITHUB.authorizationEndpoint,
      tokenEndpoint: p.tokenEndpoint ?? GITHUB.tokenEndpoint,
      userinfoEndpoint: p.userinfoEndpoint ?? GITHUB.userinfoEndpoint,
    }
  }
  return { authorizationEndpoint: p.authorizationEndpoint, tokenEndpoint: p.tokenEndpoint, userinfoEndpoint: p.userinfoEndpoint }
}

/** The redirect URI to register at the provider for the hosted pages. */
export function pageCallbackUrl(env: Env, providerId: string): string {
  return `${new URL(env.ISSUER).origin}/page/federation/${providerId}/callback`
}

export function publicProvider(env: Env, p: IdentityProvider) {
  return {
    id: p.id,
    type: p.type,
    display_name: p.displayName,
    issuer: p.issuer,
    authorization_endpoint: p.authorizationEndpoint,
    token_endpoint: p.tokenEndpoint,
    userinfo_endpoint: p.userinfoEndpoint,
    client_id: p.clientId,
    client_secret_set: true as const,
    token_endpoint_auth_method: p.tokenEndpointAuthMethod,
    scopes: p.scopes,
    claim_mapping: p.claimMapping ?? null,
    enabled: p.enabled,
    redirect_uri: pageCallbackUrl(env, p.id),
    created_at: new Date(p.createdAt).toISOString(),
    updated_at: new Date(p.updatedAt).toISOString(),
  }
}

export async function findProvider(env: Env, id: string): Promise<IdentityProvider | undefined> {
  return getDb(env.DB).select().from(identityProviders).where(eq(identityProviders.id, id)).get()
}

/** An enabled provider, or 404 unknown_provider (a disabled one is no different to a caller). */
export async function enabledProvider(env: Env, id: string): Promise<IdentityProvider> {
  if (id.length > 64) throw CommonErrors.invalid_request({ message: 'provider: at most 64 characters' })
  const p = PROVIDER_ID_RE.test(id) ? await findProvider(env, id) : undefined
  if (!p || !p.enabled) throw FederationErrors.unknown_provider()
  return p
}

/** Enabled providers for the sign-in buttons, in a stable order. */
export async function listEnabledProviders(env: Env): Promise<Pick<IdentityProvider, 'id' | 'type' | 'displayName'>[]> {
  return getDb(env.DB)
    .select({ id: identityProviders.id, type: identityProviders.type, displayName: identityProviders.displayName })
    .from(identityProviders)
    .where(eq(identityProviders.enabled, true))
    .orderBy(asc(identityProviders.displayName), asc(identityProviders.id))
}

export async function listProviders(env: Env) {
  const rows = await getDb(env.DB).select().from(identityProviders).orderBy(asc(identityProviders.id))
  return rows.map((p) => publicProvider(env, p))
}

export interface ProviderSettings {
  type: ProviderType
  displayName: string
  issuer: string | null
  authorizationEndpoint: string | null
  tokenEndpoint: string | null
  userinfoEndpoint: string | null
  clientId: string
  tokenEndpointAuthMethod: 'client_secret_basic' | 'client_secret_post'
  scopes: string[]
  claimMapping: ClaimMapping | null
  enabled: boolean
}

export type ProviderInput = Partial<ProviderSettings> & { clientSecret?: string }

const invalid = (message: string) => FederationErrors.invalid_provider({ message })

/** The rules a complete set of settings must meet, per type. */
function checkSettings(env: Env, s: ProviderSettings) {
  const policy = outboundPolicy(env)
  const url = (field: string, v: string | null) => {
    if (v === null) return
    const problem = outboundUrlProblem(v, policy)
    if (problem) throw invalid(`${field}: ${problem}`)
  }
  url('issuer', s.issuer)
  url('authorization_endpoint', s.authorizationEndpoint)
  url('token_endpoint', s.tokenEndpoint)
  url('userinfo_endpoint', s.userinfoEndpoint)
  if (s.type === 'oidc') {
    // OIDC Discovery §4.3: the issuer is the base of /.well-known/openid-configuration and must equal the documents' `iss`
    if (!s.issuer) throw invalid('issuer: required for an oidc provider (its discovery document names the endpoints)')
    if (/[?#]/.test(s.issuer)) throw invalid('issuer: must not contain a query or fragment (OIDC Discovery §4.3)')
    if (s.authorizationEndpoint || s.tokenEndpoint || s.userinfoEndpoint) throw invalid('an oidc provider takes its endpoints from its discovery document; give issuer only')
    if (s.claimMapping) throw invalid('claim_mapping: only for oauth2 providers (an oidc provider is read from its ID token)')
    if (!s.scopes.includes('openid')) throw invalid('scopes: an oidc provider needs the openid scope')
  } else {
    if (s.issuer) throw invalid('issuer: only for oidc providers')
    if (s.type === 'oauth2') {
      for (const [field, v] of [['authorization_endpoint', s.authorizationEndpoint], ['token_endpoint', s.tokenEndpoint], ['userinfo_endpoint', s.userinfoEndpoint]] as const) {
        if (!v) throw invalid(`${field}: required for an oauth2 provider`)
      }
      if (!s.claimMapping?.subject) throw invalid('claim_mapping.subject: required for an oauth2 provider: the user-info field holding the stable user id (never a login name that can change)')
    } else if (s.claimMapping) {
      throw invalid('claim_mapping: the github preset reads GitHub\'s numeric user id and its verified primary email itself')
    }
  }
}

function settingsOf(p: IdentityProvider): ProviderSettings {
  return {
    type: p.type,
    displayName: p.displayName,
    issuer: p.issuer,
    authorizationEndpoint: p.authorizationEndpoint,
    tokenEndpoint: p.tokenEndpoint,
    userinfoEndpoint: p.userinfoEndpoint,
    clientId: p.clientId,
    tokenEndpointAuthMethod: p.tokenEndpointAuthMethod,
    scopes: p.scopes,
    claimMapping: p.claimMapping,
    enabled: p.enabled,
  }
}

/** What an audit row may say about a change: the request as given, the secret only as "changed". */
export function redactSecret<T extends { client_secret?: string }>(body: T) {
  const { client_secret, ...rest } = body
  return { ...rest, ...(client_secret !== undefined ? { client_secret: 'changed' } : {}) }
}

export async function loadProvider(env: Env, id: string): Promise<IdentityProvider> {
  const p = await findProvider(env, id)
  if (!p) throw FederationErrors.provider_not_found()
  return p
}

export async function createProviderAsAdmin(
  env: Env,
  id: string,
  input: ProviderInput & Pick<ProviderSettings, 'type' | 'displayName' | 'clientId'> & { clientSecret: string },
  actor: AuditActor,
  details: unknown,
): Promise<IdentityProvider> {
  const { clientSecret, ...given } = input
  if (!PROVIDER_ID_RE.test(id)) throw invalid('id: 2-32 lowercase letters, digits and dashes, starting and ending with a letter or digit')
  const settings: ProviderSettings = {
    issuer: null,
    authorizationEndpoint: null,
    tokenEndpoint: null,
    userinfoEndpoint: null,
    // GitHub reads client_id and client_secret from the form (its documented token request)
    tokenEndpointAuthMethod: given.type === 'github' ? 'client_secret_post' : 'client_secret_basic',
    scopes: DEFAULT_SCOPES[given.type],
    claimMapping: null,
    enabled: true,
    ...stripUndefined(given),
  } as ProviderSettings
  checkSettings(env, settings)
  const now = Date.now()
  const row: IdentityProvider = {
    id,
    ...settings,
    clientSecretEnc: await encryptSecret(getConfig(env).masterKey, clientSecret, secretAad(id)),
    createdAt: now,
    updatedAt: now,
  }
  const db = getDb(env.DB)
  try {
    await db.batch([
      db.insert(identityProviders).values(row),
      auditStatement(db, { ...actor, action: 'admin.identity_provider.create', targetType: 'identity_provider', targetId: id, details }),
    ])
  } catch (e) {
    if (/UNIQUE constraint failed: identity_providers\.id/.test(dbErrorText(e))) throw FederationErrors.provider_exists()
    throw e
  }
  return row
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}

/**
 * The settings that say whose accounts the provider's subjects are: the issuer (an OIDC `sub` is
 * unique only within its issuer, OIDC Core §2), the servers the user API and tokens come from
 * (their origins: a path may move on the same server), and the claim read as the subject.
 */
function identityFieldsChanged(before: ProviderSettings, after: ProviderSettings): string[] {
  const origin = (u: string | null) => (u ? new URL(u).origin : null)
  const changed: string[] = []
  if (before.issuer !== after.issuer) changed.push('issuer')
  if (origin(before.authorizationEndpoint) !== origin(after.authorizationEndpoint)) changed.push('authorization_endpoint')
  if (origin(before.tokenEndpoint) !== origin(after.tokenEndpoint)) changed.push('token_endpoint')
  if (origin(before.userinfoEndpoint) !== origin(after.userinfoEndpoint)) changed.push('userinfo_endpoint')
  if ((before.claimMapping?.subject ?? null) !== (after.claimMapping?.subject ?? null)) changed.push('claim_mapping.subject')
  return changed
}

export async function updateProviderAsAdmin(env: Env, id: string, input: ProviderInput, actor: AuditActor, details: unknown): Promise<IdentityProvider> {
  const current = await loadProvider(env, id)
  const { clientSecret, ...patch } = input
  const settings: ProviderSettings = { ...settingsOf(current), ...stripUndefined(patch) }
  checkSettings(env, settings)
  // Links are kept by (provider, subject): pointed at another server or another subject claim,
  // the provider's users would sign in to whichever accounts the old subjects were linked to.
  const changed = identityFieldsChanged(settingsOf(current), settings)
  const db = getDb(env.DB)
  if (changed.length) {
    const linked = (await db.select({ n: count() }).from(linkedIdentities).where(eq(linkedIdentities.providerId, id)).get())?.n ?? 0
    if (linked) {
      throw FederationErrors.provider_has_links({
        message: `${changed.join(', ')} decide${changed.length === 1 ? 's' : ''} whose accounts the provider's subjects are, and ${linked} identit${linked === 1 ? 'y is' : 'ies are'} linked through the current settings; delete the provider (its links go with it) and create it again`,
        details: { fields: changed, linked_identities: linked },
      })
    }
  }
  const now = Date.now()
  const set: Partial<IdentityProvider> = { ...stripUndefined(patch), updatedAt: now }
  if (clientSecret !== undefined) set.clientSecretEnc = await encryptSecret(getConfig(env).masterKey, clientSecret, secretAad(id))
  const action =
    patch.enabled === false && current.enabled ? 'admin.identity_provider.disable' : patch.enabled === true && !current.enabled ? 'admin.identity_provider.enable' : 'admin.identity_provider.update'
  await db.batch([
    db.update(identityProviders).set(set).where(eq(identityProviders.id, id)),
    auditStatement(db, { ...actor, action, targetType: 'identity_provider', targetId: id, details }),
  ])
  return { ...current, ...set } as IdentityProvider
}

/** Deletes the provider; its linked identities and pending flows go with it (foreign keys, same statement). */
export async function deleteProviderAsAdmin(env: Env, id: string, actor: AuditActor): Promise<{ identitiesDeleted: number }> {
  const p = await loadProvider(env, id)
  const db = getDb(env.DB)
  const linked = await db.select({ n: count() }).from(linkedIdentities).where(eq(linkedIdentities.providerId, id)).get()
  const n = linked?.n ?? 0
  await db.batch([
    db.delete(identityProviders).where(eq(identityProviders.id, id)),
    auditStatement(db, { ...actor, action: 'admin.identity_provider.delete', targetType: 'identity_provider', targetId: id, details: { type: p.type, display_name: p.displayName, linked_identities_deleted: n } }),
  ])
  return { identitiesDeleted: n }
}
