// Helpers for the federation tests: the real local upstreams (test-upstream/, started by the
// workers suite's globalSetup), a cookie jar to drive their sign-in pages from workerd, and
// providers created through the admin API.
import { env, createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import worker from '../src/index'
import type { Env } from '../src/env'
import { api, adminToken } from './support/api'
import { Browser, inputValue, randomIp } from './support/browser'
import { solvedCaptcha } from './support/captcha'
import { lastCode } from './support/sms'

/** Calls the Worker with some variables changed (a fresh env object gets its configuration parsed anew). */
export async function fetchWithEnv(overrides: Partial<Env>, path: string, init: RequestInit = {}) {
  const ctx = createExecutionContext()
  const res = await worker.fetch(new Request(`http://localhost${path}`, init), { ...env, ...overrides } as Env, ctx)
  await waitOnExecutionContext(ctx)
  return res
}

export interface Upstreams {
  oidcIssuer: string
  githubUrl: string
  opClients: { client_id: string; client_secret: string; redirect_uris: string[]; token_endpoint_auth_method?: string }[]
  githubApps: { client_id: string; client_secret: string; callback_url: string }[]
  spaRedirect: string
}

export const upstreams = (): Upstreams => JSON.parse(env.TEST_UPSTREAMS)

/** Cookies of one user agent at the upstream (paths ignored: the test upstreams set few). */
export class UpstreamAgent {
  cookies = new Map<string, string>()
  private store(res: Response) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';')
      const i = pair.indexOf('=')
      const name = pair.slice(0, i).trim()
      const value = pair.slice(i + 1).trim()
      if (!value || attrs.some((a) => /max-age=0|expires=thu, 01 jan 1970/i.test(a.trim()))) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }
  async fetch(url: string, init: RequestInit = {}) {
    const headers = new Headers(init.headers)
    if (this.cookies.size) headers.set('Cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '))
    const res = await fetch(url, { ...init, headers, redirect: 'manual' })
    this.store(res)
    return res
  }
  /** Follows redirects within the upstream until one leaves it (to UAP Edge or the app); returns that URL. */
  async follow(url: string, init: RequestInit = {}, origin = new URL(url).origin): Promise<string> {
    let res = await this.fetch(url, init)
    for (let hops = 0; hops < 10; hops++) {
      const loc = res.headers.get('Location')
      if (!loc) throw new Error(`upstream answered ${res.status} at ${url}: ${(await res.text()).slice(0, 300)}`)
      const next = new URL(loc, url).toString()
      await res.body?.cancel()
      if (new URL(next).origin !== origin) return next
      url = next
      res = await this.fetch(url)
      if (res.status === 200) return url
    }
    throw new Error('too many redirects at the upstream')
  }
}

/** Signs in at the test OP as `login` from an authorization URL; returns the redirect back (code, state, iss). */
export async function signInAtOp(authorizationUrl: string, login: string, agent = new UpstreamAgent()): Promise<string> {
  const origin = new URL(authorizationUrl).origin
  const interaction = await agent.follow(authorizationUrl, {}, origin)
  if (!/\/interaction\//.test(interaction)) throw new Error(`expected the OP's sign-in page, got ${interaction}`)
  return agent.follow(`${interaction}/login`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ login }).toString() }, origin)
}

/** Authorizes at the GitHub-shaped server as `login`; returns the redirect back. */
export async function signInAtGitHub(authorizationUrl: string, login: string, decision: 'allow' | 'deny' = 'allow'): Promise<string> {
  const agent = new UpstreamAgent()
  const page = await agent.fetch(authorizationUrl)
  if (page.status !== 200) throw new Error(`GitHub authorize answered ${page.status}`)
  const html = await page.text()
  const fields: Record<string, string> = { login, decision }
  for (const name of ['client_id', 'redirect_uri', 'scope', 'state', 'code_challenge', 'code_challenge_method']) {
    const v = inputValue(html, name)
    if (v !== null) fields[name] = v
  }
  const res = await agent.fetch(new URL('/login/oauth/authorize', authorizationUrl).toString(), { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() })
  const loc = res.headers.get('Location')
  if (res.status !== 302 || !loc) throw new Error(`GitHub authorize POST answered ${res.status}`)
  return loc
}

/** Path and query of an absolute URL on UAP Edge (http://localhost in tests). */
export const local = (url: string) => {
  const u = new URL(url)
  return u.pathname + u.search
}

let adminTok: string | undefined
export async function admin() {
  adminTok ??= await adminToken()
  return adminTok
}

