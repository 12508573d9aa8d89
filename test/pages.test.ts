import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { api, createUser, login, uniqueMobile } from './support/api'
import { createApp } from './support/apps'
import { Browser, inputValue, randomIp } from './support/browser'
import { captchaAnswer } from './support/captcha'
import { lastCode, skipCooldown } from './support/sms'
import { safeReturnTo } from '../src/pages/redirect'
import { LOGIN_LIMITS } from '../src/auth/login-attempts'

/** The answer to the captcha a page shows. */
const answerFor = (html: string) => captchaAnswer(inputValue(html, 'captcha_id')!)

/** Submits the login form as typed (unlike Browser.loginOnPage, a refused sign-in is an answer, not an error). */
async function signIn(b: Browser, mobile: string, password: string, extra: Record<string, string> = {}) {
  await b.get('/page/login')
  return b.post('/page/login', { csrf_token: b.csrf, mobile, password, step: 'login', ...extra })
}

describe('hosted pages: security headers and markup', () => {
  it('serves HTML with a strict CSP, no framing, no script, labelled fields', async () => {
    const b = new Browser()
    const r = await b.get('/page/login')
    expect(r.status).toBe(200)
    expect(r.headers.get('Content-Type')).toMatch(/text\/html/)
    const csp = r.headers.get('Content-Security-Policy')!
    expect(csp).toContain("default-src 'none'")
    expect(csp).toContain("style-src 'self'")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(csp).not.toContain('unsafe-inline')
    expect(r.headers.get('X-Frame-Options')).toBe('DENY')
    expect(r.headers.get('Cache-Control')).toBe('no-store')
    expect(r.html.startsWith('<!DOCTYPE html>')).toBe(true)
    expect(r.html).toContain('<meta name="viewport" content="width=device-width, initial-scale=1"/>')
    expect(r.html).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i)
    expect(r.html).toContain('<label for="f-mobile">')
    expect(r.html).toContain('id="f-mobile"')
    expect(r.html).toContain('autocomplete="current-password"')
    const cookie = r.headers.getSetCookie().find((c) => c.startsWith('__Host-uap_csrf='))!
    expect(cookie).toMatch(/HttpOnly/)
    expect(cookie).toMatch(/Secure/)
    expect(cookie).toMatch(/SameSite=Lax/)
    expect(inputValue(r.html, 'csrf_token')).toBe(b.csrf)
  })

  it('serves the stylesheet with the brand colour', async () => {
    const r = await api('/page/assets/style.css')
    expect(r.status).toBe(200)
    expect(r.headers.get('Content-Type')).toMatch(/text\/css/)
    expect(r.body).toContain('--primary:#0b57d0')
    expect(r.body).toContain(':focus-visible')
  })
})

describe('hosted pages: branding', () => {
  it('uses the configured name, logo (allowed by the CSP) and colour', async () => {
    const vars = { BRAND_NAME: 'Acme ID', BRAND_LOGO_URL: 'https://cdn.example.com/acme.svg', BRAND_PRIMARY_COLOR: '#ffd400' }
    const page = await api('/page/login', { env: vars })
    const html = page.body
    expect(html).toContain('<title>Sign in · Acme ID</title>')
    expect(html).toContain('<img src="https://cdn.example.com/acme.svg" alt=""/>')
    expect(page.headers.get('Content-Security-Policy')).toContain("img-src 'self' data: https://cdn.example.com")
    const css = (await api('/page/assets/style.css', { env: vars })).body
    expect(css).toContain('--primary:#ffd400')
    expect(css).toContain('--on-primary:#111111') // dark text on a light brand colour
  })
})

