import type { Env } from '../env'
import { getDb } from '../db'
import type { E164 } from '../lib/mobile'
import type { AppUserMapping } from '../mappings/schema'
import { classifyWriteError, insertMappingsStatements, mappingStateOf, updateMappingsStatements } from '../mappings/service'
import { mapColumns, type ColumnAliases, type ParsedSheet } from './parse'
import type { ImportKind, Plan } from './apply'
import { REASONS, cell, invalidRow, readMobileRow, type Applied, type Classified, type JobContext, type PreviewRow, type Reason } from './rows'

/*
 * Mapping import (docs/import.md): rows `mobile, mapped_key, name` into one app.
 * Preview classifies each row against the database; the import plans each row again when
 * it applies it (the database may have moved since the preview), with the strategy:
 * SKIP leaves every existing mapping alone, OVERWRITE changes the user's mapping to the
 * row. Neither takes a key away from another user.
 */

export const MAPPING_COLUMNS: ColumnAliases<'mobile' | 'mapped_key' | 'name'> = {
  mobile: ['phone', 'mobile phone', 'mobile number', 'phone number', 'tel', '手机号', '手机', '手机号码', '电话'],
  mapped_key: ['account', 'key', 'username', 'login', '映射账号', '账号', '帐号', '用户名'],
  name: ['full name', 'display name', '姓名', '名字', '名称'],
}

/** D1 reads per classification step: the lists travel as JSON, so this is a size bound, not a parameter bound. */
const READ_CHUNK = 2_000

/** Reads the cells and checks what the file alone can tell: bad cells, repeats. */
function readRows(sheet: ParsedSheet): Classified & { pending: PreviewRow[] } {
  const { index, ignored } = mapColumns(sheet.header, MAPPING_COLUMNS, ['mobile', 'mapped_key'])
  const rows: PreviewRow[] = []
  const pending: PreviewRow[] = []
  const seenMobile = new Map<string, number>()
  const seenKey = new Map<string, number>()
  for (const { row, cells } of sheet.rows) {
    const raw = { mobile: cell(cells, index.mobile), mapped_key: cell(cells, index.mapped_key), name: cell(cells, index.name) }
    const data = { mobile: raw.mobile, mapped_key: raw.mapped_key, name: raw.name || null }
    const read = readMobileRow(row, raw, data, ['mobile', 'mapped_key', 'name'])
    if ('invalid' in read) {
      rows.push(read.invalid)
      continue
    }
    const { mobile } = read
    if (!raw.mapped_key) {
      rows.push(invalidRow(row, 'mapped_key_missing', data))
      continue
    }
    const earlier = seenMobile.get(mobile) ?? seenKey.get(raw.mapped_key)
    if (earlier !== undefined) {
      const what = seenMobile.has(mobile) ? 'mobile' : 'mapped_key'
      rows.push({ row, status: 'duplicate', reason: 'repeated_in_file', message: `Row ${earlier} has the same ${what}; the first one counts`, fixed: true, data })
      continue
    }
    seenMobile.set(mobile, row)
    seenKey.set(raw.mapped_key, row)
    const r: PreviewRow = { row, status: 'new', reason: null, message: null, fixed: false, data }
    rows.push(r)
    pending.push(r)
  }
  const columns: Record<string, string> = {}
  for (const [field, i] of Object.entries(index)) columns[sheet.header[i as number]] = field
  return { rows, pending, columns, ignored_columns: ignored }
}

type State = Awaited<ReturnType<typeof mappingStateOf>>

async function stateOf(env: Env, appId: string, rows: PreviewRow[]): Promise<State> {
  return mappingStateOf(
    env,
    appId,
    rows.map((r) => r.data.mobile as E164),
    rows.map((r) => r.data.mapped_key!),
  )
}

type Verdict =
  | { kind: 'invalid' | 'duplicate'; reason: Reason; message?: string }
  | { kind: 'insert'; userId: string }
  | { kind: 'update'; current: AppUserMapping; next: Partial<Pick<AppUserMapping, 'mappedKey' | 'name' | 'isActive'>>; reason: Reason }
  | { kind: 'same'; reason: Reason }

/**
 * One row against the state: the same rules for preview (classification) and import
 * (with the strategy deciding what a duplicate becomes).
 */
function judge(r: PreviewRow, state: State): Verdict {
  const key = r.data.mapped_key!
  const name = r.data.name
  const found = state.byMobile.get(r.data.mobile!)
  if (!found) return { kind: 'invalid', reason: 'user_not_found' }
  const current = found.mapping
  const holder = state.byKey.get(key)
  const heldByOther = holder && holder.userId !== found.user.id
  if (!current) {
    if (heldByOther) return { kind: 'duplicate', reason: 'mapped_key_taken' }
    return { kind: 'insert', userId: found.user.id }
  }
  const nextName = name ?? current.name
  if (current.mappedKey === key) {
    if (current.isActive && nextName === current.name) return { kind: 'same', reason: 'already_mapped' }
    return { kind: 'update', current, next: { name: nextName, isActive: true }, reason: current.isActive ? 'already_mapped' : 'mapping_disabled' }
  }
  if (heldByOther) return { kind: 'duplicate', reason: 'mapped_key_taken' }
  return { kind: 'update', current, next: { mappedKey: key, name: nextName, isActive: true }, reason: 'mapped_to_other_key' }
}

