import { describe, expect, it } from 'vitest'
import { Webhook } from 'standardwebhooks'
import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test'
import worker from '../src/index'
import type { Env } from '../src/env'
import { hmacSha256Hex } from '../src/lib/crypto'
import { deliverAfterCommit, sweepWebhooks, SWEEP_GRACE_MS, WEBHOOK_JOB } from '../src/webhooks/outbox'
import { notificationUrlProblem } from '../src/webhooks/url'
import { standardSignature, uapSignature } from '../src/webhooks/signature'
import { getConfig } from '../src/env'
import { DLQ_NAME } from '../src/queue/dispatcher'
import { env } from 'cloudflare:test'
import { adminToken, api, createUser } from './support/api'
import webhooksDoc from '../docs/webhooks.md?raw'
import { syncMappings } from '../src/mappings/service'
import { cronTasks } from '../src/wiring'
import { call, csv, upload, waitForJob } from './support/import'
import { createApplicationAsAdmin, updateApplicationAsAdmin } from '../src/apps/admin'
import { headerObject, received, receiver, settled, sink, until, webhookApp, webhookEvent, type Received } from './support/webhooks'

// Webhook delivery through the real Queue binding: the Worker's own consumer (src/index.ts
// `queue`) delivers to a real HTTP receiver on 127.0.0.1 (vitest.webhook-receiver.mts).
// The suite runs with QUEUE_RETRY_BASE_S=0 and a 1 s batch timeout, so retries and the
// dead-letter queue happen within a test.

const rx = receiver()
const newApp = webhookApp

async function sync(app: { accessToken: string }, items: Record<string, unknown>[]) {
  const r = await api('/api/v1/apps/mapping/sync', { method: 'POST', headers: { 'X-App-Access-Token': app.accessToken }, json: { items } })
  expect(r.status).toBe(200)
  return r.body.results as { status: string; code: string; event_id?: string; mapping_id?: string }[]
}

const eventOf = webhookEvent

