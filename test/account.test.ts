import { describe, expect, it } from 'vitest'
import { api, auditLog, createUser, login, signedApi, uniqueMobile } from './support/api'
import { partnerApp } from './support/apps'
import { randomIp } from './support/browser'
import { solvedCaptcha } from './support/captcha'
import { lastCode, openSmsSend } from './support/sms'

const reset = async (body: Record<string, unknown>) => signedApi(await partnerApp(), 'POST', '/api/v1/open/pwd/reset', { json: body })

describe('POST /api/v1/open/pwd/reset', () => {
  it('sets the password and revokes every session and refresh token, in one audited change', async () => {
    const u = await createUser()
    const s1 = await login(u.mobile, u.password)
    const s2 = await login(u.mobile, u.password)
    expect((await openSmsSend(u.mobile)).status).toBe(200)
    const r = await reset({ mobile: u.mobile, sms_code: await lastCode(u.mobile), new_password: 'brand-new-password-1' })
    expect(r.status).toBe(200)
    expect(r.body).toEqual({ ok: true })
    for (const s of [s1, s2]) {
      expect((await api('/api/v1/auth/me', { token: s.access_token })).status).toBe(401)
      expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: s.refresh_token } })).status).toBe(401)
    }
    expect((await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: u.password } })).status).toBe(401)
    await expect(login(u.mobile, 'brand-new-password-1')).resolves.toHaveProperty('access_token')
    const audit = await auditLog({ action: 'password.reset', target_id: u.id })
    expect(audit.map((a) => ({ actor_type: a.actor_type, actor_id: a.actor_id }))).toEqual([{ actor_type: 'app', actor_id: (await partnerApp()).app_id }])
  })

  it('refuses a wrong code, a weak password, and unsigned calls', async () => {
    const u = await createUser()
    await openSmsSend(u.mobile)
    const code = await lastCode(u.mobile)
    const wrong = await reset({ mobile: u.mobile, sms_code: code === '000000' ? '000001' : '000000', new_password: 'brand-new-password-1' })
    expect(wrong.status).toBe(400)
    expect(wrong.body.error.code).toBe('invalid_sms_code')
    const weak = await reset({ mobile: u.mobile, sms_code: code, new_password: 'short' })
    expect(weak.status).toBe(400)
    expect(weak.body.error.code).toBe('invalid_request')
    const unsigned = await api('/api/v1/open/pwd/reset', { method: 'POST', json: { mobile: u.mobile, sms_code: code, new_password: 'brand-new-password-1' } })
    expect(unsigned.status).toBe(401)
    // the code survived the refused attempts and still works
    expect((await reset({ mobile: u.mobile, sms_code: code, new_password: 'brand-new-password-1' })).status).toBe(200)
  })
})

describe('POST /api/v1/auth/register', () => {
  const register = (body: Record<string, unknown>) => api('/api/v1/auth/register', { method: 'POST', json: body, headers: { 'CF-Connecting-IP': randomIp() } })

  it('captcha → SMS code → account', async () => {
    const m = uniqueMobile()
    expect((await openSmsSend(m, 'register')).status).toBe(200)
    const r = await register({ mobile: m, password: 'my-first-password', name: 'Wei Chen', sms_code: await lastCode(m) })
    expect(r.status).toBe(201)
    expect(r.body.user).toMatchObject({ mobile: m, name: 'Wei Chen', status: 'ACTIVE', role: 'USER' })
    await expect(login(m, 'my-first-password')).resolves.toHaveProperty('access_token')
    expect(await auditLog({ action: 'user.registered', target_id: r.body.user.id })).toHaveLength(1)
  })

  it('says a number is taken only after its SMS code is verified', async () => {
    const u = await createUser()
    await openSmsSend(u.mobile, 'register')
    const code = await lastCode(u.mobile)
    const guess = await register({ mobile: u.mobile, password: 'my-first-password', sms_code: code === '123456' ? '654321' : '123456' })
    expect(guess.status).toBe(400)
    expect(guess.body.error.code).toBe('invalid_sms_code')
    const owner = await register({ mobile: u.mobile, password: 'my-first-password', sms_code: code })
    expect(owner.status).toBe(409)
    expect(owner.body.error.code).toBe('mobile_taken')
  })

  it('checks an optional captcha when one is given', async () => {
    const m = uniqueMobile()
    await openSmsSend(m, 'register')
    const c = await solvedCaptcha()
    const bad = await register({ mobile: m, password: 'my-first-password', sms_code: await lastCode(m), captcha_id: c.captcha_id, captcha_code: 'XXXXX' })
    expect(bad.status).toBe(400)
    expect(bad.body.error.code).toBe('invalid_captcha')
    const c2 = await solvedCaptcha()
    expect((await register({ mobile: m, password: 'my-first-password', sms_code: await lastCode(m), ...c2 })).status).toBe(201)
  })

  it('registration closed → 403 registration_closed, for register and for register codes', async () => {
    const m = uniqueMobile()
    const closed = { REGISTRATION_OPEN: 'false' }
    const res = await api('/api/v1/auth/register', { method: 'POST', json: { mobile: m, password: 'my-first-password', sms_code: '123456' }, env: closed })
    expect(res.status).toBe(403)
    expect(res.body.error.code).toBe('registration_closed')
    const page = await api('/page/register', { env: closed })
    expect(page.status).toBe(403)
    expect(page.body).toContain('Registration is closed')
  })
})

describe('partner docs', () => {
  it('/docs/open lists captcha, sms/send, pwd/reset and register with examples', async () => {
    const doc = (await api('/docs/open/openapi.json')).body
    for (const [path, method] of [
      ['/api/v1/utils/captcha', 'get'],
      ['/api/v1/open/sms/send', 'post'],
      ['/api/v1/open/pwd/reset', 'post'],
      ['/api/v1/auth/register', 'post'],
    ]) {
      const op = doc.paths[path]?.[method]
      expect(op, path).toBeTruthy()
      expect(op.description.length, path).toBeGreaterThan(50)
    }
    const body = doc.paths['/api/v1/open/sms/send'].post.requestBody.content['application/json'].schema
    expect(JSON.stringify(body)).toContain('K7WPA')
    expect(doc.paths['/api/v1/dev/sms-outbox']).toBeUndefined()
  })
})
