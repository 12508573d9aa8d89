import { and, asc, count, desc, eq, gt, inArray, isNull, sql, type SQL, type SQLWrapper } from 'drizzle-orm'
import { containsText } from '../lib/sql'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { users } from '../users/schema'
import {
  MAPPING_EVENT_KINDS,
  MAPPING_KIND,
  APP_EVENT_TYPE,
  appUserMappings,
  mappingEvents,
  type AppEventKind,
  type AppEventPayload,
  type AppUserMapping,
  type MappingEvent,
  type MappingEventType,
  type OutboxEvent,
  type UserEventKind,
} from './schema'
import { normalizeMobile, type E164 } from '../lib/mobile'
import { dbErrorText, type ApiError } from '../lib/errors'
import { MappingErrors, type MappingErrorCode } from './errors'
import { auditStatement, type AuditActor, type AuditEntry } from '../audit/service'

/*
 * Mapping writes and their outbox events (docs/mappings.md).
 *
 * Every change is a pair of statements in one db.batch: the write, and an INSERT into
 * mapping_events whose values are read back from the mapping row as the write left it.
 * Writes are compare-and-set on `last_event_id`: an UPDATE/DELETE only matches the row
 * version it was planned against, and the event INSERT only finds the row carrying the new
 * event id. If a concurrent writer got there first, the event's app_id is NULL, the NOT NULL
 * constraint aborts the batch, and nothing of it is applied: never a change without its
 * event, never an event without its change.
 */

type Stmt = BatchItem<'sqlite'>

export type SyncAction = 'ADD' | 'UPDATE' | 'DISABLE'

export interface SyncItem {
  mobile: string
  mapped_key?: string
  name?: string | null
  action: SyncAction
}

export interface SyncItemResult {
  index: number
  mobile: string
  action: SyncAction
  status: 'ok' | 'error'
  code: string
  message: string
  mapping_id?: string
  /** the outbox event written by this item (absent when nothing changed): the webhook's `id` */
  event_id?: string
}

export const SYNC_MAX_ITEMS = 500
/** Items per write batch: each item is at most 3 statements (write, event, audit). */
const CHUNK = 30
/** Re-reads after a concurrent writer invalidated a plan. */
const MAX_RETRIES = 2

interface UserLite {
  id: string
  mobile: string
  name: string | null
  status: 'ACTIVE' | 'DISABLED'
}

/** The event's payload, read from the mapping row `m` and its user `u` (see MappingEventPayload). */
const payloadSql = sql`json_object('mobile', u.mobile, 'name', coalesce(m.name, u.name), 'mapped_key', m.mapped_key,
  'status', CASE WHEN m.is_active THEN 'ACTIVE' ELSE 'DISABLED' END, 'user_status', u.status)`

// RFC 4122 version-4 layout from SQLite's randomblob, for events written one per row of a SELECT
const uuidSql = sql`lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))`

// INSERT ... SELECT through drizzle's insert builder (raw db.run statements cannot be batched
// on D1 by drizzle). The select lists every column of mapping_events in schema order (id,
// event_id, app_id, user_id, mapping_id, event_type, payload, created_at, delivered_at, type);
// a NULL id lets AUTOINCREMENT assign the sequence.
function eventStatement(db: DB, e: { eventId: string; mappingId: string; type: MappingEventType; guard: string | null; now: number }): Stmt {
  // LEFT JOIN from a one-row table: when the guarded row is absent, app_id is NULL and the
  // NOT NULL constraint aborts the whole batch (see the comment at the top).
  return db.insert(mappingEvents).select(sql`SELECT NULL, ${e.eventId}, m.app_id, m.user_id, ${e.mappingId}, ${e.type}, ${payloadSql}, ${e.now}, NULL, ${MAPPING_KIND[e.type]}
    FROM (SELECT 1) AS one
    LEFT JOIN app_user_mappings m ON m.id = ${e.mappingId} AND m.last_event_id IS ${e.guard}
    LEFT JOIN users u ON u.id = m.user_id`)
}

/**
 * An app event (APP_EVENT_KINDS, e.g. permission.changed) for the outbox, to put in the
 * batch of the change it reports. `userId` names the user it is about, if one: the user's
 * mapping in the app as the batch leaves it (active or not) fills mapping_id and is set into
 * the payload at `mappingAt` (a JSON path) as {mapping_id, mapped_key, name, status}, or
 * null when the user has no mapping there. Column order as in eventStatement.
 */
