import Papa from 'papaparse'
import { ImportErrors } from './errors'

/*
 * Reading an uploaded spreadsheet into rows of text cells. CSV is parsed by papaparse
 * (RFC 4180 quoting, any line ending); XLSX by SheetJS (@e965/xlsx), loaded only when an
 * XLSX file arrives: its module is evaluated on first use, so CSV uploads and every other
 * route never pay for it (docs/import.md has the sizes). Every refusal is an ApiError (4xx)
 * naming the row where it can.
 */

export const MAX_FILE_BYTES = 10 * 1024 * 1024
export const MAX_ROWS = 50_000
export const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'

export type FileKind = 'csv' | 'xlsx'

export interface ParsedSheet {
  /** the header row as written */
  header: string[]
  /** data rows; `row` is the 1-based line of the spreadsheet (the header is row 1) */
  rows: { row: number; cells: string[] }[]
}

/** What a column of the file means, from its header: the field, then the accepted spellings (compared case-insensitively, spaces and `_`/`-` ignored). */
export type ColumnAliases<F extends string> = Record<F, readonly string[]>

const squash = (s: string) => s.normalize('NFKC').trim().toLowerCase().replace(/[\s_-]+/g, '')

/**
 * Which column holds which field. Unknown headers are ignored (and reported); a field
 * named twice, or a required field missing, is refused.
 */
export function mapColumns<F extends string>(header: string[], aliases: ColumnAliases<F>, required: readonly NoInfer<F>[]) {
  const lookup = new Map<string, F>()
  for (const [field, names] of Object.entries(aliases) as [F, readonly string[]][]) for (const n of [field, ...names]) lookup.set(squash(n), field)
  const index = {} as Partial<Record<F, number>>
  const ignored: string[] = []
  header.forEach((h, i) => {
    const field = lookup.get(squash(h))
    if (!field) {
      if (h.trim()) ignored.push(h)
      return
    }
    if (index[field] !== undefined) throw ImportErrors.duplicate_column({ message: `Row 1: columns ${index[field]! + 1} and ${i + 1} both mean "${field}"`, details: { row: 1, field, columns: [index[field]! + 1, i + 1] } })
    index[field] = i
  })
  const missing = required.filter((f) => index[f] === undefined)
  if (missing.length) {
    throw ImportErrors.missing_column({
      message: `Row 1 (the header) has no ${missing.map((f) => `"${f}"`).join(', ')} column; accepted headers: ${missing.map((f) => [f, ...aliases[f]].join(' / ')).join('; ')}`,
      details: { row: 1, missing, header },
    })
  }
  return { index, ignored }
}

/** Which parser a request's Content-Type (or an uploaded part's type and name) asks for. */
export function kindOf(contentType: string | null | undefined, filename?: string): FileKind | null {
  const ct = (contentType ?? '').split(';')[0].trim().toLowerCase()
  if (ct === XLSX_TYPE) return 'xlsx'
  if (ct === 'text/csv' || ct === 'application/csv') return 'csv'
  const name = filename?.toLowerCase() ?? ''
  if (name.endsWith('.xlsx')) return 'xlsx'
  if (name.endsWith('.csv')) return 'csv'
  // browsers send CSV parts as text/plain or application/vnd.ms-excel; the bytes decide
  if (ct === 'text/plain' || ct === 'application/vnd.ms-excel' || ct === 'application/octet-stream' || ct === '') return filename !== undefined ? 'csv' : null
  return null
}

export async function parseSheet(bytes: Uint8Array, kind: FileKind): Promise<ParsedSheet> {
  if (bytes.length === 0) throw ImportErrors.empty_file()
  if (bytes.length > MAX_FILE_BYTES) throw ImportErrors.file_too_large({ details: { limit_bytes: MAX_FILE_BYTES, bytes: bytes.length } })
  if (kind === 'csv') return toSheet(readCsv(decodeText(bytes)))
  const { table, fullRows } = await readXlsx(bytes)
  return toSheet(table, fullRows)
}

/**
 * An XLSX sheet that goes on past the rows read: its rows there were never looked at, so
 * they may be data. Refused rather than imported in part.
 */