describe('webhook signatures', () => {
  it('sign with WebCrypto as the standardwebhooks library verifies, and X-UAP-Signature as the SMS webhook signs', async () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const body = '{"id":"msg_1","type":"mapping.added"}'
    const ts = Math.floor(Date.now() / 1000)
    const sig = await standardSignature(secret, 'msg_1', ts, body)
    // the library's own signer, as a second implementation of the spec
    expect(sig).toBe(new Webhook(secret).sign('msg_1', new Date(ts * 1000), body))
    expect(new Webhook(secret).verify(body, { 'webhook-id': 'msg_1', 'webhook-timestamp': String(ts), 'webhook-signature': sig })).toMatchObject({ id: 'msg_1' })
    expect(() => new Webhook(secret).verify(body + ' ', { 'webhook-id': 'msg_1', 'webhook-timestamp': String(ts), 'webhook-signature': sig })).toThrow()
    expect(await uapSignature(secret, ts, body)).toBe(await hmacSha256Hex(secret, `${ts}.${body}`))
  })

  it("docs/webhooks.md's worked example is what the Worker's signing code computes", async () => {
    const secret = /With the secret `(whsec_[^`]+)`/.exec(webhooksDoc)![1]
    const id = /`webhook-id`\s+`([0-9a-f-]{36})`/.exec(webhooksDoc)![1]
    const ts = Number(/timestamp `(\d+)`/.exec(webhooksDoc)![1])
    // the payload shown in the doc, sent as JSON.stringify writes it
    const body = JSON.stringify(JSON.parse(/## Payload\s+```json\n([\s\S]*?)```/.exec(webhooksDoc)![1]))
    expect(atob(secret.slice(6))).toBe('uap-edge webhook worked example!')
    expect(webhooksDoc).toContain(`webhook-signature: ${await standardSignature(secret, id, ts, body)}`)
    expect(webhooksDoc).toContain(`X-UAP-Signature: ${await uapSignature(secret, ts, body)}`)
    expect(webhooksDoc).toContain(body.slice(0, 60)) // the one-line form the doc quotes
  })

  it('notification_url in production: https to a public host only', () => {
    const bad = ['http://hooks.example.com/x', 'https://localhost/x', 'https://a.localhost/x', 'https://127.0.0.1/x', 'https://10.1.2.3/x', 'https://192.168.0.1/', 'https://172.16.5.4/', 'https://169.254.169.254/latest', 'https://100.64.0.1/', 'https://[::1]/', 'https://[fd00::1]/', 'https://[fe80::1]/', 'https://[::ffff:10.0.0.1]/', 'https://0.0.0.0/',
      // a trailing dot names the same host (RFC 1034 section 3.1)
      'https://localhost./x', 'https://LOCALHOST./x', 'https://foo.localhost./x', 'https://localhost../x', 'https://127.0.0.1./x',
      // IPv6 literals that carry a private IPv4: mapped, compatible (RFC 4291 section 2.5.5), NAT64 (RFC 6052), 6to4 (RFC 3056)
      'https://[::ffff:7f00:1]/', 'https://[0:0:0:0:0:ffff:a9fe:a9fe]/', 'https://[::ffff:0:a00:1]/', 'https://[::]/', 'https://[::7f00:1]/', 'https://[::127.0.0.1]/', 'https://[::a9fe:a9fe]/',
      'https://[64:ff9b::a00:1]/', 'https://[64:ff9b::192.168.1.1]/', 'https://[64:ff9b::7f00:1]/', 'https://[2002:7f00:1::]/', 'https://[2002:a00:1::1]/', 'https://[2002:c0a8:101:1::1]/',
      'https://[fc00::1]/', 'https://[ff02::1]/', 'https://[febf::1]/']
    for (const u of bad) expect(notificationUrlProblem(u, true), u).not.toBeNull()
    for (const u of [
      'https://hooks.example.com/uap', 'https://hooks.example.com./uap', 'https://localhost.example.com/x', 'https://8.8.8.8/x', 'https://[2606:4700::1111]/x', 'https://172.32.0.1/',
      // the same prefixes carrying a public IPv4, and groups that only look like fc00::/7 or fe80::/10
      'https://[::ffff:808:808]/', 'https://[64:ff9b::808:808]/', 'https://[2002:808:808::1]/', 'https://[fc::1]/', 'https://[fe8::1]/', 'https://[fec0::1]/',
    ]) expect(notificationUrlProblem(u, true), u).toBeNull()
    expect(notificationUrlProblem('http://127.0.0.1:9/x', false)).toBeNull()
  })
})

describe('delivery through the queue', () => {
  it('a mapping sync reaches the receiver once, signed; the event is delivered with one attempt logged', async () => {
    const admin = await adminToken()
    const s = await sink()
    const app = await newApp(admin, s.url)
    expect(app.webhookSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
    const u = await createUser({ name: 'Li Lei' })
    const [r] = await sync(app, [{ mobile: u.mobile, mapped_key: 'lilei@app.example.com', action: 'ADD' }])
    expect(r).toMatchObject({ status: 'ok', code: 'created', event_id: expect.any(String) })

    const [call] = await until('the delivery', async () => {
      const calls = await received(s.id)
      return calls.length ? calls : null
    })
    const h = headerObject(call.headers)
    const payload = new Webhook(app.webhookSecret).verify(call.body, h) as any
    expect(payload).toEqual({
      id: r.event_id,
      type: 'mapping.added',
      event_type: 'ADD',
      app_id: app.appId,
      seq: expect.any(Number),
      occurred_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      mapping_id: r.mapping_id,
      user_id: u.id,
      user_data: { mobile: u.mobile, name: 'Li Lei', mapped_key: 'lilei@app.example.com', status: 'ACTIVE', user_status: 'ACTIVE' },
    })
    expect(h['webhook-id']).toBe(r.event_id)
    expect(h['content-type']).toBe('application/json')
    expect(h['x-uap-timestamp']).toBe(h['webhook-timestamp'])
    expect(h['x-uap-signature']).toBe(await hmacSha256Hex(app.webhookSecret, `${h['x-uap-timestamp']}.${call.body}`))
    expect(Math.abs(Number(h['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60)

    // the changes feed shows the same event (id and seq)
    const feed = await api(`/api/v1/apps/${app.appId}/users/changes`, { headers: { 'X-App-Access-Token': app.accessToken } })
    expect(feed.body.items).toEqual([expect.objectContaining({ event_id: r.event_id, seq: payload.seq, type: 'mapping.added', event_type: 'ADD' })])

    const e = await settled(admin, app.appId, r.event_id!, 'delivered')
    expect(e).toMatchObject({ status: 'delivered', attempt_count: 1, last_status: 200, last_error: null, payload })
    expect(e.attempts).toEqual([{ attempt: 1, origin: 'commit', at: expect.any(String), duration_ms: expect.any(Number), http_status: 200, error: null, response_body: 'receiver answered 200' }])
    const row = await env.DB.prepare('SELECT delivered_at FROM mapping_events WHERE event_id = ?').bind(r.event_id).first<{ delivered_at: number }>()
    expect(row!.delivered_at).toBe(Date.parse(e.delivered_at))
    // nothing more arrives: one delivery for one change
    await new Promise((res) => setTimeout(res, 1500))
    expect(await received(s.id)).toHaveLength(1)
  })

  it('every write path sends its events: admin mapping CRUD, user disable/enable/rename/new mobile to every app the user is in', async () => {
    const admin = await adminToken()
    const [s1, s2] = [await sink(), await sink()]
    const [a1, a2] = [await newApp(admin, s1.url), await newApp(admin, s2.url)]
    const quiet = await newApp(admin, null) // no notification_url: events only in its feed
    const u = await createUser({ name: 'Han Meimei' })
    await sync(a2, [{ mobile: u.mobile, mapped_key: 'hmm-2', action: 'ADD' }])
    await sync(quiet, [{ mobile: u.mobile, mapped_key: 'hmm-q', action: 'ADD' }])
    const created = await api(`/api/v1/admin/apps/${a1.appId}/mappings`, { method: 'POST', token: admin, json: { mobile: u.mobile, mapped_key: 'hmm-1' } })
    expect(created.status).toBe(201)
    const mid = created.body.mapping_id
    expect((await api(`/api/v1/admin/apps/${a1.appId}/mappings/${mid}`, { method: 'PATCH', token: admin, json: { name: 'Meimei H.' } })).status).toBe(200)
    expect((await api(`/api/v1/admin/apps/${a1.appId}/mappings/${mid}/disable`, { method: 'POST', token: admin })).status).toBe(200)
    const patchUser = (json: unknown) => api(`/api/v1/admin/users/${u.id}`, { method: 'PATCH', token: admin, json })
    expect((await patchUser({ status: 'DISABLED' })).status).toBe(200)
    expect((await patchUser({ status: 'ACTIVE' })).status).toBe(200)
    expect((await patchUser({ name: 'Han M.' })).status).toBe(200)
    const newMobile = `+86136${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`
    const other = await createUser()
    expect(await patchUser({ mobile: other.mobile })).toMatchObject({ status: 409, body: { error: { code: 'mobile_taken' } } }) // no event either
    expect((await patchUser({ mobile: newMobile })).status).toBe(200)
    expect((await patchUser({ email: 'hmm@example.com' })).status).toBe(200) // not in the payload: no event
    expect((await api(`/api/v1/admin/apps/${a1.appId}/mappings/${mid}`, { method: 'DELETE', token: admin })).status).toBe(200)

    const bySeq = (calls: Received[]) => calls.map((c) => JSON.parse(c.body)).sort((a, b) => a.seq - b.seq)
    const summary = (p: any) => [p.type, p.event_type, p.user_data.status, p.user_data.user_status, p.user_data.name, p.user_data.mobile]
    const got1 = bySeq(await until('app 1 deliveries', async () => ((await received(s1.id)).length >= 8 ? received(s1.id) : null)))
    expect(got1.map(summary)).toEqual([
      ['mapping.added', 'ADD', 'ACTIVE', 'ACTIVE', 'Han Meimei', u.mobile],
      ['mapping.updated', 'UPDATE', 'ACTIVE', 'ACTIVE', 'Meimei H.', u.mobile],
      ['mapping.disabled', 'DISABLE', 'DISABLED', 'ACTIVE', 'Meimei H.', u.mobile],
      ['user.disabled', 'DISABLE', 'DISABLED', 'DISABLED', 'Meimei H.', u.mobile],
      // enabled again, but the mapping in app 1 is disabled: nothing to re-enable there
      ['user.enabled', 'UPDATE', 'DISABLED', 'ACTIVE', 'Meimei H.', u.mobile],
      ['user.updated', 'UPDATE', 'DISABLED', 'ACTIVE', 'Meimei H.', u.mobile], // the mapping's own name wins
      ['user.updated', 'UPDATE', 'DISABLED', 'ACTIVE', 'Meimei H.', newMobile],
      ['mapping.deleted', 'DELETE', 'DISABLED', 'ACTIVE', 'Meimei H.', newMobile],
    ])
    const got2 = bySeq(await until('app 2 deliveries', async () => ((await received(s2.id)).length >= 5 ? received(s2.id) : null)))
    expect(got2.map(summary)).toEqual([
      ['mapping.added', 'ADD', 'ACTIVE', 'ACTIVE', 'Han Meimei', u.mobile],
      ['user.disabled', 'DISABLE', 'ACTIVE', 'DISABLED', 'Han Meimei', u.mobile],
      ['user.enabled', 'ADD', 'ACTIVE', 'ACTIVE', 'Han Meimei', u.mobile],
      ['user.updated', 'UPDATE', 'ACTIVE', 'ACTIVE', 'Han M.', u.mobile],
      ['user.updated', 'UPDATE', 'ACTIVE', 'ACTIVE', 'Han M.', newMobile],
    ])
    for (const [calls, secret] of [[await received(s1.id), a1.webhookSecret], [await received(s2.id), a2.webhookSecret]] as const) {
      for (const c of calls) expect(() => new Webhook(secret).verify(c.body, headerObject(c.headers))).not.toThrow()
    }
    // the app without a notification_url has the same events in its feed, and no delivery rows
    const feed = await api(`/api/v1/apps/${quiet.appId}/users/changes`, { headers: { 'X-App-Access-Token': quiet.accessToken } })
    expect(feed.body.items.map((e: any) => e.type)).toEqual(['mapping.added', 'user.disabled', 'user.enabled', 'user.updated', 'user.updated'])
    expect((await env.DB.prepare('SELECT count(*) AS n FROM webhook_deliveries WHERE app_id = ?').bind(quiet.appId).first<{ n: number }>())!.n).toBe(0)
    // the feed of app 2 and its deliveries are the same events
    const feed2 = await api(`/api/v1/apps/${a2.appId}/users/changes`, { headers: { 'X-App-Access-Token': a2.accessToken } })
    expect(feed2.body.items.map((e: any) => [e.event_id, e.seq])).toEqual(got2.map((p) => [p.id, p.seq]))
  })

  it('a receiver answering 500 twice, then 200, gets the event on the third attempt; each attempt is logged', async () => {
    const admin = await adminToken()
    const s = await sink({ responses: [500, 500] })
    const app = await newApp(admin, s.url)
    const u = await createUser()
    const [r] = await sync(app, [{ mobile: u.mobile, mapped_key: 'retry-me', action: 'ADD' }])
    const e = await settled(admin, app.appId, r.event_id!, 'delivered')
    expect(e.attempts.map((a: any) => [a.attempt, a.origin, a.http_status, a.error, a.response_body])).toEqual([
      [1, 'commit', 500, 'HTTP 500', 'receiver answered 500'],
      [2, 'commit', 500, 'HTTP 500', 'receiver answered 500'],
      [3, 'commit', 200, null, 'receiver answered 200'],
    ])
    const calls = await received(s.id)
    expect(calls).toHaveLength(3)
    // the same event id every time, each attempt signed afresh
    expect(new Set(calls.map((c) => headerObject(c.headers)['webhook-id']))).toEqual(new Set([r.event_id]))
    for (const c of calls) expect(() => new Webhook(app.webhookSecret).verify(c.body, headerObject(c.headers))).not.toThrow()
  })

  it('a receiver that stays down: retried to the dead-letter queue, marked failed, delivered after an admin retry', async () => {
    const admin = await adminToken()
    const s = await sink({ status: 503 })
    const app = await newApp(admin, rx.downUrl) // nothing listens there
    const u = await createUser()
    const [r] = await sync(app, [{ mobile: u.mobile, mapped_key: 'down', action: 'ADD' }])
    const failed = await settled(admin, app.appId, r.event_id!, 'failed')
    // max_retries = 5 in wrangler.toml: six attempts, then the dead-letter queue
    expect(failed.attempts).toHaveLength(6)
    expect(failed.attempts.every((a: any) => a.http_status === null && a.error.startsWith('network error'))).toBe(true)
    const dead = await env.DB.prepare("SELECT details FROM audit_logs WHERE action = 'queue.dead_letter' AND details LIKE ?").bind(`%${r.event_id}%`).first<{ details: string }>()
    expect(JSON.parse(dead!.details)).toMatchObject({ queue: DLQ_NAME, body: { kind: WEBHOOK_JOB, event_id: r.event_id } })
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/events?status=failed`, { token: admin })).body.items.map((i: any) => i.event_id)).toEqual([r.event_id])

    // the receiver comes up (here: a sink that answers 503 once, then 200) and the admin retries
    await fetch(`${rx.url}/sinks/${s.id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ responses: [503], status: 200 }) })
    expect((await api(`/api/v1/admin/apps/${app.appId}`, { method: 'PATCH', token: admin, json: { notification_url: s.url } })).status).toBe(200)
    const retried = await api(`/api/v1/admin/apps/${app.appId}/webhooks/events/${r.event_id}/retry`, { method: 'POST', token: admin })
    expect(retried).toMatchObject({ status: 202, body: { event_id: r.event_id, status: 'pending', previous_status: 'failed' } })
    const done = await settled(admin, app.appId, r.event_id!, 'delivered')
    expect(done.attempts.slice(6).map((a: any) => [a.attempt, a.origin, a.http_status])).toEqual([
      [7, 'retry', 503],
      [8, 'retry', 200],
    ])
    expect(done.failed_at).toBeNull()
    expect(new Webhook(app.webhookSecret).verify((await received(s.id)).at(-1)!.body, headerObject((await received(s.id)).at(-1)!.headers))).toMatchObject({ id: r.event_id })
    const audit = await env.DB.prepare("SELECT actor_type, details FROM audit_logs WHERE action = 'admin.webhook.retry' AND target_id = ?").bind(r.event_id).first<{ actor_type: string; details: string }>()
    expect(audit).toMatchObject({ actor_type: 'admin' })
    expect(JSON.parse(audit!.details)).toEqual({ app_id: app.appId, previous_status: 'failed' })
    // delivered: a second retry is refused, and nothing is written
    expect(await api(`/api/v1/admin/apps/${app.appId}/webhooks/events/${r.event_id}/retry`, { method: 'POST', token: admin })).toMatchObject({ status: 409, body: { error: { code: 'already_delivered' } } })
  })

  it('retry-failed re-sends every failed event of the app; redirects are not followed', async () => {
    const admin = await adminToken()
    const target = await sink()
    const s = await sink({ status: 302, location: target.url })
    const app = await newApp(admin, s.url)
    const [u1, u2] = [await createUser(), await createUser()]
    const results = await sync(app, [
      { mobile: u1.mobile, mapped_key: 'r1', action: 'ADD' },
      { mobile: u2.mobile, mapped_key: 'r2', action: 'ADD' },
    ])
    for (const r of results) {
      const e = await settled(admin, app.appId, r.event_id!, 'failed')
      expect(e.attempts[0]).toMatchObject({ http_status: 302, error: `redirect not followed (302 to ${target.url})` })
    }
    expect(await received(target.id)).toEqual([]) // the redirect target never saw a request
    await fetch(`${rx.url}/sinks/${s.id}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 204 }) })
    const r = await api(`/api/v1/admin/apps/${app.appId}/webhooks/retry-failed`, { method: 'POST', token: admin })
    expect(r).toMatchObject({ status: 202, body: { retried: 2, remaining: 0 } })
    for (const x of results) await settled(admin, app.appId, x.event_id!, 'delivered')
    const list = await api(`/api/v1/admin/apps/${app.appId}/webhooks/events?status=delivered`, { token: admin })
    expect(list.body).toMatchObject({ total: 2, page: 1 })
    expect(list.body.items.map((i: any) => i.event_id)).toEqual([results[1].event_id, results[0].event_id]) // newest first
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/events?status=failed`, { token: admin })).body.total).toBe(0)
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks`, { token: admin })).body).toMatchObject({ delivering: true, problem: null, counts: { pending: 0, delivered: 2, failed: 0 } })
  })
})

