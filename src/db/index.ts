import { fillPlaceholders } from 'drizzle-orm'
import { drizzle } from 'drizzle-orm/d1'
import * as schema from './schema'

export type DB = ReturnType<typeof getDb>

const cache = new WeakMap<D1Database, ReturnType<typeof drizzle<typeof schema>>>()

export function getDb(d1: D1Database) {
  let db = cache.get(d1)
  if (!db) {
    db = drizzle(d1, { schema })
    cache.set(d1, db)
  }
  return db
}

/**
 * A query built once per D1 binding and kept (drizzle's `prepare()`, values as
 * `sql.placeholder`s): routes that run on every partner call skip rebuilding the same SQL
 * string from its builder on each request, which costs more Worker CPU than the query's
 * own bookkeeping. The binding is the key, so tests with other databases get their own.
 */
export function preparedOnce<P>(build: (db: DB) => P): (d1: D1Database) => P {
  const built = new WeakMap<D1Database, P>()
  return (d1) => {
    let p = built.get(d1)
    if (p === undefined) {
      p = build(getDb(d1))
      built.set(d1, p)
    }
    return p
  }
}

/**
 * A write statement built once per D1 binding (its SQL text, values as `sql.placeholder`s)
 * and bound on each call as a plain D1 statement, for `d1.batch`: the hottest write batch
 * (refresh-token rotation, on every refresh) skips rebuilding its SQL with drizzle on every
 * request. Placeholder values are encoded by their columns as drizzle's own prepared
 * queries do (fillPlaceholders). Every statement of such a batch must be one of these.
 */
export function statementOnce(build: (db: DB) => { toSQL(): { sql: string; params: unknown[] } }): (d1: D1Database, values: Record<string, unknown>) => D1PreparedStatement {
  const built = new WeakMap<D1Database, { sql: string; params: unknown[] }>()
  return (d1, values) => {
    let q = built.get(d1)
    if (q === undefined) {
      q = build(getDb(d1)).toSQL()
      built.set(d1, q)
    }
    return d1.prepare(q.sql).bind(...fillPlaceholders(q.params, values))
  }
}

/** A D1 Sessions API bookmark, as D1 writes them (`getBookmark()`): four hex groups. */
export const BOOKMARK_RE = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/

/**
 * Reads that may be served by a nearby D1 read replica (the Sessions API). Without a
 * bookmark any replica will do; with one, D1 answers from a copy at least as fresh as the
 * read that returned it (sequential consistency across requests, across locations).
 * Only for reads whose answer may lag the primary by the replication delay: never for a
 * check that enforces a revocation (docs/storage.md lists which routes use it).
 */
export function replicaRead(d1: D1Database, bookmark?: string) {
  const session = d1.withSession(bookmark ?? 'first-unconstrained')
  // drizzle's D1 driver needs only prepare() and batch(), which a session has.
  const db = drizzle(session as unknown as D1Database, { schema })
  return { db, bookmark: () => session.getBookmark() }
}

export { schema }
