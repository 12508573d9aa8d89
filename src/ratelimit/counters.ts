import type { Env } from '../env'
import type { HitResult } from './durable-object'

/**
 * Exact counters on the RateLimiter Durable Object (one object per name, worldwide), for
 * product rules that must hold strictly across locations: single use of a captcha or an
 * SMS code, SMS resend cooldown, daily caps, code attempts, sign-in failures. Unlike the RATE_LIMITS
 * policies these numbers are fixed by the caller, not tunable by configuration.
 */
function counterObject(env: Env, name: string) {
  return env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(name))
}

/** Counts one hit against `limit` per fixed window of `windowS` seconds. */
export function countHit(env: Env, name: string, limit: number, windowS: number): Promise<HitResult> {
  return counterObject(env, name).hit(limit, windowS * 1000)
}

/** True for the first call with this name within `windowS`, false for every later one. */
export async function firstUse(env: Env, name: string, windowS: number): Promise<boolean> {
  return (await countHit(env, `once:${name}`, 1, windowS)).allowed
}

/** Starts a counter over (e.g. attempts on a code when a new code is sent). */
export function resetCounter(env: Env, name: string): Promise<void> {
  return counterObject(env, name).reset()
}

/**
 * Gives back hits counted in advance (`countHit` before a password or code check) that
 * turned out not to count, e.g. a right password. Reserving first keeps the limit exact
 * under concurrency; refunding keeps it a count of failures.
 */
export function refundHit(env: Env, name: string, cost = 1): Promise<void> {
  return counterObject(env, name).refund(cost)
}

/** The counter's current count and the seconds until its window ends, without counting. */
export function peekCounter(env: Env, name: string): Promise<{ count: number; retryAfterS: number }> {
  return counterObject(env, name).peek()
}