describe('hosted pages: CSRF', () => {
  it('refuses a form post without, or with a different, token', async () => {
    const u = await createUser()
    const b = new Browser()
    await b.get('/page/login')
    const none = await b.post('/page/login', { mobile: u.mobile, password: u.password })
    expect(none.status).toBe(403)
    expect(none.html).toContain('role="alert"')
    const other = await b.post('/page/login', { csrf_token: 'A'.repeat(43), mobile: u.mobile, password: u.password })
    expect(other.status).toBe(403)
    const noCookie = new Browser()
    const r = await noCookie.post('/page/login', { csrf_token: b.csrf, mobile: u.mobile, password: u.password })
    expect(r.status).toBe(403)
    expect(r.headers.getSetCookie().some((c) => c.startsWith('__Host-AUTH_SESSION_ID='))).toBe(false)
  })

  it('refuses a cross-site post even with matching token and cookie', async () => {
    const u = await createUser()
    const b = new Browser()
    await b.get('/page/login')
    const r = await b.post('/page/login', { csrf_token: b.csrf, mobile: u.mobile, password: u.password }, { Origin: 'https://evil.example' })
    expect(r.status).toBe(403)
    const s = await b.post('/page/logout', { csrf_token: b.csrf }, { 'Sec-Fetch-Site': 'cross-site' })
    expect(s.status).toBe(403)
  })

  it('accepts Origin "null" (sent under some referrer policies) when the token matches', async () => {
    const u = await createUser()
    const b = new Browser()
    await b.get('/page/login')
    const r = await b.post('/page/login', { csrf_token: b.csrf, mobile: u.mobile, password: u.password, step: 'login' }, { Origin: 'null', 'Sec-Fetch-Site': 'same-origin' })
    expect(r.status).toBe(303)
  })

  it('guards every form: register, reset, logout', async () => {
    const b = new Browser()
    for (const path of ['/page/register', '/page/pwd/reset', '/page/logout']) expect((await b.post(path, { mobile: '+8613800138000', step: 'send' })).status, path).toBe(403)
  })
})

