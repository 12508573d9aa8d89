import { sql, type AnyColumn, type SQL } from 'drizzle-orm'

/**
 * `column` contains `text` as a plain substring: no character of `text` is a wildcard, and
 * ASCII letters match either case (SQLite's lower() folds ASCII only, as LIKE does). instr()
 * rather than LIKE because D1 refuses LIKE patterns longer than 50 bytes, and the API takes
 * search strings of up to 100 characters (more once `%` and `_` are escaped).
 */
export function containsText(column: AnyColumn, text: string): SQL {
  return sql`instr(lower(${column}), lower(${text})) > 0`
}
