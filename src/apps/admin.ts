import { eq } from 'drizzle-orm'
import type { Env } from '../env'
import { getDb } from '../db'
import { auditStatement, type AuditActor } from '../audit/service'
import { AppErrors } from './errors'
import { sha256Hex } from '../lib/crypto'
import { deleteAllMappingsOfAppStatements } from '../mappings/service'
import { applications, type Application } from './schema'
import { encryptAppSecret, findApplication, newAppAccessToken, newAppSecret, newApplicationRow, type IssuedCredentials, type NewApplicationInput } from './service'

/*
 * What an admin does to applications (docs/apps.md). Each change is one db.batch with its
 * audit row; new credentials are returned once and never stored in the clear.
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

export async function loadApplication(env: Env, appId: string): Promise<Application> {
  const app = await findApplication(env, appId)
  if (!app) throw AppErrors.app_not_found()
  return app
}

export async function createApplicationAsAdmin(env: Env, input: NewApplicationInput, actor: AuditActor): Promise<{ row: Application; credentials: IssuedCredentials }> {
  const created = await newApplicationRow(env, input.grantTypes && !input.responseTypes ? { ...input, responseTypes: responseTypesFor(input.grantTypes) } : input)
  const { row } = created
  checkConsistency(row)
  const db = getDb(env.DB)
  await db.batch([
    db.insert(applications).values(row),
    auditStatement(db, { ...actor, action: 'admin.app.create', targetType: 'application', targetId: row.appId, details: { app_name: row.appName, protocol_type: row.protocolType } }),
  ])
  return created
}

export type ApplicationPatch = Partial<Omit<Application, 'id' | 'appId' | 'appSecretEnc' | 'accessTokenHash' | 'createdAt' | 'updatedAt'>>

/** Changes settings; `details` is what the audit row records (the request as given). */
export async function updateApplicationAsAdmin(env: Env, appId: string, patch: ApplicationPatch, actor: AuditActor, details: unknown = patch): Promise<Application> {
  const app = await loadApplication(env, appId)
  // new grants without response types: the ones that go with them (the only choice there is)
  if (patch.grantTypes && !patch.responseTypes) patch = { ...patch, responseTypes: responseTypesFor(patch.grantTypes) }
  const updated: Application = { ...app, ...patch, updatedAt: Date.now() }
  checkConsistency(updated)
  const action = patch.status === 'DISABLED' && app.status !== 'DISABLED' ? 'admin.app.disable' : patch.status === 'ACTIVE' && app.status !== 'ACTIVE' ? 'admin.app.enable' : 'admin.app.update'
  const db = getDb(env.DB)
  await db.batch([
    db.update(applications).set({ ...patch, updatedAt: updated.updatedAt }).where(eq(applications.appId, appId)),
    auditStatement(db, { ...actor, action, targetType: 'application', targetId: appId, details }),
  ])
  return updated
}

export async function disableApplicationAsAdmin(env: Env, appId: string, actor: AuditActor): Promise<Application> {
  const app = await loadApplication(env, appId)
  const updated: Application = { ...app, status: 'DISABLED', updatedAt: Date.now() }
  const db = getDb(env.DB)
  await db.batch([
    db.update(applications).set({ status: 'DISABLED', updatedAt: updated.updatedAt }).where(eq(applications.appId, appId)),
    auditStatement(db, { ...actor, action: 'admin.app.disable', targetType: 'application', targetId: appId }),
  ])
  return updated
}

/** Deletes the app and its mappings; every mapping gets its DELETE outbox event in the same batch. */
export async function deleteApplicationAsAdmin(env: Env, appId: string, actor: AuditActor): Promise<{ mappingsDeleted: number }> {
  const app = await loadApplication(env, appId)
  const db = getDb(env.DB)
  const [events, deletedMappings] = deleteAllMappingsOfAppStatements(db, appId, Date.now())
  const [, mappingsResult] = await db.batch([
    events,
    deletedMappings,
    db.delete(applications).where(eq(applications.appId, appId)),
    auditStatement(db, { ...actor, action: 'admin.app.delete', targetType: 'application', targetId: appId, details: { app_name: app.appName, protocol_type: app.protocolType } }),
  ])
  return { mappingsDeleted: (mappingsResult as { meta?: { changes?: number } }).meta?.changes ?? 0 }
}

/** Swaps one stored credential (secret envelope or token hash) with its audit row. */
async function replaceCredential(env: Env, appId: string, set: Partial<Pick<Application, 'appSecretEnc' | 'accessTokenHash'>>, action: string, actor: AuditActor) {
  const db = getDb(env.DB)
  await db.batch([
    db.update(applications).set({ ...set, updatedAt: Date.now() }).where(eq(applications.appId, appId)),
    auditStatement(db, { ...actor, action, targetType: 'application', targetId: appId }),
  ])
}

/** A new app secret, effective at once; the old one stops working. */
export async function rotateAppSecretAsAdmin(env: Env, appId: string, actor: AuditActor): Promise<string> {
  await loadApplication(env, appId)
  const secret = newAppSecret()
  await replaceCredential(env, appId, { appSecretEnc: await encryptAppSecret(env, appId, secret) }, 'admin.app.rotate_secret', actor)
  return secret
}

/** A new X-App-Access-Token, effective at once; the old one stops working. */
export async function rotateAppAccessTokenAsAdmin(env: Env, appId: string, actor: AuditActor): Promise<string> {
  await loadApplication(env, appId)
  const token = newAppAccessToken()
  await replaceCredential(env, appId, { accessTokenHash: await sha256Hex(token) }, 'admin.app.rotate_access_token', actor)
  return token
}
