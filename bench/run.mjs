#!/usr/bin/env node
// `npm run bench`: load-test the Worker under `wrangler dev` on loopback and write
// docs/benchmarks.md. Steps: dev setup (.dev.vars, local migrations into a separate
// bench state dir), start wrangler dev on a free port in 8791-8799, run every scenario in
// bench/scenarios/*.mjs with autocannon, stop wrangler.
//
// A scenario module default-exports:
//   { name, route, order?, connections?, setup?(ctx) → state, requests(state, ctx) → autocannon requests[] }
// ctx: { base, connections, duration, admin, api(path, init), login(mobile, password), createUser() }.
// Later features add files (ticket exchange, redeem ...) without touching this runner.
//
// Environment: BENCH_DURATION (s per scenario, default 10), BENCH_CONNECTIONS (default 8),
// BENCH_ONLY (comma-separated scenario file names), BENCH_OUT (default docs/benchmarks.md).
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { mkdirSync, readdirSync, writeFileSync, createWriteStream } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import autocannon from 'autocannon'
import { ensureDevVars, migrateLocal } from '../scripts/dev.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const DURATION = Number(process.env.BENCH_DURATION ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8)
const OUT = path.resolve(root, process.env.BENCH_OUT ?? 'docs/benchmarks.md')
const ONLY = process.env.BENCH_ONLY?.split(',').map((s) => s.trim())
const PORTS = [8791, 8792, 8793, 8794, 8795, 8796, 8797, 8798, 8799]
const STATE = '.wrangler/bench-state' // kept apart from `npm run dev`'s data
const resultsDir = path.join(root, 'bench', 'results')
mkdirSync(resultsDir, { recursive: true })

const isFree = (port) =>
  new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })

async function freePorts(n) {
  const found = []
  for (const p of PORTS) if (found.length < n && (await isFree(p))) found.push(p)
  if (found.length < n) throw new Error(`need ${n} free ports in 8791-8799`)
  return found
}

// 1. setup, as `npm run dev` does it
const vars = ensureDevVars({ quiet: true })
migrateLocal(['--persist-to', STATE])

// 2. wrangler dev on loopback, its output to a log file (the Worker logs every request)
const [port, inspectorPort] = await freePorts(2)
const base = `http://127.0.0.1:${port}`
const logFile = path.join(resultsDir, 'wrangler.log')
const wranglerLog = createWriteStream(logFile)
const wrangler = spawn(
  path.join(root, 'node_modules', '.bin', 'wrangler'),
  ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort), '--persist-to', STATE, '--show-interactive-dev-session=false'],
  { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' } },
)
wrangler.stdout.pipe(wranglerLog)
wrangler.stderr.pipe(wranglerLog)
const wranglerExited = new Promise((resolve) => wrangler.once('exit', resolve))
const killGroup = (sig) => {
  try {
    process.kill(-wrangler.pid, sig) // its own process group: wrangler and its workerd
  } catch {}
}
/** SIGINT (what Ctrl-C sends; wrangler then stops workerd), SIGKILL after 10 s; resolves once our ports are free. */
async function stopWrangler() {
  if (wrangler.exitCode === null && wrangler.signalCode === null) {
    killGroup('SIGINT')
    const force = setTimeout(() => killGroup('SIGKILL'), 10_000)
    await wranglerExited
    clearTimeout(force)
  }
  for (let i = 0; i < 40 && !((await isFree(port)) && (await isFree(inspectorPort))); i++) await new Promise((r) => setTimeout(r, 250))
}
process.on('exit', () => killGroup('SIGKILL')) // last resort if we die early
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130))
const hardStop = setTimeout(() => {
  console.error('bench: overall time limit reached')
  process.exit(1)
}, 15 * 60_000)
hardStop.unref()

async function waitReady(timeoutMs = 90_000) {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (wrangler.exitCode !== null) throw new Error(`wrangler dev exited (${wrangler.exitCode}); see ${logFile}`)
    try {
      if ((await fetch(`${base}/livez`)).ok) return
    } catch {}
    await new Promise((r) => setTimeout(r, 500))
  }
  throw new Error(`wrangler dev did not answer on ${base} within ${timeoutMs / 1000} s; see ${logFile}`)
}

// 3. helpers for scenario setup
async function api(p, init = {}) {
  const headers = { ...(init.headers ?? {}) }
  if (init.json !== undefined) headers['content-type'] = 'application/json'
  if (init.token) headers.authorization = `Bearer ${init.token}`
  const res = await fetch(base + p, { method: init.method ?? 'GET', headers, body: init.json !== undefined ? JSON.stringify(init.json) : undefined })
  const text = await res.text()
  return { status: res.status, body: text ? JSON.parse(text) : null }
}
async function login(mobile, password) {
  const r = await api('/api/v1/auth/login', { method: 'POST', json: { mobile, password } })
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}
let adminAccess
async function createUser() {
  adminAccess ??= (await login(vars.BOOTSTRAP_ADMIN_MOBILE, vars.BOOTSTRAP_ADMIN_PASSWORD)).access_token
  const mobile = '+86139' + String(Math.floor(Math.random() * 1e8)).padStart(8, '0')
  const password = `bench-${Math.random().toString(36).slice(2)}-pw`
  const r = await api('/api/v1/admin/users', { method: 'POST', token: adminAccess, json: { mobile, password, name: 'bench user' } })
  if (r.status !== 201) throw new Error(`create user failed: ${r.status} ${JSON.stringify(r.body)}`)
  return { mobile, password, id: r.body.id }
}

