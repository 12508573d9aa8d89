// SMS codes: sending them as a partner app does, and reading what the console provider "sent".
import { env } from 'cloudflare:test'
import { api, signedApi } from './api'
import { partnerApp } from './apps'
import { solvedCaptcha } from './captcha'
import type { SmsPurpose } from '../../src/sms/providers'

/** POST /api/v1/open/sms/send from the partner app, with a solved captcha unless one is given. */
export async function openSmsSend(mobile: string, purpose: 'reset' | 'register' = 'reset', captcha?: { captcha_id: string; captcha_code: string }) {
  const c = captcha ?? (await solvedCaptcha())
  return signedApi(await partnerApp(), 'POST', '/api/v1/open/sms/send', { json: { mobile, purpose, captcha_id: c.captcha_id, captcha_code: c.captcha_code } })
}

/** Codes the console provider "sent" to a number (its dev-only outbox), newest first. */
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
export async function skipCooldown(mobile: string, purpose: SmsPurpose) {
  const ns = env.RATE_LIMITER
  await (ns.get(ns.idFromName(`sms_cooldown:${purpose}:${mobile}`)) as unknown as { reset(): Promise<void> }).reset()
}
