import { getConfig, type Env } from '../env'
import type { E164 } from '../lib/mobile'
import { SmsErrors } from './errors'
import { hmacSha256Hex, subkeyHmacHex, timingSafeEqual } from '../lib/crypto'
import { countHit, firstUse, refundHit, resetCounter } from '../ratelimit/counters'
import { hitRateLimit, rateLimitedError } from '../ratelimit'
import { log } from '../lib/logger'
import { getDb } from '../db'
import { auditStatement } from '../audit/service'
import { findUserByMobile } from '../users/service'
import { randomInt } from '../captcha/image'
import { smsProvider, type SmsMessage, type SmsPurpose } from './providers'
import { catalogOf, type Locale } from '../pages/i18n'

export const SMS_CODE_TTL_S = 300
export const SMS_MAX_ATTEMPTS = 5
export const SMS_RESEND_COOLDOWN_S = 60
/** Codes per mobile per purpose in 24 hours. */
export const SMS_DAILY_CAP = 10
/**
 * Wrong codes per mobile in 24 hours, across resends and purposes; then every check is
 * refused until the window ends. One budget for the number: a reset code and a binding
 * code each open the account, so separate budgets would double a guesser's odds.
 */
export const SMS_MAX_WRONG_PER_DAY = 10
const DAY_S = 86400

/**
 * Where each rule is enforced (docs: README "SMS codes"):
 * - the code: KV, hashed, TTL 5 min (plus an `exp` checked on read, KV TTLs are lazy);
 * - cooldown, daily cap, attempts per code, wrong codes per day and single use:
 *   RateLimiter Durable Object counters, exact worldwide, so parallel guesses from many
 *   locations still get 5 tries per code and 10 wrong ones per day in all.
 */
const codeKey = (purpose: SmsPurpose, mobile: string) => `sms:${purpose}:${mobile}`
const attemptsName = (purpose: SmsPurpose, mobile: string) => `sms_attempts:${purpose}:${mobile}`
const wrongName = (mobile: string) => `sms_wrong:${mobile}`
/** Audits the refusal of a spent code's further checks once per code (reset with each new code). */
const lockAuditName = (purpose: SmsPurpose, mobile: string) => `sms_code_locked:${purpose}:${mobile}`

interface StoredCode {
  id: string
  hash: string
  exp: number
  /** 2: HMAC under the master key's sms-code subkey; absent: under the master key itself (codes stored before subkeys, for their last minutes) */
  v?: 2
}

/** HMAC under the master key of (purpose, mobile, code): a KV dump yields no codes, and a code is bound to its number and purpose. */
async function codeHash(env: Env, purpose: SmsPurpose, mobile: string, code: string, v: 1 | 2 = 2) {
  const { masterKey } = getConfig(env)
  const message = `sms-code:v1:${purpose}:${mobile}:${code}`
  return v === 2 ? subkeyHmacHex(masterKey, 'sms-code', message) : hmacSha256Hex(masterKey, message)
}

/** The SMS text in the requester's language (the hosted pages' catalogs, src/pages/i18n). */
export function smsText(locale: Locale, brand: string, purpose: SmsPurpose, code: string): string {
  const t = catalogOf(locale)
  return t.smsText(brand, t.smsPurposes[purpose], code, SMS_CODE_TTL_S / 60)
}

export function newSmsCode(): string {
  return String(randomInt(1_000_000)).padStart(6, '0')
}

export interface SendContext {
  requestId?: string
  ip?: string
  appId?: string | null
  waitUntil?: (p: Promise<unknown>) => void
}

export interface SendResult {
  expires_in: number
  resend_after: number
}

/**
 * Sends a one-time code, its text in `locale` (default English). The answer never depends on whether the mobile is registered:
 * for `reset` and an unknown number the same limits are counted and the same body is
 * returned, only no code is stored or sent. For `register` and `change_mobile` a code is
 * sent either way; a taken number is only reported by the next step, after the code proved
 * ownership. `bind` is `register` while registration is open (the binding step may create the
 * account) and `reset` while it is closed (only an existing account can be bound).
 */
