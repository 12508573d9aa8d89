/**
 * Failed-attempt counters for brute-force lockout (login per mobile and per IP, SMS codes).
 * Stored in KV with a TTL: KV has no atomic increment and is eventually consistent across
 * locations, so counts are approximate (an attacker spread over many locations can get a
 * few extra tries before every location sees the lockout). Documented in docs/security.md.
 */
export interface AttemptPolicy {
  /** failures allowed in the window before lockout */
  max: number
  /** window and lockout length, seconds (KV minimum TTL is 60) */
  windowS: number
}

interface Counter {
  n: number
  resetAt: number
}

const key = (scope: string, id: string) => `attempts:${scope}:${id}`

export async function lockedFor(kv: KVNamespace, scope: string, id: string, policy: AttemptPolicy, now = Date.now()): Promise<number> {
  const c = await kv.get<Counter>(key(scope, id), 'json')
  if (!c || c.resetAt <= now || c.n < policy.max) return 0
  return Math.ceil((c.resetAt - now) / 1000)
}

export async function recordFailure(kv: KVNamespace, scope: string, id: string, policy: AttemptPolicy, now = Date.now()): Promise<number> {
  const c = await kv.get<Counter>(key(scope, id), 'json')
  const fresh = !c || c.resetAt <= now
  const next: Counter = fresh ? { n: 1, resetAt: now + policy.windowS * 1000 } : { n: c.n + 1, resetAt: c.resetAt }
  const ttl = Math.max(60, Math.ceil((next.resetAt - now) / 1000))
  await kv.put(key(scope, id), JSON.stringify(next), { expirationTtl: ttl })
  return next.n
}

export async function clearFailures(kv: KVNamespace, scope: string, id: string) {
  await kv.delete(key(scope, id))
}