describe('hosted pages: sign in', () => {
  it('sets AUTH_SESSION_ID (HttpOnly, Secure, SameSite=Lax) and then shows who is signed in', async () => {
    const u = await createUser({ name: 'Zhang San' })
    const b = new Browser()
    const r = await signIn(b, u.mobile, u.password)
    expect(r.status).toBe(303)
    expect(r.headers.get('Location')).toBe('/page/home') // the portal's "My apps"
    const sc = r.headers.getSetCookie().find((c) => c.startsWith('__Host-AUTH_SESSION_ID='))!
    expect(sc).toMatch(/HttpOnly/)
    expect(sc).toMatch(/Secure/)
    expect(sc).toMatch(/SameSite=Lax/)
    const raw = b.cookies.get('__Host-AUTH_SESSION_ID')!
    // what D1 keeps of the cookie (no API shows it)
    const row = await env.DB.prepare('SELECT cookie_hash FROM sessions WHERE user_id = ?').bind(u.id).first<{ cookie_hash: string }>()
    expect(row!.cookie_hash).not.toBe(raw) // stored hashed
    const page = await b.get('/page/login')
    expect(page.html).toContain('Signed in as')
    expect(page.html).toContain('Zhang San')
    expect((await b.get('/page/home')).html).toContain('Zhang San')
  })

  it('shows a wrong password as an announced error and keeps the mobile', async () => {
    const u = await createUser()
    const b = new Browser()
    const r = await signIn(b, u.mobile, 'not-the-password')
    expect(r.status).toBe(401)
    expect(r.html).toMatch(/role="alert"[^>]*>The mobile number or password is wrong/)
    expect(inputValue(r.html, 'mobile')).toBe(u.mobile)
    const bad = await b.post('/page/login', { csrf_token: b.csrf, mobile: 'abc', password: 'x', step: 'login' })
    expect(bad.status).toBe(400)
    expect(bad.html).toContain('aria-invalid="true"')
    expect(bad.html).toContain('aria-describedby="f-mobile-error"')
  })

  it(`asks for a captcha after ${LOGIN_LIMITS.mobile.captchaAfter} failures for a mobile, and then requires it`, async () => {
    const u = await createUser()
    const b = new Browser()
    for (let i = 0; i < LOGIN_LIMITS.mobile.captchaAfter; i++) {
      const r = await signIn(new Browser(), u.mobile, 'wrong-password-' + i)
      expect(r.status).toBe(401)
      if (i < LOGIN_LIMITS.mobile.captchaAfter - 1) expect(r.html).not.toContain('name="captcha_code"')
      else expect(r.html).toContain('name="captcha_code"')
    }
    // right password, no captcha answer: refused without checking the password
    const noCaptcha = await signIn(b, u.mobile, u.password)
    expect(noCaptcha.status).toBe(400)
    expect(noCaptcha.html).toContain('name="captcha_code"')
    expect(b.cookies.has('__Host-AUTH_SESSION_ID')).toBe(false)
    // a wrong answer spends the picture and checks nothing either
    const wrong = await b.post('/page/login', { csrf_token: b.csrf, mobile: u.mobile, password: u.password, step: 'login', captcha_id: inputValue(noCaptcha.html, 'captcha_id')!, captcha_code: 'WRONG' })
    expect(wrong.status).toBe(400)
    expect(wrong.html).toContain('did not match the picture')
    expect(b.cookies.has('__Host-AUTH_SESSION_ID')).toBe(false)
    const ok = await b.post('/page/login', { csrf_token: b.csrf, mobile: u.mobile, password: u.password, step: 'login', captcha_id: inputValue(wrong.html, 'captcha_id')!, captcha_code: (await answerFor(wrong.html)).toLowerCase() })
    expect(ok.status).toBe(303)
    expect(b.cookies.has('__Host-AUTH_SESSION_ID')).toBe(true)
    // the right password cleared the number's failures: the next visit has no captcha
    const again = await signIn(new Browser(), u.mobile, 'wrong-password-again')
    expect(again.status).toBe(401)
    expect(again.html).not.toContain('name="captcha_code"')
  })

  it(`asks for a captcha after ${LOGIN_LIMITS.ip.captchaAfter} failures from one IP, on the first page view`, async () => {
    const ip = randomIp()
    for (let i = 0; i < LOGIN_LIMITS.ip.captchaAfter; i++) await signIn(new Browser(ip), uniqueMobile(), 'whatever-password')
    const r = await new Browser(ip).get('/page/login')
    expect(r.html).toContain('name="captcha_code"')
    expect(r.html).toMatch(/<img src="data:image\/png;base64,[A-Za-z0-9+\/]+={0,2}"/)
  })

  it('follows the same counters as the API: failures through the API make the page ask, and the other way round', async () => {
    const u = await createUser()
    for (let i = 0; i < LOGIN_LIMITS.mobile.captchaAfter; i++) {
      expect((await api('/api/v1/auth/login', { method: 'POST', json: { mobile: u.mobile, password: 'wrong-' + i }, headers: { 'CF-Connecting-IP': `10.31.${i}.7` } })).status).toBe(401)
    }
    const b = new Browser()
    const page = await signIn(b, u.mobile, u.password)
    expect(page.status).toBe(400)
    expect(page.html).toContain('name="captcha_code"')

    const v = await createUser()
    for (let i = 0; i < LOGIN_LIMITS.mobile.captchaAfter; i++) expect((await signIn(new Browser(), v.mobile, 'wrong-' + i)).status).toBe(401)
    const r = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: v.mobile, password: v.password }, headers: { 'CF-Connecting-IP': '10.31.99.7' } })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('captcha_required')
  })

  it('says when sign-in is locked (429 page, captcha or not)', async () => {
    const u = await createUser()
    const b = new Browser()
    let html = (await b.get('/page/login')).html
    for (let i = 0; i < LOGIN_LIMITS.mobile.lockAt; i++) {
      const captcha: Record<string, string> = inputValue(html, 'captcha_id') ? { captcha_id: inputValue(html, 'captcha_id')!, captcha_code: await answerFor(html) } : {}
      const r = await b.post('/page/login', { csrf_token: b.csrf, mobile: u.mobile, password: 'wrong-' + i, step: 'login', ...captcha })
      expect(r.status, String(i)).toBe(401)
      html = r.html
    }
    const locked = await b.post('/page/login', { csrf_token: b.csrf, mobile: u.mobile, password: u.password, step: 'login', captcha_id: inputValue(html, 'captcha_id')!, captcha_code: await answerFor(html) })
    expect(locked.status).toBe(429)
    expect(locked.html).toMatch(/role="alert"[^>]*>Too many failed sign-ins for this number or network\. Try again in \d+ (minutes|seconds)/)
    expect(b.cookies.has('__Host-AUTH_SESSION_ID')).toBe(false)
  }, 60_000)
})

