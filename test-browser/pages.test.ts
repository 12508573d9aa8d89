import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Browser, type Page } from 'playwright-core'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { launchChromium, startWranglerDev, testPort, type DevServer } from './wrangler-dev'

// End to end in headless Chromium against `wrangler dev`: register, sign out, reset the
// password (captcha answer and SMS code read through the dev-only endpoints), sign in
// with the new password. A screenshot of every page goes to test-artifacts/.

const ARTIFACTS = path.resolve(import.meta.dirname, '..', 'test-artifacts')
const PORT = testPort(1)
const INSPECTOR_PORT = testPort(2)

let server: DevServer
let browser: Browser
const cspViolations: string[] = []

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true })
  server = await startWranglerDev({ port: PORT, inspectorPort: INSPECTOR_PORT, vars: { BRAND_NAME: 'Acme Account' } })
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

async function shot(page: Page, name: string) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true })
}

async function captchaAnswer(page: Page): Promise<string> {
  const id = await page.locator('input[name="captcha_id"]').inputValue()
  const r = await fetch(`${server.url}/api/v1/dev/captcha/${id}`)
  expect(r.status).toBe(200)
  return ((await r.json()) as { answer: string }).answer
}

async function smsCode(mobile: string, purpose: string): Promise<string> {
  const r = await fetch(`${server.url}/api/v1/dev/sms-outbox?mobile=${encodeURIComponent(mobile)}`)
  const { messages } = (await r.json()) as { messages: { code: string; purpose: string }[] }
  const m = messages.find((x) => x.purpose === purpose)
  if (!m) throw new Error(`no ${purpose} SMS for ${mobile}`)
  return m.code
}

/** The captcha picture is on the page, and Chromium decoded it (CSP allows data: images) at its 200×70. */
async function expectCaptchaShown(page: Page) {
  const img = page.getByRole('img', { name: /Security check/ })
  expect(await img.isVisible()).toBe(true)
  expect(await img.getAttribute('src')).toMatch(/^data:image\/png;base64,/)
  expect(await img.evaluate((el: HTMLImageElement) => [el.complete, el.naturalWidth, el.naturalHeight])).toEqual([true, 200, 70])
}

const text = async (l: { textContent(): Promise<string | null> }) => (await l.textContent()) ?? ''

async function newPage(viewport = { width: 1024, height: 800 }) {
  const context = await browser.newContext({ viewport, javaScriptEnabled: false })
  const page = await context.newPage()
  page.on('console', (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) cspViolations.push(msg.text())
  })
  return page
}

