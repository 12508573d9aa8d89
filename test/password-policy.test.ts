import { describe, expect, it } from 'vitest'
import { adminToken, api, createUser, signedApi, uniqueMobile } from './support/api'
import { partnerApp } from './support/apps'
import { Browser, csrfFrom } from './support/browser'
import { lastCode, openSmsSend } from './support/sms'
import { PASSWORD_MIN_LENGTH } from '../src/lib/password'

// One minimum length (12) wherever a password is set: registration, reset (API and page), admin.
const eleven = 'a'.repeat(PASSWORD_MIN_LENGTH - 1)
const twelve = 'b'.repeat(PASSWORD_MIN_LENGTH)

describe(`passwords have at least ${PASSWORD_MIN_LENGTH} characters everywhere`, () => {
  it('is 12', () => expect(PASSWORD_MIN_LENGTH).toBe(12))

  it('admin create and set-password', async () => {
    const token = await adminToken()
    const short = await api('/api/v1/admin/users', { method: 'POST', token, json: { mobile: uniqueMobile(), password: eleven } })
    expect(short.status).toBe(400)
    expect(short.body.error.details.issues[0].path).toBe('password')
    expect((await api('/api/v1/admin/users', { method: 'POST', token, json: { mobile: uniqueMobile(), password: twelve } })).status).toBe(201)
    const u = await createUser()
    expect((await api(`/api/v1/admin/users/${u.id}/password`, { method: 'PUT', token, json: { password: eleven } })).status).toBe(400)
    expect((await api(`/api/v1/admin/users/${u.id}/password`, { method: 'PUT', token, json: { password: twelve } })).status).toBe(200)
  })

  it('registration and the signed reset API', async () => {
    const m = uniqueMobile()
    await openSmsSend(m, 'register')
    const reg = await api('/api/v1/auth/register', { method: 'POST', json: { mobile: m, password: eleven, sms_code: await lastCode(m) } })
    expect(reg.status).toBe(400)
    expect(reg.body.error.details.issues[0].path).toBe('password')
    const u = await createUser()
    await openSmsSend(u.mobile)
    const reset = await signedApi(await partnerApp(), 'POST', '/api/v1/open/pwd/reset', { json: { mobile: u.mobile, sms_code: await lastCode(u.mobile), new_password: eleven } })
    expect(reset.status).toBe(400)
  })

  it('the hosted reset page says so and keeps the code', async () => {
    const u = await createUser()
    const b = new Browser()
    await openSmsSend(u.mobile)
    const code = await lastCode(u.mobile)
    const csrf = csrfFrom((await b.get('/page/pwd/reset')).html)
    const res = await b.post('/page/pwd/reset', { csrf_token: csrf, step: 'finish', mobile: u.mobile, sms_code: code, password: eleven, password_confirm: eleven })
    expect(res.status).toBe(400)
    expect(res.html).toContain(`Use at least ${PASSWORD_MIN_LENGTH} characters.`)
  })
})
