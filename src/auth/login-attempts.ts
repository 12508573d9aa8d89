import type { Env } from '../env'
import type { E164 } from '../lib/mobile'
import type { AuditEntry } from '../audit/service'
import { countHit, peekCounter, refundHit, resetCounter } from '../ratelimit/counters'
import { ipRateKey } from '../ratelimit'
import { log } from '../lib/logger'
import { AuthErrors } from './errors'

/**
 * Failed sign-ins, counted exactly (RateLimiter Durable Object counters) per mobile and
 * per client IP (IPv6 per /64), for the login API and the hosted login page alike: one
 * policy, one place. Unknown mobiles are counted like registered ones, so the answers say
 * nothing about who has an account.
 *
 * An attempt is counted (reserved) BEFORE the password hash is checked, atomically in the
 * counter's object, so parallel guesses cannot all slip past the limit: of 20 concurrent
 * wrong passwords for one number at most `captchaAfter` get a verdict. A right password
 * gives its count back (the mobile's counter is cleared: its owner is back; the IP's
 * reservation is refunded, so one good account cannot clear its network's failures).
 *
 * Past `captchaAfter` failures in the window an attempt needs a solved captcha (401
 * `captcha_required`, password not checked); with one it is counted against `lockAt`, and
 * only past that is sign-in refused for the rest of the window (429 `too_many_attempts`,
 * Retry-After), captcha or not. So an attacker without captchas cannot lock the owner out,
 * and one with them gets a bounded number of guesses.
 */
export const LOGIN_WINDOW_S = 15 * 60
export const LOGIN_LIMITS = {
  mobile: { captchaAfter: 5, lockAt: 20 },
  ip: { captchaAfter: 10, lockAt: 100 },
} as const

type Scope = keyof typeof LOGIN_LIMITS
const SCOPES: Scope[] = ['mobile', 'ip']

const counterName = (scope: Scope, key: string) => (scope === 'mobile' ? `login_failures:mobile:${key}` : `login_failures:ip:${ipRateKey(key)}`)

export interface LoginAttempt {
  names: Record<Scope, string>
  /** the counts once this attempt was reserved */
  counts: Record<Scope, number>
  captchaSolved: boolean
}

/**
 * Reserves one attempt on both counters, or throws `captcha_required` / `too_many_attempts`
 * without any password being checked. A reservation one counter refused is given back on
 * the other, so a refusal costs the caller's counters nothing.
 */
export async function reserveLoginAttempt(env: Env, mobile: E164, ip: string, captchaSolved: boolean): Promise<LoginAttempt> {
  const names = { mobile: counterName('mobile', mobile), ip: counterName('ip', ip) }
  const tier = captchaSolved ? 'lockAt' : 'captchaAfter'
  const limit = (s: Scope) => LOGIN_LIMITS[s][tier]
  const [m, i] = await Promise.all(SCOPES.map((s) => countHit(env, names[s], limit(s), LOGIN_WINDOW_S)))
  const hits = { mobile: m, ip: i }
  if (m.allowed && i.allowed) return { names, counts: { mobile: limit('mobile') - m.remaining, ip: limit('ip') - i.remaining }, captchaSolved }

  const refused = SCOPES.filter((s) => !hits[s].allowed)
  await Promise.all(SCOPES.filter((s) => hits[s].allowed).map((s) => refundHit(env, names[s])))
  // Without a captcha the refusal is the captcha tier, unless a counter is past the hard limit too.
  const state = captchaSolved ? refused.map((s) => ({ s, retryAfterS: hits[s].retryAfterS, locked: true })) : await Promise.all(refused.map(async (s) => {
    const p = await peekCounter(env, names[s])
    return { s, retryAfterS: p.retryAfterS, locked: p.count >= LOGIN_LIMITS[s].lockAt }
  }))
  const locked = state.filter((x) => x.locked)
  log.warn('login.refused', { by: refused, locked: locked.length > 0 })
  if (!locked.length) throw AuthErrors.captcha_required({ details: { captcha_url: '/api/v1/utils/captcha' } })
  const retry = Math.max(...locked.map((x) => x.retryAfterS), 1)
  throw AuthErrors.too_many_attempts({ message: `Too many failed sign-ins for this number or network; try again in ${retry} s`, details: { retry_after: retry }, headers: { 'Retry-After': String(retry) } })
}

/** A right password: the mobile's failures are forgotten, the IP's reservation given back. */
export async function settleLoginSuccess(env: Env, attempt: LoginAttempt): Promise<void> {
  await Promise.all([resetCounter(env, attempt.names.mobile), refundHit(env, attempt.names.ip)])
}

/** Whether the next attempt will need a captcha, after this one failed. */
export function captchaRequiredNext(attempt: LoginAttempt): boolean {
  return SCOPES.some((s) => attempt.counts[s] >= LOGIN_LIMITS[s].captchaAfter)
}

/**
 * Audit rows for the thresholds this failure reached: `login.captcha_required` and
 * `login.locked`, each once per window and scope (the counter decides exactly which
 * attempt reaches a threshold). Refused attempts are not written one row per request.
 */
export function thresholdAudits(attempt: LoginAttempt, base: Omit<AuditEntry, 'action' | 'details'>): AuditEntry[] {
  const out: AuditEntry[] = []
  for (const s of SCOPES) {
    const n = attempt.counts[s]
    if (n === LOGIN_LIMITS[s].captchaAfter) out.push({ ...base, action: 'login.captcha_required', details: { by: s, failures: n, window_s: LOGIN_WINDOW_S } })
    if (n === LOGIN_LIMITS[s].lockAt) out.push({ ...base, action: 'login.locked', details: { by: s, failures: n, window_s: LOGIN_WINDOW_S } })
  }
  return out
}

/** For the hosted page: show the captcha field before the user types a password for nothing. */
export async function loginCaptchaRequired(env: Env, who: { ip: string; mobile?: E164 | null }): Promise<boolean> {
  const checks: Promise<boolean>[] = [peekCounter(env, counterName('ip', who.ip)).then((p) => p.count >= LOGIN_LIMITS.ip.captchaAfter)]
  if (who.mobile) checks.push(peekCounter(env, counterName('mobile', who.mobile)).then((p) => p.count >= LOGIN_LIMITS.mobile.captchaAfter))
  return (await Promise.all(checks)).some(Boolean)
}

/** The owner proved control of the number another way (SMS code): its sign-in failures are forgotten. */
export function clearLoginFailures(env: Env, mobile: E164): Promise<void> {
  return resetCounter(env, counterName('mobile', mobile))
}
