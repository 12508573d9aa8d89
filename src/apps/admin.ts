import { eq, inArray, sql } from 'drizzle-orm'
import type { Env } from '../env'
import { getDb } from '../db'
import { auditStatement, type AuditActor } from '../audit/service'
import { AppErrors } from './errors'
import { sha256Hex } from '../lib/crypto'
import { deleteAllMappingsOfAppStatements } from '../mappings/service'
import { applications, type Application } from './schema'
import { guardedAppChange } from './change-guards'
import { encryptAppSecret, findApplication, newAppAccessToken, newAppSecret, newApplicationRow, type IssuedCredentials, type NewApplicationInput } from './service'
import { webhookSecretStatement } from '../webhooks/secrets'
import { notificationUrlProblem, isProduction } from '../webhooks/url'
import { WebhookErrors } from '../webhooks/errors'

/*
 * What an admin does to applications (docs/apps.md). Each change is one db.batch with its
 * audit row; new credentials are returned once and never stored in the clear. Every write
 * of an existing row bumps its `version` and runs inside the app change guards
 * (change-guards.ts), so signed calls stop accepting the old row the moment the change is
 * answered.
 */

/** The response types that go with some grants: `code` exactly when the authorization code flow is registered (RFC 7591 §2.1). */
export const responseTypesFor = (grantTypes: readonly string[]) => (grantTypes.includes('authorization_code') ? ['code'] : [])

/** Settings that each make sense but together could never work, refused with what to change. */
function checkConsistency(a: Pick<Application, 'protocolType' | 'redirectUris' | 'requirePkce' | 'tokenEndpointAuthMethod' | 'grantTypes' | 'responseTypes'>) {
  const codeFlow = a.grantTypes.includes('authorization_code')
  // an OIDC client without a redirect URI could never complete the authorization code flow
  if (a.protocolType === 'OIDC' && codeFlow && a.redirectUris.length === 0) throw AppErrors.oidc_needs_redirect_uri()
  // RFC 9700 §2.1.1: a public client's only protection of its code is PKCE
  if (!a.requirePkce && a.tokenEndpointAuthMethod === 'none') throw AppErrors.public_client_needs_pkce()
  // RFC 6749 §4.4: the client's own credentials are the whole grant; a public client has none
  if (a.grantTypes.includes('client_credentials') && a.tokenEndpointAuthMethod === 'none') throw AppErrors.client_credentials_needs_secret()
  if (a.grantTypes.includes('refresh_token') && !codeFlow) throw AppErrors.refresh_needs_authorization_code()
  const expected = responseTypesFor(a.grantTypes)
  if (a.responseTypes.length !== expected.length || !expected.every((t) => a.responseTypes.includes(t))) throw AppErrors.response_types_mismatch()
}

/**
 * URLs the Worker POSTs to, webhooks to notification_url and logout tokens to
 * backchannel_logout_uri: https to a public host in production (docs/security.md), so neither
 * reaches this machine or a private network.
 */
function checkOutboundUrl(env: Env, field: 'notification_url' | 'backchannel_logout_uri', url: string | null | undefined) {
  const problem = url ? notificationUrlProblem(url, isProduction(env), field) : null
  if (!problem) return
  const refusal = field === 'notification_url' ? WebhookErrors.notification_url_not_allowed : AppErrors.backchannel_logout_uri_not_allowed
  throw refusal({ message: `${field}: ${problem.slice(field.length + 1)}` })
}

/** Allowed SSO targets must name other existing SIMPLE_API applications (tickets are for SIMPLE_API apps). */
async function checkSsoTargets(env: Env, appId: string, targets: string[]) {
  if (!targets.length) return
  if (targets.includes(appId)) throw AppErrors.sso_target_invalid({ message: 'sso_targets: an application cannot be its own SSO target', details: { app_ids: [appId] } })
  const rows = await getDb(env.DB).select({ appId: applications.appId, protocolType: applications.protocolType }).from(applications).where(inArray(applications.appId, targets))
  const found = new Map(rows.map((r) => [r.appId, r.protocolType]))
  const unknown = targets.filter((t) => !found.has(t))
  if (unknown.length) throw AppErrors.sso_target_unknown({ message: `sso_targets: no application ${unknown.join(', ')}`, details: { app_ids: unknown } })
  const notSimple = targets.filter((t) => found.get(t) !== 'SIMPLE_API')
  if (notSimple.length) throw AppErrors.sso_target_invalid({ message: `sso_targets: ${notSimple.join(', ')} ${notSimple.length === 1 ? 'is not a SIMPLE_API application' : 'are not SIMPLE_API applications'}`, details: { app_ids: notSimple } })
}

export async function loadApplication(env: Env, appId: string): Promise<Application> {
  const app = await findApplication(env, appId)
  if (!app) throw AppErrors.app_not_found()
  return app
}

export async function createApplicationAsAdmin(env: Env, input: NewApplicationInput, actor: AuditActor): Promise<{ row: Application; credentials: IssuedCredentials }> {
  const settings = { ...input, createdBy: actor.actorId ?? null }
  const { row, credentials, webhookSecret } = await newApplicationRow(env, input.grantTypes && !input.responseTypes ? { ...settings, responseTypes: responseTypesFor(input.grantTypes) } : settings)
  checkConsistency(row)
  checkOutboundUrl(env, 'notification_url', row.notificationUrl)
  checkOutboundUrl(env, 'backchannel_logout_uri', row.backchannelLogoutUri)
  await checkSsoTargets(env, row.appId, row.ssoTargets)
  const db = getDb(env.DB)
  await db.batch([
    db.insert(applications).values(row),
    webhookSecretStatement(db, row.appId, webhookSecret, row.createdAt),
    auditStatement(db, {
      ...actor,
      action: 'admin.app.create',
      targetType: 'application',
      targetId: row.appId,
      details: { app_name: row.appName, protocol_type: row.protocolType, partner_api_enabled: row.partnerApiEnabled, sso_targets: row.ssoTargets },
    }),
  ])
  return { row, credentials }
}

