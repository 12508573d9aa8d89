import { describe, expect, it } from 'vitest'
import { auditLog, createUser, uniqueMobile } from './support/api'
import { Browser, inputValue } from './support/browser'
import { captchaAnswer } from './support/captcha'
import { lastCode } from './support/sms'

// The login.succeeded row of a browser sign-in keeps its own details (which session it
// ended) when the caller adds details of its own (registration, federation sign-in).

describe('browser sign-in audit details', () => {
  it('registering on a browser signed in as someone else records the session it ended, and that it registered', async () => {
    const a = await createUser()
    const b = new Browser()
    const { sessionId: previous } = await b.loginOnPage(a)

    const mobile = uniqueMobile()
    const start = await b.get('/page/register')
    const sent = await b.post('/page/register', { csrf_token: b.csrf, step: 'send', mobile, captcha_id: inputValue(start.html, 'captcha_id')!, captcha_code: await captchaAnswer(inputValue(start.html, 'captcha_id')!) })
    expect(sent.status).toBe(200)
    const done = await b.post('/page/register', { csrf_token: b.csrf, step: 'finish', mobile, name: 'Second Person', sms_code: await lastCode(mobile), password: 'page-password-1', password_confirm: 'page-password-1' })
    expect(done.status).toBe(303)

    const session = await b.sessionId()
    expect(session).not.toBe(previous)
    const [row] = await auditLog({ action: 'login.succeeded', target_id: session })
    expect(row.details).toMatchObject({ via: 'page', registered: true, previous_session_ended: previous })
  })
})