const cutShort = (fullRows: number) =>
  ImportErrors.too_many_rows({
    message: `The sheet runs to row ${fullRows.toLocaleString('en')}, past the ${XLSX_SHEET_ROWS.toLocaleString('en')} rows read for at most ${MAX_ROWS.toLocaleString('en')} data rows (in an XLSX sheet, blank rows count); delete the empty rows, split the file, or save it as CSV`,
    details: { limit: MAX_ROWS, first_row_over: XLSX_SHEET_ROWS + 1 },
  })

/** `fullRows`: how far an XLSX sheet runs when `table` holds only its first XLSX_SHEET_ROWS rows. */
function toSheet(table: string[][], fullRows: number | null = null): ParsedSheet {
  // a spreadsheet's row number is its line; blank lines keep their number but carry nothing
  const headerAt = table.findIndex((r) => r.some((c) => c.trim() !== ''))
  if (headerAt < 0) throw fullRows === null ? ImportErrors.empty_file() : cutShort(fullRows)
  const header = table[headerAt].map((h) => h.trim())
  const rows: ParsedSheet['rows'] = []
  for (let i = headerAt + 1; i < table.length; i++) {
    const cells = table[i]
    if (!cells.some((c) => c.trim() !== '')) continue
    if (rows.length === MAX_ROWS) {
      throw ImportErrors.too_many_rows({ message: `More than ${MAX_ROWS.toLocaleString('en')} data rows (row ${i + 1} is the first one over); split the file`, details: { limit: MAX_ROWS, first_row_over: i + 1 } })
    }
    rows.push({ row: i + 1, cells })
  }
  // after the check above, which names the exact row when the rows read are too many already
  if (fullRows !== null) throw cutShort(fullRows)
  if (!rows.length) throw ImportErrors.empty_file({ message: `The file has a header (row ${headerAt + 1}) but no data rows` })
  return { header, rows }
}

/**
 * UTF-8, with or without a BOM. Anything else is refused with where it goes wrong, since
 * guessing (GBK, Latin-1) silently corrupts names.
 */
export function decodeText(bytes: Uint8Array): string {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw ImportErrors.unsupported_encoding({ message: 'The file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as "CSV UTF-8"', details: { encoding: 'UTF-16', row: 1 } })
  }
  if (bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) {
    throw ImportErrors.unsupported_file_type({ message: `The file is a ZIP archive (an XLSX workbook?); send it as ${XLSX_TYPE}` })
  }
  try {
    const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes)
    if (text.includes('\u0000')) throw new Error('NUL')
    return text
  } catch {
    const at = firstInvalidUtf8(bytes)
    let row = 1
    for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) row++
    throw ImportErrors.unsupported_encoding({
      message: `The file is not UTF-8: byte ${at + 1} (row ${row}) is not valid UTF-8. Save it as "CSV UTF-8" (Excel: Save As → CSV UTF-8); GBK/GB18030 and other encodings are not accepted`,
      details: { row, byte_offset: at },
    })
  }
}

function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i]
    const n = c < 0x80 ? (c === 0 ? -1 : 0) : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1
    if (n < 0) return i
    for (let k = 1; k <= n; k++) if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i
    i += n + 1
  }
  return b.length
}

function readCsv(text: string): string[][] {
  const result = Papa.parse<string[]>(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, { header: false, skipEmptyLines: false, delimiter: '' })
  // papaparse reports unclosed quotes and similar per row; refuse the file with the first one
  const bad = result.errors.find((e) => e.type === 'Quotes')
  if (bad) {
    const row = (bad.row ?? 0) + 1
    throw ImportErrors.malformed_file({ message: `Row ${row}: ${bad.message}`, details: { row } })
  }
  return result.data.map((r) => r.map((c) => (c ?? '').toString()))
}

/**
 * The ZIP entries' declared sizes, checked before SheetJS inflates them: a 10 MB upload
 * must not expand into more than the isolate's memory (a "zip bomb"). Reads only the ZIP
 * central directory (APPNOTE.TXT §4.3.16, §4.3.12); the workbook itself is SheetJS's.
 */
