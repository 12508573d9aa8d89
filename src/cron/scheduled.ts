import type { Env } from '../env'
import { log } from '../lib/logger'

/** One piece of periodic work; the list of them is in src/wiring.ts. */
export interface CronTask {
  name: string
  run(env: Env, now: number): Promise<unknown>
}

/**
 * Runs every task side by side; one failing does not stop the others. The run as a whole
 * fails (so the cron invocation shows as failed) when any task did.
 */
export async function runCronTasks(tasks: readonly CronTask[], env: Env, now = Date.now()) {
  const results = await Promise.allSettled(tasks.map((t) => t.run(env, now)))
  results.forEach((r, i) => {
    if (r.status === 'rejected') log.error('cron.failed', { task: tasks[i].name, error: String(r.reason) })
  })
  if (results.some((r) => r.status === 'rejected')) throw new Error('one or more cron tasks failed')
}
