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
