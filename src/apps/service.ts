import { and, count, desc, eq, inArray, or, sql, type SQL } from 'drizzle-orm'
import { auditStatement } from '../audit/service'
import { containsText } from '../lib/sql'
import { getDb, preparedOnce, type DB } from '../db'
import { applications, type Application } from './schema'
import { getConfig, masterKeyRing, type Env } from '../env'
import { currentEnvelopePrefix, decryptSecret, encryptSecret, hex, randomBytes, randomToken, sha256Hex } from '../lib/crypto'
import { issueWebhookSecret, type IssuedWebhookSecret } from '../webhooks/secrets'

/** Settings of a new application: name and protocol, the rest defaulted in newApplicationRow. */
export type NewApplicationInput = Partial<Omit<Application, 'id' | 'appId' | 'appSecretEnc' | 'accessTokenHash' | 'status' | 'version' | 'createdAt' | 'updatedAt'>> & {
  appName: string
  protocolType: Application['protocolType']
}

/** Credentials are returned once, at creation or rotation; only the encrypted secret and the token's hash are kept. */
export interface IssuedCredentials {
  app_secret: string
  access_token: string
  /** signs the webhooks UAP Edge sends the app (docs/webhooks.md) */
  webhook_secret: string
}

const secretAad = (appId: string) => `app-secret:${appId}`

export const newAppId = () => 'app_' + hex(randomBytes(8))
export const newAppSecret = () => randomToken(32, 'sk_')
export const newAppAccessToken = () => randomToken(32, 'at_')

export async function encryptAppSecret(env: Env, appId: string, secret: string) {
  return encryptSecret(getConfig(env).masterKey, secret, secretAad(appId))
}

/** The raw app secret (HMAC key for signed requests and webhooks). */
export async function getAppSecret(env: Env, app: Pick<Application, 'appId' | 'appSecretEnc'>): Promise<string> {
  return decryptSecret(masterKeyRing(env), app.appSecretEnc, secretAad(app.appId))
}

/** Envelopes re-encrypted per run of the sweep (each is one decrypt, one encrypt and one conditional UPDATE). */
const REENCRYPT_BATCH = 50

/**
 * After a master key rotation (MASTER_KEY new, MASTER_KEY_PREVIOUS old), moves app secrets
 * to the new key, a batch per cron run. Each UPDATE is conditional on the envelope it read,
 * so a secret rotated meanwhile is left alone. Returns how many were re-encrypted.
 */
export async function reencryptAppSecrets(env: Env, _now = Date.now()): Promise<number> {
  const db = getDb(env.DB)
  // older master keys and v1 envelopes (the master key itself, before subkeys) both move to the current form
  const current = await currentEnvelopePrefix(getConfig(env).masterKey)
  const stale = await db
    .select({ appId: applications.appId, appSecretEnc: applications.appSecretEnc })
    .from(applications)
    .where(sql`substr(${applications.appSecretEnc}, 1, ${current.length}) <> ${current}`)
    .limit(REENCRYPT_BATCH)
  if (!stale.length) return 0
  // values first: a drizzle builder is a thenable, so it must not be returned from an async function
  const fresh = await Promise.all(stale.map(async (a) => encryptAppSecret(env, a.appId, await getAppSecret(env, a))))
  const updates = stale.map((a, i) =>
    db
      .update(applications)
      .set({ appSecretEnc: fresh[i] })
      .where(and(eq(applications.appId, a.appId), eq(applications.appSecretEnc, a.appSecretEnc))),
  )
  await db.batch([
    auditStatement(db, { action: 'system.app_secrets_reencrypted', actorType: 'system', targetType: 'application', details: { count: stale.length, app_ids: stale.map((a) => a.appId) } }),
    ...updates,
  ])
  return stale.length
}

/**
 * Builds the row and the one-time credentials; the caller inserts the row and then
 * `webhookSecret` (webhookSecretStatement) in one batch, with its audit row.
 */
export async function newApplicationRow(env: Env, input: NewApplicationInput): Promise<{ row: Application; credentials: IssuedCredentials; webhookSecret: IssuedWebhookSecret }> {
  const now = Date.now()
  const appId = newAppId()
  const secret = newAppSecret()
  const accessToken = newAppAccessToken()
  const row: Application = {
    id: crypto.randomUUID(),
    appId,
    appSecretEnc: await encryptAppSecret(env, appId, secret),
    accessTokenHash: await sha256Hex(accessToken),
    appName: input.appName,
    iconUrl: input.iconUrl ?? null,
    description: input.description ?? null,
    homeUrl: input.homeUrl ?? null,
    initiateLoginUri: input.initiateLoginUri ?? null,
    protocolType: input.protocolType,
    redirectUris: input.redirectUris ?? [],
    postLogoutRedirectUris: input.postLogoutRedirectUris ?? [],
    grantTypes: input.grantTypes ?? ['authorization_code', 'refresh_token'],
    responseTypes: input.responseTypes ?? ['code'],
    tokenEndpointAuthMethod: input.tokenEndpointAuthMethod ?? 'client_secret_basic',
    idTokenClaim: input.idTokenClaim ?? 'preferred_username',
    notificationUrl: input.notificationUrl ?? null,
    backchannelLogoutUri: input.backchannelLogoutUri ?? null,
    requirePkce: input.requirePkce ?? true,
    firstParty: input.firstParty ?? false,
    accessPolicy: input.accessPolicy ?? 'mapping',
    // the partner API is the legacy apps' interface; an OIDC client gets it only when an admin says so
    partnerApiEnabled: input.partnerApiEnabled ?? input.protocolType === 'SIMPLE_API',
    ssoTargets: input.ssoTargets ?? [],
    status: 'ACTIVE',
    version: 1,
    createdBy: input.createdBy ?? null,
    createdAt: now,
    updatedAt: now,
  }
  const webhookSecret = await issueWebhookSecret(env, appId)
  return { row, credentials: { app_secret: secret, access_token: accessToken, webhook_secret: webhookSecret.secret }, webhookSecret }
}

