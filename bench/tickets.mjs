#!/usr/bin/env node
// Simple-SSO ticket benchmark on `wrangler dev` (docs/tickets.md, "Measurements").
//
//   node bench/tickets.mjs   # BENCH_N=800 requests per phase, BENCH_CONCURRENCY=8, BENCH_SHARDS=16 (0: skip)
//
// 1. Fresh local state under .wrangler/bench-tickets: D1 migrations, then two SIMPLE_API
//    apps, a user and the user's mapping in the target app, seeded with
//    `wrangler d1 execute --local` (the secret is encrypted under .dev.vars' MASTER_KEY
//    exactly as src/lib/crypto.ts does). No dev-only endpoint is involved.
// 2. `wrangler dev` on 127.0.0.1:8821 (inspector 8822), the exchange rate limit raised so
//    the benchmark measures the path rather than the 429s (the limiter call stays in it).
// 3. Phases, each a bounded concurrent loop (count and time capped), every partner
//    request freshly signed with a unique nonce:
//      GET /nope (404: no binding), GET /healthz (one D1 query),
//      verify with a malformed ticket and exchange for an unknown user (the signed-request
//      and D1 overhead without the ticket object),
//      POST /api/v1/simple/ticket/exchange, POST /api/v1/simple/ticket/verify (each ticket once),
//      then a correctness check: 10 concurrent redemptions of each of 20 tickets.
//    The ticket phases run twice: one object per ticket (default), then TICKET_SHARDS.
// 4. Prints p50/p99/req/s and ratios to the bare routes, writes bench/results/tickets-*.json,
//    stops wrangler.
import { spawn, spawnSync } from 'node:child_process'
import { createHash, createHmac, randomBytes, randomUUID, webcrypto } from 'node:crypto'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ensureDevVars, migrateLocal } from '../scripts/dev.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const wrangler = path.join(root, 'node_modules', '.bin', 'wrangler')
const PORT = 8821
const INSPECTOR_PORT = 8822
const BASE = `http://127.0.0.1:${PORT}`
const N = Number(process.env.BENCH_N ?? 800)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8)
const PHASE_TIME_CAP_MS = Number(process.env.BENCH_PHASE_MS ?? 30_000)
const WARMUP = 40
const persist = path.join(root, '.wrangler', 'bench-tickets')

// ---------- seeding ----------
const b64url = (buf) => Buffer.from(buf).toString('base64url')
const sha256Hex = (s) => createHash('sha256').update(s).digest('hex')

/** Same envelope as src/lib/crypto.ts encryptSecret: v1.<kid>.<iv>.<ct>, AAD app-secret:<app_id>. */
async function encryptAppSecret(masterKey, appId, secret) {
  const raw = masterKey.startsWith('dev-') ? masterKey.slice(4) : masterKey
  const key = await webcrypto.subtle.importKey('raw', Buffer.from(raw, 'base64url'), 'AES-GCM', false, ['encrypt'])
  const iv = randomBytes(12)
  const ct = await webcrypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: Buffer.from(`app-secret:${appId}`) }, key, Buffer.from(secret))
  return `v1.${sha256Hex(masterKey).slice(0, 8)}.${b64url(iv)}.${b64url(new Uint8Array(ct))}`
}

