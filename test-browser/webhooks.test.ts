import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Webhook } from 'standardwebhooks'
import { startWranglerDev, testPort, type DevServer } from './wrangler-dev'
import { startReceiver, type ReceivedCall, type Receiver } from '../scripts/webhook-receiver.mjs'

// End to end against `wrangler dev` (local Queues in Miniflare, the Worker's own consumer)
// and real HTTP receivers on 127.0.0.1 (scripts/webhook-receiver.mjs): a mapping sync
// reaches the receiver and verifies with the standardwebhooks package; a receiver that
// answers 500 twice gets the event on the third attempt; a receiver that is down gets it
// after an admin retry. QUEUE_RETRY_BASE_S=0 (development only) makes the queue retry at
// once, so the dead-letter queue is reached within the test.

const PORT = testPort(21)
const INSPECTOR_PORT = testPort(22)
const RECEIVER_PORT = testPort(23)
const LATE_RECEIVER_PORT = testPort(24) // nothing listens here until the test starts a receiver

let server: DevServer
let receiver: Receiver
let late: Receiver | undefined
let admin: string

beforeAll(async () => {
  receiver = await startReceiver({ port: RECEIVER_PORT })
  server = await startWranglerDev({ port: PORT, inspectorPort: INSPECTOR_PORT, vars: { QUEUE_RETRY_BASE_S: '0' } })
  const r = await call('/api/v1/auth/login', { method: 'POST', json: { mobile: server.vars.BOOTSTRAP_ADMIN_MOBILE, password: server.vars.BOOTSTRAP_ADMIN_PASSWORD } })
  expect(r.status).toBe(200)
  admin = r.body.access_token
})

afterAll(async () => {
  await late?.close()
  await receiver?.close()
  await server?.stop()
})

async function call(path: string, init: { method?: string; json?: unknown; token?: string; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...init.headers }
  if (init.json !== undefined) headers['content-type'] = 'application/json'
  if (init.token) headers.authorization = `Bearer ${init.token}`
  const res = await fetch(server.url + path, { method: init.method ?? 'GET', headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) })
  const text = await res.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: res.status, body }
}

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

async function newApp(notificationUrl: string) {
  const r = await call('/api/v1/admin/apps', { method: 'POST', token: admin, json: { app_name: 'E2E webhooks', protocol_type: 'SIMPLE_API', redirect_uris: ['https://app.example.com/cb'], notification_url: notificationUrl } })
  expect(r.status).toBe(201)
  return { appId: r.body.app_id as string, accessToken: r.body.access_token as string, secret: r.body.webhook_secret as string }
}

let userCount = 0
async function mappedUser(app: { accessToken: string }, key: string) {
  const mobile = `+86135${String(Date.now() % 1e6).padStart(6, '0')}${String(userCount++ % 100).padStart(2, '0')}`
  expect((await call('/api/v1/admin/users', { method: 'POST', token: admin, json: { mobile, password: 'e2e-user-password', name: 'E2E User' } })).status).toBe(201)
  const r = await call('/api/v1/apps/mapping/sync', { method: 'POST', headers: { 'X-App-Access-Token': app.accessToken }, json: { items: [{ mobile, mapped_key: key, action: 'ADD' }] } })
  expect(r.status).toBe(200)
  expect(r.body.results[0]).toMatchObject({ status: 'ok', code: 'created' })
  return { mobile, eventId: r.body.results[0].event_id as string }
}

const headersOf = (c: ReceivedCall) => Object.fromEntries(Object.entries(c.headers).map(([k, v]) => [k, String(v)]))
const sinkCalls = (rx: Receiver, id: string) => rx.sinks.get(id)?.received ?? []
const createSink = async (rx: Receiver, cfg: Record<string, unknown> = {}) => {
  const r = await fetch(`${rx.url}/sinks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(cfg) })
  return (await r.json()) as { id: string; url: string }
}
const eventOf = async (appId: string, eventId: string) => (await call(`/api/v1/admin/apps/${appId}/webhooks/events/${eventId}`, { token: admin })).body

describe('webhooks against wrangler dev', () => {
  it('a mapping sync reaches the receiver, and the standardwebhooks package verifies it', async () => {
    const sink = await createSink(receiver)
    const app = await newApp(sink.url)
    const { mobile, eventId } = await mappedUser(app, 'e2e.first@app.example.com')
    const [delivery] = await until('the delivery', () => sinkCalls(receiver, sink.id).length > 0 && sinkCalls(receiver, sink.id))
    const payload = new Webhook(app.secret).verify(delivery.body, headersOf(delivery)) as any
    expect(payload).toMatchObject({ id: eventId, type: 'mapping.added', event_type: 'ADD', app_id: app.appId, user_data: { mobile, mapped_key: 'e2e.first@app.example.com', status: 'ACTIVE' } })
    expect(() => new Webhook(app.secret).verify(delivery.body.replace('ADD', 'DEL'), headersOf(delivery))).toThrow()
    const e = await until('delivered state', async () => {
      const x = await eventOf(app.appId, eventId)
      return x.status === 'delivered' && x
    })
    expect(e.attempts).toHaveLength(1)
    const feed = await call(`/api/v1/apps/${app.appId}/users/changes`, { headers: { 'X-App-Access-Token': app.accessToken } })
    expect(feed.body.items[0]).toMatchObject({ event_id: eventId, seq: payload.seq })
  })

  it('a receiver that answers 500 twice, then 200, gets the event on the third attempt', async () => {
    const sink = await createSink(receiver, { responses: [500, 500] })
    const app = await newApp(sink.url)
    const { eventId } = await mappedUser(app, 'e2e.retry@app.example.com')
    await until('three calls', () => sinkCalls(receiver, sink.id).length >= 3)
    const e = await until('delivered state', async () => {
      const x = await eventOf(app.appId, eventId)
      return x.status === 'delivered' && x
    })
    expect(e.attempts.map((a: any) => a.http_status)).toEqual([500, 500, 200])
    const calls = sinkCalls(receiver, sink.id)
    expect(calls).toHaveLength(3)
    for (const c of calls) expect(new Webhook(app.secret).verify(c.body, headersOf(c))).toMatchObject({ id: eventId })
  })

  it('a receiver that is down gets the event after an admin retry', async () => {
    const url = `http://127.0.0.1:${LATE_RECEIVER_PORT}/hook/late`
    const app = await newApp(url)
    const { eventId } = await mappedUser(app, 'e2e.down@app.example.com')
    const failed = await until('failed after the retries', async () => {
      const x = await eventOf(app.appId, eventId)
      return x.status === 'failed' && x
    })
    expect(failed.attempts).toHaveLength(6)
    expect(failed.attempts.every((a: any) => a.http_status === null)).toBe(true)

    late = await startReceiver({ port: LATE_RECEIVER_PORT })
    expect((await createSink(late, { id: 'late' })).url).toBe(url)
    const retry = await call(`/api/v1/admin/apps/${app.appId}/webhooks/events/${eventId}/retry`, { method: 'POST', token: admin })
    expect(retry).toMatchObject({ status: 202, body: { status: 'pending', previous_status: 'failed' } })
    const [delivery] = await until('the retried delivery', () => sinkCalls(late!, 'late').length > 0 && sinkCalls(late!, 'late'))
    expect(new Webhook(app.secret).verify(delivery.body, headersOf(delivery))).toMatchObject({ id: eventId })
    const e = await until('delivered state', async () => {
      const x = await eventOf(app.appId, eventId)
      return x.status === 'delivered' && x
    })
    expect(e.attempts.at(-1)).toMatchObject({ attempt: 7, origin: 'retry', http_status: 200 })
  })
})
