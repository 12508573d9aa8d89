import { and, count, desc, eq, isNull, lte, or } from 'drizzle-orm'
import type { Env } from '../env'
import { getDb } from '../db'
import { auditStatement, type AuditActor } from '../audit/service'
import { hex, randomBytes, randomToken, sha256Hex } from '../lib/crypto'
import { containsText } from '../lib/sql'
import type { Right, Scope } from '../delegation/model'
import { findGroup } from '../directory/service'
import { findUserById } from '../users/service'
import { findApplications } from '../apps/service'
import { apiClients, DEFAULT_RATE_LIMIT_PER_MINUTE, type ApiClient } from './schema'
import { ApiClientErrors } from './errors'

/*
 * API clients (docs/api-clients.md): machine credentials for the admin API. Each admin write
 * is one db.batch with its audit row. The API key is returned once, at creation and at
 * rotation; D1 keeps only its SHA-256. A plain hash is enough because the key is 256 random
 * bits (no dictionary to try offline), and unlike an HMAC under a master-key subkey it does
 * not tie every client's key to MASTER_KEY: rotating the master key leaves clients working.
 */

export const newClientKey = () => 'ck_' + hex(randomBytes(16))
export const newApiKey = () => randomToken(32, 'ak_')
export const hashApiKey = (apiKey: string) => sha256Hex(apiKey)

export interface Allowlists {
  ips: string[]
  origins: string[]
  paths: string[]
}

export interface ApiClientSettings {
  name: string
  rights: Right[]
  scope: Scope
  allowlist: Allowlists
  rateLimitPerMinute: number
  expiresAt: number | null
}

export type ApiClientPatch = Partial<Omit<ApiClientSettings, 'allowlist'>> & { allowlist?: Partial<Allowlists> }

/** The admin view: every setting and when the client was last used, never the API key nor its hash. */
export function publicApiClient(r: ApiClient, now = Date.now()) {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())
  return {
    id: r.id,
    name: r.name,
    client_key: r.clientKey,
    status: r.status,
    expires_at: iso(r.expiresAt),
    expired: r.expiresAt !== null && r.expiresAt <= now,
    rights: r.rights,
    scope: r.scope,
    allowlist: { ips: r.allowedIps, origins: r.allowedOrigins, paths: r.allowedPaths },
    rate_limit_per_minute: r.rateLimitPerMinute,
    created_by: r.createdBy,
    created_at: iso(r.createdAt)!,
    updated_at: iso(r.updatedAt)!,
    last_used_at: iso(r.lastUsedAt),
  }
}

export async function findApiClient(env: Env, id: string): Promise<ApiClient | undefined> {
  return getDb(env.DB).select().from(apiClients).where(eq(apiClients.id, id)).get()
}

/** The client named by an X-Client-Key (always read from the primary: a rotation or a disable counts at once). */
export async function findApiClientByKey(env: Env, clientKey: string): Promise<ApiClient | undefined> {
  return getDb(env.DB).select().from(apiClients).where(eq(apiClients.clientKey, clientKey)).get()
}

export async function loadApiClient(env: Env, id: string): Promise<ApiClient> {
  const row = await findApiClient(env, id)
  if (!row) throw ApiClientErrors.api_client_not_found()
  return row
}

/**
 * Every id the scope adds names an existing group, user or application (read through their
 * owners). Ids the scope already had are not asked again: one whose object was deleted since
 * stays named and reaches nothing, and must not block an unrelated change of the scope.
 */
