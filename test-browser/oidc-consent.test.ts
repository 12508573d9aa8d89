import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Browser, type Page, type Route } from 'playwright-core'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { launchChromium, startWranglerDev, testPort, type DevServer, callWorker, type CallOptions } from './wrangler-dev'

// The OIDC consent page in headless Chromium against `wrangler dev` (ports base+11 to base+13, see testPort):
// an app registered through the admin API, /oauth2/authorize with PKCE, sign-in on the
// real login page, the consent page styled by /page/assets/style.css under the strict
// CSP (screenshot in test-artifacts/), Allow, and the redirect to the app's callback.
// Nothing listens on the callback port: the browser's request to it is intercepted.

const ARTIFACTS = path.resolve(import.meta.dirname, '..', 'test-artifacts')
const PORT = testPort(11)
const INSPECTOR_PORT = testPort(12)
const CALLBACK_ORIGIN = `http://127.0.0.1:${testPort(13)}`
const CALLBACK = `${CALLBACK_ORIGIN}/cb`
// The app's icon lives on another (https) origin; the browser gets it from page.route.
const ICON = 'https://icons.rp.example/portal.svg'
const ICON_SVG = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48"><rect width="48" height="48" rx="10" fill="#0f7b6c"/><path d="M14 34V14h12a7 7 0 0 1 0 14h-6v6z" fill="#fff"/></svg>'

let server: DevServer
let browser: Browser

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true })
  server = await startWranglerDev({ port: PORT, inspectorPort: INSPECTOR_PORT })
  browser = await launchChromium()
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

const call = (method: string, p: string, opts: CallOptions = {}) => callWorker(server.url, method, p, opts)

/** Every console message about the CSP (Chromium logs blocked styles, images, forms there). */
function watchCsp(page: Page) {
  const violations: string[] = []
  page.on('console', (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) violations.push(msg.text())
  })
  return violations
}