export function appEventStatement(
  db: DB,
  e: { eventId: string; appId: string; type: AppEventKind; payload: AppEventPayload; userId?: string | null; mappingAt?: string; now: number },
): Stmt {
  const payload = JSON.stringify(e.payload)
  if (!e.userId) {
    return db.insert(mappingEvents).select(sql`SELECT NULL, ${e.eventId}, ${e.appId}, NULL, NULL, ${APP_EVENT_TYPE}, json(${payload}), ${e.now}, NULL, ${e.type}`)
  }
  const mapping = sql`json(CASE WHEN m.id IS NULL THEN 'null' ELSE json_object('mapping_id', m.id, 'mapped_key', m.mapped_key, 'name', coalesce(m.name, u.name),
    'status', CASE WHEN m.is_active THEN 'ACTIVE' ELSE 'DISABLED' END) END)`
  const body = e.mappingAt ? sql`json_set(json(${payload}), ${e.mappingAt}, ${mapping})` : sql`json(${payload})`
  return db.insert(mappingEvents).select(sql`SELECT NULL, ${e.eventId}, ${e.appId}, ${e.userId}, m.id, ${APP_EVENT_TYPE}, ${body}, ${e.now}, NULL, ${e.type}
    FROM (SELECT 1) AS one
    LEFT JOIN app_user_mappings m ON m.app_id = ${e.appId} AND m.user_id = ${e.userId}
    LEFT JOIN users u ON u.id = m.user_id`)
}

const casGuard = (m: Pick<AppUserMapping, 'id' | 'lastEventId'>) =>
  and(eq(appUserMappings.id, m.id), m.lastEventId === null ? isNull(appUserMappings.lastEventId) : eq(appUserMappings.lastEventId, m.lastEventId))

/** A new mapping and its ADD event. */
export function insertMappingStatements(db: DB, input: { appId: string; userId: string; mappedKey: string; name?: string | null }, now = Date.now()) {
  const eventId = crypto.randomUUID()
  const row: AppUserMapping = {
    id: crypto.randomUUID(),
    appId: input.appId,
    userId: input.userId,
    mappedKey: input.mappedKey,
    name: input.name ?? null,
    isActive: true,
    createdAt: now,
    updatedAt: now,
    lastEventId: eventId,
  }
  return { row, statements: [db.insert(appUserMappings).values(row), eventStatement(db, { eventId, mappingId: row.id, type: 'ADD', guard: eventId, now })] as Stmt[] }
}

/** A change to an existing mapping (compare-and-set on its version) and its event. */
export function updateMappingStatements(
  db: DB,
  prev: AppUserMapping,
  next: Partial<Pick<AppUserMapping, 'mappedKey' | 'name' | 'isActive'>>,
  type: Exclude<MappingEventType, 'DELETE'>,
  now = Date.now(),
) {
  const eventId = crypto.randomUUID()
  const row: AppUserMapping = { ...prev, ...next, updatedAt: now, lastEventId: eventId }
  const set = { mappedKey: row.mappedKey, name: row.name, isActive: row.isActive, updatedAt: now, lastEventId: eventId }
  return { row, statements: [db.update(appUserMappings).set(set).where(casGuard(prev)), eventStatement(db, { eventId, mappingId: prev.id, type, guard: eventId, now })] as Stmt[] }
}

// Bulk forms for the importer (src/importer/mappings.ts): the same two statements per
// change kind, but one statement for many rows, the rows travelling as one JSON parameter
// (D1 binds at most 100 parameters per statement). The guarantee is the one above: every
// event is read back from its mapping row carrying the event's id, so a row that was not
// written (or was changed by someone else first) leaves a NULL app_id and aborts the batch.

/** The events of many changes written in the same batch, each guarded on its mapping carrying `event_id`. */
function eventsStatement(db: DB, events: { event_id: string; mapping_id: string; type: MappingEventType }[], now: number): Stmt {
  // rows as [event_id, mapping_id, action, kind]: `->>` with an index is the cheapest JSON access per row
  const json = JSON.stringify(events.map((e) => [e.event_id, e.mapping_id, e.type, MAPPING_KIND[e.type]]))
  return db.insert(mappingEvents).select(sql`SELECT NULL, j.value ->> 0, m.app_id, m.user_id, j.value ->> 1, j.value ->> 2, ${payloadSql}, ${now}, NULL, j.value ->> 3
    FROM json_each(${json}) AS j
    LEFT JOIN app_user_mappings m ON m.id = j.value ->> 1 AND m.last_event_id IS j.value ->> 0
    LEFT JOIN users u ON u.id = m.user_id
    ORDER BY j.key`)
}