async function checkScope(env: Env, next: Scope, previous: Scope = { groups: [], users: [], apps: [] }) {
  const added = (k: keyof Scope) => next[k].filter((id) => !previous[k].includes(id))
  const scope: Scope = { groups: added('groups'), users: added('users'), apps: added('apps') }
  const [groups, users, apps] = await Promise.all([
    Promise.all(scope.groups.map(async (id) => ((await findGroup(env, id)) ? null : id))),
    Promise.all(scope.users.map(async (id) => ((await findUserById(env, id)) ? null : id))),
    findApplications(env, scope.apps),
  ])
  const unknownGroups = groups.filter((id): id is string => id !== null)
  if (unknownGroups.length) throw ApiClientErrors.scope_group_unknown({ message: `scope.groups: no group ${unknownGroups.join(', ')}`, details: { ids: unknownGroups } })
  const unknownUsers = users.filter((id): id is string => id !== null)
  if (unknownUsers.length) throw ApiClientErrors.scope_user_unknown({ message: `scope.users: no user ${unknownUsers.join(', ')}`, details: { ids: unknownUsers } })
  const found = new Set(apps.map((a) => a.appId))
  const unknownApps = scope.apps.filter((id) => !found.has(id))
  if (unknownApps.length) throw ApiClientErrors.scope_app_unknown({ message: `scope.apps: no application ${unknownApps.join(', ')}`, details: { app_ids: unknownApps } })
}

function checkExpiry(expiresAt: number | null | undefined, now: number) {
  if (expiresAt !== null && expiresAt !== undefined && expiresAt <= now) throw ApiClientErrors.expires_at_in_past()
}

/** What an audit row says of the settings (never a key). */
function settingsDetails(s: ApiClientPatch) {
  const out: Record<string, unknown> = {}
  if (s.name !== undefined) out.name = s.name
  if (s.rights !== undefined) out.rights = s.rights
  if (s.scope !== undefined) out.scope = s.scope
  if (s.allowlist !== undefined) out.allowlist = s.allowlist
  if (s.rateLimitPerMinute !== undefined) out.rate_limit_per_minute = s.rateLimitPerMinute
  if (s.expiresAt !== undefined) out.expires_at = s.expiresAt === null ? null : new Date(s.expiresAt).toISOString()
  return out
}

export async function createApiClientAsAdmin(env: Env, input: ApiClientSettings, actor: AuditActor): Promise<{ row: ApiClient; apiKey: string }> {
  const now = Date.now()
  checkExpiry(input.expiresAt, now)
  await checkScope(env, input.scope)
  const apiKey = newApiKey()
  const row: ApiClient = {
    id: crypto.randomUUID(),
    name: input.name,
    clientKey: newClientKey(),
    apiKeyHash: await hashApiKey(apiKey),
    status: 'ACTIVE',
    expiresAt: input.expiresAt,
    rights: input.rights,
    scope: input.scope,
    allowedIps: input.allowlist.ips,
    allowedOrigins: input.allowlist.origins,
    allowedPaths: input.allowlist.paths,
    rateLimitPerMinute: input.rateLimitPerMinute ?? DEFAULT_RATE_LIMIT_PER_MINUTE,
    createdBy: actor.actorId ?? null,
    createdAt: now,
    updatedAt: now,
    lastUsedAt: null,
  }
  const db = getDb(env.DB)
  await db.batch([
    db.insert(apiClients).values(row),
    auditStatement(db, { ...actor, action: 'admin.api_client.create', targetType: 'api_client', targetId: row.id, details: { client_key: row.clientKey, ...settingsDetails(input) } }),
  ])
  return { row, apiKey }
}

/** One write of the row with its audit row; returns the row as written. */
async function writeClient(env: Env, id: string, set: Partial<ApiClient>, audit: { action: string; details?: unknown }, actor: AuditActor): Promise<ApiClient> {
  const db = getDb(env.DB)
  const [rows] = await db.batch([
    db
      .update(apiClients)
      .set({ ...set, updatedAt: Date.now() })
      .where(eq(apiClients.id, id))
      .returning(),
    auditStatement(db, { ...actor, action: audit.action, targetType: 'api_client', targetId: id, details: audit.details }),
  ])
  // API clients are never deleted, and loadApiClient ran first: the row is there
  const row = rows[0]
  if (!row) throw ApiClientErrors.api_client_not_found()
  return row
}