/** Preview: every row of the file classified new / duplicate / invalid with its reason. */
export async function classifyMappings(env: Env, appId: string, sheet: ParsedSheet): Promise<Classified> {
  const { rows, pending, columns, ignored_columns } = readRows(sheet)
  for (let i = 0; i < pending.length; i += READ_CHUNK) {
    const part = pending.slice(i, i + READ_CHUNK)
    const state = await stateOf(env, appId, part)
    for (const r of part) {
      const v = judge(r, state)
      if (v.kind === 'insert') continue
      r.status = v.kind === 'invalid' ? 'invalid' : 'duplicate'
      r.reason = v.reason
      r.message = ('message' in v && v.message) || REASONS[v.reason]
    }
  }
  return { rows, columns, ignored_columns }
}

function remember(state: State, prev: AppUserMapping | null, row: AppUserMapping, mobile: string) {
  if (prev && state.byKey.get(prev.mappedKey)?.id === prev.id) state.byKey.delete(prev.mappedKey)
  state.byKey.set(row.mappedKey, row)
  const found = state.byMobile.get(mobile)
  if (found) found.mapping = row
}

/** Import: the rows planned against fresh reads, in file order (later rows see earlier ones). */
async function planMappings(env: Env, job: JobContext, rows: PreviewRow[]): Promise<Plan> {
  const db = getDb(env.DB)
  const appId = job.scope
  const live = rows.filter((r) => !r.fixed)
  const state = live.length ? await stateOf(env, appId, live) : { byMobile: new Map(), byKey: new Map() }
  const now = Date.now()
  const inserts: { row: number; userId: string; mappedKey: string; name: string | null; mobile: string }[] = []
  const updates: { row: number; prev: AppUserMapping; next: Partial<AppUserMapping>; type: 'ADD' | 'UPDATE' }[] = []
  const applied: Applied[] = []
  const skip = (row: number, reason: Reason, message?: string | null) => applied.push({ row, outcome: 'skipped', reason, message: message ?? REASONS[reason] })
  const fail = (row: number, reason: Reason, message?: string | null) => applied.push({ row, outcome: 'failed', reason, message: message ?? REASONS[reason] })
  for (const r of rows) {
    if (r.fixed) {
      if (r.status === 'invalid') fail(r.row, r.reason as Reason, r.message)
      else skip(r.row, r.reason as Reason, r.message)
      continue
    }
    const v = judge(r, state)
    if (v.kind === 'invalid') fail(r.row, v.reason)
    else if (v.kind === 'duplicate') (job.strategy === 'SKIP' ? skip : fail)(r.row, v.reason)
    else if (v.kind === 'same') skip(r.row, job.strategy === 'SKIP' ? v.reason : 'unchanged')
    else if (v.kind === 'insert') {
      const ins = { row: r.row, userId: v.userId, mappedKey: r.data.mapped_key!, name: r.data.name, mobile: r.data.mobile! }
      inserts.push(ins)
      remember(state, null, { id: '', appId, userId: v.userId, mappedKey: ins.mappedKey, name: ins.name, isActive: true, createdAt: now, updatedAt: now, lastEventId: null }, ins.mobile)
      applied.push({ row: r.row, outcome: 'created', reason: null, message: null })
    } else if (job.strategy === 'SKIP') skip(r.row, v.reason)
    else if (v.kind === 'update') {
      // a re-enabled mapping is an ADD for receivers, as with sync and the admin routes
      updates.push({ row: r.row, prev: v.current, next: v.next, type: v.current.isActive ? 'UPDATE' : 'ADD' })
      remember(state, v.current, { ...v.current, ...v.next } as AppUserMapping, r.data.mobile!)
      applied.push({ row: r.row, outcome: 'updated', reason: v.reason, message: null })
    }
  }
  // updates first: a key an earlier row moved away from is free for a later row's insert
  const u = updateMappingsStatements(db, updates.map((x) => ({ prev: x.prev, next: x.next, type: x.type })), now)
  const ins = insertMappingsStatements(db, appId, inserts, now)
  return { statements: [...u.statements, ...ins.statements], applied }
}

export const mappingKind: ImportKind = {
  chunkRows: 1000,
  // users by mobile, mappings by key; inserts and updates two bulk statements each, whatever the count
  planReads: 2,
  maxStatements: () => 4,
  auditAction: (job) => (job.actor.actorType === 'app' ? 'app.mapping.import' : 'admin.mapping.import'),
  auditTarget: (job) => ({ targetType: 'application', targetId: job.scope }),
  plan: planMappings,
  isConflict: (e) => classifyWriteError(e) !== null,
}
