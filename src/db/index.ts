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

export { schema }