/** Many new mappings of one app and their ADD events: two statements whatever the count. */
export function insertMappingsStatements(db: DB, appId: string, items: { userId: string; mappedKey: string; name?: string | null }[], now = Date.now()) {
  const rows: AppUserMapping[] = items.map((i) => ({
    id: crypto.randomUUID(),
    appId,
    userId: i.userId,
    mappedKey: i.mappedKey,
    name: i.name ?? null,
    isActive: true,
    createdAt: now,
    updatedAt: now,
    lastEventId: crypto.randomUUID(),
  }))
  if (!rows.length) return { rows, statements: [] as Stmt[] }
  const json = JSON.stringify(rows.map((r) => [r.id, r.userId, r.mappedKey, r.name, r.lastEventId]))
  const insert = db.insert(appUserMappings).select(sql`SELECT value ->> 0, ${appId}, value ->> 1, value ->> 2, value ->> 3, 1, ${now}, ${now}, value ->> 4
    FROM json_each(${json}) ORDER BY key`)
  const events = eventsStatement(db, rows.map((r) => ({ event_id: r.lastEventId!, mapping_id: r.id, type: 'ADD' as const })), now)
  return { rows, statements: [insert, events] as Stmt[] }
}

/**
 * Changes to many existing mappings (compare-and-set on each one's version) and their
 * events: two statements whatever the count. `type` per change as in updateMappingStatements.
 */
export function updateMappingsStatements(
  db: DB,
  changes: { prev: AppUserMapping; next: Partial<Pick<AppUserMapping, 'mappedKey' | 'name' | 'isActive'>>; type: Exclude<MappingEventType, 'DELETE'> }[],
  now = Date.now(),
) {
  const rows = changes.map((c) => ({ ...c.prev, ...c.next, updatedAt: now, lastEventId: crypto.randomUUID() }) satisfies AppUserMapping)
  if (!rows.length) return { rows, statements: [] as Stmt[] }
  const json = JSON.stringify(rows.map((r, i) => [r.id, changes[i].prev.lastEventId, r.mappedKey, r.name, r.isActive ? 1 : 0, r.lastEventId]))
  const j = (i: number) => sql`j.value ->> ${sql.raw(String(i))}`
  // UPDATE … FROM (SQLite 3.33): each mapping matched only at the version it was planned against
  const update = db
    .update(appUserMappings)
    .set({ mappedKey: j(2), name: j(3), isActive: j(4), updatedAt: now, lastEventId: j(5) })
    .from(sql`json_each(${json}) AS j`)
    .where(and(eq(appUserMappings.id, j(0)), sql`${appUserMappings.lastEventId} IS ${j(1)}`))
  const events = eventsStatement(db, rows.map((r, i) => ({ event_id: r.lastEventId, mapping_id: r.id, type: changes[i].type })), now)
  return { rows, statements: [update, events] as Stmt[] }
}

/**
 * What an import needs to know about many rows at once: the users with these mobiles and
 * their mapping in the app, and the mappings holding these keys. Two queries whatever the
 * count (the lists travel as JSON).
 */
export async function mappingStateOf(env: Env, appId: string, mobiles: E164[], keys: string[]) {
  const db = getDb(env.DB)
  const [userRows, keyRows] = await Promise.all([
    mobiles.length
      ? db
          .select({ user: { id: users.id, mobile: users.mobile, name: users.name, status: users.status }, mapping: appUserMappings })
          .from(users)
          .leftJoin(appUserMappings, and(eq(appUserMappings.userId, users.id), eq(appUserMappings.appId, appId)))
          .where(inArray(users.mobile, sql`(SELECT value FROM json_each(${JSON.stringify(mobiles)}))`))
      : [],
    keys.length
      ? db
          .select()
          .from(appUserMappings)
          .where(and(eq(appUserMappings.appId, appId), inArray(appUserMappings.mappedKey, sql`(SELECT value FROM json_each(${JSON.stringify(keys)}))`)))
      : [],
  ])
  const byMobile = new Map<string, { user: UserLite; mapping: AppUserMapping | null }>()
  for (const r of userRows) byMobile.set(r.user.mobile, r)
  const byKey = new Map<string, AppUserMapping>()
  for (const r of userRows) if (r.mapping) byKey.set(r.mapping.mappedKey, r.mapping)
  for (const m of keyRows) byKey.set(m.mappedKey, m)
  return { byMobile, byKey }
}

