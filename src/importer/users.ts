import type { Env } from '../env'
import { getDb } from '../db'
import type { E164 } from '../lib/mobile'
import { hashPassword, legacyHashFormat } from '../lib/password'
import { base64url, randomBytes } from '../lib/crypto'
import { endSessionsStatements } from '../auth/sessions'
import { runSessionEndHooks } from '../auth/session-hooks'
import type { User } from '../users/schema'
import { insertUsersStatement, isMobileTaken, passwordParams, updateUserStatement, usersByMobiles } from '../users/service'
import { userEventKind } from '../users/admin'
import { userEventsStatement } from '../mappings/service'
import { mapColumns, type ColumnAliases, type ParsedSheet } from './parse'
import type { ImportKind, Plan } from './apply'
import { REASONS, cell, invalidRow, readMobileRow, type Applied, type Classified, type JobContext, type PreviewRow, type Reason } from './rows'

/*
 * Users import (docs/import.md): `mobile` and optionally `name, email, status,
 * password_hash`. A password hash is stored as exported by the system the users come
 * from (any format src/lib/password accepts) and replaced by the current scheme at the
 * user's first sign-in. A user imported without one has no usable password: the account
 * gets the hash of a random secret nobody keeps, so signing in fails exactly as a wrong
 * password does (same cost as the decoy, nothing to tell by timing) until the user sets a
 * password with an SMS code (/page/pwd/reset, POST /api/v1/open/pwd/reset) or an admin sets one.
 * SKIP leaves existing accounts alone; OVERWRITE changes the fields the row fills in, and
 * the user's apps hear of it as they would of an admin's edit (the same outbox events, in
 * the same batch). Admin accounts are never changed by an import.
 */

export const USER_COLUMNS: ColumnAliases<'mobile' | 'name' | 'email' | 'status' | 'password_hash'> = {
  mobile: ['phone', 'mobile phone', 'mobile number', 'phone number', 'tel', '手机号', '手机', '手机号码', '电话'],
  name: ['full name', 'display name', '姓名', '名字'],
  email: ['e-mail', 'mail', '邮箱', '电子邮箱'],
  status: ['state', '状态'],
  password_hash: ['password', 'hash', 'passwordhash', '密码', '密码哈希'],
}

const READ_CHUNK = 2_000
/** Statements per users batch, well inside D1's 1,000 queries per invocation. */
const MAX_STATEMENTS = 300
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

function readRows(sheet: ParsedSheet) {
  const { index, ignored } = mapColumns(sheet.header, USER_COLUMNS, ['mobile'])
  const rows: PreviewRow[] = []
  const pending: PreviewRow[] = []
  const seen = new Map<string, number>()
  for (const { row, cells } of sheet.rows) {
    const raw = { mobile: cell(cells, index.mobile), name: cell(cells, index.name), email: cell(cells, index.email), status: cell(cells, index.status).toUpperCase(), password_hash: cell(cells, index.password_hash) }
    const data: PreviewRow['data'] = { mobile: raw.mobile, name: raw.name || null, email: raw.email || null, status: raw.status || null, password_hash: raw.password_hash || null }
    const read = readMobileRow(row, raw, data, ['mobile', 'name', 'email', 'password_hash'])
    if ('invalid' in read) {
      rows.push(read.invalid)
      continue
    }
    const { mobile } = read
    if (raw.email && !EMAIL_RE.test(raw.email)) {
      rows.push(invalidRow(row, 'invalid_email', data))
      continue
    }
    if (raw.status && raw.status !== 'ACTIVE' && raw.status !== 'DISABLED') {
      rows.push(invalidRow(row, 'invalid_status', data))
      continue
    }
    if (raw.password_hash) {
      const f = legacyHashFormat(raw.password_hash)
      if ('error' in f) {
        rows.push(invalidRow(row, 'invalid_password_hash', data, `password_hash: ${f.error}`))
        continue
      }
    }
    const earlier = seen.get(mobile)
    if (earlier !== undefined) {
      rows.push({ row, status: 'duplicate', reason: 'repeated_in_file', message: `Row ${earlier} has the same mobile; the first one counts`, fixed: true, data })
      continue
    }
    seen.set(mobile, row)
    const r: PreviewRow = { row, status: 'new', reason: null, message: null, fixed: false, data }
    rows.push(r)
    pending.push(r)
  }
  const columns: Record<string, string> = {}
  for (const [field, i] of Object.entries(index)) columns[sheet.header[i as number]] = field
  return { rows, pending, columns, ignored_columns: ignored }
}

async function existing(env: Env, rows: PreviewRow[]) {
  const found = await usersByMobiles(env, rows.map((r) => r.data.mobile as E164))
  return new Map(found.map((u) => [u.mobile as string, u]))
}

