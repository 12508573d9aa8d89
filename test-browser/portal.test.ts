import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Browser, type BrowserContext, type Page } from 'playwright-core'
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { launchChromium, startWranglerDev, testPort, type DevServer, callWorker, type CallOptions } from './wrangler-dev'
import { signedFetch } from '../src/signing/client'

// The portal (/page/home) end to end in headless Chromium against `wrangler dev` (ports
// base+21 to base+23): sign in → My apps → open a SIMPLE_API app (its callback, a real HTTP
// server on 127.0.0.1, gets a ticket that verifies) → authorize an OIDC app → revoke it on
// "Authorized apps" (its refresh token is refused) → sign out another session on "Sessions
// and devices" (its refresh token is refused); then the portal in zh-CN, desktop and phone.

const ARTIFACTS = path.resolve(import.meta.dirname, '..', 'test-artifacts')
const PORT = testPort(21)
const INSPECTOR_PORT = testPort(22)
const APPS_ORIGIN = `http://127.0.0.1:${testPort(23)}`
const HR_CALLBACK = `${APPS_ORIGIN}/hr/sso`
const RP_CALLBACK = `${APPS_ORIGIN}/rp/cb`

let server: DevServer
let browser: Browser
let apps: Server
/** Every request the apps' server received (path + query). */
const received: URL[] = []

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true })
  apps = createServer((req, res) => {
    received.push(new URL(req.url!, APPS_ORIGIN))
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('app reached')
  })
  await new Promise<void>((r) => apps.listen(testPort(23), '127.0.0.1', r))
  server = await startWranglerDev({ port: PORT, inspectorPort: INSPECTOR_PORT })
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
  await new Promise((r) => apps?.close(r))
})

const call = (method: string, p: string, opts: CallOptions = {}) => callWorker(server.url, method, p, opts)

const cspViolations: string[] = []
async function newContext(opts: { locale?: string; width?: number } = {}) {
  const context = await browser.newContext({ viewport: { width: opts.width ?? 1024, height: 800 }, javaScriptEnabled: false, locale: opts.locale })
  context.on('console', (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) cspViolations.push(msg.text())
  })
  return context
}

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `portal-${name}.png`), fullPage: true })
const h1 = async (page: Page) => (await page.getByRole('heading', { level: 1 }).textContent())?.trim()

const SIGN_IN = { en: { mobile: 'Mobile number', password: 'Password', button: 'Sign in' }, 'zh-CN': { mobile: '手机号', password: '密码', button: '登录' } }

/** Signs in on the hosted login page, read in the context's language. */
async function signIn(context: BrowserContext, mobile: string, password: string, lang: keyof typeof SIGN_IN = 'en') {
  const page = await context.newPage()
  await page.goto(`${server.url}/page/login`)
  expect(await page.locator('html').getAttribute('lang')).toBe(lang)
  const l = SIGN_IN[lang]
  await page.getByLabel(l.mobile).fill(mobile)
  await page.getByLabel(l.password).fill(password)
  await page.getByRole('button', { name: l.button }).click()
  return page
}