/** The DELETE event (payload = the mapping's last state), then the delete, both guarded on its version. */
export function deleteMappingStatements(db: DB, prev: AppUserMapping, now = Date.now(), eventId: string = crypto.randomUUID()): Stmt[] {
  return [eventStatement(db, { eventId, mappingId: prev.id, type: 'DELETE', guard: prev.lastEventId, now }), db.delete(appUserMappings).where(casGuard(prev))]
}

/** event_type of a user event in one app, from the kind and the mapping row `m`. */
const USER_EVENT_TYPE: Record<UserEventKind, ReturnType<typeof sql>> = {
  'user.disabled': sql`'DISABLE'`,
  // the account is usable in the app again only where the mapping is active
  'user.enabled': sql`CASE WHEN m.is_active THEN 'ADD' ELSE 'UPDATE' END`,
  'user.updated': sql`'UPDATE'`,
}

/**
 * A change to a user (status, name, mobile) as one outbox event per app the user is mapped
 * in (active or not), in one INSERT ... SELECT whatever the number of apps. Goes in the
 * batch after the user update, so the payloads read the user as changed. Returns the
 * written events (`event_id`, `app_id`), to be handed to webhook delivery after the batch.
 */
export function userEventsStatement(db: DB, userId: string, kind: UserEventKind, now = Date.now()) {
  return db
    .insert(mappingEvents)
    .select(sql`SELECT NULL, ${uuidSql}, m.app_id, m.user_id, m.id, ${USER_EVENT_TYPE[kind]}, ${payloadSql}, ${now}, NULL, ${kind}
      FROM app_user_mappings m JOIN users u ON u.id = m.user_id
      WHERE m.user_id = ${userId}
      ORDER BY m.app_id`)
    .returning({ eventId: mappingEvents.eventId, appId: mappingEvents.appId })
}

/** Webhook delivery succeeded: the first delivery's time stays. */
export function markEventDeliveredStatement(db: DB, eventId: string, at: number) {
  return db
    .update(mappingEvents)
    .set({ deliveredAt: at })
    .where(and(eq(mappingEvents.eventId, eventId), isNull(mappingEvents.deliveredAt)))
}

/**
 * Deleting an application removes its mappings. One DELETE event per mapping is written by
 * a single INSERT ... SELECT (fixed statement count whatever the number of mappings), then
 * the mappings go; the caller adds the application delete and the audit row to the batch.
 */
export function deleteAllMappingsOfAppStatements(db: DB, appId: string, now = Date.now()): Stmt[] {
  return [
    db.insert(mappingEvents).select(sql`SELECT NULL, ${uuidSql}, m.app_id, m.user_id, m.id, 'DELETE', ${payloadSql}, ${now}, NULL, ${MAPPING_KIND.DELETE}
      FROM app_user_mappings m LEFT JOIN users u ON u.id = m.user_id
      WHERE m.app_id = ${appId}
      ORDER BY m.created_at, m.id`),
    db.delete(appUserMappings).where(eq(appUserMappings.appId, appId)),
  ]
}

/** What a failed batch means for a mapping write, or null when it is not ours to explain. */
export function classifyWriteError(e: unknown): 'mapped_key_taken' | 'mapping_exists' | 'concurrent_modification' | null {
  const msg = dbErrorText(e)
  if (/UNIQUE constraint failed: app_user_mappings\.app_id, app_user_mappings\.mapped_key/.test(msg)) return 'mapped_key_taken'
  if (/UNIQUE constraint failed: app_user_mappings\.app_id, app_user_mappings\.user_id/.test(msg)) return 'mapping_exists'
  if (/NOT NULL constraint failed: mapping_events\./.test(msg)) return 'concurrent_modification'
  return null
}

const messageOf = (code: MappingErrorCode) => MappingErrors[code]().message

// ---------------------------------------------------------------------------------------
// Planning: one item against the current state (read in bulk per chunk), sequential
// semantics inside a request: later items see the effect of earlier ones.

interface State {
  users: Map<string, UserLite>
  byUser: Map<string, AppUserMapping>
  byKey: Map<string, AppUserMapping>
}

interface Prepared {
  index: number
  item: SyncItem
  mobile: E164 | null
}

interface Planned {
  result: SyncItemResult
  statements: Stmt[]
}

