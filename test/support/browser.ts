// A cookie-keeping browser for the hosted pages and the OIDC redirects, driven through SELF.
import { SELF, env } from 'cloudflare:test'
import { SESSION_COOKIE } from '../../src/auth/browser-session'
import { sessionRow } from '../../src/auth/sessions'
import { sessions } from '../../src/auth/schema'
import { getDb } from '../../src/db'
import { sha256Hex } from '../../src/lib/crypto'
import { CSRF_COOKIE } from '../../src/pages/security'
import { ISSUER, url } from './api'

/** A client address of its own (CF-Connecting-IP, one of 15 million), so per-IP counters do not mix between tests. */
export const randomIp = () => `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`

/** What a page answered: status, headers and the body text. */
export interface Page {
  status: number
  headers: Headers
  html: string
}

/**
 * Keeps cookies like a browser and does not follow redirects, so each hop can be checked.
 * `loginOnPage` signs in through the real hosted login page (/page/login).
 */
export class Browser {
  cookies = new Map<string, string>()
  constructor(readonly ip = randomIp()) {}

  private keep(res: Response) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';')
      const i = pair.indexOf('=')
      const name = pair.slice(0, i).trim()
      const value = pair.slice(i + 1).trim()
      const expired = attrs.some((a) => /^\s*max-age=0/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a))
      if (expired || !value) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  /** The headers this browser sends: its address and its cookies. */
  headers(extra: Record<string, string> = {}) {
    const h: Record<string, string> = { 'CF-Connecting-IP': this.ip, ...extra }
    if (this.cookies.size) h.Cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    return h
  }

  private async send(target: string, init: RequestInit): Promise<Page> {
    const res = await SELF.fetch(url(target), { ...init, redirect: 'manual' })
    this.keep(res)
    return { status: res.status, headers: res.headers, html: await res.text() }
  }

  /** GET a path or an absolute URL (extra headers such as Accept-Language when given). */
  get(target: string, extraHeaders: Record<string, string> = {}) {
    return this.send(target, { headers: this.headers(extraHeaders) })
  }

  /** POST a form. */
  post(target: string, fields: Record<string, string>, extraHeaders: Record<string, string> = {}) {
    return this.send(target, {
      method: 'POST',
      headers: this.headers({ 'Content-Type': 'application/x-www-form-urlencoded', ...extraHeaders }),
      body: new URLSearchParams(fields).toString(),
    })
  }

  /** The `__Host-uap_csrf` cookie the pages set. */
  get csrf() {
    return this.cookies.get(CSRF_COOKIE) ?? ''
  }

  /**
   * Signs in through the hosted login page the way a browser does: GET the form at `at`
   * (for the OIDC flow the /page/login?return_to=... URL the authorization endpoint sent us
   * to), which sets the `__Host-uap_csrf` cookie and carries the same value in the hidden
   * csrf_token field, then POST mobile, password, csrf_token and the form's return_to.
   * Returns the 303 answer (Location: the return_to), the form and the new session's id.
   */
  async loginOnPage(user: { mobile: string; password: string }, at = '/page/login') {
    const form = await this.get(at)
    if (form.status !== 200 || !form.html.includes('action="/page/login"')) throw new Error(`no login form at ${at}: ${form.status}`)
    const csrf = csrfFrom(form.html)
    if (this.csrf !== csrf) throw new Error('the csrf_token field differs from the __Host-uap_csrf cookie')
    const fields: Record<string, string> = { csrf_token: csrf, mobile: user.mobile, password: user.password, step: 'login' }
    const returnTo = inputValue(form.html, 'return_to')
    if (returnTo) fields.return_to = returnTo
    const res = await this.post('/page/login', fields)
    if (res.status !== 303) throw new Error(`sign-in failed: ${res.status} ${res.html}`)
    return { res, html: form.html, sessionId: await this.sessionId() }
  }

  /** The id of the session behind this browser's session cookie (D1 keeps only the cookie's hash; no API shows it). */
  async sessionId(): Promise<string> {
    const cookie = this.cookies.get(SESSION_COOKIE)
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
    this.cookies.set(SESSION_COOKIE, cookie!)
    return { sessionId: row.id }
  }
}

/** Where a redirect points, as a URL (relative Locations resolved against the issuer). */
export const location = (res: { headers: Headers }) => new URL(res.headers.get('Location')!, ISSUER)

/** Value of a hidden/text input in a page (null when there is no such input). */
export function inputValue(html: string, name: string): string | null {
  const m = new RegExp(`<input[^>]*name="${name}"[^>]*>`).exec(html)
  if (!m) return null
  const v = /value="([^"]*)"/.exec(m[0])
  return v ? v[1].replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#39;/g, "'") : ''
}

/** The hidden csrf_token of a rendered form. */
export function csrfFrom(html: string) {
  const v = inputValue(html, 'csrf_token')
  if (!v) throw new Error('no csrf_token in page')
  return v
}
