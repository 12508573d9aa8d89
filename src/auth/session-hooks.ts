import type { Env } from '../env'
import { log } from '../lib/logger'

/**
 * Hooks run after sessions end (logout, logout-all, password change, account disabled),
 * so features such as OIDC back-channel logout can react. `sessionIds` absent means
 * "every session of the user". A failing hook is logged, never undoes the logout.
 * The hooks are listed in src/wiring.ts and installed by src/index.ts.
 */
export type SessionsEnded = { userId: string; sessionIds?: string[]; reason: string }
export type SessionEndHook = (env: Env, ended: SessionsEnded) => Promise<void>

let hooks: readonly SessionEndHook[] = []

export function installSessionEndHooks(list: readonly SessionEndHook[]) {
  hooks = list
}

export async function runSessionEndHooks(env: Env, ended: SessionsEnded) {
  const results = await Promise.allSettled(hooks.map((h) => h(env, ended)))
  for (const r of results) if (r.status === 'rejected') log.error('session_end_hook.failed', { error: String(r.reason), user_id: ended.userId })
}
