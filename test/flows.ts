// Helpers for the captcha / SMS / account / hosted-page tests.
import { SELF, env, createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import worker from '../src/index'
import type { Env } from '../src/env'
import { api, createApp, signedApi } from './helpers'

export const randomIp = () => `198.51.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`

/** A fresh captcha and its answer (read from KV, as only a test can). */
export async function solvedCaptcha(ip = randomIp()) {
  const r = await api('/api/v1/utils/captcha', { headers: { 'CF-Connecting-IP': ip } })
  if (r.status !== 200) throw new Error(`captcha ${r.status}`)
  const answer = await env.KV.get(`captcha:${r.body.captcha_id}`)
  return { captcha_id: r.body.captcha_id as string, captcha_code: answer!, image: r.body.image as string }
}

let partner: { appId: string; secret: string } | undefined
export async function partnerApp() {
  if (!partner) {
    const a = await createApp({ appName: 'Partner UI' })
    partner = { appId: a.app.appId, secret: a.app_secret }
  }
  return partner
}

export async function openSmsSend(mobile: string, purpose: 'reset' | 'register' = 'reset', captcha?: { captcha_id: string; captcha_code: string }) {
  const c = captcha ?? (await solvedCaptcha())
  return signedApi(await partnerApp(), 'POST', '/api/v1/open/sms/send', { json: { mobile, purpose, captcha_id: c.captcha_id, captcha_code: c.captcha_code } })
}

/** Codes the console provider "sent" to a number, newest first. */
export async function outbox(mobile: string): Promise<{ code: string; purpose: string; to: string }[]> {
  const r = await api(`/api/v1/dev/sms-outbox?mobile=${encodeURIComponent(mobile)}`)
  if (r.status !== 200) throw new Error(`outbox ${r.status}`)
  return r.body.messages
}

export async function lastCode(mobile: string): Promise<string> {
  const m = await outbox(mobile)
  if (!m.length) throw new Error(`no SMS for ${mobile}`)
  return m[0].code
}

/** Lifts the 60 s resend cooldown, standing in for the clock. */
export async function skipCooldown(mobile: string, purpose: 'reset' | 'register') {
  const ns = env.RATE_LIMITER
  await (ns.get(ns.idFromName(`sms_cooldown:${purpose}:${mobile}`)) as unknown as { reset(): Promise<void> }).reset()
}

/** Calls the Worker with some variables changed (a fresh env object gets its config parsed anew). */
export async function fetchWithEnv(overrides: Partial<Env>, path: string, init: RequestInit = {}) {
  const ctx = createExecutionContext()
  const res = await worker.fetch(new Request(`http://localhost${path}`, init), { ...env, ...overrides } as Env, ctx)
  await waitOnExecutionContext(ctx)
  return res
}

/** Minimal cookie jar for page tests. */
export class Browser {
  cookies = new Map<string, string>()
  constructor(readonly ip = randomIp()) {}

  private store(res: Response) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';')
      const i = pair.indexOf('=')
      const name = pair.slice(0, i).trim()
      const value = pair.slice(i + 1).trim()
      const expired = attrs.some((a) => /max-age=0/i.test(a.trim()) || /expires=Thu, 01 Jan 1970/i.test(a.trim()))
      if (expired || !value) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }

  headers(extra: Record<string, string> = {}) {
    const h: Record<string, string> = { 'CF-Connecting-IP': this.ip, ...extra }
    if (this.cookies.size) h.Cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    return h
  }

  async get(path: string) {
    const res = await SELF.fetch(`http://localhost${path}`, { headers: this.headers(), redirect: 'manual' })
    this.store(res)
    return { status: res.status, headers: res.headers, html: await res.text() }
  }

  async post(path: string, fields: Record<string, string>, extraHeaders: Record<string, string> = {}) {
    const res = await SELF.fetch(`http://localhost${path}`, {
      method: 'POST',
      headers: this.headers({ 'Content-Type': 'application/x-www-form-urlencoded', ...extraHeaders }),
      body: new URLSearchParams(fields).toString(),
      redirect: 'manual',
    })
    this.store(res)
    return { status: res.status, headers: res.headers, html: await res.text() }
  }

  get csrf() {
    return this.cookies.get('__Host-uap_csrf') ?? ''
  }
}

/** Value of a hidden/text input in a page. */
export function inputValue(html: string, name: string): string | null {
  const m = new RegExp(`<input[^>]*name="${name}"[^>]*>`).exec(html)
  if (!m) return null
  const v = /value="([^"]*)"/.exec(m[0])
  return v ? v[1].replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&#39;/g, "'") : ''
}

export { env }
