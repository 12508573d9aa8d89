import type { AuditActor } from '../audit/service'
import { normalizeMobile, type E164 } from '../lib/mobile'
import { textProblem } from '../lib/text'

/*
 * The shapes an import passes around: a previewed row (stored in the importer's Durable
 * Object between preview and import), a job's context, and what applying a row did.
 */

export type PreviewStatus = 'new' | 'duplicate' | 'invalid'
export type Strategy = 'SKIP' | 'OVERWRITE'
export type RowOutcome = 'created' | 'updated' | 'skipped' | 'failed'

export interface PreviewRow {
  /** spreadsheet row number (the header is row 1) */
  row: number
  status: PreviewStatus
  /** a stable code (docs/import.md), null for a plain new row */
  reason: string | null
  message: string | null
  /**
   * Decided by the file alone (a bad cell, a repeat of an earlier row): the import does
   * not look at the database again for it. Other rows are planned afresh when applied.
   */
  fixed: boolean
  /** the row's fields as read and normalised (kind-specific) */
  data: Record<string, string | null>
}

export interface Applied {
  row: number
  outcome: RowOutcome
  reason: string | null
  message: string | null
}

export interface JobContext {
  jobId: string
  /** the app_id (mapping imports) or "users" */
  scope: string
  strategy: Strategy
  actor: AuditActor
}

export interface Classified {
  rows: PreviewRow[]
  /** header → field, as understood */
  columns: Record<string, string>
  ignored_columns: string[]
}

/** Cells longer than this are refused, per field (the same bounds as the single-item APIs). */
export const FIELD_MAX = { mobile: 32, mapped_key: 100, name: 100, email: 254, password_hash: 512 } as const

/**
 * The cells that are text a person typed, held to the rules of the JSON routes (typedText):
 * they are stored and sent on to the apps. A mobile or a hash with a control character
 * fails its own format check instead.
 */
const FREE_TEXT: ReadonlySet<keyof typeof FIELD_MAX> = new Set(['mapped_key', 'name', 'email'])

export function summaryOf(rows: Pick<PreviewRow, 'status'>[]) {
  const s = { total: rows.length, new: 0, duplicate: 0, invalid: 0 }
  for (const r of rows) s[r.status]++
  return s
}

/**
 * A cell as text: trimmed, with one leading apostrophe taken off text where apostrophes come
 * before one of `= + - @`: the one export puts before formula-like text (lib/csv.ts csvField),
 * which also adds one to text that already starts that way, so every value re-imports as it was.
 */
export function cell(cells: string[], i: number | undefined): string {
  if (i === undefined) return ''
  const v = (cells[i] ?? '').trim()
  return /^'+[=+\-@]/.test(v) ? v.slice(1) : v
}

/** Stable codes and their sentences (docs/import.md lists them). */
export const REASONS = {
  invalid_mobile: 'mobile is not a mobile number (E.164 such as +8613800138000, or 11 mainland digits)',
  mobile_missing: 'mobile is empty',
  mapped_key_missing: 'mapped_key is empty',
  user_not_found: 'No UAP user has this mobile number (import the users first)',
  field_too_long: 'A field is longer than allowed',
  invalid_characters: 'A field holds control characters (a line break, a tab …) or broken Unicode (a lone surrogate)',
  already_mapped: 'The user is already mapped to this mapped_key in this app',
  mapping_disabled: 'The user is mapped to this mapped_key, but the mapping is disabled',
  mapped_to_other_key: 'The user is already mapped to another mapped_key in this app',
  mapped_key_taken: 'Another user of this app holds this mapped_key',
  repeated_in_file: 'An earlier row of the file has the same mobile or key',
  unchanged: 'Nothing to change: the data already matches the row',
  concurrent_modification: 'The data was changed by someone else while importing; retry the row',
  mobile_registered: 'A user with this mobile number exists',
  admin_account: 'The mobile belongs to an admin account, which an import never changes',
  invalid_email: 'email is not an email address',
  invalid_status: 'status must be ACTIVE or DISABLED',
  invalid_password_hash: 'password_hash is not in an accepted format',
} as const
export type Reason = keyof typeof REASONS

export const invalidRow = (row: number, reason: Reason, data: PreviewRow['data'], message: string = REASONS[reason]): PreviewRow => ({ row, status: 'invalid', reason, message, fixed: true, data })

/**
 * The checks every kind of row starts with, in order: no cell over its bound, no control
 * character or lone surrogate in a free-text cell, a mobile present and a mobile number.
 * Writes the normalised mobile into `data`. Answers the invalid row, or the mobile for the
 * kind's own checks.
 */
export function readMobileRow<F extends keyof typeof FIELD_MAX>(
  row: number,
  raw: { mobile: string } & Record<F, string>,
  data: PreviewRow['data'],
  bounded: readonly F[],
): { invalid: PreviewRow } | { mobile: E164 } {
  const long = bounded.find((f) => raw[f].length > FIELD_MAX[f])
  if (long) return { invalid: invalidRow(row, 'field_too_long', data, `${long} is longer than ${FIELD_MAX[long]} characters`) }
  for (const f of bounded) {
    const problem = FREE_TEXT.has(f) ? textProblem(raw[f]) : null
    if (problem) return { invalid: invalidRow(row, 'invalid_characters', data, `${f} ${problem}`) }
  }
  if (!raw.mobile) return { invalid: invalidRow(row, 'mobile_missing', data) }
  const mobile = normalizeMobile(raw.mobile)
  if (!mobile) return { invalid: invalidRow(row, 'invalid_mobile', data) }
  data.mobile = mobile
  return { mobile }
}
