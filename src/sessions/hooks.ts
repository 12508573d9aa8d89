import type { Env } from '../env'
import { log } from '../lib/logger'

/**
 * Hooks run after sessions end (logout, logout-all, password change, account disabled),
 * so features such as OIDC back-channel logout can react. `sessionIds` absent means
 * "every session of the user". A failing hook is logged, never undoes the logout.
 */
export type SessionsEnded = { userId: string; sessionIds?: string[]; reason: string }
type SessionEndHook = (env: Env, ended: SessionsEnded) => Promise<void>

const hooks: SessionEndHook[] = []

export function onSessionsEnded(hook: SessionEndHook) {
  hooks.push(hook)
}

export async function runSessionEndHooks(env: Env, ended: SessionsEnded) {
  const results = await Promise.allSettled(hooks.map((h) => h(env, ended)))
  for (const r of results) if (r.status === 'rejected') log.error('session_end_hook.failed', { error: String(r.reason), user_id: ended.userId })
}