/** env whose queue refuses every message (the write commits, the hand-over fails). */
const broken = { ...env, WEBHOOK_QUEUE: { send: () => Promise.reject(new Error('queue down')), sendBatch: () => Promise.reject(new Error('queue down')) } } as unknown as Env
/** The sweep as the cron runs it (src/wiring.ts), at a time past the grace. */
const sweepTask = () => cronTasks.find((t) => t.name === 'webhook-sweep')!
const later = () => Date.now() + SWEEP_GRACE_MS + 1000

describe('nothing is lost between the commit and the queue', () => {
  it('an enqueue that failed after the commit: the delivery stays pending, and the cron sweep sends it once the grace has passed', async () => {
    const admin = await adminToken()
    const s = await sink()
    const app = await newApp(admin, s.url)
    const u = await createUser()
    // the write path, with the queue failing when its events are handed over
    const [r] = await syncMappings(broken, app.appId, [{ mobile: u.mobile, mapped_key: 'lost-send', action: 'ADD' }])
    await deliverAfterCommit(broken, [r.event_id!])
    const pending = await eventOf(admin, app.appId, r.event_id!)
    expect(pending).toMatchObject({ status: 'pending', attempt_count: 0 })
    // within the grace the sweep leaves it alone
    expect((await sweepWebhooks(env)).requeued).toBe(0)
    await new Promise((res) => setTimeout(res, 1500))
    expect(await received(s.id)).toEqual([])

    await sweepTask().run(env, later())
    const e = await settled(admin, app.appId, r.event_id!, 'delivered')
    expect(e.attempts.map((a: any) => [a.attempt, a.origin, a.http_status])).toEqual([[1, 'sweep', 200]])
    expect(await received(s.id)).toHaveLength(1)
  })

  it('a crash between the commit and the enqueue (no delivery row at all): the sweep scans the outbox and schedules it', async () => {
    const admin = await adminToken()
    const s = await sink()
    const app = await newApp(admin, s.url)
    const u = await createUser()
    const [r] = await syncMappings(env, app.appId, [{ mobile: u.mobile, mapped_key: 'never-handed-over', action: 'ADD' }]) // nobody schedules it
    expect((await eventOf(admin, app.appId, r.event_id!)).status).toBe('unscheduled')
    await sweepTask().run(env, later())
    const e = await settled(admin, app.appId, r.event_id!, 'delivered')
    expect(e.attempts.map((a: any) => a.origin)).toEqual(['sweep'])
    // scanning again schedules nothing twice
    await sweepTask().run(env, later())
    await new Promise((res) => setTimeout(res, 1500))
    expect(await received(s.id)).toHaveLength(1)
  })

  it('a bulk import\'s events reach the app too: the import commits them with its batches, the sweep schedules them (docs/webhooks.md)', async () => {
    const admin = await adminToken()
    const s = await sink()
    const app = await newApp(admin, s.url)
    const [u1, u2] = [await createUser(), await createUser()]
    const auth = { appToken: app.accessToken }
    const p = await upload(`/api/v1/apps/${app.appId}/mapping/preview`, auth, csv([['mobile', 'mapped_key'], [u1.mobile, 'bulk-1'], [u2.mobile, 'bulk-2']]), 'text/csv')
    expect(p.status).toBe(200)
    const started = await call(`/api/v1/apps/${app.appId}/mapping/import`, auth, { method: 'POST', json: { preview_id: p.body.preview_id, strategy: 'SKIP' } })
    expect(started.status).toBe(202)
    expect(await waitForJob(`/api/v1/apps/${app.appId}/mapping/import/${started.body.job_id}`, auth)).toMatchObject({ state: 'done', created: 2 })
    const rows = (await env.DB.prepare('SELECT event_id, type FROM mapping_events WHERE app_id = ? ORDER BY id').bind(app.appId).all<{ event_id: string; type: string }>()).results
    expect(rows.map((r) => r.type)).toEqual(['mapping.added', 'mapping.added'])
    await sweepTask().run(env, later())
    for (const r of rows) await settled(admin, app.appId, r.event_id, 'delivered')
    const got = (await received(s.id)).map((m) => JSON.parse(m.body))
    expect(got.map((b) => b.type).sort()).toEqual(['mapping.added', 'mapping.added'])
    expect(got.map((b) => b.user_data.mapped_key).sort()).toEqual(['bulk-1', 'bulk-2'])
  })

  it('the consumer is idempotent: a message of a replaced chain, or a duplicate after delivery, sends nothing and changes no state', async () => {
    const admin = await adminToken()
    const s = await sink()
    const app = await newApp(admin, s.url)
    const u = await createUser()
    const [r] = await syncMappings(broken, app.appId, [{ mobile: u.mobile, mapped_key: 'once', action: 'ADD' }])
    await deliverAfterCommit(broken, [r.event_id!]) // pending, no message in flight
    const lease = (await env.DB.prepare('SELECT lease FROM webhook_deliveries WHERE event_id = ?').bind(r.event_id).first<{ lease: string }>())!.lease
    const msg = (id: string, l: string) => ({ id, timestamp: new Date(), attempts: 1, body: { kind: WEBHOOK_JOB, event_id: r.event_id, app_id: app.appId, lease: l, origin: 'commit' } })
    const consume = async (m: ReturnType<typeof msg>) => {
      const batch = createMessageBatch('uap-edge-webhooks', [m])
      const ctx = createExecutionContext()
      await worker.queue(batch, env, ctx)
      return getQueueResult(batch, ctx)
    }
    const before = await eventOf(admin, app.appId, r.event_id!)
    expect((await consume(msg('stale', 'a-replaced-lease'))).explicitAcks).toEqual(['stale'])
    expect(await received(s.id)).toEqual([])
    expect(await eventOf(admin, app.appId, r.event_id!)).toEqual(before)

    expect((await consume(msg('owner', lease))).explicitAcks).toEqual(['owner'])
    expect(await received(s.id)).toHaveLength(1)
    const delivered = await eventOf(admin, app.appId, r.event_id!)
    expect(delivered).toMatchObject({ status: 'delivered', attempt_count: 1 })

    // at-least-once: the same message again (the queue may redeliver it)
    expect((await consume(msg('owner-again', lease))).explicitAcks).toEqual(['owner-again'])
    expect(await received(s.id)).toHaveLength(1)
    expect(await eventOf(admin, app.appId, r.event_id!)).toEqual(delivered)
  })

  it('copies of one message side by side, in one batch or in two consumers at once, send the event once (docs/webhooks.md)', async () => {
    const admin = await adminToken()
    // the receiver holds its answer back, so the second consumer reads the delivery while the first one's POST is in flight
    const s = await sink({ delay_ms: 300 })
    const app = await newApp(admin, s.url)
    const u = await createUser()
    const [r1, r2] = await syncMappings(broken, app.appId, [
      { mobile: u.mobile, mapped_key: 'copies-in-a-batch', action: 'ADD' },
      { mobile: (await createUser()).mobile, mapped_key: 'copies-in-two-batches', action: 'ADD' },
    ])
    await deliverAfterCommit(broken, [r1.event_id!, r2.event_id!]) // pending, no message in flight
    const leaseOf = async (id: string) => (await env.DB.prepare('SELECT lease FROM webhook_deliveries WHERE event_id = ?').bind(id).first<{ lease: string }>())!.lease
    const msg = (id: string, eventId: string, lease: string) => ({ id, timestamp: new Date(), attempts: 1, body: { kind: WEBHOOK_JOB, event_id: eventId, app_id: app.appId, lease, origin: 'commit' } })
    const consume = async (ms: ReturnType<typeof msg>[]) => {
      const batch = createMessageBatch('uap-edge-webhooks', ms)
      const ctx = createExecutionContext()
      await worker.queue(batch, env, ctx)
      return getQueueResult(batch, ctx)
    }
    const postsOf = async (eventId: string) => (await received(s.id)).filter((m) => JSON.parse(m.body).id === eventId)

    const l1 = await leaseOf(r1.event_id!)
    expect((await consume([msg('a-1', r1.event_id!, l1), msg('a-2', r1.event_id!, l1)])).explicitAcks.sort()).toEqual(['a-1', 'a-2'])
    expect(await postsOf(r1.event_id!)).toHaveLength(1)

    const l2 = await leaseOf(r2.event_id!)
    const [b1, b2] = await Promise.all([consume([msg('b-1', r2.event_id!, l2)]), consume([msg('b-2', r2.event_id!, l2)])])
    expect([...b1.explicitAcks, ...b2.explicitAcks].sort()).toEqual(['b-1', 'b-2'])
    expect([...b1.retryMessages, ...b2.retryMessages]).toEqual([])
    expect(await postsOf(r2.event_id!)).toHaveLength(1)

    for (const r of [r1, r2]) {
      const e = await eventOf(admin, app.appId, r.event_id!)
      expect(e).toMatchObject({ status: 'delivered', attempt_count: 1 })
      expect(e.attempts.map((a: any) => [a.attempt, a.http_status])).toEqual([[1, 200]])
    }
  })

  it('a consumer that died between claiming an attempt and recording it: its copies send nothing, the sweep sends the event once overdue', async () => {
    const admin = await adminToken()
    const s = await sink()
    const app = await newApp(admin, s.url)
    const u = await createUser()
    const [r] = await syncMappings(broken, app.appId, [{ mobile: u.mobile, mapped_key: 'claimed-then-crashed', action: 'ADD' }])
    await deliverAfterCommit(broken, [r.event_id!]) // pending, no message in flight
    // what the claim leaves behind when nothing records the attempt (src/webhooks/delivery.ts claimStatement)
    await env.DB.prepare('UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ? WHERE event_id = ?').bind(Date.now() + 10_000, r.event_id).run()
    const lease = (await env.DB.prepare('SELECT lease FROM webhook_deliveries WHERE event_id = ?').bind(r.event_id).first<{ lease: string }>())!.lease
    const batch = createMessageBatch('uap-edge-webhooks', [{ id: 'redelivered', timestamp: new Date(), attempts: 2, body: { kind: WEBHOOK_JOB, event_id: r.event_id, app_id: app.appId, lease, origin: 'commit' } }])
    const ctx = createExecutionContext()
    await worker.queue(batch, env, ctx)
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual(['redelivered'])
    expect(await received(s.id)).toEqual([])
    // not overdue yet: the attempt may still be in flight
    expect((await sweepWebhooks(env)).requeued).toBe(0)

    await sweepTask().run(env, Date.now() + 10_000 + SWEEP_GRACE_MS + 1000)
    const e = await settled(admin, app.appId, r.event_id!, 'delivered')
    expect(e.attempts.map((a: any) => [a.attempt, a.origin, a.http_status])).toEqual([[1, 'sweep', 200]])
    expect(await received(s.id)).toHaveLength(1)
  })

  it('a dead letter marks the event failed only for the chain that owns it', async () => {
    const admin = await adminToken()
    const app = await newApp(admin, rx.downUrl)
    const u = await createUser()
    const [r] = await syncMappings(broken, app.appId, [{ mobile: u.mobile, mapped_key: 'dlq', action: 'ADD' }])
    await deliverAfterCommit(broken, [r.event_id!]) // pending, no message in flight
    const lease = (await env.DB.prepare('SELECT lease FROM webhook_deliveries WHERE event_id = ?').bind(r.event_id).first<{ lease: string }>())!.lease
    const dead = (id: string, l: string) => ({ id, timestamp: new Date(), attempts: 6, body: { kind: WEBHOOK_JOB, event_id: r.event_id, app_id: app.appId, lease: l, origin: 'commit' } })
    for (const [msg, status] of [
      [dead('dlq-stale', 'not-the-owner'), 'pending'],
      [dead('dlq-owner', lease), 'failed'],
    ] as const) {
      const batch = createMessageBatch(DLQ_NAME, [msg])
      const ctx = createExecutionContext()
      await worker.queue(batch, env, ctx)
      expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual([msg.id])
      expect((await eventOf(admin, app.appId, r.event_id!)).status).toBe(status)
    }
  })
})