describe('the portal in Chromium (no JavaScript)', () => {
  const mobile = `+86135${String(Date.now()).slice(-8)}`
  const password = 'portal-browser-123'

  it('sign in → my apps → SIMPLE_API app with a ticket → revoke an OIDC consent → sign out another session', async () => {
    const admin = await call('POST', '/api/v1/auth/login', { json: { mobile: server.vars.BOOTSTRAP_ADMIN_MOBILE, password: server.vars.BOOTSTRAP_ADMIN_PASSWORD } })
    const token = admin.data.access_token as string
    expect((await call('POST', '/api/v1/admin/users', { token, json: { mobile, password, name: 'Li Lei' } })).status).toBe(201)
    const hr = await call('POST', '/api/v1/admin/apps', { token, json: { app_name: 'Legacy HR', protocol_type: 'SIMPLE_API', redirect_uris: [HR_CALLBACK], description: 'Leave requests and payslips' } })
    const rp = await call('POST', '/api/v1/admin/apps', { token, json: { app_name: 'Reports', protocol_type: 'OIDC', redirect_uris: [RP_CALLBACK], home_url: `${APPS_ORIGIN}/rp/`, description: 'Monthly numbers' } })
    expect([hr.status, rp.status]).toEqual([201, 201])
    for (const a of [hr, rp]) expect((await call('POST', `/api/v1/admin/apps/${a.data.app_id}/mappings`, { token, json: { mobile, mapped_key: `lilei-${a.data.app_id}` } })).status).toBe(201)

    // 1. sign in: no return_to, so My apps
    const context = await newContext()
    const page = await signIn(context, mobile, password)
    expect(new URL(page.url()).pathname).toBe('/page/home')
    expect(await h1(page)).toBe('My apps')
    expect(await page.locator('.apps').getByRole('link').allTextContents()).toEqual(['Legacy HRLeave requests and payslips', 'ReportsMonthly numbers'])
    await shot(page, 'en-01-my-apps')

    // 2. open the SIMPLE_API app: the ticket hop puts a ticket on its callback, and it verifies
    await page.getByRole('link', { name: /Legacy HR/ }).click()
    await page.waitForURL(`${HR_CALLBACK}**`)
    const ticket = received.find((u) => u.pathname === '/hr/sso')!.searchParams.get('ticket')!
    const verified = await signedFetch({ appId: hr.data.app_id, appSecret: hr.data.app_secret, method: 'POST', url: `${server.url}/api/v1/simple/ticket/verify`, json: { ticket } })
    expect(verified.status).toBe(200)
    expect(((await verified.json()) as any).user).toMatchObject({ mobile, mapped_key: `lilei-${hr.data.app_id}` })

    // 3. authorize the OIDC app (consent page → Allow), then the app holds a refresh token
    const verifier = randomBytes(32).toString('base64url')
    const q = new URLSearchParams({ client_id: rp.data.app_id, redirect_uri: RP_CALLBACK, response_type: 'code', scope: 'openid email offline_access', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })
    await page.goto(`${server.url}/oauth2/authorize?${q}`)
    await page.getByRole('button', { name: 'Allow' }).click()
    await page.waitForURL(`${RP_CALLBACK}**`)
    const code = received.find((u) => u.pathname === '/rp/cb')!.searchParams.get('code')!
    const tokens = await call('POST', '/oauth2/token', { basic: [rp.data.app_id, rp.data.app_secret], form: { grant_type: 'authorization_code', code, redirect_uri: RP_CALLBACK, code_verifier: verifier } })
    expect(tokens.status).toBe(200)
    const rpRefresh = tokens.data.refresh_token as string

    // 4. Authorized apps: revoke it; its refresh token is refused
    await page.goto(`${server.url}/page/home`)
    await page.getByRole('navigation').getByRole('link', { name: 'Authorized apps' }).click()
    expect(await page.locator('.consents').textContent()).toContain('Reports')
    expect(await page.locator('.consents .scopes li').allTextContents()).toEqual(['Your email address', 'Keep you signed in while your session lasts', 'Sign you in and see your account identifier'])
    await shot(page, 'en-02-authorized')
    await page.getByRole('button', { name: 'Revoke access of Reports' }).click()
    expect(await page.getByRole('status').textContent()).toContain('Reports no longer has access to your account.')
    const afterRevoke = await call('POST', '/oauth2/token', { basic: [rp.data.app_id, rp.data.app_secret], form: { grant_type: 'refresh_token', refresh_token: rpRefresh } })
    expect([afterRevoke.status, afterRevoke.data.error]).toEqual([400, 'invalid_grant'])

    // 5. another session (an app signing in through the API): sign it out; its refresh token is refused
    const other = await call('POST', '/api/v1/auth/login', { json: { mobile, password }, headers: { 'User-Agent': 'Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36' } })
    expect(other.status).toBe(200)
    await page.getByRole('navigation').getByRole('link', { name: 'Sessions and devices' }).click()
    expect(await page.locator('.sessions > li').count()).toBe(2)
    expect(await page.locator('.sessions').textContent()).toContain('Chrome on Android')
    expect(await page.locator('.sessions .tag').textContent()).toBe('This device')
    await shot(page, 'en-03-sessions')
    await page.getByRole('button', { name: /^Sign out this session: Chrome on Android/ }).click()
    expect(await page.getByRole('status').textContent()).toContain('That session was signed out')
    expect(await page.locator('.sessions > li').count()).toBe(1)
    expect((await call('POST', '/api/v1/auth/refresh', { json: { refresh_token: other.data.refresh_token } })).status).toBe(401)

    // 6. Security lists what just happened; the password form is there
    await page.getByRole('navigation').getByRole('link', { name: 'Security' }).click()
    const activity = await page.locator('.activity').textContent()
    expect(activity).toContain('A session was signed out')
    expect(activity).toContain('An app lost its authorization')
    expect(activity).toContain('Signed in')
    await shot(page, 'en-04-security')

    // 7. keyboard only: from the language switch, Tab walks the navigation in order
    await page.getByRole('link', { name: '简体中文' }).focus()
    const order: string[] = []
    for (let i = 0; i < 6; i++) {
      await page.keyboard.press('Tab')
      order.push((await page.evaluate(() => document.activeElement?.textContent?.trim())) ?? '')
    }
    expect(order).toEqual(['My apps', 'Profile', 'Security', 'Sessions and devices', 'Authorized apps', 'Sign out'])
    expect(cspViolations).toEqual([])
    await context.close()
  })

  it('the same pages in zh-CN (Accept-Language), on a desktop and on a phone, and the switch back to English', async () => {
    for (const [width, label] of [
      [1024, 'desktop'],
      [375, 'phone'],
    ] as const) {
      const context = await newContext({ locale: 'zh-CN', width })
      const page = await signIn(context, mobile, password, 'zh-CN')
      expect(await page.locator('html').getAttribute('lang')).toBe('zh-CN')
      expect(await h1(page)).toBe('我的应用')
      await shot(page, `zh-${label}-01-my-apps`)
      for (const [link, title, name] of [
        ['个人资料', '个人资料', 'profile'],
        ['账号安全', '账号安全', 'security'],
        ['已授权应用', '已授权应用', 'authorized'],
        ['登录设备', '登录设备', 'sessions'],
      ]) {
        await page.getByRole('navigation').getByRole('link', { name: link }).click()
        expect(await h1(page)).toBe(title)
        await shot(page, `zh-${label}-${name}`)
        if (width === 375) {
          const box = (await page.locator('main').boundingBox())!
          expect(box.x + box.width).toBeLessThanOrEqual(375)
        }
      }
      expect(await page.locator('.sessions .tag').textContent()).toBe('本设备')
      await page.getByRole('link', { name: 'English' }).click()
      expect(await h1(page)).toBe('Sessions and devices')
      await page.getByRole('navigation').getByRole('link', { name: 'My apps' }).click()
      expect(await h1(page)).toBe('My apps') // remembered over Accept-Language
      await shot(page, `en-${label}-my-apps`)
      await context.close()
    }
    expect(cspViolations).toEqual([])
  })
})
