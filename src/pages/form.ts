import type { Context } from 'hono'
import type { AppEnv } from '../context'
import type { ApiError } from '../lib/errors'
import { enforceRateLimit } from '../ratelimit'
import { createCaptcha } from '../captcha/service'
import type { CaptchaView } from './layout'

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

export function waitText(e: ApiError): string {
  const s = Number(e.headers?.['Retry-After'] ?? 0) || 60
  return s > 90 ? `${Math.ceil(s / 60)} minutes` : `${s} seconds`
}
