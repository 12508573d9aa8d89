import { createHmac } from 'node:crypto'
import { freePorts } from '../lib.mjs'
import { startReceiver } from '../../scripts/webhook-receiver.mjs'

/**
 * Webhook delivery, change → receiver: a real HTTP receiver on 127.0.0.1 (a port from
 * BENCH_PORTS) is the app's notification_url; mapping changes go in through the partner
 * sync API. Not an autocannon run: it measures when each event arrives.
 * - idle latency: one change at a time (a one-item sync), the next after the previous one
 *   arrived: from the sync request leaving the client to the webhook arriving;
 * - burst: 1,000 events as two syncs of 500 UPDATE items sent together (one user each, so
 *   they never contend for a row); latency from the event's occurred_at (when the Worker
 *   wrote it) to its arrival, throughput from the first request to the last arrival.
 * Every delivery's signature is checked (Standard Webhooks, node:crypto) and duplicates
 * are counted; afterwards the admin API must report every event delivered.
 */
const IDLE = 20
const BURST = 1000
const PER_SYNC = 500

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN
}
const stats = (xs) => ({ n: xs.length, p50: pct(xs, 50), p95: pct(xs, 95), p99: pct(xs, 99), max: Math.max(...xs) })

function verifies(secret, call) {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64')
  const h = call.headers
  const expected = createHmac('sha256', key).update(`${h['webhook-id']}.${h['webhook-timestamp']}.${call.body}`).digest('base64')
  return String(h['webhook-signature'])
    .split(' ')
    .some((s) => s === `v1,${expected}`)
}

async function waitFor(what, probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`webhook bench: timed out waiting for ${what}`)
    await sleep(5)
  }
}