describe('OIDC consent page in Chromium', () => {
  it('authorize → real login page → styled consent page (no CSP violation) → Allow → redirect_uri with a code', async () => {
    // Bootstrap admin registers the app, a user, and the user's account in the app.
    const admin = await call('POST', '/api/v1/auth/login', { json: { mobile: server.vars.BOOTSTRAP_ADMIN_MOBILE, password: server.vars.BOOTSTRAP_ADMIN_PASSWORD } })
    expect(admin.status).toBe(200)
    const token = admin.data.access_token as string
    const created = await call('POST', '/api/v1/admin/apps', {
      token,
      json: { app_name: 'Reporting Portal', protocol_type: 'OIDC', redirect_uris: [CALLBACK], icon_url: ICON, id_token_claim: 'email' },
    })
    expect(created.status).toBe(201)
    const { app_id: clientId, app_secret: secret } = created.data as { app_id: string; app_secret: string }
    const mobile = `+86136${String(Date.now()).slice(-8)}`
    const password = 'consent-browser-123'
    expect((await call('POST', '/api/v1/admin/users', { token, json: { mobile, password, name: 'Han Meimei' } })).status).toBe(201)
    expect((await call('POST', `/api/v1/admin/apps/${clientId}/mappings`, { token, json: { mobile, mapped_key: 'hanmeimei@rp.example' } })).status).toBe(201)

    const context = await browser.newContext({ viewport: { width: 1024, height: 800 }, javaScriptEnabled: false })
    const page = await context.newPage()
    const cspViolations = watchCsp(page)
    await page.route(ICON, (route) => route.fulfill({ status: 200, contentType: 'image/svg+xml', body: ICON_SVG }))
    let callback: { url: string; referer?: string } | undefined
    await page.route(`${CALLBACK}**`, (route: Route) => {
      callback = { url: route.request().url(), referer: route.request().headers()['referer'] }
      return route.fulfill({ status: 200, contentType: 'text/plain', body: 'callback reached' })
    })

    // The authorization request, as an RP builds it.
    const verifier = randomBytes(32).toString('base64url')
    const challenge = createHash('sha256').update(verifier).digest('base64url')
    const state = randomBytes(16).toString('base64url')
    const nonce = randomBytes(16).toString('base64url')
    const q = new URLSearchParams({ client_id: clientId, redirect_uri: CALLBACK, response_type: 'code', scope: 'openid profile email', code_challenge: challenge, code_challenge_method: 'S256', state, nonce })
    await page.goto(`${server.url}/oauth2/authorize?${q}`)

    // Not signed in: the hosted login page, with the way back in return_to.
    expect(new URL(page.url()).pathname).toBe('/page/login')
    expect(new URL(page.url()).searchParams.get('return_to')).toMatch(/^\/oauth2\/authorize\?request_id=/)
    await page.getByLabel('Mobile number').fill(mobile)
    await page.getByLabel('Password').fill(password)
    await page.getByRole('button', { name: 'Sign in' }).click()

    // Back through /oauth2/authorize to the consent page.
    await page.waitForURL(/\/page\/consent\?request_id=/)
    expect(await page.title()).toBe('Reporting Portal wants to use your account · UAP Edge')
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Reporting Portal wants to use your account')
    expect(await page.getByRole('list', { name: 'Reporting Portal asks to:' }).getByRole('listitem').allTextContents()).toEqual([
      'Sign you in and see your account identifier',
      'Your name and your username in this app',
      'Your email address',
    ])
    expect(await page.locator('main').textContent()).toContain('Signed in as Han Meimei')
    // The stylesheet applied (nothing inline): a card layout, the brand colour on Allow, the icon loaded.
    const look = await page.evaluate(() => {
      const css = (sel: string, prop: string) => getComputedStyle(document.querySelector(sel)!).getPropertyValue(prop)
      const img = document.querySelector<HTMLImageElement>('.app img')!
      return {
        mainWidth: document.querySelector('main')!.getBoundingClientRect().width,
        mainRadius: css('main', 'border-radius'),
        allowBg: css('button[value="allow"]', 'background-color'),
        denyBg: css('button[value="deny"]', 'background-color'),
        actions: css('.actions', 'display'),
        icon: img.complete && img.naturalWidth > 0,
      }
    })
    expect(look).toEqual({ mainWidth: expect.any(Number), mainRadius: '12px', allowBg: 'rgb(11, 87, 208)', denyBg: 'rgba(0, 0, 0, 0)', actions: 'flex', icon: true })
    expect(look.mainWidth).toBeLessThanOrEqual(26 * 16)
    await page.screenshot({ path: path.join(ARTIFACTS, 'oidc-01-consent.png'), fullPage: true })
    expect(cspViolations).toEqual([])

    // Keyboard: Tab reaches Deny, then Allow (focus order follows the page).
    await page.getByRole('button', { name: 'Deny' }).focus()
    await page.keyboard.press('Tab')
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Allow')

    await page.getByRole('button', { name: 'Allow' }).click()
    await page.waitForURL(`${CALLBACK}**`)
    expect(callback).toBeDefined()
    const cb = new URL(callback!.url)
    expect(cb.origin + cb.pathname).toBe(CALLBACK)
    expect(cb.searchParams.get('state')).toBe(state)
    expect(cb.searchParams.get('iss')).toBe(server.url)
    // Referrer-Policy same-origin: the app is not told which page the user came from.
    expect(callback!.referer).toBeUndefined()

    // The code works with the verifier, and the ID token is for this user.
    const tokens = await call('POST', '/oauth2/token', { basic: [clientId, secret], form: { grant_type: 'authorization_code', code: cb.searchParams.get('code')!, redirect_uri: CALLBACK, code_verifier: verifier } })
    expect(tokens.status).toBe(200)
    const claims = JSON.parse(Buffer.from((tokens.data.id_token as string).split('.')[1], 'base64url').toString())
    expect(claims).toMatchObject({ aud: clientId, nonce, email: 'hanmeimei@rp.example', iss: server.url })
    expect(cspViolations).toEqual([])
    await context.close()
  })

  it('the console watcher does see a CSP violation (so the check above can fail)', async () => {
    // A page served with the same policy but an inline style, as the OIDC pages had before.
    const context = await browser.newContext({ javaScriptEnabled: false })
    const page = await context.newPage()
    const cspViolations = watchCsp(page)
    const csp = (await fetch(`${server.url}/page/login`)).headers.get('Content-Security-Policy')!
    await page.route(`${CALLBACK_ORIGIN}/inline`, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', headers: { 'Content-Security-Policy': csp }, body: '<!DOCTYPE html><title>x</title><style>body{color:red}</style><p>x</p>' }),
    )
    await page.goto(`${CALLBACK_ORIGIN}/inline`)
    await expect.poll(() => cspViolations.length, { timeout: 5000 }).toBeGreaterThan(0)
    expect(cspViolations[0]).toMatch(/inline style/i)
    await context.close()
  })
})
