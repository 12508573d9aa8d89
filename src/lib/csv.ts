/**
 * CSV output (RFC 4180): fields with a comma, quote or line break are quoted, quotes
 * doubled; lines end in CRLF. Text a spreadsheet would run as a formula (starting with
 * `=`, `@`, a tab or CR, or `+`/`-` not followed by a plain number) gets a leading `'`
 * (OWASP "CSV Injection"); the importer removes that apostrophe again, so an export
 * re-imports as it was. Text that already starts with apostrophes before one of `= + - @`
 * gets one more, since the importer takes one off such text. Mobiles such as
 * `+8613800138000` stay as they are.
 */
export function csvField(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return ''
  let s = String(v)
  if (/^[=@\t\r]/.test(s) || (/^[+-]/.test(s) && !/^[+-]\d+(\.\d+)?$/.test(s)) || /^'+[=+\-@]/.test(s)) s = "'" + s
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
}

export function csvLine(cells: readonly (string | number | boolean | null | undefined)[]): string {
  return cells.map(csvField).join(',') + '\r\n'
}
