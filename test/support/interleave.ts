import { env } from 'cloudflare:test'
import type { Env } from '../../src/env'

// A test env whose D1 binding runs another change at an exact point of a request: the
// interleaving of two writers made deterministic, for races a check-then-write would lose.

// workerd's D1PreparedStatement keeps its SQL text in `statement`
type Stmt = D1PreparedStatement & { statement: string }

/**
 * The test env with a D1 binding that runs `before` once, just ahead of the first statement
 * (alone or in a batch) whose SQL matches `match`; every other call goes straight through.
 * `fired()` says whether it ran (the race under test did happen).
 */
export function interleaved(match: RegExp, before: () => Promise<unknown>): { env: Env; fired: () => boolean } {
  let pending: (() => Promise<unknown>) | null = before
  let fired = false
  const fire = async (stmts: Stmt[]) => {
    if (!pending || !stmts.some((s) => match.test(s.statement))) return
    const run = pending
    pending = null
    await run()
    fired = true
  }
  // the statements handed out are proxies; batch gets the D1 statements underneath
  const real = new WeakMap<object, Stmt>()
  const wrap = (stmt: Stmt): Stmt => {
    const w = new Proxy(stmt, {
      get(target, prop) {
        if (prop === 'bind') return (...values: unknown[]) => wrap(target.bind(...values) as Stmt)
        if (prop === 'run' || prop === 'all' || prop === 'raw' || prop === 'first') {
          return async (...args: unknown[]) => {
            await fire([target])
            return (target[prop] as (...a: unknown[]) => unknown).apply(target, args)
          }
        }
        const v = Reflect.get(target, prop)
        return typeof v === 'function' ? v.bind(target) : v
      },
    })
    real.set(w, stmt)
    return w
  }
  const db = new Proxy(env.DB, {
    get(target, prop) {
      if (prop === 'prepare') return (query: string) => wrap(target.prepare(query) as Stmt)
      if (prop === 'batch') {
        return async (stmts: Stmt[]) => {
          await fire(stmts)
          return target.batch(stmts.map((s) => real.get(s) ?? s))
        }
      }
      const v = Reflect.get(target, prop)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  return { env: { ...env, DB: db } as Env, fired: () => fired }
}