const q = (v) => (v === null ? 'NULL' : typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`)

async function seed(vars) {
  const now = Date.now()
  const apps = []
  const stmts = []
  for (const name of ['bench-source', 'bench-target']) {
    const appId = 'app_' + randomBytes(8).toString('hex')
    const secret = 'sk_' + b64url(randomBytes(32))
    apps.push({ appId, secret })
    const row = [randomUUID(), appId, await encryptAppSecret(vars.MASTER_KEY, appId, secret), sha256Hex('at_' + b64url(randomBytes(32))), name, 'SIMPLE_API', JSON.stringify([`https://${name}.example.com/sso/callback`]), 'ACTIVE', now, now]
    stmts.push(`INSERT INTO applications (id, app_id, app_secret_enc, access_token_hash, app_name, protocol_type, redirect_uris, status, created_at, updated_at) VALUES (${row.map(q).join(', ')})`)
  }
  const userId = randomUUID()
  const mobile = '+8613700000001'
  // The bench user never signs in: an unparsable hash makes password sign-in impossible.
  stmts.push(`INSERT INTO users (id, mobile, password_hash, name, status, role, created_at, updated_at) VALUES (${[userId, mobile, '!bench-no-password', 'Bench User', 'ACTIVE', 'USER', now, now].map(q).join(', ')})`)
  stmts.push(`INSERT INTO app_user_mappings (id, app_id, user_id, mapped_key, is_active, created_at, updated_at) VALUES (${[randomUUID(), apps[1].appId, userId, 'bench.user', 1, now, now].map(q).join(', ')})`)
  const r = spawnSync(wrangler, ['d1', 'execute', 'DB', '--local', '--persist-to', persist, '--command', stmts.join('; ')], { cwd: root, encoding: 'utf8', env: { ...process.env, CI: 'true' } })
  if (r.status !== 0) throw new Error(`seeding failed:\n${r.stdout}\n${r.stderr}`)
  return { source: apps[0], target: apps[1], mobile }
}

// ---------- signing (docs/signing.md; mirrors src/signing/canonical.ts) ----------
const rfc3986 = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase())
function canonicalQuery(search) {
  const pairs = []
  new URLSearchParams(search).forEach((v, k) => pairs.push([rfc3986(k), rfc3986(v)]))
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
  return pairs.map(([k, v]) => `${k}=${v}`).join('&')
}
function signedInit(app, method, pathAndQuery, json) {
  const url = new URL(BASE + pathAndQuery)
  const body = json === undefined ? '' : JSON.stringify(json)
  const timestamp = String(Math.floor(Date.now() / 1000))
  const nonce = randomBytes(16).toString('hex')
  const message = ['UAP-HMAC-SHA256', app.appId, method, url.pathname, canonicalQuery(url.search), timestamp, nonce, sha256Hex(body)].join('\n')
  const headers = {
    'X-UAP-App-Id': app.appId,
    'X-UAP-Timestamp': timestamp,
    'X-UAP-Nonce': nonce,
    'X-UAP-Signature': createHmac('sha256', app.secret).update(message).digest('hex'),
  }
  if (json !== undefined) headers['Content-Type'] = 'application/json'
  return { method, headers, body: json === undefined ? undefined : body }
}

