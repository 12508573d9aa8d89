import type { SQL } from 'drizzle-orm'
import type { Env } from '../env'
import { csvLine } from '../lib/csv'
import { usersAfter } from '../users/service'
import { mappingsAfter } from '../mappings/service'

/*
 * Exports in the columns the imports read (docs/import.md), streamed: the body is a
 * ReadableStream that reads the next page from D1 only when the client has taken the
 * previous one (pull), paging by primary key, never OFFSET, so each page costs the same
 * and memory holds one page whatever the table's size. 100,000 users are 100 queries,
 * inside D1's 1,000 per invocation.
 */

export const EXPORT_PAGE = 1_000
const encoder = new TextEncoder()

function pagedCsv<T extends { id: string }>(header: string[], page: (afterId: string) => Promise<T[]>, cells: (row: T) => (string | null)[]): ReadableStream<Uint8Array> {
  let after = ''
  let done = false
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        // a BOM so that Excel opens the UTF-8 names right; the importer accepts it
        controller.enqueue(encoder.encode('\ufeff' + csvLine(header)))
      },
      async pull(controller) {
        if (done) return
        const rows = await page(after)
        if (rows.length) {
          after = rows[rows.length - 1].id
          controller.enqueue(encoder.encode(rows.map((r) => csvLine(cells(r))).join('')))
        }
        if (rows.length < EXPORT_PAGE) {
          done = true
          controller.close()
        }
      },
    },
    { highWaterMark: 1 },
  )
}

/** `within`: the user ids a delegated admin may see (src/delegation/scope.ts). */
export function exportUsers(env: Env, filter: { status?: 'ACTIVE' | 'DISABLED'; search?: string; within?: SQL }) {
  return pagedCsv(
    ['mobile', 'name', 'email', 'status'],
    (after) => usersAfter(env, after, EXPORT_PAGE, filter),
    (u) => [u.mobile, u.name, u.email, u.status],
  )
}

export function exportMappings(env: Env, appId: string, filter: { status?: 'ACTIVE' | 'DISABLED' }) {
  return pagedCsv(
    ['mobile', 'mapped_key', 'name'],
    (after) => mappingsAfter(env, appId, after, EXPORT_PAGE, filter),
    (m) => [m.mobile, m.mappedKey, m.name],
  )
}