describe('hosted pages: return_to (no open redirect)', () => {
  it('refuses other sites, scheme-relative and script URLs', async () => {
    const u = await createUser()
    for (const evil of ['//evil.com', 'https://evil.com', 'https://evil.com/callback', 'javascript:alert(1)', '/\\evil.com', '\\\\evil.com', ' //evil.com', 'data:text/html,x', 'https://app.example.com/callback?x=1', 'http://app.example.com/callback']) {
      const b = new Browser()
      const page = await b.get(`/page/login?return_to=${encodeURIComponent(evil)}`)
      expect(inputValue(page.html, 'return_to'), evil).toBeNull()
      const r = await b.post('/page/login', { csrf_token: b.csrf, mobile: u.mobile, password: u.password, step: 'login', return_to: evil })
      expect(r.status, evil).toBe(303)
      expect(r.headers.get('Location'), evil).toBe('/page/home')
    }
  })

  it('follows a path on this site (the OIDC authorize endpoint) and a registered redirect URI exactly', async () => {
    await createApp({ redirect_uris: ['https://partner.example.com/sso/callback'] })
    const u = await createUser()
    const authorize = '/oauth2/authorize?client_id=app_1&redirect_uri=https%3A%2F%2Fx.example%2Fcb&state=s%26t'
    const b = new Browser()
    const page = await b.get(`/page/login?return_to=${encodeURIComponent(authorize)}`)
    expect(inputValue(page.html, 'return_to')).toBe(authorize)
    const r = await b.post('/page/login', { csrf_token: b.csrf, mobile: u.mobile, password: u.password, step: 'login', return_to: authorize })
    expect(r.headers.get('Location')).toBe(authorize)
    // signed in already: straight on, unless prompt=login
    expect((await b.get(`/page/login?return_to=${encodeURIComponent(authorize)}`)).headers.get('Location')).toBe(authorize)
    expect((await b.get(`/page/login?prompt=login&return_to=${encodeURIComponent(authorize)}`)).status).toBe(200)

    const b2 = new Browser()
    await b2.get('/page/login')
    const r2 = await b2.post('/page/login', { csrf_token: b2.csrf, mobile: u.mobile, password: u.password, step: 'login', return_to: 'https://partner.example.com/sso/callback' })
    expect(r2.headers.get('Location')).toBe('https://partner.example.com/sso/callback')
  })

  it('safeReturnTo unit cases', async () => {
    expect(await safeReturnTo(env, '/page/login')).toBe('/page/login')
    expect(await safeReturnTo(env, 'http://localhost/page/x')).toBe('http://localhost/page/x')
    for (const bad of ['', '//evil.com', '/\\evil.com', '/\tevil', 'javascript:alert(1)', 'JAVASCRIPT:alert(1)', 'evil.com', 'https://evil.com', 'http://localhost.evil.com/', 'x'.repeat(3000)]) {
      expect(await safeReturnTo(env, bad), bad).toBeNull()
    }
  })
})