// ---------- load loop ----------
/** Runs `count` requests with `concurrency` in flight, stopping early at the time cap. */
async function phase(name, count, concurrency, makeRequest, onResponse = () => {}) {
  const latencies = []
  const statuses = {}
  let next = 0
  const started = performance.now()
  const deadline = started + PHASE_TIME_CAP_MS
  async function worker() {
    while (next < count && performance.now() < deadline) {
      const i = next++
      const [url, init] = makeRequest(i)
      const t0 = performance.now()
      const res = await fetch(url, init)
      const text = await res.text()
      latencies.push(performance.now() - t0)
      statuses[res.status] = (statuses[res.status] ?? 0) + 1
      onResponse(res.status, text, i)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const elapsedS = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]
  return {
    name,
    requests: latencies.length,
    concurrency,
    statuses,
    p50_ms: +pct(50).toFixed(2),
    p99_ms: +pct(99).toFixed(2),
    mean_ms: +(latencies.reduce((a, b) => a + b, 0) / latencies.length).toFixed(2),
    rps: +(latencies.length / elapsedS).toFixed(1),
    elapsed_s: +elapsedS.toFixed(2),
  }
}

// ---------- wrangler dev ----------
function startWrangler(extraVars = {}) {
  const limits = JSON.stringify({ ticket_exchange_app: { limit: 1_000_000, windowS: 60 } })
  const vars = Object.entries({ RATE_LIMITS: limits, ...extraVars }).flatMap(([k, v]) => ['--var', `${k}:${v}`])
  const args = ['dev', '--ip', '127.0.0.1', '--port', String(PORT), '--inspector-port', String(INSPECTOR_PORT), '--persist-to', persist, '--show-interactive-dev-session=false', ...vars]
  const child = spawn(wrangler, args, { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true' } })
  const tail = []
  const keep = (d) => {
    for (const line of String(d).split('\n')) if (line.trim() && !line.includes('"level":"info"')) tail.push(line)
    tail.splice(0, Math.max(0, tail.length - 40))
  }
  child.stdout.on('data', keep)
  child.stderr.on('data', keep)
  return { child, tail }
}

function stopWrangler(child) {
  if (child.exitCode !== null) return
  try {
    process.kill(-child.pid, 'SIGTERM') // its own process group: wrangler and its workerd
  } catch {}
}

async function waitReady(child, tail, ms = 90_000) {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode}):\n${tail.join('\n')}`)
    try {
      const r = await fetch(`${BASE}/healthz`)
      await r.text()
      if (r.status === 200) return
    } catch {}
    await new Promise((r) => setTimeout(r, 300))
  }
  throw new Error(`wrangler dev did not become ready:\n${tail.join('\n')}`)
}

function machine() {
  const cpus = os.cpus()
  return {
    nproc: os.availableParallelism?.() ?? cpus.length,
    cpu: cpus[0]?.model ?? 'unknown',
    memory_gib: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    date: new Date().toISOString(),
    // the machine may be shared: load during the run puts the absolute numbers in context
    loadavg_1m: +os.loadavg()[0].toFixed(2),
  }
}

// ---------- main ----------
let loadAtStart = 0
/** One wrangler dev run: `extraVars` set the ticket storage mode. */
async function runMode(world, mode, extraVars, full) {
  const { child, tail } = startWrangler(extraVars)
  const stop = () => stopWrangler(child)
  process.once('SIGINT', () => (stop(), process.exit(130)))
  process.once('SIGTERM', () => (stop(), process.exit(143)))
  try {
    await waitReady(child, tail)
    const exchangeBody = { target_app_id: world.target.appId, user_mobile: world.mobile }
    const exchangeReq = () => [`${BASE}/api/v1/simple/ticket/exchange`, signedInit(world.source, 'POST', '/api/v1/simple/ticket/exchange', exchangeBody)]
    const verifyReq = (ticket) => [`${BASE}/api/v1/simple/ticket/verify`, signedInit(world.target, 'POST', '/api/v1/simple/ticket/verify', { ticket })]
    const collect = (into) => (status, text) => {
      if (status === 200) into.push(JSON.parse(text).ticket)
    }

    // warm-up (isolate, D1, object classes), not recorded
    const warm = []
    await phase('warmup', WARMUP, CONCURRENCY, () => [`${BASE}/healthz`])
    await phase('warmup', WARMUP, CONCURRENCY, exchangeReq, collect(warm))
    await phase('warmup', warm.length, CONCURRENCY, (i) => verifyReq(warm[i]))

    const results = []
    const add = (r) => results.push({ mode, ...r })
    add(await phase('GET /nope (404, no binding)', N, CONCURRENCY, () => [`${BASE}/nope`]))
    if (full) {
      add(await phase('GET /healthz (D1 SELECT 1)', N, CONCURRENCY, () => [`${BASE}/healthz`]))
      // Break-down: the same endpoints refused before the ticket object is touched.
      // verify with a malformed ticket = signature check only (D1 app lookup, KV nonce);
      // exchange for an unknown mobile = signature + rate limiter + the D1 checks, no object.
      add(await phase('POST verify, malformed ticket (signature only)', N, CONCURRENCY, () => verifyReq('not-a-ticket')))
      const unknownUser = { target_app_id: world.target.appId, user_mobile: '+8613700000002' }
      add(await phase('POST exchange, unknown user (no ticket object)', N, CONCURRENCY, () => [`${BASE}/api/v1/simple/ticket/exchange`, signedInit(world.source, 'POST', '/api/v1/simple/ticket/exchange', unknownUser)]))
    }
    const tickets = []
    add(await phase('POST ticket/exchange', N, CONCURRENCY, exchangeReq, collect(tickets)))
    add(await phase('POST ticket/verify', tickets.length, CONCURRENCY, (i) => verifyReq(tickets[i])))

    // Strictly once under contention: 20 tickets, 10 concurrent redemptions each.
    const contested = []
    await phase('contention exchange', 20, CONCURRENCY, exchangeReq, collect(contested))
    const perTicket = []
    for (const t of contested) {
      const rs = await Promise.all(Array.from({ length: 10 }, () => fetch(...verifyReq(t)).then((r) => r.text().then(() => r.status))))
      perTicket.push(rs.filter((s) => s === 200).length)
    }
    const contention = { mode, tickets: contested.length, attempts_each: 10, successes_per_ticket: [...new Set(perTicket)], all_exactly_once: perTicket.every((n) => n === 1) }

    const byName = Object.fromEntries(results.map((r) => [r.name, r]))
    const bare = byName['GET /nope (404, no binding)']
    const ratio = (r, base) => ({ p50: +(r.p50_ms / base.p50_ms).toFixed(2), p99: +(r.p99_ms / base.p99_ms).toFixed(2), rps: +(r.rps / base.rps).toFixed(2) })
    const ratios = {
      [`${mode}: exchange / 404`]: ratio(byName['POST ticket/exchange'], bare),
      [`${mode}: verify / 404`]: ratio(byName['POST ticket/verify'], bare),
    }
    const health = byName['GET /healthz (D1 SELECT 1)']
    if (health) {
      ratios[`${mode}: exchange / healthz`] = ratio(byName['POST ticket/exchange'], health)
      ratios[`${mode}: verify / healthz`] = ratio(byName['POST ticket/verify'], health)
    }
    return { results, ratios, contention }
  } finally {
    stop()
    await new Promise((r) => child.exitCode !== null ? r() : child.once('exit', r))
  }
}

async function main() {
  const vars = ensureDevVars({ quiet: true })
  loadAtStart = +os.loadavg()[0].toFixed(2)
  rmSync(persist, { recursive: true, force: true })
  migrateLocal(['--persist-to', persist])
  const world = await seed(vars)
  const shards = Number(process.env.BENCH_SHARDS ?? 16)
  const runs = [await runMode(world, 'per-ticket', {}, true)]
  if (shards > 0) runs.push(await runMode(world, `${shards} shards`, { TICKET_SHARDS: String(shards) }, false))

  const results = runs.flatMap((r) => r.results)
  const ratios = Object.assign({}, ...runs.map((r) => r.ratios))
  const contention = runs.map((r) => r.contention)
  const report = { machine: { ...machine(), loadavg_1m_at_start: loadAtStart }, config: { N, CONCURRENCY, PHASE_TIME_CAP_MS, wrangler: 'dev (local workerd, on-disk D1/KV/DO)' }, results, ratios, contention }

  console.log('\nmachine:', JSON.stringify(report.machine))
  console.table(results.map(({ mode, name, requests, statuses, p50_ms, p99_ms, mean_ms, rps }) => ({ mode, name, requests, statuses: JSON.stringify(statuses), p50_ms, p99_ms, mean_ms, rps })))
  console.log('ratios (latency: higher = slower; rps: lower = fewer):')
  console.table(ratios)
  console.log('contention:', JSON.stringify(contention))
  mkdirSync(path.join(root, 'bench', 'results'), { recursive: true })
  const out = path.join(root, 'bench', 'results', `tickets-${report.machine.date.replace(/[:.]/g, '-')}.json`)
  writeFileSync(out, JSON.stringify(report, null, 2))
  console.log(`written ${path.relative(root, out)}`)
  const bad = results.filter((r) => r.name.startsWith('POST ticket/') && Object.keys(r.statuses).some((s) => s !== '200'))
  if (bad.length || !contention.every((c) => c.all_exactly_once)) {
    console.error('FAILED: non-200 answers in a ticket phase, or a ticket redeemed more than once')
    process.exitCode = 1
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