export type ApplicationPatch = Partial<Omit<Application, 'id' | 'appId' | 'appSecretEnc' | 'accessTokenHash' | 'version' | 'createdBy' | 'createdAt' | 'updatedAt'>>

/** One guarded write of the app row: `set` plus the version bump, with its audit row; returns the row as written. */
async function writeApp(env: Env, appId: string, set: Partial<Application>, audit: { action: string; details?: unknown }, actor: AuditActor): Promise<Application> {
  const db = getDb(env.DB)
  return guardedAppChange(env, appId, async () => {
    const [rows] = await db.batch([
      db
        .update(applications)
        .set({ ...set, updatedAt: Date.now(), version: sql`${applications.version} + 1` })
        .where(eq(applications.appId, appId))
        .returning(),
      auditStatement(db, { ...actor, action: audit.action, targetType: 'application', targetId: appId, details: audit.details }),
    ])
    const row = rows[0]
    if (!row) throw AppErrors.app_not_found()
    return { result: row, version: row.version }
  })
}

/** Changes settings; `details` is what the audit row records (the request as given). */
export async function updateApplicationAsAdmin(env: Env, appId: string, patch: ApplicationPatch, actor: AuditActor, details: unknown = patch): Promise<Application> {
  const app = await loadApplication(env, appId)
  // new grants without response types: the ones that go with them (the only choice there is)
  if (patch.grantTypes && !patch.responseTypes) patch = { ...patch, responseTypes: responseTypesFor(patch.grantTypes) }
  checkConsistency({ ...app, ...patch })
  if (patch.notificationUrl !== undefined) checkOutboundUrl(env, 'notification_url', patch.notificationUrl)
  if (patch.backchannelLogoutUri !== undefined) checkOutboundUrl(env, 'backchannel_logout_uri', patch.backchannelLogoutUri)
  if (patch.ssoTargets) await checkSsoTargets(env, appId, patch.ssoTargets)
  const action = patch.status === 'DISABLED' && app.status !== 'DISABLED' ? 'admin.app.disable' : patch.status === 'ACTIVE' && app.status !== 'ACTIVE' ? 'admin.app.enable' : 'admin.app.update'
  return writeApp(env, appId, patch, { action, details }, actor)
}

export async function disableApplicationAsAdmin(env: Env, appId: string, actor: AuditActor): Promise<Application> {
  await loadApplication(env, appId)
  return writeApp(env, appId, { status: 'DISABLED' }, { action: 'admin.app.disable' }, actor)
}

/**
 * Deletes the app and its mappings; every mapping gets its DELETE outbox event in the same
 * batch. The app also leaves every other app's `sso_targets` in that batch (those rows'
 * versions move on too), so no list names an app that no longer exists.
 */
export async function deleteApplicationAsAdmin(env: Env, appId: string, actor: AuditActor): Promise<{ mappingsDeleted: number }> {
  const app = await loadApplication(env, appId)
  const db = getDb(env.DB)
  const now = Date.now()
  const namesIt = sql`EXISTS (SELECT 1 FROM json_each(${applications.ssoTargets}) WHERE value = ${appId})`
  const sources = await db.select({ appId: applications.appId }).from(applications).where(namesIt)
  const [events, deletedMappings] = deleteAllMappingsOfAppStatements(db, appId, now)
  return guardedAppChange(env, appId, async () => {
    const [, mappingsResult] = await db.batch([
      events,
      deletedMappings,
      db
        .update(applications)
        .set({ ssoTargets: sql`(SELECT json_group_array(value) FROM json_each(${applications.ssoTargets}) WHERE value <> ${appId})`, updatedAt: now, version: sql`${applications.version} + 1` })
        .where(namesIt),
      db.delete(applications).where(eq(applications.appId, appId)),
      auditStatement(db, {
        ...actor,
        action: 'admin.app.delete',
        targetType: 'application',
        targetId: appId,
        details: { app_name: app.appName, protocol_type: app.protocolType, removed_from_sso_targets_of: sources.map((s) => s.appId) },
      }),
    ])
    return { result: { mappingsDeleted: (mappingsResult as { meta?: { changes?: number } }).meta?.changes ?? 0 }, version: null }
  })
}

/** A new app secret, effective at once; the old one stops working. */
export async function rotateAppSecretAsAdmin(env: Env, appId: string, actor: AuditActor): Promise<string> {
  await loadApplication(env, appId)
  const secret = newAppSecret()
  await writeApp(env, appId, { appSecretEnc: await encryptAppSecret(env, appId, secret) }, { action: 'admin.app.rotate_secret' }, actor)
  return secret
}

/** A new X-App-Access-Token, effective at once; the old one stops working. */
export async function rotateAppAccessTokenAsAdmin(env: Env, appId: string, actor: AuditActor): Promise<string> {
  await loadApplication(env, appId)
  const token = newAppAccessToken()
  await writeApp(env, appId, { accessTokenHash: await sha256Hex(token) }, { action: 'admin.app.rotate_access_token' }, actor)
  return token
}
