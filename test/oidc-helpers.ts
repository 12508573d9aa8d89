import { SELF, env } from 'cloudflare:test'
import * as client from 'openid-client'
import { sessionRow } from '../src/auth/sessions'
import { sessions } from '../src/auth/schema'
import { appUserMappings } from '../src/mappings/schema'
import { getDb } from '../src/db'
import { createApplication, type NewApplicationInput } from '../src/apps/service'
import { sha256Hex } from '../src/lib/crypto'
import { CSRF_COOKIE } from '../src/pages/security'
import { inputValue } from './flows'
import { readResponse } from './helpers'

export const ISSUER = 'http://localhost'
export const REDIRECT = 'https://rp.example.com/cb'
export const POST_LOGOUT = 'https://rp.example.com/bye'

/** An OIDC client app plus its one-time secret. */
export async function createOidcApp(input: Partial<NewApplicationInput> = {}) {
  const created = await createApplication(env, {
    appName: 'Reporting Portal',
    protocolType: 'OIDC',
    redirectUris: [REDIRECT],
    postLogoutRedirectUris: [POST_LOGOUT],
    idTokenClaim: 'email',
    iconUrl: 'https://rp.example.com/icon.png',
    ...input,
  })
  return { app: created.app, clientId: created.app.appId, secret: created.app_secret }
}

/** Gives the user an account in the app (app_user_mappings row). */
export async function mapUser(appId: string, userId: string, mappedKey: string, isActive = true) {
  const now = Date.now()
  await getDb(env.DB).insert(appUserMappings).values({ id: crypto.randomUUID(), appId, userId, mappedKey, isActive, createdAt: now, updatedAt: now })
}

/** openid-client configuration talking to the Worker in-process (customFetch → SELF.fetch). */
export async function discover(clientId: string, auth: client.ClientAuth) {
  return client.discovery(new URL(ISSUER), clientId, undefined, auth, {
    execute: [client.allowInsecureRequests],
    [client.customFetch]: (url: string, options: client.CustomFetchOptions) =>
      SELF.fetch(url, { method: options.method, headers: options.headers as HeadersInit, body: options.body as BodyInit | null, redirect: options.redirect }),
  })
}

/** A real-looking client address per browser, so page sign-in counters (captcha after failures) never mix between tests. */
const randomIp = () => `203.0.113.${1 + Math.floor(Math.random() * 250)}`

/**
 * A cookie-keeping browser that does not follow redirects, so each hop can be checked.
 * `loginOnPage` signs in through the real hosted login page (/page/login).
 */
export class Browser {
  cookies = new Map<string, string>()
  constructor(readonly ip = randomIp()) {}

