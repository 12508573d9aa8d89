#!/usr/bin/env node
// A webhook receiver on 127.0.0.1 for the tests, the bench and trying webhooks by hand:
//   node scripts/webhook-receiver.mjs [port]     (then POST /sinks, set notification_url)
// It records what arrives and answers what it is told to; it verifies nothing itself (the
// tests verify with the standardwebhooks package, as a partner would).
//
//   POST /sinks {id?, responses?: [500, 500], status?: 200, delay_ms?: 0, location?}
//        → 201 {id, url}: a sink (its id given, or random); url is the notification_url to give the app. Each call
//        to it is answered with the next status of `responses`, then `status` for good;
//        a 3xx carries `location`. delay_ms holds every answer back.
//   POST /hook/{id}      a delivery: recorded {at (ms), headers, body}, answered as above
//   GET  /sinks/{id}     → {received: [...]} in arrival order
//   PUT  /sinks/{id}     changes responses, status or delay_ms of a sink
import http from 'node:http'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'

const read = (req) =>
  new Promise((resolve, reject) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })

const json = (res, status, body) => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

/** Starts a receiver on host:port (port 0: any free port). Resolves once it listens. */
export async function startReceiver({ port = 0, host = '127.0.0.1' } = {}) {
  const sinks = new Map()
  let base = ''
  const configure = (sink, cfg) => {
    if (Array.isArray(cfg.responses)) sink.responses = [...cfg.responses]
    if (cfg.status !== undefined) sink.status = cfg.status
    if (cfg.delay_ms !== undefined) sink.delayMs = cfg.delay_ms
    if (cfg.location !== undefined) sink.location = cfg.location
  }
  const server = http.createServer(async (req, res) => {
    // one request per connection: a kept-alive socket the server closes while the client
    // (workerd's pool) reuses it fails that request with "Network connection lost"
    res.setHeader('connection', 'close')
    try {
      const url = new URL(req.url ?? '/', 'http://receiver')
      const body = await read(req)
      const [, kind, id] = url.pathname.split('/')
      if (req.method === 'POST' && url.pathname === '/sinks') {
        const sink = { responses: [], status: 200, delayMs: 0, location: null, received: [] }
        const cfg = body ? JSON.parse(body) : {}
        configure(sink, cfg)
        const sinkId = typeof cfg.id === 'string' && /^[\w-]{1,64}$/.test(cfg.id) ? cfg.id : randomUUID()
        sinks.set(sinkId, sink)
        return json(res, 201, { id: sinkId, url: `${base}/hook/${sinkId}` })
      }
      const sink = id ? sinks.get(id) : undefined
      if (kind === 'sinks' && sink && req.method === 'GET') return json(res, 200, { received: sink.received })
      if (kind === 'sinks' && sink && req.method === 'PUT') {
        configure(sink, body ? JSON.parse(body) : {})
        return json(res, 200, { ok: true })
      }
      if (kind === 'hook' && sink && req.method === 'POST') {
        sink.received.push({ at: Date.now(), headers: req.headers, body })
        const status = sink.responses.length ? sink.responses.shift() : sink.status
        if (sink.delayMs) await new Promise((r) => setTimeout(r, sink.delayMs))
        res.writeHead(status, { 'content-type': 'text/plain', ...(status >= 300 && status < 400 && sink.location ? { location: sink.location } : {}) })
        return res.end(`receiver answered ${status}`)
      }
      json(res, 404, { error: 'no such sink or route' })
    } catch (err) {
      json(res, 500, { error: String(err) })
    }
  })
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(undefined))
  })
  const address = server.address()
  base = `http://${host}:${typeof address === 'object' && address ? address.port : port}`
  return {
    url: base,
    port: typeof address === 'object' && address ? address.port : port,
    sinks,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.()
        server.close(() => resolve(undefined))
      }),
  }
}

/** A sink on a running receiver, through its HTTP control API (usable from workerd, Node or the bench). */
export async function createSink(receiverUrl, cfg = {}) {
  const r = await fetch(`${receiverUrl}/sinks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(cfg) })
  if (r.status !== 201) throw new Error(`receiver: create sink answered ${r.status}`)
  return r.json()
}

export async function sinkReceived(receiverUrl, id) {
  const r = await fetch(`${receiverUrl}/sinks/${id}`)
  if (r.status !== 200) throw new Error(`receiver: sink ${id} answered ${r.status}`)
  return (await r.json()).received
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rx = await startReceiver({ port: Number(process.argv[2] ?? 8790) })
  console.log(`webhook receiver on ${rx.url}: POST ${rx.url}/sinks to get a notification_url`)
}