async function loadState(db: DB, appId: string, items: Prepared[]): Promise<State> {
  const mobiles = [...new Set(items.map((i) => i.mobile).filter((m): m is E164 => !!m))]
  const keys = [...new Set(items.map((i) => i.item.mapped_key).filter((k): k is string => !!k))]
  const state: State = { users: new Map(), byUser: new Map(), byKey: new Map() }
  if (!mobiles.length) return state
  const userQuery = db
    .select({ user: { id: users.id, mobile: users.mobile, name: users.name, status: users.status }, mapping: appUserMappings })
    .from(users)
    .leftJoin(appUserMappings, and(eq(appUserMappings.userId, users.id), eq(appUserMappings.appId, appId)))
    .where(inArray(users.mobile, mobiles))
  const keyQuery = db
    .select()
    .from(appUserMappings)
    .where(and(eq(appUserMappings.appId, appId), inArray(appUserMappings.mappedKey, keys.length ? keys : ['\u0000'])))
  // not db.batch: drizzle maps D1 batch rows by column name, which loses one of two joined `id`s
  const [userRows, keyRows] = await Promise.all([userQuery, keyQuery])
  for (const r of userRows) {
    state.users.set(r.user.mobile, r.user)
    if (r.mapping) {
      state.byUser.set(r.user.id, r.mapping)
      state.byKey.set(r.mapping.mappedKey, r.mapping)
    }
  }
  for (const m of keyRows) state.byKey.set(m.mappedKey, m)
  return state
}

function remember(state: State, prev: AppUserMapping | undefined, row: AppUserMapping) {
  if (prev && state.byKey.get(prev.mappedKey)?.id === prev.id) state.byKey.delete(prev.mappedKey)
  state.byUser.set(row.userId, row)
  state.byKey.set(row.mappedKey, row)
}

function planItem(db: DB, appId: string, p: Prepared, state: State, now: number, audit?: (r: SyncItemResult, userId: string) => AuditEntry): Planned {
  const { item, index } = p
  const base = { index, mobile: p.mobile ?? item.mobile, action: item.action }
  const fail = (code: string, message: string): Planned => ({ result: { ...base, status: 'error', code, message }, statements: [] })
  const ok = (code: string, message: string, row: AppUserMapping, statements: Stmt[] = []): Planned => {
    const result: SyncItemResult = { ...base, status: 'ok', code, message, mapping_id: row.id, ...(statements.length ? { event_id: row.lastEventId! } : {}) }
    if (statements.length && audit) statements.push(auditStatement(db, audit(result, row.userId)))
    return { result, statements }
  }

  if (!p.mobile) return fail('invalid_mobile', messageOf('invalid_mobile'))
  const user = state.users.get(p.mobile)
  if (!user) return fail('user_not_found', 'No UAP user has this mobile number; users are not created by sync')
  const current = state.byUser.get(user.id)
  const keyOwner = (key: string) => {
    const owner = state.byKey.get(key)
    return owner && owner.userId !== user.id ? owner : undefined
  }

  if (item.action === 'ADD') {
    const key = item.mapped_key!
    if (current?.isActive) {
      if (current.mappedKey !== key) return fail('mapping_exists', `The user is already mapped to "${current.mappedKey}" in this app; use UPDATE to change it`)
      if (item.name === undefined || item.name === current.name) return ok('unchanged', 'Already mapped with this mapped_key', current)
      const u = updateMappingStatements(db, current, { name: item.name }, 'UPDATE', now)
      remember(state, current, u.row)
      return ok('updated', 'Mapping existed; name updated', u.row, u.statements)
    }
    if (keyOwner(key)) return fail('mapped_key_taken', messageOf('mapped_key_taken'))
    if (current) {
      const u = updateMappingStatements(db, current, { mappedKey: key, isActive: true, ...(item.name !== undefined ? { name: item.name } : {}) }, 'ADD', now)
      remember(state, current, u.row)
      return ok('reactivated', 'Disabled mapping enabled again', u.row, u.statements)
    }
    const ins = insertMappingStatements(db, { appId, userId: user.id, mappedKey: key, name: item.name ?? null }, now)
    remember(state, undefined, ins.row)
    return ok('created', 'Mapping created', ins.row, ins.statements)
  }

  if (!current) return fail('mapping_not_found', 'The user has no mapping in this app')

  if (item.action === 'UPDATE') {
    const key = item.mapped_key!
    const name = item.name === undefined ? current.name : item.name
    if (key === current.mappedKey && name === current.name) return ok('unchanged', 'Nothing to change', current)
    if (key !== current.mappedKey && keyOwner(key)) return fail('mapped_key_taken', messageOf('mapped_key_taken'))
    const u = updateMappingStatements(db, current, { mappedKey: key, name }, 'UPDATE', now)
    remember(state, current, u.row)
    return ok('updated', 'Mapping updated', u.row, u.statements)
  }

  // DISABLE
  if (item.mapped_key !== undefined && item.mapped_key !== current.mappedKey) {
    return fail('mapped_key_mismatch', `The user is mapped to "${current.mappedKey}", not "${item.mapped_key}"; nothing disabled`)
  }
  if (!current.isActive) return ok('unchanged', 'Already disabled', current)
  const u = updateMappingStatements(db, current, { isActive: false }, 'DISABLE', now)
  remember(state, current, u.row)
  return ok('disabled', 'Mapping disabled', u.row, u.statements)
}

