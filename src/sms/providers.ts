import { getConfig, type Env } from '../env'
import { hmacSha256Hex } from '../lib/crypto'
import { log } from '../lib/logger'

/**
 * `bind`: proves the mobile a user binds to an identity from another provider (src/federation/);
 * `change_mobile`: a signed-in user proves a new number on the portal (src/portal/).
 */
export type SmsPurpose = 'register' | 'reset' | 'bind' | 'change_mobile'

export interface SmsMessage {
  id: string
  /** E.164 */
  to: string
  purpose: SmsPurpose
  code: string
  /** The language of `text` (BCP 47: en or zh-CN): the requester's, for gateways that template themselves. */
  lang: string
  /** Ready-to-send text, for gateways that do not template themselves. */
  text: string
  expires_in: number
  sent_at: string
}

export interface SmsProvider {
  name: 'console' | 'webhook'
  /**
   * Whether delivery runs after the response (ctx.waitUntil). Remote delivery does, so a
   * reset code for a registered number costs no more response time than one for an
   * unknown number (nothing sent): timing does not reveal who is registered.
   */
  background: boolean
  send(msg: SmsMessage): Promise<void>
}

/** Dev-only outbox of the console provider, read by GET /api/v1/dev/sms-outbox. */
export const OUTBOX_TTL_S = 3600
export const OUTBOX_MAX = 20
export const outboxKey = (mobile: string) => `dev:sms-outbox:${mobile}`

/** Development/test: logs the code and appends it to a KV outbox. getConfig refuses it in production. */
export function consoleProvider(env: Env): SmsProvider {
  return {
    name: 'console',
    background: false,
    async send(msg) {
      log.info('sms.console', { to: msg.to, purpose: msg.purpose, code: msg.code, text: msg.text })
      const prev = (await env.KV.get<SmsMessage[]>(outboxKey(msg.to), 'json')) ?? []
      await env.KV.put(outboxKey(msg.to), JSON.stringify([msg, ...prev].slice(0, OUTBOX_MAX)), { expirationTtl: OUTBOX_TTL_S })
    },
  }
}

/**
 * POSTs the message as JSON to SMS_WEBHOOK_URL, signed so the gateway can check it came
 * from us and is fresh:
 *   X-UAP-Timestamp: <unix seconds>
 *   X-UAP-Signature: hex(HMAC-SHA256(SMS_WEBHOOK_SECRET, "<timestamp>.<raw body>"))
 * Receivers should refuse timestamps more than 5 minutes away and dedupe on `id`.
 */
export function webhookProvider(url: string, secret: string, fetchImpl: typeof fetch = fetch): SmsProvider {
  return {
    name: 'webhook',
    background: true,
    async send(msg) {
      const body = JSON.stringify(msg)
      const timestamp = String(Math.floor(Date.now() / 1000))
      const signature = await hmacSha256Hex(secret, `${timestamp}.${body}`)
      const res = await fetchImpl(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-UAP-Timestamp': timestamp, 'X-UAP-Signature': signature, 'User-Agent': 'uap-edge-sms/1' },
        body,
        signal: AbortSignal.timeout(10_000),
      })
      if (!res.ok) throw new Error(`SMS webhook answered ${res.status}`)
    },
  }
}

export function smsProvider(env: Env): SmsProvider {
  const cfg = getConfig(env)
  if (cfg.smsProvider === 'webhook') return webhookProvider(cfg.smsWebhookUrl!, cfg.smsWebhookSecret!)
  return consoleProvider(env)
}
