import type { Application } from '../apps/schema'

/**
 * The isolate's copies of app rows for signed calls (docs/security.md, "Caches"). An entry
 * is only ever *used* together with the app's AppGate object, which vouches for the row's
 * `version` in the same call that spends the nonce (src/signing/gate.ts): a cached row
 * whose version the gate does not vouch for is dropped and D1 is read again, so an entry
 * can never let a rotated secret or a disabled app through. The age limit only bounds how
 * long a change made in D1 *without* the admin API (which bumps nothing the gate knows of)
 * can go unseen. The row holds the secret's envelope, never the decrypted secret.
 */
export const APP_CACHE_MAX_AGE_MS = 60_000
const MAX_ENTRIES = 1000

type Entry = { row: Application; at: number }

// per database binding, like the drizzle instance (src/db): one Worker may serve several
const caches = new WeakMap<object, Map<string, Entry>>()

function cacheOf(db: object): Map<string, Entry> {
  let m = caches.get(db)
  if (!m) {
    m = new Map()
    caches.set(db, m)
  }
  return m
}

export function cachedApp(db: object, appId: string, now = Date.now()): Application | undefined {
  const m = cacheOf(db)
  const e = m.get(appId)
  if (!e) return undefined
  if (now - e.at > APP_CACHE_MAX_AGE_MS) {
    m.delete(appId)
    return undefined
  }
  return e.row
}

export function cacheApp(db: object, row: Application, now = Date.now()) {
  const m = cacheOf(db)
  m.delete(row.appId)
  // Map keeps insertion order: the first key is the oldest entry
  if (m.size >= MAX_ENTRIES) m.delete(m.keys().next().value!)
  m.set(row.appId, { row, at: now })
}

export function forgetApp(db: object, appId: string) {
  cacheOf(db).delete(appId)
}