describe('apps, secrets and what is not sent', () => {
  it('an app with a notification_url but no webhook secret: its events fail at once, saying why; the first rotation creates one and a retry delivers', async () => {
    const admin = await adminToken()
    const s = await sink()
    const app = await newApp(admin, s.url)
    await env.DB.prepare('DELETE FROM webhook_secrets WHERE app_id = ?').bind(app.appId).run() // as for apps made before webhooks
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks`, { token: admin })).body).toMatchObject({ delivering: false, secret: null, problem: expect.stringContaining('no webhook secret') })
    expect(await api(`/api/v1/admin/apps/${app.appId}/webhooks/test`, { method: 'POST', token: admin })).toMatchObject({ status: 409, body: { error: { code: 'webhook_secret_missing' } } })
    const u = await createUser()
    const [r] = await sync(app, [{ mobile: u.mobile, mapped_key: 'nosecret', action: 'ADD' }])
    const failed = await settled(admin, app.appId, r.event_id!, 'failed')
    expect(failed.attempts).toEqual([expect.objectContaining({ attempt: 1, http_status: null, error: expect.stringContaining('no webhook secret') })])
    expect(await received(s.id)).toEqual([])

    // JSON or nothing (the defaults); another media type is refused
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/secret/rotate`, { method: 'POST', token: admin, headers: { 'Content-Type': 'text/plain' }, body: 'x' })).status).toBe(400)
    const rot = await api(`/api/v1/admin/apps/${app.appId}/webhooks/secret/rotate`, { method: 'POST', token: admin })
    expect(rot).toMatchObject({ status: 200, body: { app_id: app.appId, webhook_secret: expect.stringMatching(/^whsec_/), previous_secret_expires_at: null } })
    expect(rot.headers.get('Cache-Control')).toBe('no-store')
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/retry-failed`, { method: 'POST', token: admin })).body).toEqual({ retried: 1, remaining: 0 })
    await settled(admin, app.appId, r.event_id!, 'delivered')
    const [call] = await received(s.id)
    expect(new Webhook(rot.body.webhook_secret).verify(call.body, headerObject(call.headers))).toMatchObject({ id: r.event_id })
  })

  it('secret rotation: both signatures during the overlap, so either secret verifies; overlap 0 ends the old one at once; audited', async () => {
    const admin = await adminToken()
    const s = await sink()
    const app = await newApp(admin, s.url)
    const rot = await api(`/api/v1/admin/apps/${app.appId}/webhooks/secret/rotate`, { method: 'POST', token: admin, json: { overlap_seconds: 3600 } })
    expect(rot.status).toBe(200)
    const fresh = rot.body.webhook_secret as string
    expect(fresh).not.toBe(app.webhookSecret)
    expect(Date.parse(rot.body.previous_secret_expires_at) - Date.now()).toBeGreaterThan(3590_000)

    const test1 = await api(`/api/v1/admin/apps/${app.appId}/webhooks/test`, { method: 'POST', token: admin })
    expect(test1).toMatchObject({ status: 200, body: { delivered: true, http_status: 200, payload: { type: 'webhook.test', event_type: 'TEST', seq: 0, user_data: null, app_id: app.appId } } })
    const [c1] = await received(s.id)
    const h1 = headerObject(c1.headers)
    expect(h1['webhook-signature'].split(' ')).toHaveLength(2)
    expect(h1['x-uap-signature'].split(' ')).toHaveLength(2)
    for (const secret of [fresh, app.webhookSecret]) {
      expect(new Webhook(secret).verify(c1.body, h1)).toMatchObject({ id: test1.body.event_id })
      expect(h1['x-uap-signature'].split(' ')).toContain(await hmacSha256Hex(secret, `${h1['x-uap-timestamp']}.${c1.body}`))
    }

    const rot2 = await api(`/api/v1/admin/apps/${app.appId}/webhooks/secret/rotate`, { method: 'POST', token: admin, json: { overlap_seconds: 0 } })
    expect(rot2.body.previous_secret_expires_at).toBeNull()
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/test`, { method: 'POST', token: admin })).body.delivered).toBe(true)
    const c2 = (await received(s.id))[1]
    const h2 = headerObject(c2.headers)
    expect(h2['webhook-signature'].split(' ')).toHaveLength(1)
    expect(() => new Webhook(rot2.body.webhook_secret).verify(c2.body, h2)).not.toThrow()
    for (const old of [fresh, app.webhookSecret]) expect(() => new Webhook(old).verify(c2.body, h2)).toThrow()

    const audit = (await env.DB.prepare("SELECT action, details FROM audit_logs WHERE target_id = ? AND action LIKE 'admin.webhook.%' ORDER BY id").bind(app.appId).all<{ action: string; details: string }>()).results
    expect(audit.map((a) => [a.action, JSON.parse(a.details)])).toEqual([
      ['admin.webhook.rotate_secret', { overlap_seconds: 3600 }],
      ['admin.webhook.test', { event_id: test1.body.event_id, delivered: true, http_status: 200, error: null }],
      ['admin.webhook.rotate_secret', { overlap_seconds: 0 }],
      ['admin.webhook.test', expect.objectContaining({ delivered: true })],
    ])
    // the secret is stored encrypted, never in the clear
    const stored = await env.DB.prepare('SELECT secret_enc FROM webhook_secrets WHERE app_id = ?').bind(app.appId).first<{ secret_enc: string }>()
    expect(stored!.secret_enc).toMatch(/^v2\./)
    expect(stored!.secret_enc).not.toContain(rot2.body.webhook_secret.slice(6, 20))
  })

  it('a test event reports what a failing receiver said; a bad overlap is a 400; unknown events and apps are 404', async () => {
    const admin = await adminToken()
    const s = await sink({ status: 500 })
    const app = await newApp(admin, s.url)
    const t = await api(`/api/v1/admin/apps/${app.appId}/webhooks/test`, { method: 'POST', token: admin })
    expect(t).toMatchObject({ status: 200, body: { delivered: false, http_status: 500, error: 'HTTP 500', response_body: 'receiver answered 500' } })
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/secret/rotate`, { method: 'POST', token: admin, json: { overlap_seconds: -1 } })).status).toBe(400)
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/secret/rotate`, { method: 'POST', token: admin, json: { overlap_seconds: 8 * 86400 } })).status).toBe(400)
    expect(await api(`/api/v1/admin/apps/${app.appId}/webhooks/events/${crypto.randomUUID()}`, { token: admin })).toMatchObject({ status: 404, body: { error: { code: 'event_not_found' } } })
    expect(await api(`/api/v1/admin/apps/${app.appId}/webhooks/events/${crypto.randomUUID()}/retry`, { method: 'POST', token: admin })).toMatchObject({ status: 404, body: { error: { code: 'event_not_found' } } })
    expect((await api('/api/v1/admin/apps/app_nope/webhooks/events', { token: admin })).status).toBe(404)
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/events?status=lost`, { token: admin })).status).toBe(400)
    // another app's event is not found through this app
    const other = await newApp(admin, null)
    const u = await createUser()
    const [r] = await sync(other, [{ mobile: u.mobile, mapped_key: 'other', action: 'ADD' }])
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/events/${r.event_id}`, { token: admin })).status).toBe(404)
    // the app without notification_url: its event is in the outbox, never scheduled; retry and test say why
    expect((await eventOf(admin, other.appId, r.event_id!)).status).toBe('unscheduled')
    expect(await api(`/api/v1/admin/apps/${other.appId}/webhooks/events/${r.event_id}/retry`, { method: 'POST', token: admin })).toMatchObject({ status: 409, body: { error: { code: 'notification_url_missing' } } })
    expect(await api(`/api/v1/admin/apps/${other.appId}/webhooks/test`, { method: 'POST', token: admin })).toMatchObject({ status: 409, body: { error: { code: 'notification_url_missing' } } })
    // a normal user is refused by the admin guard
    const user = await createUser()
    const userToken = (await api('/api/v1/auth/login', { method: 'POST', json: { mobile: user.mobile, password: user.password } })).body.access_token
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/events`, { token: userToken })).status).toBe(403)
  })

  it('a disabled app gets no deliveries: events scheduled before it was disabled fail saying why', async () => {
    const admin = await adminToken()
    const s = await sink({ delay_ms: 0 })
    const app = await newApp(admin, s.url)
    const u = await createUser()
    const [r] = await syncMappings(broken, app.appId, [{ mobile: u.mobile, mapped_key: 'dis', action: 'ADD' }])
    await deliverAfterCommit(broken, [r.event_id!]) // scheduled, the message lost
    expect((await api(`/api/v1/admin/apps/${app.appId}/disable`, { method: 'POST', token: admin })).status).toBe(200)
    await sweepTask().run(env, later())
    const e = await settled(admin, app.appId, r.event_id!, 'failed')
    expect(e.attempts).toEqual([expect.objectContaining({ error: 'not sent: the application is disabled' })])
    expect(await received(s.id)).toEqual([])
    expect(await api(`/api/v1/admin/apps/${app.appId}/webhooks/events/${r.event_id}/retry`, { method: 'POST', token: admin })).toMatchObject({ status: 403, body: { error: { code: 'app_disabled' } } })
  })

  it('in production a notification_url must be https to a public host, at registration and on update', async () => {
    const prod = { ...env, ENVIRONMENT: 'production', ISSUER: 'https://id.example.com', MASTER_KEY: btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))), BOOTSTRAP_ADMIN_PASSWORD: 'a-real-long-admin-password', PASSWORD_HASH_PROFILE: undefined, SMS_PROVIDER: 'webhook', SMS_WEBHOOK_URL: 'https://sms.example.com/send', SMS_WEBHOOK_SECRET: 'a-long-sms-webhook-secret', QUEUE_RETRY_BASE_S: undefined } as unknown as Env
    expect(getConfig(prod).environment).toBe('production')
    const actor = { actorType: 'admin' as const, actorId: 'test' }
    await expect(createApplicationAsAdmin(prod, { appName: 'P', protocolType: 'SIMPLE_API', notificationUrl: 'http://127.0.0.1:9/hook' }, actor)).rejects.toMatchObject({ status: 400, code: 'invalid_request' })
    await expect(createApplicationAsAdmin(prod, { appName: 'P', protocolType: 'SIMPLE_API', notificationUrl: 'https://169.254.169.254/hook' }, actor)).rejects.toMatchObject({ status: 400 })
    const { row, credentials } = await createApplicationAsAdmin(prod, { appName: 'P', protocolType: 'SIMPLE_API', notificationUrl: 'https://hooks.example.com/uap' }, actor)
    expect(credentials.webhook_secret).toMatch(/^whsec_/)
    await expect(updateApplicationAsAdmin(prod, row.appId, { notificationUrl: 'https://localhost/x' }, actor)).rejects.toMatchObject({ status: 400 })
    expect((await updateApplicationAsAdmin(prod, row.appId, { notificationUrl: null }, actor)).notificationUrl).toBeNull()
  })
})

describe('docs', () => {
  it('/docs/open shows the payload as an OpenAPI 3.1 webhook; /docs/admin lists the admin routes with their statuses', async () => {
    const open = (await api('/docs/open/openapi.json')).body
    const hook = open.webhooks?.uapEvent?.post
    expect(hook).toBeTruthy()
    expect(hook.requestBody.content['application/json'].schema.$ref).toBe('#/components/schemas/WebhookEvent')
    expect(Object.keys(open.components.schemas.WebhookEvent.properties)).toEqual(['id', 'type', 'event_type', 'app_id', 'seq', 'occurred_at', 'mapping_id', 'user_id', 'user_data', 'permission_data'])
    expect(hook.parameters.map((p: any) => p.name)).toEqual(expect.arrayContaining(['webhook-id', 'webhook-timestamp', 'webhook-signature', 'x-uap-signature', 'x-uap-timestamp']))
    expect(Object.keys(open.paths).some((p) => p.includes('/webhooks'))).toBe(false)
    const admin = (await api('/docs/admin/openapi.json')).body
    const paths = admin.paths
    const statuses = (p: string, m: string) => Object.keys(paths[p][m].responses).sort()
    // 429: an API client's own limit, on every admin operation (src/delegation/rights.ts describeRights)
    const generic = (m: string) => (m === 'get' ? ['429', '500', '503'] : ['413', '429', '500', '503'])
    const expectStatuses = (p: string, m: string, own: string[]) => expect(statuses(p, m), `${m} ${p}`).toEqual([...own, ...generic(m)].sort())
    expectStatuses('/api/v1/admin/apps/{app_id}/webhooks', 'get', ['200', '400', '401', '403', '404'])
    expectStatuses('/api/v1/admin/apps/{app_id}/webhooks/events', 'get', ['200', '400', '401', '403', '404'])
    expectStatuses('/api/v1/admin/apps/{app_id}/webhooks/events/{event_id}', 'get', ['200', '400', '401', '403', '404'])
    expectStatuses('/api/v1/admin/apps/{app_id}/webhooks/events/{event_id}/retry', 'post', ['202', '400', '401', '403', '404', '409'])
    expectStatuses('/api/v1/admin/apps/{app_id}/webhooks/retry-failed', 'post', ['202', '400', '401', '403', '404', '409'])
    expectStatuses('/api/v1/admin/apps/{app_id}/webhooks/test', 'post', ['200', '400', '401', '403', '404', '409'])
    expectStatuses('/api/v1/admin/apps/{app_id}/webhooks/secret/rotate', 'post', ['200', '400', '401', '403', '404'])
    expect(paths['/api/v1/admin/apps/{app_id}/webhooks/events/{event_id}/retry'].post.responses['409'].description).toContain('already_delivered')
    expect(admin.webhooks.uapEvent).toBeTruthy()
  })
})
