import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { api, auditLog, createUser, signedApi, uniqueMobile } from './support/api'
import { partnerApp } from './support/apps'
import { randomIp } from './support/browser'
import { solvedCaptcha } from './support/captcha'
import { lastCode, openSmsSend, outbox, skipCooldown } from './support/sms'
import { sendSmsCode, verifySmsCode, SMS_DAILY_CAP, SMS_MAX_ATTEMPTS, SMS_MAX_WRONG_PER_DAY } from '../src/sms/service'
import { webhookProvider } from '../src/sms/providers'
import { hmacSha256Hex } from '../src/lib/crypto'
import { getConfig, ConfigError, type Env } from '../src/env'
import type { E164 } from '../src/lib/mobile'

const strip = (b: any) => JSON.parse(JSON.stringify(b, (k, v) => (k === 'request_id' ? undefined : v)))

describe('POST /api/v1/open/sms/send', () => {
  it('needs a signed request', async () => {
    const c = await solvedCaptcha()
    const r = await api('/api/v1/open/sms/send', { method: 'POST', json: { mobile: uniqueMobile(), ...c } })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('signature_missing')
  })

  it('needs a right captcha, and a wrong answer spends it', async () => {
    const u = await createUser()
    const c = await solvedCaptcha()
    const bad = await openSmsSend(u.mobile, 'reset', { captcha_id: c.captcha_id, captcha_code: 'WRONG' })
    expect(bad.status).toBe(400)
    expect(bad.body.error.code).toBe('invalid_captcha')
    const again = await openSmsSend(u.mobile, 'reset', c)
    expect(again.status).toBe(400)
    expect(await outbox(u.mobile)).toEqual([])
  })

  it('sends a six-digit code; KV keeps only its hash', async () => {
    const u = await createUser()
    const r = await openSmsSend(u.mobile)
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ sent: true, expires_in: 300, resend_after: 60 })
    const code = await lastCode(u.mobile)
    expect(code).toMatch(/^\d{6}$/)
    const stored = await env.KV.get(`sms:reset:${u.mobile}`)
    expect(stored).toBeTruthy()
    expect(stored).not.toContain(code)
  })

  it('never reveals whether a mobile is registered', async () => {
    const known = await createUser()
    const unknown = uniqueMobile()
    const a = await openSmsSend(known.mobile)
    const b = await openSmsSend(unknown)
    expect(b.status).toBe(a.status)
    expect(strip(b.body)).toEqual(strip(a.body))
    expect((await outbox(known.mobile)).length).toBe(1)
    expect(await outbox(unknown)).toEqual([]) // nothing sent
    // the limits behave the same too
    const a2 = await openSmsSend(known.mobile)
    const b2 = await openSmsSend(unknown)
    expect(a2.status).toBe(429)
    expect(strip(b2.body)).toMatchObject({ error: { code: a2.body.error.code } })
    // and checking a code reads the same
    const va = await signedApi(await partnerApp(), 'POST', '/api/v1/open/pwd/reset', { json: { mobile: known.mobile, sms_code: '000000', new_password: 'another-password-1' } })
    const vb = await signedApi(await partnerApp(), 'POST', '/api/v1/open/pwd/reset', { json: { mobile: unknown, sms_code: '000000', new_password: 'another-password-1' } })
    expect(vb.status).toBe(va.status)
    expect(strip(vb.body)).toEqual(strip(va.body))
  })

  it('register codes go to any number, registered or not (the send step reveals nothing)', async () => {
    const taken = await createUser()
    const r = await openSmsSend(taken.mobile, 'register')
    expect(r.status).toBe(200)
    expect((await outbox(taken.mobile))[0].purpose).toBe('register')
  })
})

