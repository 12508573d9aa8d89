import type { Context, MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { ConfigError, type Env } from '../env'
import { CommonErrors } from '../lib/errors'
import type { HitResult } from './window'

export interface RatePolicy {
  limit: number
  windowS: number
}

/**
 * Default policies. Override any of them with the RATE_LIMITS variable, a JSON object such
 * as {"signed_app": {"limit": 1200, "windowS": 60}}.
 */
export const DEFAULT_POLICIES: Record<string, RatePolicy> = {
  /** per app_id, signed /api/v1/open/* and /api/v1/simple/* calls (counted in the app's AppGate object after the signature and nonce checks) */
  signed_app: { limit: 600, windowS: 60 },
  /** per app_id, X-App-Access-Token calls (mapping sync/query/changes) */
  app_token: { limit: 600, windowS: 60 },
  /** per client IP: signed calls that are not admitted (src/signing/verify.ts), and every X-App-Access-Token call before authentication; bounds unauthenticated work */
  partner_ip: { limit: 1200, windowS: 60 },
  captcha_ip: { limit: 30, windowS: 60 },
  sms_ip: { limit: 20, windowS: 3600 },
  /** per client IP, SMS code checks by end users (hosted pages, POST /api/v1/auth/register); signed partner calls come from the partner's server and are bounded per number instead */
  sms_verify_ip: { limit: 60, windowS: 3600 },
  register_ip: { limit: 20, windowS: 3600 },
  /** per client IP, starting and finishing sign-ins with another identity provider (src/federation/) */
  federation_ip: { limit: 60, windowS: 300 },
  /** per source app_id, ticket exchanges (counted in the app's AppGate object with signed_app) */
  ticket_exchange_app: { limit: 1200, windowS: 60 },
  /** per user, password changes on the portal (each checks the current password) */
  portal_password: { limit: 10, windowS: 900 },
  /** per client IP: every /oauth2/* request of the endpoints that write, decided before anything is written; UserInfo and introspection calls only when refused (src/oidc/routes.ts) */
  oauth_ip: { limit: 1200, windowS: 60 },
}

const parsedOverrides = new WeakMap<object, Record<string, Partial<RatePolicy>>>()

/**
 * RATE_LIMITS is checked whole: a typo must not leave production on the defaults without
 * anyone noticing, nor turn every partner call into a 500. A bad value is a ConfigError
 * (503 misconfigured, naming the problem) on every rate-limited route.
 */
function parseOverrides(raw: string | undefined): Record<string, Partial<RatePolicy>> {
  if (!raw) return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    throw new ConfigError('RATE_LIMITS must be JSON, e.g. {"signed_app": {"limit": 1200, "windowS": 60}}')
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError('RATE_LIMITS must be a JSON object of policy name → {limit, windowS}')
  const out: Record<string, Partial<RatePolicy>> = {}
  for (const [name, o] of Object.entries(parsed)) {
    if (!(name in DEFAULT_POLICIES)) throw new ConfigError(`RATE_LIMITS.${name}: unknown policy (known: ${Object.keys(DEFAULT_POLICIES).join(', ')})`)
    if (!o || typeof o !== 'object' || Array.isArray(o)) throw new ConfigError(`RATE_LIMITS.${name} must be an object such as {"limit": 600, "windowS": 60}`)
    const policy: Partial<RatePolicy> = {}
    for (const [field, v] of Object.entries(o)) {
      if (field !== 'limit' && field !== 'windowS') throw new ConfigError(`RATE_LIMITS.${name}.${field}: unknown field (use limit and windowS)`)
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new ConfigError(`RATE_LIMITS.${name}.${field} must be a positive integer`)
      policy[field] = v
    }
    out[name] = policy
  }
  return out
}

export function policyFor(env: Env, name: string): RatePolicy {
  let overrides = parsedOverrides.get(env)
  if (!overrides) {
    overrides = parseOverrides(env.RATE_LIMITS)
    parsedOverrides.set(env, overrides)
  }
  const base = DEFAULT_POLICIES[name]
  if (!base) throw new Error(`rate policy ${name} is not defined`)
  return { ...base, ...overrides[name] }
}

/**
 * The key a client IP is counted under. An IPv6 end site gets a /64 or more (RFC 6177;
 * RFC 4291 §2.5.1: 64-bit interface ids chosen by the host), so counting per address would
 * give one client 2^64 budgets and as many limiter objects: IPv6 is counted by its /64.
 * IPv4 (and IPv4-mapped IPv6) is counted per address. Anything unparseable is kept as is.
 */
export function ipRateKey(ip: string): string {
  if (!ip.includes(':')) return ip
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip)
  if (mapped) return mapped[1]
  const halves = ip.split('::')
  if (halves.length > 2) return ip
  const part = (h: string) => (h === '' ? [] : h.split(':'))
  const head = part(halves[0])
  const tail = halves.length === 2 ? part(halves[1]) : []
  const groups = halves.length === 2 ? [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail] : head
  if (groups.length !== 8 || !groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return ip
  return groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':') + '::/64'
}

/**
 * Counts one hit for (policy, key) in its Durable Object. Policies named `*_ip` are keyed by
 * client IP (see ipRateKey). The object writes a policy's window within a second rather than
 * before answering (RateLimiter, PERSIST_SOON_MS).
 */
export async function hitRateLimit(env: Env, policyName: string, key: string, cost = 1): Promise<HitResult> {
  const policy = policyFor(env, policyName)
  const k = policyName.endsWith('_ip') ? ipRateKey(key) : key
  const limiter = env.RATE_LIMITER.get(env.RATE_LIMITER.idFromName(`${policyName}:${k}`))
  return limiter.hit(policy.limit, policy.windowS * 1000, cost, 'soon')
}

/** X-RateLimit-* of a counted hit (the last policy counted wins). */
export function setRateHeaders(c: Context<AppEnv>, r: HitResult) {
  c.header('X-RateLimit-Limit', String(r.limit))
  c.header('X-RateLimit-Remaining', String(r.remaining))
}

/** The 429 `rate_limited` error (JSON error body, Retry-After) for a refused hit, also for services that count outside a request context. */
export function rateLimitedError(policyName: string, r: HitResult) {
  return CommonErrors.rate_limited({
    message: `Rate limit exceeded (${policyName}); retry after ${r.retryAfterS} s`,
    details: { policy: policyName, limit: r.limit },
    headers: { 'Retry-After': String(r.retryAfterS), 'X-RateLimit-Limit': String(r.limit), 'X-RateLimit-Remaining': '0' },
  })
}

/** Sets the X-RateLimit-* headers of a hit and throws the 429 when it was refused. */
export function applyRateLimit(c: Context<AppEnv>, policyName: string, r: HitResult): HitResult {
  setRateHeaders(c, r)
  if (!r.allowed) throw rateLimitedError(policyName, r)
  return r
}

/** Throws the 429 (JSON error body, Retry-After) when the hit is refused; sets X-RateLimit-* headers. */
export async function enforceRateLimit(c: Context<AppEnv>, policyName: string, key: string, cost = 1) {
  return applyRateLimit(c, policyName, await hitRateLimit(c.env, policyName, key, cost))
}

/** Middleware form: `rateLimit('captcha_ip', (c) => c.get('clientIp'))`. A null key skips counting. */
export function rateLimit<E extends AppEnv>(policyName: string, key: (c: Context<E>) => string | null | undefined): MiddlewareHandler<E> {
  return async (c, next) => {
    const k = key(c)
    if (k) await enforceRateLimit(c as unknown as Context<AppEnv>, policyName, k)
    await next()
  }
}