/**
 * Applies a sync batch item by item. Items are planned in chunks against one bulk read and
 * written in one db.batch per chunk; if a concurrent writer breaks a chunk (unique or
 * version conflict), the chunk is rolled back as a whole and its items are redone one at a
 * time with fresh reads, so each item is still all-or-nothing and gets its own result.
 */
export async function syncMappings(env: Env, appId: string, items: SyncItem[], opts: { audit?: (r: SyncItemResult, userId: string) => AuditEntry } = {}): Promise<SyncItemResult[]> {
  const db = getDb(env.DB)
  const results: SyncItemResult[] = new Array(items.length)
  const prepared: Prepared[] = items.map((item, index) => ({ index, item, mobile: normalizeMobile(item.mobile) }))

  const run = async (chunk: Prepared[], attempt: number): Promise<void> => {
    const state = await loadState(db, appId, chunk)
    const now = Date.now()
    const planned = chunk.map((p) => planItem(db, appId, p, state, now, opts.audit))
    const statements = planned.flatMap((p) => p.statements)
    try {
      if (statements.length) await db.batch(statements as [Stmt, ...Stmt[]])
      for (const p of planned) results[p.result.index] = p.result
    } catch (e) {
      const kind = classifyWriteError(e)
      if (!kind) throw e
      if (chunk.length > 1) {
        for (const p of chunk) await run([p], 0)
        return
      }
      if (attempt < MAX_RETRIES) return run(chunk, attempt + 1)
      const p = chunk[0]
      results[p.index] = { index: p.index, mobile: p.mobile ?? p.item.mobile, action: p.item.action, status: 'error', code: kind, message: messageOf(kind) }
    }
  }

  for (let i = 0; i < prepared.length; i += CHUNK) await run(prepared.slice(i, i + CHUNK), 0)
  return results
}

/** Single change for the admin routes: the statements plus the audit row, errors as HTTP errors. */
export async function commitMappingChange(env: Env, statements: Stmt[]) {
  const db = getDb(env.DB)
  try {
    await db.batch(statements as [Stmt, ...Stmt[]])
  } catch (e) {
    const kind = classifyWriteError(e)
    if (!kind) throw e
    throw MappingErrors[kind]()
  }
}

/** The audit row of one sync call made by an app itself (admin syncs audit every change instead). */
export async function recordAppSync(env: Env, actor: AuditActor, appId: string, summary: { total: number; ok: number; error: number }) {
  const db = getDb(env.DB)
  await db.batch([auditStatement(db, { ...actor, action: 'app.mapping.sync', targetType: 'application', targetId: appId, details: summary })])
}

/** Maps a per-item sync error to the HTTP error an admin route answers with. */
export function syncErrorToApiError(r: SyncItemResult): ApiError {
  return MappingErrors[r.code as MappingErrorCode]({ message: r.message })
}

// ---------------------------------------------------------------------------------------
// Reading

/** What an app knows the user as, while the mapping is active. */
export type ActiveMapping = Pick<AppUserMapping, 'id' | 'mappedKey' | 'name'>

/**
 * The one rule for "is this user actively mapped in this app" (OIDC, tickets, login for an
 * app, refresh of an app-bound token): a mapping row with is_active set. As a join
 * condition, so reads take the mapping along in one query.
 */
export function activeMappingOn(appId: SQLWrapper, userId: SQLWrapper) {
  return and(eq(appUserMappings.appId, appId), eq(appUserMappings.userId, userId), eq(appUserMappings.isActive, true))
}

