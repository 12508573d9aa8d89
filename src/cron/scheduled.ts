import { lt, or, and, isNotNull } from 'drizzle-orm'
import type { Env } from '../env'
import { getDb } from '../db'
import { rotateKeys } from '../keys/service'
import { sessions, refreshTokens } from '../auth/schema'
import { log } from '../lib/logger'
import { REFRESH_GRACE_MS } from '../auth/tokens'
import { ensureBootstrapAdmin } from '../users/service'

/** Extra periodic work registered by features (outbox sweep, expired tickets ...). */
type CronTask = (env: Env, now: number) => Promise<void>
const tasks = new Map<string, CronTask>()
export function registerCronTask(name: string, task: CronTask) {
  tasks.set(name, task)
}

/** Rows are kept a day past expiry so that audits and support can still see them. */
const KEEP_EXPIRED_MS = 86400_000

export async function cleanupExpired(env: Env, now: number) {
  const db = getDb(env.DB)
  const cutoff = now - KEEP_EXPIRED_MS
  await db.batch([
    db.delete(refreshTokens).where(lt(refreshTokens.expiresAt, cutoff)),
    // the successor copy only matters during the grace window
    db.update(refreshTokens).set({ successorEnc: null }).where(and(isNotNull(refreshTokens.successorEnc), lt(refreshTokens.rotatedAt, now - REFRESH_GRACE_MS))),
    db.delete(sessions).where(or(lt(sessions.expiresAt, cutoff), lt(sessions.revokedAt, cutoff))),
  ])
}

export async function runScheduled(_controller: ScheduledController, env: Env, _ctx: ExecutionContext) {
  const now = Date.now()
  const all: [string, CronTask][] = [
    ['bootstrap-admin', (e) => ensureBootstrapAdmin(e)],
    ['rotate-keys', (e, n) => rotateKeys(e, { now: n }).then(() => undefined)],
    ['cleanup-expired', cleanupExpired],
    ...tasks,
  ]
  const results = await Promise.allSettled(all.map(([, t]) => t(env, now)))
  results.forEach((r, i) => {
    if (r.status === 'rejected') log.error('cron.failed', { task: all[i][0], error: String(r.reason) })
  })
  if (results.some((r) => r.status === 'rejected')) throw new Error('one or more cron tasks failed')
}
