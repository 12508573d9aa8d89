// The local webhook receiver (vitest.webhook-receiver.mts, a real HTTP server on 127.0.0.1)
// and the waits a delivery test needs.
import { expect, inject } from 'vitest'
import { Webhook } from 'standardwebhooks'
import { api } from './api'

export const receiver = () => inject('webhookReceiver')

export interface Received {
  at: number
  headers: Record<string, string>
  body: string
}

/** A fresh sink on the receiver; `responses` scripts its first answers, `status` the rest. */
export async function sink(cfg: { responses?: number[]; status?: number; location?: string; delay_ms?: number } = {}) {
  const r = await fetch(`${receiver().url}/sinks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(cfg) })
  expect(r.status).toBe(201)
  return (await r.json()) as { id: string; url: string }
}

export async function received(id: string): Promise<Received[]> {
  return ((await (await fetch(`${receiver().url}/sinks/${id}`)).json()) as { received: Received[] }).received
}

export async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 25_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export const headerObject = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), String(v)]))

/** The body of a received call, after its Standard Webhooks signature verified (throws if not). */
export const verified = (secret: string, call: Received) => new Webhook(secret).verify(call.body, headerObject(call.headers)) as any

/** A SIMPLE_API app registered through the admin API, with its credentials and webhook secret. */
export async function webhookApp(admin: string, notificationUrl: string | null, extra: Record<string, unknown> = {}) {
  const r = await api('/api/v1/admin/apps', {
    method: 'POST',
    token: admin,
    json: { app_name: 'Webhook app', protocol_type: 'SIMPLE_API', redirect_uris: ['https://app.example.com/cb'], notification_url: notificationUrl, ...extra },
  })
  expect(r.status).toBe(201)
  return { appId: r.body.app_id as string, accessToken: r.body.access_token as string, webhookSecret: r.body.webhook_secret as string }
}

export async function webhookEvent(admin: string, appId: string, eventId: string) {
  const r = await api(`/api/v1/admin/apps/${appId}/webhooks/events/${eventId}`, { token: admin })
  expect(r.status).toBe(200)
  return r.body
}

export const settled = (admin: string, appId: string, eventId: string, status: 'delivered' | 'failed') =>
  until(`event ${eventId} ${status}`, async () => {
    const e = await webhookEvent(admin, appId, eventId)
    return e.status === status ? e : null
  })
