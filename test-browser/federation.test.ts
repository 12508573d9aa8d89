import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Browser, type BrowserContext, type Page, type Route } from 'playwright-core'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { launchChromium, startWranglerDev, testPort, type DevServer, callWorker, type CallOptions } from './wrangler-dev'
import { startOidcOp, type RunningOp } from '../test-upstream/oidc-op'
import { startFakeGitHub, type RunningGitHub } from '../test-upstream/github'

// Sign-in with another identity provider in headless Chromium (no JavaScript) against
// `wrangler dev` (ports base+21, +22) and two real upstreams on 127.0.0.1: panva's
// oidc-provider, a certified OpenID Provider (base+23), and a local server speaking GitHub's
// documented OAuth app endpoints and user API (base+24; not GitHub, see
// test-upstream/github.ts). The app callback of the OIDC round trip (base+25) is intercepted.
// Screenshots of the new pages go to test-artifacts/federation-*.png.

const ARTIFACTS = path.resolve(import.meta.dirname, '..', 'test-artifacts')
const PORT = testPort(21)
const INSPECTOR_PORT = testPort(22)
const APP = `http://localhost:${PORT}`
const RP_CALLBACK = `http://127.0.0.1:${testPort(25)}/cb`
const OP_CLIENT = { client_id: 'uap-edge-browser', client_secret: randomBytes(24).toString('base64url'), redirect_uris: [`${APP}/page/federation/test-op/callback`] }
const GH_APP = { client_id: 'Iv1.browser0000000001', client_secret: randomBytes(20).toString('hex'), callback_url: `${APP}/page/federation` }

let server: DevServer
let op: RunningOp
let github: RunningGitHub
let browser: Browser
let adminToken: string

const call = (method: string, p: string, opts: CallOptions = {}) => callWorker(server.url, method, p, opts)

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true })
  ;[server, op, github] = await Promise.all([
    startWranglerDev({ port: PORT, inspectorPort: INSPECTOR_PORT, vars: { BRAND_NAME: 'Acme Account' } }),
    startOidcOp({ port: testPort(23), clients: [OP_CLIENT] }),
    startFakeGitHub({ port: testPort(24), apps: [GH_APP] }),
  ])
  browser = await launchChromium()
  const admin = await call('POST', '/api/v1/auth/login', { json: { mobile: server.vars.BOOTSTRAP_ADMIN_MOBILE, password: server.vars.BOOTSTRAP_ADMIN_PASSWORD } })
  adminToken = admin.data.access_token
  const a = await call('POST', '/api/v1/admin/identity-providers', { token: adminToken, json: { id: 'test-op', type: 'oidc', display_name: 'Test OP', issuer: op.issuer, client_id: OP_CLIENT.client_id, client_secret: OP_CLIENT.client_secret } })
  expect(a.status).toBe(201)
  const g = await call('POST', '/api/v1/admin/identity-providers', {
    token: adminToken,
    json: {
      id: 'github',
      type: 'github',
      display_name: 'GitHub',
      // GitHub Enterprise Server style overrides point the preset at the local server
      authorization_endpoint: `${github.url}/login/oauth/authorize`,
      token_endpoint: `${github.url}/login/oauth/access_token`,
      userinfo_endpoint: `${github.url}/user`,
      client_id: GH_APP.client_id,
      client_secret: GH_APP.client_secret,
    },
  })
  expect(g.status).toBe(201)
})

afterAll(async () => {
  await browser?.close()
  await Promise.all([server?.stop(), op?.stop(), github?.stop()])
})

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `federation-${name}.png`), fullPage: true })

async function newContext(): Promise<{ context: BrowserContext; page: Page; csp: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1024, height: 800 }, javaScriptEnabled: false })
  const page = await context.newPage()
  const csp: string[] = []
  page.on('console', (msg) => {
    if (/Content Security Policy|Refused to/i.test(msg.text())) csp.push(msg.text())
  })
  return { context, page, csp }
}

async function newUser(name: string) {
  const mobile = `+86137${String(Date.now()).slice(-8)}`
  const r = await call('POST', '/api/v1/admin/users', { token: adminToken, json: { mobile, password: 'browser-user-pass-1', name } })
  expect(r.status).toBe(201)
  return { id: r.data.id as string, mobile }
}