export async function sendSmsCode(env: Env, input: { mobile: E164; purpose: SmsPurpose; locale?: Locale }, ctx: SendContext = {}): Promise<SendResult> {
  const { mobile, purpose } = input
  const locale = input.locale ?? 'en'
  const cooldown = await countHit(env, `sms_cooldown:${purpose}:${mobile}`, 1, SMS_RESEND_COOLDOWN_S)
  if (!cooldown.allowed) {
    throw SmsErrors.sms_cooldown({ message: `A code was sent less than ${SMS_RESEND_COOLDOWN_S} s ago; retry after ${cooldown.retryAfterS} s`, details: { retry_after: cooldown.retryAfterS }, headers: { 'Retry-After': String(cooldown.retryAfterS) } })
  }
  const daily = await countHit(env, `sms_daily:${purpose}:${mobile}`, SMS_DAILY_CAP, 86400)
  if (!daily.allowed) {
    throw SmsErrors.sms_daily_limit({ message: `At most ${SMS_DAILY_CAP} codes per number per day for this purpose`, details: { retry_after: daily.retryAfterS }, headers: { 'Retry-After': String(daily.retryAfterS) } })
  }

  // `bind` creates an account for an unknown number only when registration is open: otherwise it behaves as `reset`
  const anyNumber = purpose === 'register' || purpose === 'change_mobile' || (purpose === 'bind' && getConfig(env).registrationOpen)
  const deliver = anyNumber || (await findUserByMobile(env, mobile)) !== undefined
  // A new code gets a fresh set of attempts (done for unknown numbers too: same work, same answers
  // later). The wrong codes of the day are not reset: resending buys no new guesses.
  await Promise.all([resetCounter(env, attemptsName(purpose, mobile)), resetCounter(env, `once:${lockAuditName(purpose, mobile)}`)])

  const db = getDb(env.DB)
  const id = crypto.randomUUID()
  const audit = auditStatement(db, {
    action: 'sms.code_sent',
    actorType: ctx.appId ? 'app' : 'anonymous',
    actorId: ctx.appId ?? null,
    targetType: 'mobile',
    targetId: mobile,
    requestId: ctx.requestId,
    ip: ctx.ip,
    details: { purpose, delivered: deliver, message_id: id },
  })

  if (deliver) {
    const provider = smsProvider(env)
    const code = newSmsCode()
    const stored: StoredCode = { id, hash: await codeHash(env, purpose, mobile, code), exp: Date.now() + SMS_CODE_TTL_S * 1000, v: 2 }
    const brand = getConfig(env).brandName
    const msg: SmsMessage = {
      id,
      to: mobile,
      purpose,
      code,
      lang: locale,
      text: smsText(locale, brand, purpose, code),
      expires_in: SMS_CODE_TTL_S,
      sent_at: new Date().toISOString(),
    }
    const work = (async () => {
      await env.KV.put(codeKey(purpose, mobile), JSON.stringify(stored), { expirationTtl: SMS_CODE_TTL_S })
      try {
        await provider.send(msg)
      } catch (err) {
        log.error('sms.delivery_failed', { message_id: id, provider: provider.name, error: (err as Error).message })
        await db.batch([auditStatement(db, { action: 'sms.delivery_failed', actorType: 'system', targetType: 'mobile', targetId: mobile, requestId: ctx.requestId, details: { purpose, message_id: id, error: (err as Error).message } })])
      }
    })()
    if (provider.background && ctx.waitUntil) ctx.waitUntil(work)
    else await work
  }
  await db.batch([audit])
  return { expires_in: SMS_CODE_TTL_S, resend_after: SMS_RESEND_COOLDOWN_S }
}

const invalidCode = (attemptsLeft: number) => SmsErrors.invalid_sms_code({ details: { attempts_left: attemptsLeft } })

export interface VerifyContext {
  requestId?: string
  ip?: string
  /** Set for signed partner calls: the IP is then the partner's server, not the person's. */
  appId?: string | null
}

