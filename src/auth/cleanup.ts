import { and, isNotNull, lt, or } from 'drizzle-orm'
import type { Env } from '../env'
import { getDb } from '../db'
import { refreshTokens, revokedAccessTokens, sessions } from './schema'
import { REFRESH_GRACE_MS } from './tokens'

/** Rows are kept a day past expiry so that audits and support can still see them. */
const KEEP_EXPIRED_MS = 86400_000

/** Cron: drops sessions and refresh tokens a day past expiry or revocation, stale successor copies, and denylist rows of expired access tokens. */
export async function cleanupExpiredSessions(env: Env, now: number) {
  const db = getDb(env.DB)
  const cutoff = now - KEEP_EXPIRED_MS
  await db.batch([
    db.delete(refreshTokens).where(lt(refreshTokens.expiresAt, cutoff)),
    // the successor copy only matters during the grace window
    db.update(refreshTokens).set({ successorEnc: null }).where(and(isNotNull(refreshTokens.successorEnc), lt(refreshTokens.rotatedAt, now - REFRESH_GRACE_MS))),
    db.delete(sessions).where(or(lt(sessions.expiresAt, cutoff), lt(sessions.revokedAt, cutoff))),
    // an expired token is refused by its signature check's exp already
    db.delete(revokedAccessTokens).where(lt(revokedAccessTokens.expiresAt, now)),
  ])
}
