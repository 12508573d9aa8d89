import { sql, type AnyColumn, type SQL } from 'drizzle-orm'

/**
 * `column LIKE '%text%'` with `%`, `_` and `\` in the text matched literally. SQLite has no
 * default escape character, hence the explicit ESCAPE clause.
 */
export function containsText(column: AnyColumn, text: string): SQL {
  const pattern = `%${text.replace(/[%_\\]/g, (m) => '\\' + m)}%`
  return sql`${column} LIKE ${pattern} ESCAPE '\\'`
}
