import type { Env } from '../env'
import { hitRateLimit, ipRateKey } from './index'
import type { HitResult } from './window'

/**
 * Limits that count only refused calls (`partner_ip` for signed calls, `oauth_ip` for
 * UserInfo and introspection): a call that was admitted is bounded elsewhere (its app's
 * gate, its token), so it costs no limiter call; each refused call is counted in the IP's
 * limiter object after the fact. Once that object says the IP is over its limit, this
 * isolate refuses the IP's calls before doing any work until the window ends, and other
 * isolates learn it at their first refused call from it.
 *
 * The memory holds only answers the limiter object already gave, so keeping them refuses
 * nothing the object would admit. Bounded; when full, the entry nearest its end is dropped.
 */
const limited = new WeakMap<object, Map<string, { until: number; hit: HitResult }>>()
const MAX_LIMITED = 10_000

const entryKey = (policy: string, ip: string) => `${policy}:${ipRateKey(ip)}`

/** The refusal this isolate remembers for the IP under the policy, with the seconds left; null when none. */
export function knownLimited(env: Env, policy: string, ip: string): HitResult | null {
  const m = limited.get(env.RATE_LIMITER)
  const key = entryKey(policy, ip)
  const e = m?.get(key)
  if (!e) return null
  const left = e.until - Date.now()
  if (left <= 0) {
    m!.delete(key)
    return null
  }
  return { ...e.hit, retryAfterS: Math.max(1, Math.ceil(left / 1000)) }
}

/** Counts one refused call of the IP; a refusal from the limiter is remembered until its window ends. */
export async function countRefused(env: Env, policy: string, ip: string): Promise<HitResult> {
  const hit = await hitRateLimit(env, policy, ip)
  if (!hit.allowed) remember(env, policy, ip, hit)
  return hit
}

function remember(env: Env, policy: string, ip: string, hit: HitResult) {
  let m = limited.get(env.RATE_LIMITER)
  if (!m) limited.set(env.RATE_LIMITER, (m = new Map()))
  if (m.size >= MAX_LIMITED) {
    let soonest: string | undefined
    let at = Infinity
    for (const [k, v] of m) if (v.until < at) [soonest, at] = [k, v.until]
    if (soonest !== undefined) m.delete(soonest)
  }
  m.set(entryKey(policy, ip), { until: Date.now() + hit.retryAfterS * 1000, hit })
}