async function smsCode(mobile: string): Promise<string> {
  const r = await fetch(`${server.url}/api/v1/dev/sms-outbox?mobile=${encodeURIComponent(mobile)}`)
  const { messages } = (await r.json()) as { messages: { code: string; purpose: string }[] }
  const m = messages.find((x) => x.purpose === 'bind')
  if (!m) throw new Error(`no bind SMS for ${mobile}`)
  return m.code
}

async function captchaAnswer(page: Page): Promise<string> {
  const id = await page.locator('input[name="captcha_id"]').inputValue()
  return ((await (await fetch(`${server.url}/api/v1/dev/captcha/${id}`)).json()) as { answer: string }).answer
}

/** At the OP's own sign-in page (another site): type the username, submit. */
async function signInAtOp(page: Page, login: string) {
  await page.waitForURL(`${op.issuer}/interaction/**`)
  expect(await page.title()).toBe('Sign in to the test OP')
  await page.getByLabel('Username').fill(login)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

/** The binding pages: mobile + captcha, then the code from the dev SMS outbox. */
async function bindMobile(page: Page, mobile: string, screenshots = false) {
  await page.waitForURL(`${APP}/page/federation/bind?**`)
  expect(await page.title()).toBe('Link your mobile number · Acme Account')
  if (screenshots) await shot(page, '02-bind-mobile')
  await page.getByLabel('Mobile number', { exact: true }).fill(mobile)
  await page.getByLabel('Characters in the picture').fill(await captchaAnswer(page))
  await page.getByRole('button', { name: 'Send code' }).click()
  // click() does not wait for the form's navigation to finish: wait for the next page's field
  await page.getByLabel('Code from the SMS').waitFor()
  expect(await page.title()).toBe('Enter the code · Acme Account')
  expect(await page.getByRole('status').textContent()).toContain(`We have sent a 6-digit code to ${mobile}.`)
  if (screenshots) await shot(page, '03-bind-code')
  await page.getByLabel('Code from the SMS').fill(await smsCode(mobile))
  await page.getByRole('button', { name: 'Continue' }).click()
}

describe('sign in with another identity provider in Chromium', () => {
  it('OIDC: sign in upstream, bind the mobile with the SMS code, land signed in; the second time there is no binding step', async () => {
    const user = await newUser('Zhao Lei')
    const { context, page, csp } = await newContext()
    await page.goto(`${APP}/page/login`)
    const buttons = page.getByRole('region', { name: 'Other ways to sign in' }).getByRole('button')
    expect(await buttons.allTextContents()).toEqual(['Sign in with GitHub', 'Sign in with Test OP'])
    await shot(page, '01-login-buttons')
    await page.getByRole('button', { name: 'Sign in with Test OP' }).click()
    await signInAtOp(page, 'zhaolei')
    await bindMobile(page, user.mobile, true)
    await page.waitForURL(`${APP}/page/home`) // no return_to: the portal
    expect(await page.locator('.who').textContent()).toContain('Signed in as Zhao Lei')
    await shot(page, '04-signed-in')
    expect(csp).toEqual([])
    await context.close()

    // a fresh browser (no session here, none at the OP): upstream sign-in, then straight in
    const second = await newContext()
    await second.page.goto(`${APP}/page/login`)
    await second.page.getByRole('button', { name: 'Sign in with Test OP' }).click()
    await signInAtOp(second.page, 'zhaolei')
    await second.page.waitForURL(`${APP}/page/home`) // no return_to: the portal
    expect(await second.page.locator('.who').textContent()).toContain('Signed in as Zhao Lei')

    // the list of sign-in methods, and unlinking
    await second.page.goto(`${APP}/page/login`) // the signed-in page links the sign-in methods
    await second.page.getByRole('link', { name: 'Sign-in methods' }).click()
    await second.page.waitForURL(`${APP}/page/federation/identities`)
    expect(await second.page.title()).toBe('Sign-in methods · Acme Account')
    const items = second.page.getByRole('list', { name: 'Linked identities' }).getByRole('listitem')
    expect(await items.count()).toBe(1)
    expect(await items.first().textContent()).toContain('Test OP')
    await shot(second.page, '05-identities')
    await second.page.getByRole('button', { name: /^Unlink Test OP/ }).click()
    expect(await second.page.getByRole('status').textContent()).toBe('The identity is unlinked.')
    expect(await second.page.getByRole('list', { name: 'Linked identities' }).count()).toBe(0)
    expect(second.csp).toEqual([])
    await second.context.close()
  })

  it("OIDC client's authorization request round trip through the upstream sign-in", async () => {
    const user = await newUser('Sun Li')
    const created = await call('POST', '/api/v1/admin/apps', { token: adminToken, json: { app_name: 'Fed Portal', protocol_type: 'OIDC', redirect_uris: [RP_CALLBACK] } })
    expect(created.status).toBe(201)
    const { app_id: clientId, app_secret: secret } = created.data
    expect((await call('POST', `/api/v1/admin/apps/${clientId}/mappings`, { token: adminToken, json: { mobile: user.mobile, mapped_key: 'sunli@portal.example' } })).status).toBe(201)

    const { context, page, csp } = await newContext()
    let callback: string | undefined
    await page.route(`${RP_CALLBACK}**`, (route: Route) => {
      callback = route.request().url()
      return route.fulfill({ status: 200, contentType: 'text/plain', body: 'callback reached' })
    })
    const verifier = randomBytes(32).toString('base64url')
    const q = new URLSearchParams({ client_id: clientId, redirect_uri: RP_CALLBACK, response_type: 'code', scope: 'openid profile', state: 'rp-state-1', nonce: 'rp-nonce-1', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })
    await page.goto(`${APP}/oauth2/authorize?${q}`)
    expect(new URL(page.url()).pathname).toBe('/page/login')
    await page.getByRole('button', { name: 'Sign in with Test OP' }).click()
    await signInAtOp(page, 'sunli')
    await bindMobile(page, user.mobile)
    // back in the authorization request: the consent page of the app, then the app's callback
    await page.waitForURL(/\/page\/consent\?request_id=/)
    expect(await page.locator('main').textContent()).toContain('Signed in as Sun Li')
    await page.getByRole('button', { name: 'Allow' }).click()
    await page.waitForURL(`${RP_CALLBACK}**`)
    const cb = new URL(callback!)
    expect(cb.searchParams.get('state')).toBe('rp-state-1')
    const tokens = await call('POST', '/oauth2/token', { basic: [clientId, secret], form: { grant_type: 'authorization_code', code: cb.searchParams.get('code')!, redirect_uri: RP_CALLBACK, code_verifier: verifier } })
    expect(tokens.status).toBe(200)
    const claims = JSON.parse(Buffer.from((tokens.data.id_token as string).split('.')[1], 'base64url').toString())
    expect(claims).toMatchObject({ aud: clientId, nonce: 'rp-nonce-1', sub: user.id, iss: server.url })
    expect(csp).toEqual([])
    await context.close()
  })

  it('a tampered state and a replayed callback are refused', async () => {
    const { context, page } = await newContext()
    const callbacks: string[] = []
    page.on('request', (r) => {
      if (r.url().startsWith(`${APP}/page/federation/test-op/callback?`)) callbacks.push(r.url())
    })
    await page.goto(`${APP}/page/login`)
    await page.getByRole('button', { name: 'Sign in with Test OP' }).click()
    await signInAtOp(page, 'tamperer')
    await page.waitForURL(`${APP}/page/federation/bind?**`)
    expect(callbacks).toHaveLength(1)
    // the browser presents the code with another state
    const tampered = new URL(callbacks[0])
    tampered.searchParams.set('state', tampered.searchParams.get('state')!.replace(/^./, (ch) => (ch === 'A' ? 'B' : 'A')))
    await page.goto(tampered.toString())
    expect(await page.title()).toBe('Could not sign you in · Acme Account')
    expect(await page.getByRole('alert').textContent()).toContain('Nothing was changed')
    await shot(page, '06-refused-state')
    // and the genuine one a second time
    await page.goto(callbacks[0])
    expect(await page.title()).toBe('Could not sign you in · Acme Account')
    expect((await context.cookies()).some((c) => c.name === '__Host-AUTH_SESSION_ID')).toBe(false)
    await context.close()
  })

  it("an ID token with a nonce other than this sign-in's is refused", async () => {
    const { context, page } = await newContext()
    // the redirect to the OP carries another nonce, so the ID token the OP signs has that one
    // (page.route sees only the first request of a redirect chain: the form post)
    await page.route(`${APP}/page/federation/start`, async (route: Route) => {
      const response = await route.fetch({ maxRedirects: 0 })
      const location = new URL(response.headers()['location'])
      expect(location.searchParams.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/)
      location.searchParams.set('nonce', `replayed-${randomBytes(16).toString('base64url')}`)
      await route.fulfill({ response, headers: { ...response.headers(), location: location.toString() } })
    })
    await page.goto(`${APP}/page/login`)
    await page.getByRole('button', { name: 'Sign in with Test OP' }).click()
    await signInAtOp(page, 'nonce-user')
    await page.waitForURL(/\/page\/federation\/test-op\/callback/)
    expect(await page.title()).toBe('Could not sign you in · Acme Account')
    expect(await page.getByRole('alert').textContent()).toContain('could not be verified')
    await shot(page, '07-refused-nonce')
    expect((await context.cookies()).some((c) => c.name === '__Host-AUTH_SESSION_ID')).toBe(false)
    await context.close()
  })

  it('GitHub preset: authorize at the GitHub-shaped server, bind, signed in; the account is found by GitHub id next time', async () => {
    const user = await newUser('Qian Yu')
    github.users.set('qianyu-gh', { id: 4_242_001, login: 'qianyu-gh', name: 'Qian Yu', email: null, emails: [{ email: 'qianyu@github.example', primary: true, verified: true, visibility: 'private' }] })
    const { context, page, csp } = await newContext()
    await page.goto(`${APP}/page/login`)
    await page.getByRole('button', { name: 'Sign in with GitHub' }).click()
    await page.waitForURL(`${github.url}/login/oauth/authorize?**`)
    expect(new URL(page.url()).searchParams.get('scope')).toBe('read:user user:email')
    await page.getByLabel('Username or email address').fill('qianyu-gh')
    await page.getByRole('button', { name: 'Authorize' }).click()
    await bindMobile(page, user.mobile)
    await page.waitForURL(`${APP}/page/home`) // no return_to: the portal
    expect(await page.locator('.who').textContent()).toContain('Signed in as Qian Yu')
    expect(csp).toEqual([])
    await context.close()

    // renamed at GitHub: still the same account (the subject is the numeric id)
    github.users.delete('qianyu-gh')
    github.users.set('qianyu-renamed', { id: 4_242_001, login: 'qianyu-renamed', name: 'Qian Yu', email: null, emails: [] })
    const again = await newContext()
    await again.page.goto(`${APP}/page/login`)
    await again.page.getByRole('button', { name: 'Sign in with GitHub' }).click()
    await again.page.getByLabel('Username or email address').fill('qianyu-renamed')
    await again.page.getByRole('button', { name: 'Authorize' }).click()
    await again.page.waitForURL(`${APP}/page/home`) // no return_to: the portal
    expect(await again.page.locator('.who').textContent()).toContain('Signed in as Qian Yu')
    await again.context.close()
  })

  it('a new account is created when no account has the number (registration open)', async () => {
    const mobile = `+86132${String(Date.now()).slice(-8)}`
    const { context, page } = await newContext()
    await page.goto(`${APP}/page/login`)
    await page.getByRole('button', { name: 'Sign in with Test OP' }).click()
    await signInAtOp(page, 'newbie')
    await bindMobile(page, mobile)
    expect(await page.title()).toBe('Create your account · Acme Account')
    expect(await page.getByLabel('Your name (optional)').inputValue()).toBe('Newbie Tester')
    await shot(page, '08-create-account')
    await page.getByLabel('Password', { exact: true }).fill('newbie-password-1')
    await page.getByLabel('Repeat the password').fill('newbie-password-1')
    await page.getByRole('button', { name: 'Create account' }).click()
    await page.waitForURL(`${APP}/page/home`) // no return_to: the portal
    expect(await page.locator('.who').textContent()).toContain('Signed in as Newbie Tester')
    expect((await call('POST', '/api/v1/auth/login', { json: { mobile, password: 'newbie-password-1' } })).status).toBe(200)
    await context.close()
  })
})
