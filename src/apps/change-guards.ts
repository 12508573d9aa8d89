import type { Env } from '../env'

/**
 * Guards run around every admin write of an application row (src/apps/admin.ts). A guard
 * is called before the D1 write (a failure aborts the change: nothing is written) and
 * returns the function called after it with the row's new `version` (null: the row is
 * gone). The signed partner API installs one (src/signing/gate.ts holdAppChange): it is
 * what lets signed calls use a cached app row without ever accepting a rotated secret or a
 * disabled app. Listed in src/wiring.ts, installed by src/index.ts.
 */
export type AppChangeGuard = (env: Env, appId: string) => Promise<(version: number | null) => Promise<void>>

let guards: readonly AppChangeGuard[] = []

export function installAppChangeGuards(list: readonly AppChangeGuard[]) {
  guards = list
}

/**
 * Runs `write` (one db.batch: the change, its audit row) inside every guard. When the write
 * fails the guards are not released: they stay closed, which is the safe side (see each
 * guard for how it recovers).
 */
export async function guardedAppChange<T>(env: Env, appId: string, write: () => Promise<{ result: T; version: number | null }>): Promise<T> {
  const releases = await Promise.all(guards.map((g) => g(env, appId)))
  const { result, version } = await write()
  await Promise.all(releases.map((release) => release(version)))
  return result
}
