import { and, eq, inArray, isNotNull, lt, or, sql } from 'drizzle-orm'
import { getDb, type DB } from '../db'
import { getConfig, masterKeyRing, type Env } from '../env'
import { currentEnvelopePrefix, decryptSecret, encryptSecret } from '../lib/crypto'
import { auditStatement } from '../audit/service'
import { newWebhookSecret } from './signature'
import { webhookSecrets, type WebhookSecretRow } from './schema'

/*
 * Per-app webhook secrets, separate from the app secret: the app secret authenticates the
 * app to UAP Edge, the webhook secret authenticates UAP Edge to the app, and either can be
 * rotated without touching the other. Stored as envelopes under the master key with their
 * own associated data, shown once (at app creation and at each rotation).
 */

/** One AAD per app for both slots: a rotation moves the current envelope to the previous slot as it is. */
const aad = (appId: string) => `webhook-secret:${appId}`

/** Default and longest time the previous secret keeps signing after a rotation. */
export const DEFAULT_OVERLAP_S = 86_400
export const MAX_OVERLAP_S = 7 * 86_400

export interface IssuedWebhookSecret {
  secret: string
  /** the current-slot envelope */
  envelope: string
}

/** A fresh secret and its envelope; the caller writes it with webhookSecretStatement or rotateWebhookSecretStatement. */
export async function issueWebhookSecret(env: Env, appId: string): Promise<IssuedWebhookSecret> {
  const secret = newWebhookSecret()
  return { secret, envelope: await encryptSecret(getConfig(env).masterKey, secret, aad(appId)) }
}

/** The first secret of a new application (same batch as the application insert, after it). */
export function webhookSecretStatement(db: DB, appId: string, issued: IssuedWebhookSecret, now = Date.now()) {
  return db.insert(webhookSecrets).values({ appId, secretEnc: issued.envelope, previousSecretEnc: null, previousExpiresAt: null, createdAt: now, rotatedAt: now })
}

/**
 * Rotation in one statement (an upsert), so concurrent rotations serialize instead of one
 * overwriting the other unseen: the current secret moves to the previous slot and expires
 * after `overlapS` (0 drops it at once); an app without a secret gets its first.
 */
export function rotateWebhookSecretStatement(db: DB, appId: string, issued: IssuedWebhookSecret, overlapS: number, now = Date.now()) {
  const expires = overlapS > 0 ? now + overlapS * 1000 : null
  return db
    .insert(webhookSecrets)
    .values({ appId, secretEnc: issued.envelope, previousSecretEnc: null, previousExpiresAt: null, createdAt: now, rotatedAt: now })
    .onConflictDoUpdate({
      target: webhookSecrets.appId,
      set: {
        previousSecretEnc: expires === null ? sql`NULL` : sql`${webhookSecrets.secretEnc}`,
        previousExpiresAt: expires,
        secretEnc: issued.envelope,
        rotatedAt: now,
      },
    })
}

export async function findWebhookSecretRow(env: Env, appId: string): Promise<WebhookSecretRow | undefined> {
  return getDb(env.DB).select().from(webhookSecrets).where(eq(webhookSecrets.appId, appId)).get()
}

/** The secret rows of these apps (at most 90 app_ids). */
export async function findWebhookSecretRows(env: Env, appIds: string[]): Promise<WebhookSecretRow[]> {
  if (!appIds.length) return []
  return getDb(env.DB).select().from(webhookSecrets).where(inArray(webhookSecrets.appId, appIds))
}

/**
 * The secrets that sign a delivery now, newest first: the current one, and the previous
 * one while its overlap lasts. Empty when the app has none.
 */
export async function signingSecrets(env: Env, row: WebhookSecretRow | undefined, now = Date.now()): Promise<string[]> {
  if (!row) return []
  const keys = masterKeyRing(env)
  const out = [await decryptSecret(keys, row.secretEnc, aad(row.appId))]
  if (row.previousSecretEnc && row.previousExpiresAt !== null && row.previousExpiresAt > now) {
    out.push(await decryptSecret(keys, row.previousSecretEnc, aad(row.appId)))
  }
  return out
}

const REENCRYPT_BATCH = 50

/**
 * After a master key rotation, moves webhook secret envelopes to the new key (as
 * reencryptAppSecrets does for app secrets), a batch per cron run; each UPDATE is
 * conditional on the envelopes it read, so a secret rotated meanwhile is left alone. Also
 * drops previous secrets whose overlap has ended. Returns how many rows were re-encrypted.
 */
export async function maintainWebhookSecrets(env: Env, now = Date.now()): Promise<number> {
  const db = getDb(env.DB)
  await db
    .update(webhookSecrets)
    .set({ previousSecretEnc: null, previousExpiresAt: null })
    .where(and(isNotNull(webhookSecrets.previousExpiresAt), lt(webhookSecrets.previousExpiresAt, now)))
  const current = await currentEnvelopePrefix(getConfig(env).masterKey)
  const stale = (col: typeof webhookSecrets.secretEnc | typeof webhookSecrets.previousSecretEnc) => sql`(${col} IS NOT NULL AND substr(${col}, 1, ${current.length}) <> ${current})`
  const rows = await db
    .select()
    .from(webhookSecrets)
    .where(or(stale(webhookSecrets.secretEnc), stale(webhookSecrets.previousSecretEnc)))
    .limit(REENCRYPT_BATCH)
  if (!rows.length) return 0
  const keys = masterKeyRing(env)
  const mk = getConfig(env).masterKey
  const move = async (appId: string, env_: string | null) => (env_ === null ? null : encryptSecret(mk, await decryptSecret(keys, env_, aad(appId)), aad(appId)))
  // values first: a drizzle builder is a thenable, so it must not be returned from an async function
  const fresh = await Promise.all(rows.map(async (r) => ({ secretEnc: (await move(r.appId, r.secretEnc))!, previousSecretEnc: await move(r.appId, r.previousSecretEnc) })))
  const updates = rows.map((r, i) =>
    db
      .update(webhookSecrets)
      .set(fresh[i])
      .where(and(eq(webhookSecrets.appId, r.appId), eq(webhookSecrets.secretEnc, r.secretEnc), r.previousSecretEnc === null ? sql`${webhookSecrets.previousSecretEnc} IS NULL` : eq(webhookSecrets.previousSecretEnc, r.previousSecretEnc))),
  )
  await db.batch([
    auditStatement(db, { action: 'system.webhook_secrets_reencrypted', actorType: 'system', targetType: 'application', details: { count: rows.length, app_ids: rows.map((r) => r.appId) } }),
    ...updates,
  ])
  return rows.length
}