/**
 * Checks and spends a code. Counted exactly, before the code is compared, for (purpose,
 * mobile), unknown numbers included (same counts, same answers):
 * - per client IP (`sms_verify_ip`), for calls made by end users themselves;
 * - wrong codes per day across resends (SMS_MAX_WRONG_PER_DAY): the guess that reaches the
 *   limit is audited `sms_code.locked`, later checks get 429 `sms_code_locked` until the
 *   window ends, right code or not; a right code does not count;
 * - checks per code (SMS_MAX_ATTEMPTS): the last wrong one burns the code, so a new one
 *   must be requested (429 `too_many_attempts`, audited once per code).
 * A right code works once.
 */
export async function verifySmsCode(env: Env, input: { mobile: E164; purpose: SmsPurpose; code: string }, ctx: VerifyContext = {}): Promise<void> {
  const { mobile, purpose, code } = input
  if (ctx.ip && !ctx.appId) {
    const perIp = await hitRateLimit(env, 'sms_verify_ip', ctx.ip)
    if (!perIp.allowed) throw rateLimitedError('sms_verify_ip', perIp)
  }
  const db = getDb(env.DB)
  const audit = (details: Record<string, unknown>) =>
    auditStatement(db, { action: 'sms_code.locked', actorType: ctx.appId ? 'app' : 'anonymous', actorId: ctx.appId ?? null, targetType: 'mobile', targetId: mobile, requestId: ctx.requestId, ip: ctx.ip, details: { purpose, ...details } })

  const [wrong, attempt] = await Promise.all([countHit(env, wrongName(mobile), SMS_MAX_WRONG_PER_DAY, DAY_S), countHit(env, attemptsName(purpose, mobile), SMS_MAX_ATTEMPTS, SMS_CODE_TTL_S)])
  if (!wrong.allowed) {
    if (attempt.allowed) await refundHit(env, attemptsName(purpose, mobile))
    throw SmsErrors.sms_code_locked({ message: `At most ${SMS_MAX_WRONG_PER_DAY} wrong codes per number per day; try again in ${wrong.retryAfterS} s`, details: { retry_after: wrong.retryAfterS }, headers: { 'Retry-After': String(wrong.retryAfterS) } })
  }
  if (!attempt.allowed) {
    // No guess was made: the day's count is given back.
    const [first] = await Promise.all([firstUse(env, lockAuditName(purpose, mobile), SMS_CODE_TTL_S * 2), refundHit(env, wrongName(mobile)), env.KV.delete(codeKey(purpose, mobile))])
    // A security event: someone kept guessing after the code was burnt (audited once per code).
    if (first) await db.batch([audit({ scope: 'code', limit: SMS_MAX_ATTEMPTS })])
    throw SmsErrors.too_many_attempts({ headers: { 'Retry-After': String(SMS_RESEND_COOLDOWN_S) } })
  }
  const stored = await env.KV.get<StoredCode>(codeKey(purpose, mobile), 'json')
  const ok = !!stored && stored.exp > Date.now() && /^\d{6}$/.test(code) && timingSafeEqual(stored.hash, await codeHash(env, purpose, mobile, code, stored.v === 2 ? 2 : 1))
  if (!ok) {
    const left = Math.min(attempt.remaining, wrong.remaining)
    await Promise.all([
      attempt.remaining === 0 || wrong.remaining === 0 ? env.KV.delete(codeKey(purpose, mobile)) : undefined,
      // the guess that used up the day's wrong codes locks the number: audited exactly once per window
      wrong.remaining === 0 ? db.batch([audit({ scope: 'day', limit: SMS_MAX_WRONG_PER_DAY, window_s: DAY_S })]) : undefined,
    ])
    throw invalidCode(left)
  }
  // Single use, decided exactly by the Durable Object even if KV's delete has not reached every location yet.
  if (!(await firstUse(env, `sms:${stored!.id}`, SMS_CODE_TTL_S * 2))) throw invalidCode(Math.min(attempt.remaining, wrong.remaining))
  // A right code is not a wrong guess.
  await Promise.all([env.KV.delete(codeKey(purpose, mobile)), refundHit(env, wrongName(mobile))])
}