/** The application with this app_id, as a batchable query. */
// read by every client authentication and signed call that misses the isolate cache
const applicationById = preparedOnce((db) => db.select().from(applications).where(eq(applications.appId, sql.placeholder('id'))).prepare())

export async function findApplication(env: Env, appId: string): Promise<Application | undefined> {
  return applicationById(env.DB).get({ id: appId })
}

/** The applications among these app_ids (at most 90 per call: one query, under D1's bound-parameter limit). */
export async function findApplications(env: Env, appIds: string[]): Promise<Application[]> {
  if (!appIds.length) return []
  if (appIds.length > 90) throw new Error('findApplications: at most 90 app_ids per call')
  return getDb(env.DB).select().from(applications).where(inArray(applications.appId, appIds))
}

export async function findApplicationByAccessToken(env: Env, token: string): Promise<Application | undefined> {
  return getDb(env.DB).select().from(applications).where(eq(applications.accessTokenHash, await sha256Hex(token))).get()
}

/** The admin view of an application: every setting, never the secret nor the token (nor their stored forms). */
export function publicApp(a: Application) {
  return {
    app_id: a.appId,
    app_name: a.appName,
    icon_url: a.iconUrl,
    description: a.description,
    home_url: a.homeUrl,
    initiate_login_uri: a.initiateLoginUri,
    protocol_type: a.protocolType,
    redirect_uris: a.redirectUris,
    post_logout_redirect_uris: a.postLogoutRedirectUris,
    grant_types: a.grantTypes,
    response_types: a.responseTypes,
    token_endpoint_auth_method: a.tokenEndpointAuthMethod as 'client_secret_basic' | 'client_secret_post' | 'none',
    id_token_claim: a.idTokenClaim as 'email' | 'preferred_username',
    notification_url: a.notificationUrl,
    backchannel_logout_uri: a.backchannelLogoutUri,
    require_pkce: a.requirePkce,
    first_party: a.firstParty,
    access_policy: a.accessPolicy,
    partner_api_enabled: a.partnerApiEnabled,
    sso_targets: a.ssoTargets,
    status: a.status,
    created_at: new Date(a.createdAt).toISOString(),
    updated_at: new Date(a.updatedAt).toISOString(),
  }
}

/** Which of these app_ids exist (any number of them: the list travels as one JSON value). */
export async function existingAppIds(env: Env, appIds: string[]): Promise<Set<string>> {
  if (!appIds.length) return new Set()
  const rows = await getDb(env.DB).all<{ app_id: string }>(sql`SELECT app_id FROM applications WHERE app_id IN (SELECT value FROM json_each(${JSON.stringify(appIds)}))`)
  return new Set(rows.map((r) => r.app_id))
}

/** The apps an admin (a user id or an API client's id) registered, as a subquery of app_ids. */
export function appsCreatedBySql(actorId: string): SQL {
  return sql`SELECT app_id FROM applications WHERE created_by = ${actorId}`
}

/** `within`: a subquery of the app_ids a delegated admin may see (src/delegation/scope.ts); omitted, every app. */
export async function listApplications(
  env: Env,
  q: { page: number; pageSize: number; search?: string; status?: 'ACTIVE' | 'DISABLED'; protocolType?: 'OIDC' | 'SIMPLE_API'; within?: SQL },
) {
  const db = getDb(env.DB)
  const conds = []
  if (q.within) conds.push(sql`${applications.appId} IN (${q.within})`)
  if (q.search) {
    conds.push(or(containsText(applications.appName, q.search), containsText(applications.appId, q.search)))
  }
  if (q.status) conds.push(eq(applications.status, q.status))
  if (q.protocolType) conds.push(eq(applications.protocolType, q.protocolType))
  const where = conds.length ? and(...conds) : undefined
  const [rows, total] = await db.batch([
    db.select().from(applications).where(where).orderBy(desc(applications.createdAt), desc(applications.id)).limit(q.pageSize).offset((q.page - 1) * q.pageSize),
    db.select({ n: count() }).from(applications).where(where),
  ])
  return { items: rows.map(publicApp), page: q.page, page_size: q.pageSize, total: total[0]?.n ?? 0 }
}