/** The user's mapping in the app, active or not, as a join condition. */
export function mappingOn(appId: SQLWrapper, userId: SQLWrapper) {
  return and(eq(appUserMappings.appId, appId), eq(appUserMappings.userId, userId))
}

/** Whether the user's mapping in the app is active (NULL: no mapping), as a correlated scalar subquery for a read that joined the user. */
export function mappingActiveSql(appId: SQLWrapper, userId: SQLWrapper) {
  return sql<number | null>`(SELECT ${appUserMappings.isActive} FROM ${appUserMappings} WHERE ${appUserMappings.appId} = ${appId} AND ${appUserMappings.userId} = ${userId})`
}

/** The id of the user mapped to `mappedKey` in the app (NULL when none), as an uncorrelated subquery. */
export function userIdOfMappedKeySql(db: DB, appId: string, mappedKey: string) {
  return sql`(${db.select({ id: appUserMappings.userId }).from(appUserMappings).where(and(eq(appUserMappings.appId, appId), eq(appUserMappings.mappedKey, mappedKey)))})`
}

export type MappingWithUser = AppUserMapping & { mobile: string; userName: string | null; userStatus: 'ACTIVE' | 'DISABLED' }

const withUser = {
  id: appUserMappings.id,
  appId: appUserMappings.appId,
  userId: appUserMappings.userId,
  mappedKey: appUserMappings.mappedKey,
  name: appUserMappings.name,
  isActive: appUserMappings.isActive,
  createdAt: appUserMappings.createdAt,
  updatedAt: appUserMappings.updatedAt,
  lastEventId: appUserMappings.lastEventId,
  mobile: users.mobile,
  userName: users.name,
  userStatus: users.status,
}

export function publicMapping(m: MappingWithUser) {
  return {
    mapping_id: m.id,
    app_id: m.appId,
    user_id: m.userId,
    mobile: m.mobile,
    mapped_key: m.mappedKey,
    name: m.name ?? m.userName,
    is_active: m.isActive,
    status: m.isActive ? ('ACTIVE' as const) : ('DISABLED' as const),
    created_at: new Date(m.createdAt).toISOString(),
    updated_at: new Date(m.updatedAt).toISOString(),
  }
}

export async function findMapping(env: Env, appId: string, mappingId: string): Promise<MappingWithUser | undefined> {
  return getDb(env.DB)
    .select(withUser)
    .from(appUserMappings)
    .innerJoin(users, eq(users.id, appUserMappings.userId))
    .where(and(eq(appUserMappings.appId, appId), eq(appUserMappings.id, mappingId)))
    .get()
}

export async function findMappingByKey(env: Env, appId: string, mappedKey: string) {
  return getDb(env.DB).select().from(appUserMappings).where(and(eq(appUserMappings.appId, appId), eq(appUserMappings.mappedKey, mappedKey))).get()
}

/**
 * The user with this mobile and their mapping in this app (null when unmapped). `access`
 * lets the caller's admission rule ride along as one more column of the same read: it is
 * given the user's id as an uncorrelated subquery.
 */
export async function queryUserMapping(db: DB, appId: string, mobile: E164, access?: (userId: SQL) => SQL<string | null>) {
  const userId = sql`(${db.select({ id: users.id }).from(users).where(eq(users.mobile, mobile))})`
  const row = await db
    .select({ user: { id: users.id, mobile: users.mobile, name: users.name, status: users.status }, mapping: appUserMappings, access: access ? access(userId) : sql<string | null>`NULL` })
    .from(users)
    .leftJoin(appUserMappings, and(eq(appUserMappings.userId, users.id), eq(appUserMappings.appId, appId)))
    .where(eq(users.mobile, mobile))
    .get()
  return row ?? null
}

/** `within`: a subquery of the user ids a delegated admin may see (src/delegation/scope.ts); omitted, every mapping. */
export async function listMappings(env: Env, appId: string, q: { page: number; pageSize: number; status?: 'ACTIVE' | 'DISABLED'; mobile?: string; mappedKey?: string; within?: SQL }) {
  const db = getDb(env.DB)
  const conds = [eq(appUserMappings.appId, appId)]
  if (q.within) conds.push(sql`${appUserMappings.userId} IN (${q.within})`)
  if (q.status) conds.push(eq(appUserMappings.isActive, q.status === 'ACTIVE'))
  if (q.mobile) conds.push(containsText(users.mobile, q.mobile))
  if (q.mappedKey) conds.push(eq(appUserMappings.mappedKey, q.mappedKey))
  const where = and(...conds)
  // not db.batch: joined columns sharing a name (`name`) would collide in D1 batch results
  const [rows, total] = await Promise.all([
    db
      .select(withUser)
      .from(appUserMappings)
      .innerJoin(users, eq(users.id, appUserMappings.userId))
      .where(where)
      .orderBy(desc(appUserMappings.createdAt), desc(appUserMappings.id))
      .limit(q.pageSize)
      .offset((q.page - 1) * q.pageSize),
    db.select({ n: count() }).from(appUserMappings).innerJoin(users, eq(users.id, appUserMappings.userId)).where(where),
  ])
  return { items: rows.map(publicMapping), page: q.page, page_size: q.pageSize, total: total[0]?.n ?? 0 }
}