describe('hosted pages in Chromium (no JavaScript)', () => {
  const mobile = `+86139${String(Date.now()).slice(-8)}`
  const firstPassword = 'first-password-123'
  const newPassword = 'second-password-456'

  it('register → sign out → reset password → sign in with the new password', async () => {
    const page = await newPage()

    // 1. register: mobile + captcha
    await page.goto(`${server.url}/page/register`)
    expect(await page.title()).toBe('Create an account · Acme Account')
    await expectCaptchaShown(page)
    await shot(page, '01-register-start')
    await page.getByLabel('Mobile number').fill(mobile)
    await page.getByLabel('Characters in the picture').fill((await captchaAnswer(page)).toLowerCase())
    await page.getByRole('button', { name: 'Send code' }).click()

    // 2. code + password
    expect(await text(page.getByRole('status'))).toContain(`sent a 6-digit code to ${mobile}`)
    await shot(page, '02-register-code')
    await page.getByLabel('Code from the SMS').fill(await smsCode(mobile, 'register'))
    await page.getByLabel('Your name (optional)').fill('Browser Tester')
    await page.getByLabel('Password', { exact: true }).fill(firstPassword)
    await page.getByLabel('Repeat the password').fill(firstPassword)
    await page.getByRole('button', { name: 'Create account' }).click()

    // 3. signed in
    expect(await text(page.locator('.who'))).toContain('Browser Tester')
    expect(new URL(page.url()).pathname).toBe('/page/home') // the portal's "My apps"
    const cookie = (await page.context().cookies()).find((c) => c.name === '__Host-AUTH_SESSION_ID')!
    expect(cookie.httpOnly).toBe(true)
    expect(cookie.secure).toBe(true)
    expect(cookie.sameSite).toBe('Lax')
    await shot(page, '03-signed-in')

    // 4. sign out (GET confirms, POST signs out)
    await page.getByRole('link', { name: 'Sign out' }).click()
    await shot(page, '04-logout-confirm')
    await page.getByRole('button', { name: 'Sign out' }).click()
    expect(await text(page.getByRole('status'))).toContain('You have signed out')
    expect((await page.context().cookies()).some((c) => c.name === '__Host-AUTH_SESSION_ID')).toBe(false)
    await shot(page, '05-signed-out')

    // 5. forgot password: captcha → code → new password
    await page.getByRole('link', { name: 'Forgot password?' }).click()
    await page.getByLabel('Mobile number').fill(mobile)
    await page.getByLabel('Characters in the picture').fill('WRONG')
    await page.getByRole('button', { name: 'Send code' }).click()
    expect(await text(page.getByRole('alert'))).toContain('did not match the picture')
    expect(await page.getByLabel('Characters in the picture').getAttribute('aria-invalid')).toBe('true')
    await expectCaptchaShown(page)
    await shot(page, '06-reset-captcha-error')
    await page.getByLabel('Characters in the picture').fill(await captchaAnswer(page))
    await page.getByRole('button', { name: 'Send code' }).click()
    expect(await text(page.getByRole('status'))).toContain('we have sent it a 6-digit code')
    await shot(page, '07-reset-code')
    await page.getByLabel('Code from the SMS').fill(await smsCode(mobile, 'reset'))
    await page.getByLabel('New password').fill(newPassword)
    await page.getByLabel('Repeat the password').fill(newPassword)
    await page.getByRole('button', { name: 'Set new password' }).click()
    expect(await text(page.locator('h1'))).toBe('Password changed')
    await shot(page, '08-reset-done')

    // 6. the old password no longer works, the new one does
    await page.getByRole('link', { name: 'Sign in' }).click()
    await page.getByLabel('Mobile number').fill(mobile)
    await page.getByLabel('Password').fill(firstPassword)
    await page.getByRole('button', { name: 'Sign in' }).click()
    expect(await text(page.getByRole('alert'))).toContain('wrong')
    await shot(page, '09-login-wrong-password')
    await page.getByLabel('Password').fill(newPassword)
    await page.getByRole('button', { name: 'Sign in' }).click()
    expect(await text(page.locator('.who'))).toContain('Browser Tester')
    expect(await text(page.locator('main'))).toContain(mobile)
    await shot(page, '10-signed-in-again')

    expect(cspViolations).toEqual([])
  })

  it('is usable on a phone-sized screen and shows the captcha after repeated failures', async () => {
    const page = await newPage({ width: 375, height: 740 })
    await page.goto(`${server.url}/page/login`)
    // LOGIN_LIMITS.mobile.captchaAfter (src/auth/login-attempts.ts), the login API's counters:
    // the fifth failure for the number brings the captcha (the sign-in above cleared its count)
    for (let i = 0; i < 5; i++) {
      expect(await page.locator('input[name="captcha_code"]').count()).toBe(0)
      await page.getByLabel('Mobile number').fill(mobile)
      await page.getByLabel('Password').fill(`wrong-${i}-password`)
      await page.getByRole('button', { name: 'Sign in' }).click()
      expect(await text(page.getByRole('alert'))).toContain('wrong')
    }
    await expectCaptchaShown(page)
    // no sideways scrolling: the form and the picture fit the screen
    for (const sel of ['main', 'form', 'img', 'button[value="login"]']) {
      const box = (await page.locator(sel).first().boundingBox())!
      expect(box.x, sel).toBeGreaterThanOrEqual(0)
      expect(box.x + box.width, sel).toBeLessThanOrEqual(375)
    }
    await shot(page, '11-mobile-login-captcha')
    // with the characters of the picture the password is checked again, and it signs in
    await page.getByLabel('Password').fill(newPassword)
    await page.getByLabel('Characters in the picture').fill(await captchaAnswer(page))
    await page.getByRole('button', { name: 'Sign in' }).click()
    expect(await text(page.locator('.who'))).toContain('Browser Tester')
    await page.goto(`${server.url}/page/register`)
    await shot(page, '12-mobile-register')
    expect(cspViolations).toEqual([])
  })
})

describe('/docs in Chromium', () => {
  it('Swagger UI renders under its CSP (bundle from this site, the inline bootstrap allowed by hash) and refuses to be framed', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const page = await context.newPage()
    const violations: string[] = []
    page.on('console', (msg) => {
      if (/Content Security Policy|Refused to/i.test(msg.text())) violations.push(msg.text())
    })
    const res = await page.goto(`${server.url}/docs/admin`)
    expect(res!.headers()['content-security-policy']).toMatch(/frame-ancestors 'none'/)
    await page.locator('.swagger-ui .info .title').waitFor({ timeout: 30_000 })
    expect(await text(page.locator('.swagger-ui .info .title'))).toContain('UAP Edge admin API')
    // Swagger UI renders a long document's operations as the page is scrolled, as a reader does
    await expect
      .poll(async () => {
        await page.mouse.wheel(0, 5000)
        return page.locator('.opblock').count()
      }, { timeout: 20_000 })
      .toBeGreaterThan(20)
    await page.screenshot({ path: path.join(ARTIFACTS, 'docs-admin.png') })
    expect(violations).toEqual([])

    // another site framing the docs gets nothing
    await page.route('http://framer.test/', (route) => route.fulfill({ contentType: 'text/html', body: `<iframe src="${server.url}/docs/admin"></iframe>` }))
    await page.goto('http://framer.test/')
    const frame = page.frames().find((f) => f.url().includes('/docs/admin'))
    expect(await frame?.locator('.swagger-ui').count().catch(() => 0) ?? 0).toBe(0)
    await context.close()
  })
})