  private headers(extra: Record<string, string> = {}) {
    return { 'CF-Connecting-IP': this.ip, Cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '), ...extra }
  }

  private keep(res: Response) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';')
      const i = pair.indexOf('=')
      const name = pair.slice(0, i).trim()
      const value = pair.slice(i + 1).trim()
      const expired = attrs.some((a) => /^\s*max-age=0/i.test(a)) || value === ''
      if (expired) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
    return res
  }

  async get(url: string) {
    const res = await SELF.fetch(new URL(url, ISSUER).href, { redirect: 'manual', headers: this.headers() })
    return this.keep(res)
  }

  async post(url: string, form: Record<string, string>) {
    const res = await SELF.fetch(new URL(url, ISSUER).href, {
      method: 'POST',
      redirect: 'manual',
      headers: this.headers({ 'Content-Type': 'application/x-www-form-urlencoded' }),
      body: new URLSearchParams(form).toString(),
    })
    return this.keep(res)
  }

  /**
   * Signs in through the hosted login page the way a browser does: GET the form at `url`
   * (for the OIDC flow the /page/login?return_to=... URL the authorization endpoint sent us
   * to), which sets the `__Host-uap_csrf` cookie and carries the same value in the hidden
   * csrf_token field, then POST mobile, password, csrf_token and the form's return_to.
   * Returns the 303 answer (Location: the return_to) and the new session's id.
   */
  async loginOnPage(user: { mobile: string; password: string }, url = '/page/login') {
    const page = await this.get(url)
    const html = await page.text()
    if (page.status !== 200 || !html.includes('action="/page/login"')) throw new Error(`no login form at ${url}: ${page.status}`)
    const csrf = csrfFrom(html)
    if (this.cookies.get(CSRF_COOKIE) !== csrf) throw new Error('the csrf_token field differs from the __Host-uap_csrf cookie')
    const form: Record<string, string> = { csrf_token: csrf, mobile: user.mobile, password: user.password, step: 'login' }
    const returnTo = inputValue(html, 'return_to')
    if (returnTo) form.return_to = returnTo
    const res = await this.post('/page/login', form)
    if (res.status !== 303) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`)
    return { res, html, sessionId: await this.sessionId() }
  }

  /** The id of the session behind this browser's AUTH_SESSION_ID cookie (only its hash is stored). */
  async sessionId(): Promise<string> {
    const cookie = this.cookies.get('__Host-AUTH_SESSION_ID')
    if (!cookie) throw new Error('not signed in')
    const row = await env.DB.prepare('SELECT id FROM sessions WHERE cookie_hash = ?').bind(await sha256Hex(cookie)).first<{ id: string }>()
    return row!.id
  }

  /**
   * NOT a sign-in: inserts a session row directly and sets its cookie. Only for the one
   * precondition the login page cannot produce without a clock, a session signed in long
   * ago (max_age tests). Everything else signs in with loginOnPage.
   */
  async fakeOldSession(userId: string, authTime: number) {
    const { row, cookie } = await sessionRow(env, userId, { ip: this.ip }, { withCookie: true, now: authTime })
    await getDb(env.DB).insert(sessions).values(row)
    this.cookies.set('__Host-AUTH_SESSION_ID', cookie!)
    return { sessionId: row.id }
  }
}

export const location = (res: Response) => new URL(res.headers.get('Location')!, ISSUER)

/** The hidden csrf_token of a rendered form. */
export function csrfFrom(html: string) {
  const m = /name="csrf_token" value="([^"]+)"/.exec(html)
  if (!m) throw new Error('no csrf_token in page')
  return m[1]
}

/** Runs the browser part of the code flow, through consent (if shown), and returns the callback URL. */
export async function authorizeThrough(b: Browser, start: URL | string): Promise<URL> {
  let next = new URL(String(start), ISSUER)
  for (let hop = 0; hop < 6; hop++) {
    if (next.origin !== ISSUER) return next
    if (next.pathname === '/page/login') throw new Error('not signed in')
    let res: Response
    if (next.pathname === '/page/consent') {
      const page = await b.get(next.pathname + next.search)
      const html = await page.text()
      res = await b.post('/page/consent', { request_id: next.searchParams.get('request_id')!, csrf_token: csrfFrom(html), decision: 'allow' })
    } else {
      res = await b.get(next.href)
    }
    if (res.status !== 302) throw new Error(`unexpected ${res.status}: ${await res.text()}`)
    next = location(res)
  }
  throw new Error('too many redirects')
}

/** Form POST to an OAuth endpoint, with optional HTTP Basic client credentials. */
export async function oauthPost(path: string, form: Record<string, string>, basic?: { id: string; secret: string }) {
  const headers: Record<string, string> = { 'Content-Type': 'application/x-www-form-urlencoded' }
  if (basic) headers.Authorization = 'Basic ' + btoa(`${encodeURIComponent(basic.id)}:${encodeURIComponent(basic.secret)}`)
  const res = await SELF.fetch(`${ISSUER}${path}`, { method: 'POST', headers, body: new URLSearchParams(form).toString() })
  return readResponse(res)
}

export async function pkce() {
  const verifier = client.randomPKCECodeVerifier()
  return { verifier, challenge: await client.calculatePKCECodeChallenge(verifier) }
}