/** Creates a provider through the admin API; one that exists already (a test reusing its id) is kept as it is. */
export async function createProvider(body: Record<string, unknown>) {
  const r = await api('/api/v1/admin/identity-providers', { method: 'POST', token: await admin(), json: body })
  if (r.status === 409) return (await api(`/api/v1/admin/identity-providers/${body.id}`, { token: await admin() })).body
  if (r.status !== 201) throw new Error(`create provider ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

/** An oidc provider at the test OP; `id` must be one whose callback the OP knows (wk-1 … wk-16). */
export async function oidcProvider(id: string, extra: Record<string, unknown> = {}) {
  const u = upstreams()
  const client = u.opClients[0]
  return createProvider({ id, type: 'oidc', display_name: `Test OP ${id}`, issuer: u.oidcIssuer, client_id: client.client_id, client_secret: client.client_secret, ...extra })
}

/** A github provider at the GitHub-shaped server (endpoints overridden as for GitHub Enterprise Server). */
export async function githubProvider(id: string, app = 0, extra: Record<string, unknown> = {}) {
  const u = upstreams()
  const a = u.githubApps[app]
  return createProvider({
    id,
    type: 'github',
    display_name: 'GitHub',
    authorization_endpoint: `${u.githubUrl}/login/oauth/authorize`,
    token_endpoint: `${u.githubUrl}/login/oauth/access_token`,
    userinfo_endpoint: `${u.githubUrl}/user`,
    client_id: a.client_id,
    client_secret: a.client_secret,
    ...extra,
  })
}

/** Presses "Sign in with <provider>" on /page/login; returns the provider's authorization URL. */
export async function startAtLoginPage(b: Browser, providerId: string, returnTo?: string): Promise<string> {
  const page = await b.get(`/page/login${returnTo ? `?return_to=${encodeURIComponent(returnTo)}` : ''}`)
  if (!page.html.includes(`value="${providerId}"`)) throw new Error(`no button for ${providerId} on /page/login`)
  const r = await b.post('/page/federation/start', { csrf_token: b.csrf, provider: providerId, ...(returnTo ? { return_to: returnTo } : {}) })
  if (r.status !== 303) throw new Error(`start answered ${r.status}: ${r.html.slice(0, 300)}`)
  return r.headers.get('Location')!
}

/** The binding pages: captcha + mobile → code from the dev outbox → verify. Returns the verify answer. */
export async function bindMobile(b: Browser, bindUrl: string, mobile: string) {
  const page = await b.get(local(`http://localhost${bindUrl}`))
  if (page.status !== 200) throw new Error(`bind page answered ${page.status}: ${page.html.slice(0, 300)}`)
  const ticket = inputValue(page.html, 'ticket')!
  const captchaId = inputValue(page.html, 'captcha_id')!
  const answer = await env.KV.get(`captcha:${captchaId}`)
  const sent = await b.post('/page/federation/bind', { csrf_token: b.csrf, ticket, step: 'send', mobile, captcha_id: captchaId, captcha_code: answer! })
  if (sent.status !== 200) throw new Error(`send answered ${sent.status}: ${sent.html.slice(0, 300)}`)
  const verify = await b.post('/page/federation/bind', { csrf_token: b.csrf, ticket, step: 'verify', mobile, sms_code: await lastCode(mobile) })
  return { ticket, sent, verify }
}

/** A Browser whose requests see some variables changed (REGISTRATION_OPEN=false, …). */
export class EnvBrowser extends Browser {
  constructor(readonly overrides: Partial<Env>, ip = randomIp()) {
    super(ip)
  }
  private store(res: Response) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';')
      const i = pair.indexOf('=')
      const name = pair.slice(0, i).trim()
      const value = pair.slice(i + 1).trim()
      if (!value || attrs.some((a) => /max-age=0/i.test(a.trim()))) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }
  override async get(path: string) {
    const res = await fetchWithEnv(this.overrides, path, { headers: this.headers(), redirect: 'manual' })
    this.store(res)
    return { status: res.status, headers: res.headers, html: await res.text() }
  }
  override async post(path: string, fields: Record<string, string>, extraHeaders: Record<string, string> = {}) {
    const res = await fetchWithEnv(this.overrides, path, {
      method: 'POST',
      headers: this.headers({ 'Content-Type': 'application/x-www-form-urlencoded', ...extraHeaders }),
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    })
    this.store(res)
    return { status: res.status, headers: res.headers, html: await res.text() }
  }
}

export { Browser, solvedCaptcha }