const runAutocannon = (opts) =>
  new Promise((resolve, reject) => {
    const inst = autocannon(opts, (err, res) => (err ? reject(err) : resolve(res)))
    inst.on('error', reject)
  })

// 4. scenarios
const scenarioDir = path.join(root, 'bench', 'scenarios')
const files = readdirSync(scenarioDir)
  .filter((f) => f.endsWith('.mjs'))
  .filter((f) => !ONLY || ONLY.includes(f.replace(/\.mjs$/, '')))
const scenarios = []
for (const f of files) scenarios.push({ file: f, ...(await import(pathToFileURL(path.join(scenarioDir, f)).href)).default })
scenarios.sort((a, b) => (a.order ?? 100) - (b.order ?? 100) || a.name.localeCompare(b.name))

const rows = []
try {
  console.log(`bench: starting wrangler dev on ${base} (log: ${path.relative(root, logFile)})`)
  await waitReady()
  for (const s of scenarios) {
    const connections = Math.min(s.connections ?? CONNECTIONS, CONNECTIONS)
    const ctx = { base, connections, duration: DURATION, admin: { mobile: vars.BOOTSTRAP_ADMIN_MOBILE, password: vars.BOOTSTRAP_ADMIN_PASSWORD }, api, login, createUser }
    const state = s.setup ? await s.setup(ctx) : {}
    // one warm-up second so JIT, isolate caches and D1 pages are hot
    await runAutocannon({ url: base, connections, duration: 1, requests: s.requests(state, ctx) })
    if (s.reset) await s.reset(state, ctx)
    process.stdout.write(`bench: ${s.name} (${s.route}), ${connections} connections, ${DURATION} s ... `)
    const r = await runAutocannon({ url: base, connections, duration: DURATION, requests: s.requests(state, ctx), timeout: 30 })
    const row = {
      scenario: s.name,
      route: s.route,
      connections,
      requests: r.requests.total,
      rps: r.requests.average,
      p50: r.latency.p50,
      p99: r.latency.p99,
      non2xx: r.non2xx,
      errors: r.errors + r.timeouts,
    }
    rows.push(row)
    console.log(`${row.rps.toFixed(1)} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, non-2xx ${row.non2xx}, errors ${row.errors}`)
  }
} finally {
  await stopWrangler()
}

// 5. report
const cpus = os.cpus()
const date = new Date().toISOString()
const wranglerVersion = (await import(pathToFileURL(path.join(root, 'node_modules', 'wrangler', 'package.json')).href, { with: { type: 'json' } })).default.version
writeFileSync(path.join(resultsDir, `bench-${date.replace(/[:.]/g, '-')}.json`), JSON.stringify({ date, rows }, null, 2))
const table = [
  '| scenario | route | connections | requests | req/s | p50 ms | p99 ms | non-2xx | errors |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows.map((r) => `| ${r.scenario} | \`${r.route}\` | ${r.connections} | ${r.requests} | ${r.rps.toFixed(1)} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors} |`),
].join('\n')
const md = `# Benchmarks

Generated by \`npm run bench\` (bench/run.mjs); rerun it to refresh this file.

## How it runs
\`wrangler dev\` (local workerd, Miniflare's D1/KV/DO on disk under \`${STATE}\`) on
\`127.0.0.1\`, driven by [autocannon](https://github.com/mcollina/autocannon) from the same
machine. Each scenario (bench/scenarios/*.mjs) gets a 1 s warm-up, then ${DURATION} s of
load with its connection count. Login uses the production password-hash profile
(scrypt N=2^13, r=8, p=10; see docs/passwords.md). Refresh draws every request from a pool
of never-used refresh tokens that each response refills with its successor.

These are **local** numbers: one workerd process, one isolate, SQLite files for D1, load
generator on the same CPUs. They compare routes with each other and catch regressions;
they do not predict production latency on Cloudflare's network, where D1 is a network
hop away and requests spread over many isolates and locations.

## Machine
- date: ${date}
- CPU: ${cpus[0]?.model ?? 'unknown'} × ${cpus.length} (\`nproc\` ${os.availableParallelism?.() ?? cpus.length})
- memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB
- load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}
- OS: ${os.type()} ${os.release()} (${os.arch()})
- Node ${process.version}, wrangler ${wranglerVersion}

## Results
${table}

## Reading them
- **bare route** is the floor: routing, request id, config check and the JSON access log.
- **JWKS** adds the key set (D1 read at most once a minute per isolate) and JSON encoding.
  Both sit at the ceiling of this setup (wrangler dev's local proxy and the load generator
  sharing the same CPUs), so they come out within run-to-run noise of each other (±20 %,
  either may be ahead); the Worker's own cost for them is not what is being measured.
- **login** is dominated by the password hash: about one hash's CPU time per request, and
  an isolate runs one hash at a time (src/lib/password.ts), so requests queue behind each
  other. Throughput per isolate ≈ 1000 / (CPU ms per hash).
- **refresh** is three D1 reads and one D1 batch, an AES-GCM encryption and an ES256 signature.
`
mkdirSync(path.dirname(OUT), { recursive: true })
writeFileSync(OUT, md)
console.log(`bench: wrote ${path.relative(root, OUT)}`)
process.exit(rows.some((r) => r.errors > 0) ? 1 : 0)