/** The user of a mapping of the app (none when there is no such mapping), as a subquery. */
export function mappingUserSql(appId: string, mappingId: string): SQL {
  return sql`SELECT user_id FROM app_user_mappings WHERE app_id = ${appId} AND id = ${mappingId}`
}

/** A page of the app's mappings with the user's mobile, in id order after `afterId` (keyset paging, for the streamed export). */
export async function mappingsAfter(env: Env, appId: string, afterId: string, limit: number, filter: { status?: 'ACTIVE' | 'DISABLED' } = {}) {
  const conds = [eq(appUserMappings.appId, appId), gt(appUserMappings.id, afterId)]
  if (filter.status) conds.push(eq(appUserMappings.isActive, filter.status === 'ACTIVE'))
  return getDb(env.DB)
    .select({ id: appUserMappings.id, mobile: users.mobile, mappedKey: appUserMappings.mappedKey, name: appUserMappings.name, isActive: appUserMappings.isActive })
    .from(appUserMappings)
    .innerJoin(users, eq(users.id, appUserMappings.userId))
    .where(and(...conds))
    .orderBy(asc(appUserMappings.id))
    .limit(limit)
}

export function publicEvent(e: MappingEvent) {
  return {
    seq: e.id,
    event_id: e.eventId,
    type: e.type,
    event_type: e.eventType,
    app_id: e.appId,
    mapping_id: e.mappingId,
    user_id: e.userId,
    mobile: e.payload.mobile,
    name: e.payload.name,
    mapped_key: e.payload.mapped_key,
    status: e.payload.status,
    user_status: e.payload.user_status,
    created_at: new Date(e.createdAt).toISOString(),
  }
}

/** Outbox events (every kind) by event id (webhook delivery and its admin views). */
export function eventsByIdQuery(db: DB, eventIds: string[]): Promise<OutboxEvent[]> {
  return db.select().from(mappingEvents).where(inArray(mappingEvents.eventId, eventIds.length ? eventIds : ['\u0000']))
}

/**
 * Outbox events after sequence `after`, oldest first, without payloads: what the webhook
 * sweep scans (src/webhooks/sweep.ts). Sequences become visible in order (see listChanges).
 */
export function eventsAfterQuery(db: DB, after: number, limit: number) {
  return db
    .select({ seq: mappingEvents.id, eventId: mappingEvents.eventId, appId: mappingEvents.appId, createdAt: mappingEvents.createdAt })
    .from(mappingEvents)
    .where(gt(mappingEvents.id, after))
    .orderBy(asc(mappingEvents.id))
    .limit(limit)
}

/**
 * The app's changes after `since` (exclusive), in sequence order. The cursor is the outbox
 * sequence, never a timestamp: D1 commits writes one at a time, so once seq N is visible
 * every smaller seq is too, and changes sharing a millisecond still have distinct seqs.
 * Mapping and user events only: app events (permission.changed) are webhooks, not changes
 * to the app's mappings. They are filtered on the rows mapping_events_app_seq_idx yields,
 * so the cursor stays the seq of the last change shown and the index still drives the read.
 */
export async function listChanges(db: DB, appId: string, since: number, limit: number) {
  const rows = (await db
    .select()
    .from(mappingEvents)
    .where(and(eq(mappingEvents.appId, appId), gt(mappingEvents.id, since), inArray(mappingEvents.type, [...MAPPING_EVENT_KINDS])))
    .orderBy(asc(mappingEvents.id))
    .limit(limit + 1)) as MappingEvent[]
  const hasMore = rows.length > limit
  const page = rows.slice(0, limit)
  return { items: page.map(publicEvent), next_cursor: String(page.length ? page[page.length - 1].id : since), has_more: hasMore }
}
