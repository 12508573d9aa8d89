import type { Context } from 'hono'
import type { AppEnv } from '../context'
import type { ApiError } from '../lib/errors'
import { enforceRateLimit } from '../ratelimit'
import { createCaptcha } from '../captcha/service'
import type { CaptchaView } from './layout'
import { en, type Catalog } from './i18n/en'

/** What the page handlers share: the form reader, return_to links, captchas, wait texts. */
export type C = Context<AppEnv>

/** The submitted form as strings, each cut to `max` characters. */
export async function formOf(c: C) {
  const body = await c.req.parseBody()
  return (name: string, max = 256) => {
    const v = body[name]
    return typeof v === 'string' ? v.slice(0, max) : ''
  }
}

export const withReturn = (path: string, returnTo: string | null, extra = '') => {
  const q = [returnTo ? `return_to=${encodeURIComponent(returnTo)}` : '', extra].filter(Boolean).join('&')
  return q ? `${path}?${q}` : path
}

export async function newCaptcha(c: C): Promise<CaptchaView> {
  await enforceRateLimit(c, 'captcha_ip', c.get('clientIp'))
  return createCaptcha(c.env)
}

/** A refusal's Retry-After in words of the page's language: seconds, minutes, or hours past an hour. */
export function waitText(e: ApiError, t: Catalog = en): string {
  const s = Number(e.headers?.['Retry-After'] ?? 0) || 60
  return s > 3600 ? t.waitHours(Math.ceil(s / 3600)) : s > 90 ? t.waitMinutes(Math.ceil(s / 60)) : t.waitSeconds(s)
}