export async function classifyUsers(env: Env, sheet: ParsedSheet): Promise<Classified> {
  const { rows, pending, columns, ignored_columns } = readRows(sheet)
  for (let i = 0; i < pending.length; i += READ_CHUNK) {
    const part = pending.slice(i, i + READ_CHUNK)
    const byMobile = await existing(env, part)
    for (const r of part) {
      const u = byMobile.get(r.data.mobile!)
      if (!u) continue
      r.status = 'duplicate'
      r.reason = u.role === 'ADMIN' ? 'admin_account' : 'mobile_registered'
      r.message = REASONS[r.reason as Reason]
    }
  }
  return { rows, columns, ignored_columns }
}

type Patch = Partial<Pick<User, 'name' | 'email' | 'status' | 'passwordHash'>>

/** The fields a row fills in that differ from the account (empty cells change nothing). */
function patchOf(r: PreviewRow, u: User): Patch {
  const p: Patch = {}
  if (r.data.name !== null && r.data.name !== u.name) p.name = r.data.name
  if (r.data.email !== null && r.data.email !== u.email) p.email = r.data.email
  if (r.data.status !== null && r.data.status !== u.status) p.status = r.data.status as User['status']
  if (r.data.password_hash !== null && r.data.password_hash !== u.passwordHash) p.passwordHash = r.data.password_hash
  return p
}

async function planUsers(env: Env, job: JobContext, rows: PreviewRow[]): Promise<Plan> {
  const db = getDb(env.DB)
  const live = rows.filter((r) => !r.fixed)
  const byMobile = live.length ? await existing(env, live) : new Map<string, User>()
  const now = Date.now()
  const applied: Applied[] = []
  const inserts: User[] = []
  const statements: Plan['statements'] = []
  const ended: { userId: string; reason: string }[] = []
  let unusable: string | undefined
  for (const r of rows) {
    // the rest goes in the next batch: an update that tells the apps and ends sessions costs four statements
    if (statements.length + 4 > MAX_STATEMENTS) break
    if (r.fixed) {
      applied.push({ row: r.row, outcome: r.status === 'invalid' ? 'failed' : 'skipped', reason: r.reason, message: r.message })
      continue
    }
    const u = byMobile.get(r.data.mobile!)
    if (!u) {
      // one random secret per batch for the rows without a hash: it costs what the decoy costs, and nobody knows it
      const passwordHash = r.data.password_hash ?? (unusable ??= await hashPassword(base64url(randomBytes(32)), passwordParams(env)))
      inserts.push({
        id: crypto.randomUUID(),
        mobile: r.data.mobile as E164,
        passwordHash,
        name: r.data.name,
        email: r.data.email,
        status: (r.data.status as User['status'] | null) ?? 'ACTIVE',
        role: 'USER',
        createdAt: now,
        updatedAt: now,
      })
      applied.push({ row: r.row, outcome: 'created', reason: null, message: null })
      continue
    }
    if (u.role === 'ADMIN') {
      applied.push({ row: r.row, outcome: job.strategy === 'SKIP' ? 'skipped' : 'failed', reason: 'admin_account', message: REASONS.admin_account })
      continue
    }
    if (job.strategy === 'SKIP') {
      applied.push({ row: r.row, outcome: 'skipped', reason: 'mobile_registered', message: REASONS.mobile_registered })
      continue
    }
    const patch = patchOf(r, u)
    if (!Object.keys(patch).length) {
      applied.push({ row: r.row, outcome: 'skipped', reason: 'unchanged', message: REASONS.unchanged })
      continue
    }
    statements.push(updateUserStatement(db, u.id, patch, now))
    // after the update, so the payloads read the user as changed. No hand-over to delivery
    // here, as with the mapping import: the sweep schedules bulk events, and handing over
    // every batch's events would spend the D1 queries the job's budget counts on
    const event = userEventKind(u, patch)
    if (event) statements.push(userEventsStatement(db, u.id, event, now))
    // as an admin's change would: a disabled account or a replaced password ends the sessions
    const ends = patch.status === 'DISABLED' ? 'account_disabled' : patch.passwordHash ? 'password_set' : null
    if (ends) {
      statements.push(...endSessionsStatements(db, { userId: u.id }, now))
      ended.push({ userId: u.id, reason: ends })
    }
    applied.push({ row: r.row, outcome: 'updated', reason: 'mobile_registered', message: null })
  }
  if (inserts.length) statements.unshift(insertUsersStatement(db, inserts))
  return {
    statements,
    applied,
    after: ended.length ? async () => void (await Promise.all(ended.map((e) => runSessionEndHooks(env, e)))) : undefined,
  }
}

export const USERS_SCOPE = 'users'

export const userKind: ImportKind = {
  chunkRows: 1000,
  planReads: 1,
  // the bulk insert, and the updates of an OVERWRITE up to MAX_STATEMENTS (planUsers stops a batch there)
  maxStatements: () => 1 + MAX_STATEMENTS,
  auditAction: () => 'admin.user.import',
  auditTarget: () => ({ targetType: 'user', targetId: null }),
  plan: planUsers,
  isConflict: (e) => isMobileTaken(e),
}