const MAX_INFLATED_BYTES = 96 * 1024 * 1024
function checkZip(bytes: Uint8Array) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let eocd = -1
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 0xffff); i--) {
    if (v.getUint32(i, true) === 0x06054b50) {
      eocd = i
      break
    }
  }
  if (eocd < 0) throw ImportErrors.malformed_file({ message: 'The XLSX file is not a valid workbook (no ZIP directory); save it again from the spreadsheet program' })
  const entries = v.getUint16(eocd + 10, true)
  let at = v.getUint32(eocd + 16, true)
  let total = 0
  for (let n = 0; n < entries; n++) {
    if (at + 46 > bytes.length || v.getUint32(at, true) !== 0x02014b50) throw ImportErrors.malformed_file({ message: 'The XLSX file is damaged (ZIP directory); save it again from the spreadsheet program' })
    total += v.getUint32(at + 24, true)
    at += 46 + v.getUint16(at + 28, true) + v.getUint16(at + 30, true) + v.getUint16(at + 32, true)
  }
  if (total > MAX_INFLATED_BYTES) {
    throw ImportErrors.file_too_large({ message: `The XLSX file expands to ${Math.round(total / 2 ** 20)} MiB, above ${MAX_INFLATED_BYTES / 2 ** 20} MiB; save it as CSV`, details: { inflated_bytes: total, limit_inflated_bytes: MAX_INFLATED_BYTES } })
  }
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return ''
  // mobiles typed into Excel are numbers: 13800138000 must not become 1.38E+10
  if (typeof v === 'number') return Number.isInteger(v) ? v.toFixed(0) : String(v)
  if (v instanceof Date) return v.toISOString()
  return String(v)
}

/**
 * Rows of an XLSX sheet read, blank ones included (SheetJS's sheetRows counts sheet rows):
 * the header and one data row past the limit, so a full sheet is told from a longer one.
 */
const XLSX_SHEET_ROWS = MAX_ROWS + 2

/** `fullRows`: how far the sheet runs when it goes on past XLSX_SHEET_ROWS (then `table` is cut short), else null. */
async function readXlsx(bytes: Uint8Array): Promise<{ table: string[][]; fullRows: number | null }> {
  if (!(bytes[0] === 0x50 && bytes[1] === 0x4b)) {
    throw ImportErrors.unsupported_file_type({ message: 'The body is not an XLSX workbook (a ZIP file); old .xls files are not accepted, save as .xlsx or CSV UTF-8' })
  }
  checkZip(bytes)
  // the "mini" build: XLSX without the legacy formats (XLS, ODS …) and codepage tables (docs/import.md)
  const mod = await import('@e965/xlsx/dist/xlsx.mini.min.js')
  const XLSX = ((mod as unknown as { default?: unknown }).default ?? mod) as typeof import('@e965/xlsx')
  let wb
  try {
    wb = XLSX.read(bytes, { type: 'array', dense: true, sheetRows: XLSX_SHEET_ROWS, cellFormula: false, cellHTML: false, cellStyles: false, cellNF: false, sheets: 0 })
  } catch (e) {
    throw ImportErrors.malformed_file({ message: `The XLSX file could not be read: ${String((e as Error)?.message ?? e).slice(0, 200)}` })
  }
  const first = wb.SheetNames[0]
  const sheet = first ? wb.Sheets[first] : undefined
  if (!sheet) throw ImportErrors.empty_file({ message: 'The workbook has no sheet' })
  const table = XLSX.utils.sheet_to_json<unknown[]>(sheet, { header: 1, raw: true, defval: '', blankrows: true })
  // SheetJS keeps the sheet's own range (its <dimension>) in !fullref when sheetRows cut it short
  const full = sheet['!fullref']
  const fullRows = full ? XLSX.utils.decode_range(full).e.r + 1 : null
  return { table: table.map((r) => r.map(cellText)), fullRows: fullRows !== null && fullRows > XLSX_SHEET_ROWS ? fullRows : null }
}