describe('hosted pages: register, reset, logout', () => {
  it('registers through the three steps and signs in', async () => {
    const m = uniqueMobile()
    const b = new Browser()
    const start = await b.get('/page/register')
    expect(start.status).toBe(200)
    expect(start.html).toContain('name="captcha_code"')
    const wrong = await b.post('/page/register', { csrf_token: b.csrf, step: 'send', mobile: m, captcha_id: inputValue(start.html, 'captcha_id')!, captcha_code: 'XXXXX' })
    expect(wrong.status).toBe(400)
    expect(wrong.html).toContain('aria-invalid="true"')
    const sent = await b.post('/page/register', { csrf_token: b.csrf, step: 'send', mobile: m, captcha_id: inputValue(wrong.html, 'captcha_id')!, captcha_code: await answerFor(wrong.html) })
    expect(sent.status).toBe(200)
    expect(sent.html).toContain('autocomplete="one-time-code"')
    expect(sent.html).toContain('role="status"')
    const mismatch = await b.post('/page/register', { csrf_token: b.csrf, step: 'finish', mobile: m, sms_code: await lastCode(m), password: 'page-password-1', password_confirm: 'page-password-2' })
    expect(mismatch.status).toBe(400)
    expect(mismatch.html).toContain('The two passwords differ')
    const done = await b.post('/page/register', { csrf_token: b.csrf, step: 'finish', mobile: m, name: 'Page User', sms_code: await lastCode(m), password: 'page-password-1', password_confirm: 'page-password-1' })
    expect(done.status).toBe(303)
    expect(b.cookies.has('__Host-AUTH_SESSION_ID')).toBe(true)
    expect((await b.get('/page/login')).html).toContain('Page User')
    await expect(login(m, 'page-password-1')).resolves.toHaveProperty('access_token')
  })

  it('resets the password, ending every session; unknown numbers read the same', async () => {
    const u = await createUser()
    const api1 = await login(u.mobile, u.password)
    const b = new Browser()
    await signIn(b, u.mobile, u.password)
    const start = await b.get('/page/pwd/reset')
    const sent = await b.post('/page/pwd/reset', { csrf_token: b.csrf, step: 'send', mobile: u.mobile, captcha_id: inputValue(start.html, 'captcha_id')!, captcha_code: await answerFor(start.html) })
    expect(sent.status).toBe(200)
    // an unknown number gets the same page, word for word, apart from the number and tokens
    const other = new Browser()
    const unknown = uniqueMobile()
    const s2 = await other.get('/page/pwd/reset')
    const sentUnknown = await other.post('/page/pwd/reset', { csrf_token: other.csrf, step: 'send', mobile: unknown, captcha_id: inputValue(s2.html, 'captcha_id')!, captcha_code: await answerFor(s2.html) })
    const norm = (h: string, m: string, csrf: string) => h.replaceAll(m, 'MOBILE').replaceAll(csrf, 'CSRF')
    expect(sentUnknown.status).toBe(200)
    expect(norm(sentUnknown.html, unknown, other.csrf)).toBe(norm(sent.html, u.mobile, b.csrf))

    const done = await b.post('/page/pwd/reset', { csrf_token: b.csrf, step: 'finish', mobile: u.mobile, sms_code: await lastCode(u.mobile), password: 'reset-by-page-1', password_confirm: 'reset-by-page-1' })
    expect(done.status).toBe(200)
    expect(done.html).toContain('Password changed')
    expect((await api('/api/v1/auth/me', { token: api1.access_token })).status).toBe(401)
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: api1.refresh_token } })).status).toBe(401)
    expect((await b.get('/page/login')).html).not.toContain('Signed in as')
    await expect(login(u.mobile, 'reset-by-page-1')).resolves.toHaveProperty('access_token')
  })

  it('a number locked for wrong codes gets a 429 page that says so, not a generic error', async () => {
    const { sendSmsCode, verifySmsCode, SMS_MAX_ATTEMPTS, SMS_MAX_WRONG_PER_DAY } = await import('../src/sms/service')
    const m = uniqueMobile()
    for (let i = 0; i < SMS_MAX_WRONG_PER_DAY; i++) {
      if (i % SMS_MAX_ATTEMPTS === 0) {
        await skipCooldown(m, 'reset')
        await sendSmsCode(env, { mobile: m, purpose: 'reset' })
      }
      await verifySmsCode(env, { mobile: m, purpose: 'reset', code: '000000' }).catch(() => {})
    }
    const b = new Browser()
    await b.get('/page/pwd/reset')
    const r = await b.post('/page/pwd/reset', { csrf_token: b.csrf, step: 'finish', mobile: m, sms_code: '123456', password: 'reset-by-page-1', password_confirm: 'reset-by-page-1' })
    expect(r.status).toBe(429)
    expect(r.html).toMatch(/role="alert"[^>]*>Too many wrong codes for this number today\. Try again in \d+ hours\./)
  })

  it('logout: GET asks, POST signs this browser out', async () => {
    const u = await createUser()
    const b = new Browser()
    await signIn(b, u.mobile, u.password)
    const ask = await b.get('/page/logout')
    expect(ask.html).toContain('action="/page/logout"')
    expect((await b.get('/page/login')).html).toContain('Signed in as') // GET changed nothing
    const raw = b.cookies.get('__Host-AUTH_SESSION_ID')!
    const r = await b.post('/page/logout', { csrf_token: b.csrf })
    expect(r.status).toBe(303)
    expect(r.headers.get('Location')).toBe('/page/login?signed_out=1')
    const after = await b.get('/page/login?signed_out=1')
    expect(after.html).toContain('You have signed out')
    // the old cookie value no longer signs anyone in
    b.cookies.set('__Host-AUTH_SESSION_ID', raw)
    expect((await b.get('/page/login')).html).not.toContain('Signed in as')
  })
})