export async function updateApiClientAsAdmin(env: Env, id: string, patch: ApiClientPatch, actor: AuditActor): Promise<ApiClient> {
  const current = await loadApiClient(env, id)
  checkExpiry(patch.expiresAt, Date.now())
  if (patch.scope) await checkScope(env, patch.scope, current.scope)
  const set: Partial<ApiClient> = {}
  if (patch.name !== undefined) set.name = patch.name
  if (patch.rights !== undefined) set.rights = patch.rights
  if (patch.scope !== undefined) set.scope = patch.scope
  if (patch.allowlist?.ips !== undefined) set.allowedIps = patch.allowlist.ips
  if (patch.allowlist?.origins !== undefined) set.allowedOrigins = patch.allowlist.origins
  if (patch.allowlist?.paths !== undefined) set.allowedPaths = patch.allowlist.paths
  if (patch.rateLimitPerMinute !== undefined) set.rateLimitPerMinute = patch.rateLimitPerMinute
  if (patch.expiresAt !== undefined) set.expiresAt = patch.expiresAt
  return writeClient(env, id, set, { action: 'admin.api_client.update', details: settingsDetails(patch) }, actor)
}

/** A new API key, effective at once: the old key is refused from the next request on. */
export async function rotateApiKeyAsAdmin(env: Env, id: string, actor: AuditActor): Promise<{ row: ApiClient; apiKey: string }> {
  await loadApiClient(env, id)
  const apiKey = newApiKey()
  const row = await writeClient(env, id, { apiKeyHash: await hashApiKey(apiKey) }, { action: 'admin.api_client.rotate_key' }, actor)
  return { row, apiKey }
}

export async function setApiClientStatusAsAdmin(env: Env, id: string, status: ApiClient['status'], actor: AuditActor): Promise<ApiClient> {
  const before = await loadApiClient(env, id)
  return writeClient(env, id, { status }, { action: status === 'DISABLED' ? 'admin.api_client.disable' : 'admin.api_client.enable', details: { previous_status: before.status } }, actor)
}

/** Expires the client now (expires_at = now); PATCH with a later expires_at, or null, brings it back. */
export async function expireApiClientAsAdmin(env: Env, id: string, actor: AuditActor): Promise<ApiClient> {
  const before = await loadApiClient(env, id)
  const now = Date.now()
  return writeClient(env, id, { expiresAt: now }, { action: 'admin.api_client.expire', details: { previous_expires_at: before.expiresAt === null ? null : new Date(before.expiresAt).toISOString() } }, actor)
}

export async function listApiClients(env: Env, q: { page: number; pageSize: number; search?: string; status?: ApiClient['status'] }) {
  const db = getDb(env.DB)
  const conds = []
  if (q.search) conds.push(or(containsText(apiClients.name, q.search), containsText(apiClients.clientKey, q.search)))
  if (q.status) conds.push(eq(apiClients.status, q.status))
  const where = conds.length ? and(...conds) : undefined
  const [rows, total] = await db.batch([
    db.select().from(apiClients).where(where).orderBy(desc(apiClients.createdAt), desc(apiClients.id)).limit(q.pageSize).offset((q.page - 1) * q.pageSize),
    db.select({ n: count() }).from(apiClients).where(where),
  ])
  const now = Date.now()
  return { items: rows.map((r) => publicApiClient(r, now)), page: q.page, page_size: q.pageSize, total: total[0]?.n ?? 0 }
}

/** last_used_at is kept to the minute: written when it is older than this, so a busy client costs one write a minute, not one per call. */
export const LAST_USED_RESOLUTION_MS = 60_000

/**
 * Records a use when the stored last_used_at is older than the resolution. Conditional, so
 * concurrent calls that all read an old value write it once between them (the others match
 * no row).
 */
export async function recordApiClientUse(env: Env, client: Pick<ApiClient, 'id' | 'lastUsedAt'>, now = Date.now()): Promise<void> {
  if (client.lastUsedAt !== null && now - client.lastUsedAt < LAST_USED_RESOLUTION_MS) return
  const stale = now - LAST_USED_RESOLUTION_MS
  await getDb(env.DB)
    .update(apiClients)
    .set({ lastUsedAt: now })
    .where(and(eq(apiClients.id, client.id), or(isNull(apiClients.lastUsedAt), lte(apiClients.lastUsedAt, stale))))
}
