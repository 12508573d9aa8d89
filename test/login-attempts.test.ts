import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { api, auditLog, createUser, signedApi, uniqueMobile } from './support/api'
import { partnerApp } from './support/apps'
import { randomIp } from './support/browser'
import { solvedCaptcha } from './support/captcha'
import { lastCode, openSmsSend } from './support/sms'
import { LOGIN_LIMITS, LOGIN_WINDOW_S } from '../src/auth/login-attempts'

const hex4 = () => Math.floor(Math.random() * 0x10000).toString(16)

function attempt(mobile: string, password: string, opts: { ip?: string; captcha?: { captcha_id: string; captcha_code: string } } = {}) {
  return api('/api/v1/auth/login', { method: 'POST', json: { mobile, password, ...opts.captcha }, headers: { 'CF-Connecting-IP': opts.ip ?? randomIp() } })
}

const audits = async (action: string, target: string) => (await auditLog({ action, target_id: target, limit: 200 })).reverse().map((x) => x.details)

describe('sign-in failures are counted exactly, before the password is checked', () => {
  for (const kind of ['registered', 'unknown'] as const) {
    it(`20 parallel wrong passwords for one ${kind} number get at most ${LOGIN_LIMITS.mobile.captchaAfter} password verdicts`, async () => {
      const mobile = kind === 'registered' ? (await createUser()).mobile : uniqueMobile()
      // from 20 different networks, so only the number's counter can hold them back
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => attempt(mobile, `wrong-password-${i}`)))
      const codes = results.map((r) => r.body.error.code)
      const verdicts = codes.filter((c) => c === 'invalid_credentials').length
      expect(verdicts).toBeLessThanOrEqual(LOGIN_LIMITS.mobile.captchaAfter)
      // the count is not only bounded but exact: every reserved attempt got its verdict
      expect(verdicts).toBe(LOGIN_LIMITS.mobile.captchaAfter)
      expect(codes.filter((c) => c === 'captcha_required').length).toBe(20 - verdicts)
      for (const r of results) expect(r.status).toBe(401)
      // only the verdicts were hashed and audited as failures
      expect((await audits('login.failed', mobile)).length).toBe(verdicts)
    })
  }

  it('the same from one IPv6 /64 rotating its addresses: the network is counted once', async () => {
    const prefix = `2001:db8:${hex4()}:${hex4()}`
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => attempt(uniqueMobile(), 'wrong-password', { ip: `${prefix}:${hex4()}:${hex4()}:${hex4()}:${i + 1}` })))
    const verdicts = results.filter((r) => r.body.error.code === 'invalid_credentials').length
    expect(verdicts).toBe(LOGIN_LIMITS.ip.captchaAfter)
    expect(results.filter((r) => r.body.error.code === 'captcha_required').length).toBe(20 - verdicts)
    // another /64 is another network
    expect((await attempt(uniqueMobile(), 'wrong-password', { ip: `2001:db8:${hex4()}:${hex4()}::1` })).body.error.code).toBe('invalid_credentials')
  })

  it('a refusal spends nothing: a captcha_required answer does not count on the network of the caller', async () => {
    const u = await createUser()
    for (let i = 0; i < LOGIN_LIMITS.mobile.captchaAfter; i++) await attempt(u.mobile, 'wrong-' + i)
    const ip = randomIp()
    for (let i = 0; i < LOGIN_LIMITS.ip.captchaAfter + 5; i++) expect((await attempt(u.mobile, 'wrong', { ip })).body.error.code).toBe('captcha_required')
    // that network made no verdict yet, so another number from it is checked without a captcha
    expect((await attempt(uniqueMobile(), 'wrong', { ip })).body.error.code).toBe('invalid_credentials')
  })
})