export default {
  name: 'webhook delivery',
  route: 'mapping sync → notification_url',
  order: 90,
  async measure(ctx) {
    const [port] = await freePorts(1)
    const rx = await startReceiver({ port })
    try {
      const sinkRes = await fetch(`${rx.url}/sinks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
      const sink = await sinkRes.json()
      const calls = () => rx.sinks.get(sink.id).received
      const created = await ctx.api('/api/v1/admin/apps', {
        method: 'POST',
        token: await ctx.adminToken(),
        json: { app_name: `bench webhooks ${port}`, protocol_type: 'SIMPLE_API', redirect_uris: ['https://bench-hooks.example.com/cb'], notification_url: sink.url },
      })
      if (created.status !== 201) throw new Error(`create app: ${created.status} ${JSON.stringify(created.body)}`)
      const app = { appId: created.body.app_id, token: created.body.access_token, secret: created.body.webhook_secret }
      const users = [await ctx.createUser('bench webhook user 1'), await ctx.createUser('bench webhook user 2')]
      const user = users[0]
      const keyOf = (u) => `bench.${port}.${u.mobile.slice(-8)}@hooks.example.com`
      const sync = async (items) => {
        const r = await ctx.api('/api/v1/apps/mapping/sync', { method: 'POST', headers: { 'X-App-Access-Token': app.token }, json: { items } })
        if (r.status !== 200 || r.body.summary.error) throw new Error(`sync: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`)
        return r.body.results
      }
      await sync(users.map((u) => ({ mobile: u.mobile, mapped_key: keyOf(u), action: 'ADD' })))
      await waitFor('the first deliveries', () => calls().length >= users.length, 60_000)

      // idle: one change at a time
      const idle = []
      for (let i = 0; i < IDLE; i++) {
        const before = calls().length
        const t0 = Date.now()
        await sync([{ mobile: user.mobile, mapped_key: keyOf(user), name: `idle ${i}`, action: 'UPDATE' }])
        await waitFor(`idle change ${i}`, () => calls().length > before, 60_000)
        idle.push(calls()[before].at - t0)
      }

      // burst: 1,000 events, two syncs of 500 in parallel
      const base = calls().length
      const cpuBefore = ctx.cpu()
      const t0 = Date.now()
      const batches = Array.from({ length: BURST / PER_SYNC }, (_, b) =>
        Array.from({ length: PER_SYNC }, (_, i) => ({ mobile: users[b].mobile, mapped_key: keyOf(users[b]), name: `burst ${b}-${i}`, action: 'UPDATE' })),
      )
      const results = (await Promise.all(batches.map(sync))).flat()
      const acceptedMs = Date.now() - t0
      const ids = new Set(results.map((r) => r.event_id))
      if (ids.size !== BURST) throw new Error(`burst wrote ${ids.size} events, expected ${BURST}`)
      const arrivedIds = () => new Set(calls().slice(base).map((c) => c.headers['webhook-id']).filter((id) => ids.has(id)))
      await waitFor(`${BURST} deliveries`, () => calls().length - base >= BURST && arrivedIds().size === BURST, 10 * 60_000)
      const burstCalls = calls().slice(base).filter((c) => ids.has(c.headers['webhook-id']))
      const first = new Map()
      for (const c of burstCalls) if (!first.has(c.headers['webhook-id'])) first.set(c.headers['webhook-id'], c)
      const latencies = [...first.values()].map((c) => c.at - Date.parse(JSON.parse(c.body).occurred_at))
      const lastArrival = Math.max(...[...first.values()].map((c) => c.at))
      const cpuAfter = ctx.cpu()
      // the Worker's workerd (D1 and the queue simulator included) per event: the two syncs and every delivery
      const cpuPerEvent = ((cpuAfter.worker ?? 0) - (cpuBefore.worker ?? 0)) / BURST
      const seconds = (lastArrival - t0) / 1000
      const bad = calls().filter((c) => !verifies(app.secret, c)).length

      // what the admin API says afterwards
      await sleep(1000)
      const summary = (await ctx.api(`/api/v1/admin/apps/${app.appId}/webhooks`, { token: await ctx.adminToken() })).body
      const expectedDelivered = users.length + IDLE + BURST
      const result = {
        idle: stats(idle),
        burst: { ...stats(latencies), seconds, throughput: BURST / seconds, acceptedMs, duplicates: burstCalls.length - first.size, workerCpuMsPerEvent: cpuPerEvent },
        badSignatures: bad,
        counts: summary.counts,
      }
      const ok = bad === 0 && summary.counts?.delivered === expectedDelivered && summary.counts?.failed === 0
      return {
        result,
        check: {
          name: 'every webhook delivered and verified',
          ok,
          detail: `${summary.counts?.delivered}/${expectedDelivered} delivered, ${summary.counts?.failed} failed, ${bad} bad signatures, ${result.burst.duplicates} duplicate deliveries in the burst`,
        },
        markdown: [
          `Receiver: scripts/webhook-receiver.mjs on 127.0.0.1:${port} (answers 200 at once). Queue: Miniflare's local queue with wrangler.toml's consumer settings (batches of up to 10, 1 s batch timeout); one batch is handled at a time locally, its messages side by side.`,
          '',
          '| measurement | n | p50 ms | p95 ms | p99 ms | max ms | other |',
          '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
          `| idle: sync request sent → webhook arrived, one change at a time | ${result.idle.n} | ${result.idle.p50} | ${result.idle.p95} | ${result.idle.p99} | ${result.idle.max} | |`,
          `| burst: occurred_at → arrival, ${BURST} events (2 syncs × ${PER_SYNC}) | ${result.burst.n} | ${result.burst.p50} | ${result.burst.p95} | ${result.burst.p99} | ${result.burst.max} | **${result.burst.throughput.toFixed(1)} events/s** (${BURST} in ${seconds.toFixed(1)} s from the first request; the syncs answered after ${acceptedMs} ms); Worker CPU ${cpuPerEvent.toFixed(1)} ms per event (sync and delivery); ${result.burst.duplicates} duplicates |`,
        ].join('\n'),
      }
    } finally {
      await rx.close()
    }
  },
}