describe('SMS code limits', () => {
  it('60 s resend cooldown per mobile and purpose, with Retry-After', async () => {
    const m = uniqueMobile()
    expect((await openSmsSend(m, 'register')).status).toBe(200)
    const r = await openSmsSend(m, 'register')
    expect(r.status).toBe(429)
    expect(r.body.error.code).toBe('sms_cooldown')
    const retry = Number(r.headers.get('Retry-After'))
    expect(retry).toBeGreaterThan(0)
    expect(retry).toBeLessThanOrEqual(60)
    // another purpose has its own cooldown
    expect((await sendSmsCode(env, { mobile: m, purpose: 'reset' })).expires_in).toBe(300)
  })

  it(`daily cap of ${SMS_DAILY_CAP} per mobile and purpose`, async () => {
    const m = uniqueMobile()
    for (let i = 0; i < SMS_DAILY_CAP; i++) {
      await skipCooldown(m, 'register')
      await sendSmsCode(env, { mobile: m, purpose: 'register' })
    }
    await skipCooldown(m, 'register')
    const r = await openSmsSend(m, 'register')
    expect(r.status).toBe(429)
    expect(r.body.error.code).toBe('sms_daily_limit')
    expect(Number(r.headers.get('Retry-After'))).toBeGreaterThan(3600)
    expect((await outbox(m)).length).toBe(SMS_DAILY_CAP)
  })

  it(`at most ${SMS_MAX_ATTEMPTS} checks: then even the right code is refused until a new one is sent`, async () => {
    const m = uniqueMobile()
    await sendSmsCode(env, { mobile: m, purpose: 'register' })
    const code = await lastCode(m)
    const wrong = code === '111111' ? '222222' : '111111'
    for (let i = SMS_MAX_ATTEMPTS - 1; i >= 0; i--) {
      const err = await verifySmsCode(env, { mobile: m, purpose: 'register', code: wrong }).catch((e) => e)
      expect(err.code).toBe('invalid_sms_code')
      expect(err.details.attempts_left).toBe(i)
    }
    const err = await verifySmsCode(env, { mobile: m, purpose: 'register', code }, { requestId: 'req-sms-lock', ip: '203.0.113.7' }).catch((e) => e)
    expect(err.status).toBe(429)
    expect(err.code).toBe('too_many_attempts')
    // the lockout is a security event: audited with the request id and IP
    const audit = (await auditLog({ action: 'sms_code.locked', target_id: m })).map((a) => ({ request_id: a.request_id, ip: a.ip }))
    expect(audit).toEqual([{ request_id: 'req-sms-lock', ip: '203.0.113.7' }])
    // a new code brings new attempts
    await skipCooldown(m, 'register')
    await sendSmsCode(env, { mobile: m, purpose: 'register' })
    await expect(verifySmsCode(env, { mobile: m, purpose: 'register', code: await lastCode(m) })).resolves.toBeUndefined()
  })

  it(`at most ${SMS_MAX_WRONG_PER_DAY} wrong codes per day across resends: then locked (429, audited once), even for the right code`, async () => {
    const m = uniqueMobile()
    const wrongFor = (code: string) => (code === '111111' ? '222222' : '111111')
    let left = SMS_MAX_WRONG_PER_DAY
    // two codes, each burnt by its five wrong guesses: resending buys no new guesses
    for (let round = 0; round < SMS_MAX_WRONG_PER_DAY / SMS_MAX_ATTEMPTS; round++) {
      await skipCooldown(m, 'register')
      await sendSmsCode(env, { mobile: m, purpose: 'register' })
      const code = await lastCode(m)
      for (let i = 0; i < SMS_MAX_ATTEMPTS; i++) {
        left--
        const err = await verifySmsCode(env, { mobile: m, purpose: 'register', code: wrongFor(code) }, { requestId: `req-wrong-${left}`, ip: '203.0.113.9' }).catch((e) => e)
        expect(err.code).toBe('invalid_sms_code')
        expect(err.details.attempts_left).toBe(Math.min(SMS_MAX_ATTEMPTS - 1 - i, left))
      }
    }
    await skipCooldown(m, 'register')
    await sendSmsCode(env, { mobile: m, purpose: 'register' })
    const locked = await verifySmsCode(env, { mobile: m, purpose: 'register', code: await lastCode(m) }).catch((e) => e)
    expect(locked.status).toBe(429)
    expect(locked.code).toBe('sms_code_locked')
    expect(Number(locked.headers['Retry-After'])).toBeGreaterThan(23 * 3600)
    // the guess that reached the limit is the one audited, once, however many checks follow
    await verifySmsCode(env, { mobile: m, purpose: 'register', code: '123456' }).catch(() => {})
    const rows = await env.DB.prepare("SELECT request_id, ip, details FROM audit_logs WHERE action = 'sms_code.locked' AND target_id = ?").bind(m).all<{ request_id: string; ip: string; details: string }>()
    const daily = rows.results.filter((r) => JSON.parse(r.details).scope === 'day')
    expect(daily).toHaveLength(1)
    expect(daily[0]).toMatchObject({ request_id: 'req-wrong-0', ip: '203.0.113.9' })
    expect(JSON.parse(daily[0].details)).toEqual({ purpose: 'register', scope: 'day', limit: SMS_MAX_WRONG_PER_DAY, window_s: 86400 })
    // the count is the number's, whatever the code is for: a reset code is refused as well
    await sendSmsCode(env, { mobile: m, purpose: 'reset' })
    const reset = await verifySmsCode(env, { mobile: m, purpose: 'reset', code: await lastCode(m) }).catch((e) => e)
    expect(reset.code).toBe('sms_code_locked')
  })

  it('wrong reset and binding codes share one daily budget per number (each opens the account)', async () => {
    const m = (await createUser()).mobile as E164 // reset codes go only to registered numbers
    const wrong = async (purpose: 'reset' | 'bind') => {
      await skipCooldown(m, purpose)
      await sendSmsCode(env, { mobile: m, purpose })
      const code = await lastCode(m)
      return verifySmsCode(env, { mobile: m, purpose, code: code === '111111' ? '222222' : '111111' }).then(() => 'ok', (e) => e.code)
    }
    for (let i = 0; i < SMS_MAX_WRONG_PER_DAY; i++) expect(await wrong(i % 2 ? 'bind' : 'reset')).toBe('invalid_sms_code')
    expect(await wrong('bind')).toBe('sms_code_locked')
    expect(await wrong('reset')).toBe('sms_code_locked')
  })

  it('a right code is not a wrong guess: it does not count toward the daily limit', async () => {
    const m = uniqueMobile()
    const guess = async (code: string) => verifySmsCode(env, { mobile: m, purpose: 'register', code }).then(() => 'ok', (e) => e.code)
    for (let sent = 0, wrong = 0; wrong < SMS_MAX_WRONG_PER_DAY - 1; sent++) {
      await skipCooldown(m, 'register')
      await sendSmsCode(env, { mobile: m, purpose: 'register' })
      const code = await lastCode(m)
      for (let i = 0; i < Math.min(4, SMS_MAX_WRONG_PER_DAY - 1 - wrong); i++, wrong++) expect(await guess(code === '111111' ? '222222' : '111111')).toBe('invalid_sms_code')
    }
    await skipCooldown(m, 'register')
    await sendSmsCode(env, { mobile: m, purpose: 'register' })
    expect(await guess(await lastCode(m))).toBe('ok')
    // nine wrong and one right: one wrong guess is still allowed, then the number is locked
    await skipCooldown(m, 'register')
    await sendSmsCode(env, { mobile: m, purpose: 'register' })
    const code = await lastCode(m)
    expect(await guess(code === '111111' ? '222222' : '111111')).toBe('invalid_sms_code')
    expect(await guess(code)).toBe('sms_code_locked')
  })

  it('unknown numbers are counted the same way: a reset number without an account reads the same when locked', async () => {
    const known = await createUser()
    const unknown = uniqueMobile()
    const partner = await partnerApp()
    const reset = (mobile: string) => signedApi(partner, 'POST', '/api/v1/open/pwd/reset', { json: { mobile, sms_code: '000000', new_password: 'another-password-1' } })
    const answers: Record<string, { status: number; body: unknown }[]> = { known: [], unknown: [] }
    for (let i = 0; i <= SMS_MAX_WRONG_PER_DAY; i++) {
      if (i % SMS_MAX_ATTEMPTS === 0) {
        for (const m of [known.mobile as E164, unknown]) {
          await skipCooldown(m, 'reset')
          await sendSmsCode(env, { mobile: m, purpose: 'reset' })
        }
      }
      for (const [k, m] of [['known', known.mobile], ['unknown', unknown]] as const) {
        const r = await reset(m)
        answers[k].push({ status: r.status, body: strip(r.body) })
      }
    }
    expect(answers.unknown).toEqual(answers.known)
    expect(answers.known.at(-1)).toMatchObject({ status: 429, body: { error: { code: 'sms_code_locked' } } })
  })

  it('checks by end users are limited per client IP (sms_verify_ip); signed partner calls are not (their IP is the partner server)', async () => {
    const { signRequest } = await import('../src/signing/client')
    const limits = { RATE_LIMITS: JSON.stringify({ sms_verify_ip: { limit: 2, windowS: 3600 }, partner_ip: { limit: 1_000_000, windowS: 60 } }) }
    const ip = randomIp()
    const register = (mobile: string) =>
      api('/api/v1/auth/register', { method: 'POST', headers: { 'CF-Connecting-IP': ip }, json: { mobile, password: 'a-long-password', sms_code: '000000' }, env: limits })
    for (let i = 0; i < 2; i++) expect((await register(uniqueMobile())).body.error.code).toBe('invalid_sms_code')
    const limited = await register(uniqueMobile())
    expect(limited.status).toBe(429)
    const body = limited.body
    expect(body.error).toMatchObject({ code: 'rate_limited', details: { policy: 'sms_verify_ip', limit: 2 } })
    expect(Number(limited.headers.get('Retry-After'))).toBeGreaterThan(0)
    // IPv6: the whole /64 shares the budget
    const prefix = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:7`
    const v6 = (iid: string) =>
      api('/api/v1/auth/register', { method: 'POST', headers: { 'CF-Connecting-IP': `${prefix}:${iid}` }, json: { mobile: uniqueMobile(), password: 'a-long-password', sms_code: '000000' }, env: limits })
    expect((await v6('0:0:0:1')).status).toBe(400)
    expect((await v6('aaaa:bbbb:cccc:dddd')).status).toBe(400)
    expect((await v6('1:2:3:4')).status).toBe(429)

    // the partner's server sends many users' checks from one IP: bounded per number instead
    const partner = await partnerApp()
    for (let i = 0; i < 3; i++) {
      const url = 'http://localhost/api/v1/open/pwd/reset'
      const json = JSON.stringify({ mobile: uniqueMobile(), sms_code: '000000', new_password: 'another-password-1' })
      const headers = await signRequest({ appId: partner.app_id, appSecret: partner.app_secret, method: 'POST', url, body: json })
      const r = await api('/api/v1/open/pwd/reset', { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json', 'CF-Connecting-IP': ip }, body: json, env: limits })
      expect(r.status).toBe(400)
    }
  })

  it('a code works once', async () => {
    const m = uniqueMobile()
    await sendSmsCode(env, { mobile: m, purpose: 'register' })
    const code = await lastCode(m)
    await verifySmsCode(env, { mobile: m, purpose: 'register', code })
    const err = await verifySmsCode(env, { mobile: m, purpose: 'register', code }).catch((e) => e)
    expect(err.code).toBe('invalid_sms_code')
  })

  it('a code is bound to its purpose', async () => {
    const m = uniqueMobile()
    await sendSmsCode(env, { mobile: m, purpose: 'register' })
    const err = await verifySmsCode(env, { mobile: m, purpose: 'reset', code: await lastCode(m) }).catch((e) => e)
    expect(err.code).toBe('invalid_sms_code')
  })

  it('expires after 5 minutes', async () => {
    const m = uniqueMobile()
    await sendSmsCode(env, { mobile: m, purpose: 'register' })
    const code = await lastCode(m)
    // age the stored code past its expiry (KV TTLs are lazy; the stored exp is what counts)
    const key = `sms:register:${m}`
    const stored = JSON.parse((await env.KV.get(key))!)
    await env.KV.put(key, JSON.stringify({ ...stored, exp: Date.now() - 1 }), { expirationTtl: 60 })
    const err = await verifySmsCode(env, { mobile: m, purpose: 'register', code }).catch((e) => e)
    expect(err.code).toBe('invalid_sms_code')
  })
})

describe('SMS providers and configuration', () => {
  it('webhook provider POSTs signed JSON (HMAC-SHA256 over timestamp.body)', async () => {
    const seen: Request[] = []
    const secret = 'whsec-0123456789abcdef'
    const p = webhookProvider('https://sms.example.com/send', secret, (async (input: RequestInfo | URL, init?: RequestInit) => {
      seen.push(new Request(input, init))
      return new Response('ok')
    }) as typeof fetch)
    expect(p.background).toBe(true)
    await p.send({ id: 'm1', to: '+8613800138000', purpose: 'reset', code: '123456', lang: 'en', text: 'code 123456', expires_in: 300, sent_at: new Date().toISOString() })
    const req = seen[0]
    expect(req.method).toBe('POST')
    const body = await req.text()
    const ts = req.headers.get('X-UAP-Timestamp')!
    expect(Math.abs(Number(ts) - Date.now() / 1000)).toBeLessThan(5)
    expect(req.headers.get('X-UAP-Signature')).toBe(await hmacSha256Hex(secret, `${ts}.${body}`))
    expect(JSON.parse(body)).toMatchObject({ to: '+8613800138000', code: '123456', purpose: 'reset' })
    const failing = webhookProvider('https://sms.example.com/send', secret, (async () => new Response('no', { status: 500 })) as unknown as typeof fetch)
    await expect(failing.send({ id: 'm2', to: '+8613800138000', purpose: 'reset', code: '1', lang: 'en', text: '', expires_in: 300, sent_at: '' })).rejects.toThrow(/500/)
  })

  const production = (over: Partial<Env> = {}) =>
    ({
      ...env,
      ENVIRONMENT: 'production',
      ISSUER: 'https://id.example.com',
      MASTER_KEY: btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))),
      BOOTSTRAP_ADMIN_PASSWORD: 'a-real-admin-password',
      PASSWORD_HASH_PROFILE: 'production',
      SMS_PROVIDER: 'webhook',
      SMS_WEBHOOK_URL: 'https://sms.example.com/send',
      SMS_WEBHOOK_SECRET: 'whsec-0123456789abcdef',
      // the suite's instant queue retries (vitest.config.mts) are refused in production
      QUEUE_RETRY_BASE_S: undefined,
      ...over,
    }) as Env

  it('production refuses the console provider and a webhook without URL/secret', () => {
    expect(() => getConfig(production())).not.toThrow()
    expect(() => getConfig(production({ SMS_PROVIDER: 'console' }))).toThrow(/console provider/)
    expect(() => getConfig(production({ SMS_PROVIDER: undefined }))).toThrow(ConfigError)
    expect(() => getConfig(production({ SMS_WEBHOOK_SECRET: undefined }))).toThrow(/SMS_WEBHOOK_SECRET/)
    expect(() => getConfig(production({ SMS_WEBHOOK_URL: 'http://sms.example.com' }))).toThrow(/https/)
  })

  it('validates the branding variables', () => {
    expect(getConfig(production({ BRAND_PRIMARY_COLOR: '#1a7f37' })).brandPrimaryColor).toBe('#1a7f37')
    for (const bad of ['red', '#12345', 'url(x)', '#1234567', 'expression(alert(1))']) expect(() => getConfig(production({ BRAND_PRIMARY_COLOR: bad }))).toThrow(ConfigError)
    expect(() => getConfig(production({ BRAND_LOGO_URL: 'javascript:alert(1)' }))).toThrow(ConfigError)
    expect(() => getConfig(production({ BRAND_LOGO_URL: '//evil.example/x.png' }))).toThrow(ConfigError)
    expect(getConfig(production({ BRAND_LOGO_URL: 'https://cdn.example.com/logo.svg' })).brandLogoUrl).toBe('https://cdn.example.com/logo.svg')
  })

  it('the dev outbox and captcha peek exist in development/test only', async () => {
    const m = uniqueMobile()
    expect((await api(`/api/v1/dev/sms-outbox?mobile=${encodeURIComponent(m)}`)).status).toBe(200)
    const c = await solvedCaptcha()
    // the peek shows the stored answer (solvedCaptcha itself reads it through the peek)
    expect((await api(`/api/v1/dev/captcha/${c.captcha_id}`)).body.answer).toBe(await env.KV.get(`captcha:${c.captcha_id}`))
    const prod = production()
    const outboxRes = await api(`/api/v1/dev/sms-outbox?mobile=${encodeURIComponent(m)}`, { env: prod })
    expect(outboxRes.status).toBe(404)
    const peek = await api(`/api/v1/dev/captcha/${c.captcha_id}`, { env: prod })
    expect(peek.status).toBe(404)
    expect(JSON.stringify(peek.body)).not.toContain(c.captcha_code)
  })
})