describe('after the threshold: captcha_required, then a captcha gets the password checked', () => {
  it('401 captcha_required (password unchecked), invalid_credentials hints at it, a valid captcha signs in and is spent', async () => {
    const u = await createUser()
    for (let i = 0; i < LOGIN_LIMITS.mobile.captchaAfter; i++) {
      const r = await attempt(u.mobile, 'wrong-' + i)
      expect(r.body.error.code).toBe('invalid_credentials')
      // the failure that reaches the threshold says so, so a client can show the picture at once
      expect(r.body.error.details).toEqual({ captcha_required: i === LOGIN_LIMITS.mobile.captchaAfter - 1 })
    }
    const refused = await attempt(u.mobile, u.password)
    expect(refused.status).toBe(401)
    expect(refused.body.error.code).toBe('captcha_required')
    expect(refused.body.error.details).toEqual({ captcha_url: '/api/v1/utils/captcha' })
    expect(refused.headers.get('Retry-After')).toBeNull()
    // no API lists a user's sessions
    const sessions = () => env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?').bind(u.id).first<{ n: number }>().then((r) => r!.n)
    expect(await sessions()).toBe(0)

    // a wrong or missing answer: 400 invalid_captcha, password not checked, captcha spent
    const c1 = await solvedCaptcha()
    const wrongCaptcha = await attempt(u.mobile, u.password, { captcha: { captcha_id: c1.captcha_id, captcha_code: 'WRONG' } })
    expect(wrongCaptcha.status).toBe(400)
    expect(wrongCaptcha.body.error.code).toBe('invalid_captcha')
    expect((await attempt(u.mobile, u.password, { captcha: c1 })).body.error.code).toBe('invalid_captcha')
    expect(await sessions()).toBe(0)

    // a valid captcha with a wrong password: a verdict, and the captcha is gone
    const c2 = await solvedCaptcha()
    expect((await attempt(u.mobile, 'still-wrong', { captcha: c2 })).body.error).toMatchObject({ code: 'invalid_credentials', details: { captcha_required: true } })
    expect((await attempt(u.mobile, u.password, { captcha: c2 })).body.error.code).toBe('invalid_captcha')

    const ok = await attempt(u.mobile, u.password, { captcha: await solvedCaptcha() })
    expect(ok.status).toBe(200)
    expect(ok.body.access_token).toBeTruthy()
    // the right password cleared the number's count: no captcha for the next mistake
    expect((await attempt(u.mobile, 'typo')).body.error).toMatchObject({ code: 'invalid_credentials', details: { captcha_required: false } })
  })

  it(`locks only at ${LOGIN_LIMITS.mobile.lockAt} failures per number, audits each threshold once, and Retry-After runs to the window's end`, async () => {
    const u = await createUser()
    for (let i = 0; i < LOGIN_LIMITS.mobile.lockAt; i++) {
      const captcha = i >= LOGIN_LIMITS.mobile.captchaAfter ? await solvedCaptcha() : undefined
      expect((await attempt(u.mobile, 'wrong-' + i, { captcha })).body.error.code, String(i)).toBe('invalid_credentials')
    }
    const locked = await attempt(u.mobile, u.password, { captcha: await solvedCaptcha() })
    expect(locked.status).toBe(429)
    expect(locked.body.error.code).toBe('too_many_attempts')
    const retry = Number(locked.headers.get('Retry-After'))
    expect(retry).toBeGreaterThan(0)
    expect(retry).toBeLessThanOrEqual(LOGIN_WINDOW_S)
    // without a captcha the answer is the lock too (solving one would not help)
    const bare = await attempt(u.mobile, u.password)
    expect(bare.status).toBe(429)
    expect(bare.body.error.code).toBe('too_many_attempts')
    // refusals are not audited one row per request; each threshold once
    for (let i = 0; i < 5; i++) await attempt(u.mobile, 'more')
    expect(await audits('login.captcha_required', u.mobile)).toEqual([{ by: 'mobile', failures: LOGIN_LIMITS.mobile.captchaAfter, window_s: LOGIN_WINDOW_S }])
    expect(await audits('login.locked', u.mobile)).toEqual([{ by: 'mobile', failures: LOGIN_LIMITS.mobile.lockAt, window_s: LOGIN_WINDOW_S }])
    expect((await audits('login.failed', u.mobile)).length).toBe(LOGIN_LIMITS.mobile.lockAt)
  }, 60_000)

  it('a password reset by SMS lifts the lock on the number', async () => {
    const u = await createUser()
    for (let i = 0; i < LOGIN_LIMITS.mobile.captchaAfter; i++) await attempt(u.mobile, 'wrong-' + i)
    expect((await attempt(u.mobile, u.password)).body.error.code).toBe('captcha_required')
    expect((await openSmsSend(u.mobile)).status).toBe(200)
    const reset = await signedApi(await partnerApp(), 'POST', '/api/v1/open/pwd/reset', { json: { mobile: u.mobile, sms_code: await lastCode(u.mobile), new_password: 'a-fresh-password-1' } })
    expect(reset.status).toBe(200)
    expect((await attempt(u.mobile, 'a-fresh-password-1')).status).toBe(200)
  })
})
