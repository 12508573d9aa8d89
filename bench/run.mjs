#!/usr/bin/env node
// `npm run bench`: load-test the Worker under `wrangler dev` on loopback and write
// docs/benchmarks.md. Steps: dev setup (.dev.vars, local migrations into a fresh bench
// state dir), then for each pass: start wrangler dev (bench/lib.mjs), run the pass's
// scenarios (bench/scenarios/*.mjs) with autocannon and their post-checks, stop wrangler.
// Passes: "default", then "shards" (TICKET_SHARDS=BENCH_TICKET_SHARDS, ticket scenarios
// and the bare route only) over the same state.
//
// A scenario module default-exports:
//   { name, route, order?, connections?, bare?, passes? (default ['default']),
//     setup?(ctx) → state, requests(state, ctx) → autocannon requests[],
//     options?(state, ctx, phase: 'warmup'|'run') → extra autocannon options (e.g. amount),
//     reset?(state, ctx, warmupResult), check?(state, ctx) → {name, ok, detail} }
// ctx: { base, connections, duration, pass, admin, shared (kept across scenarios and
//        passes), api(path, init), login(mobile, password), adminToken(), createUser(name?),
//        createApp(body) }
//
// Environment: BENCH_DURATION (s per scenario, default 10), BENCH_CONNECTIONS (default 8),
// BENCH_ONLY (comma-separated scenario file names), BENCH_OUT (default docs/benchmarks.md),
// BENCH_TICKET_SHARDS (shard count of the second pass, default 16; 0 skips the pass).
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import autocannon from 'autocannon'
import { ensureDevVars, migrateLocal } from '../scripts/dev.mjs'
import { apiClient, root, startWrangler } from './lib.mjs'

const DURATION = Number(process.env.BENCH_DURATION ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8)
const OUT = path.resolve(root, process.env.BENCH_OUT ?? 'docs/benchmarks.md')
const ONLY = process.env.BENCH_ONLY?.split(',').map((s) => s.trim())
const SHARDS = Number(process.env.BENCH_TICKET_SHARDS ?? 16)
const STATE = '.wrangler/bench-state' // kept apart from `npm run dev`'s data
const resultsDir = path.join(root, 'bench', 'results')
mkdirSync(resultsDir, { recursive: true })

// Partner calls are rate limited per app and per client IP, and every bench request comes
// from 127.0.0.1 as one app: raise the limits so the run measures the path, not 429s. The
// limiter objects are still called on every request.
const RAISED = { limit: 1_000_000_000, windowS: 60 }
const RATE_LIMITS = JSON.stringify({ partner_ip: RAISED, signed_app: RAISED, app_token: RAISED, ticket_exchange_app: RAISED })
const PASSES = [{ id: 'default', label: 'one TicketVault object per ticket (default)', vars: { RATE_LIMITS } }]
if (SHARDS > 0) PASSES.push({ id: 'shards', label: `TICKET_SHARDS=${SHARDS}`, vars: { RATE_LIMITS, TICKET_SHARDS: String(SHARDS) } })

const hardStop = setTimeout(() => {
  console.error('bench: overall time limit reached')
  process.exit(1)
}, 25 * 60_000)
hardStop.unref()
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130)) // 'exit' kills wrangler

// the machine may be shared: sample the load average throughout
const load = [os.loadavg()[0]]
const loadTimer = setInterval(() => load.push(os.loadavg()[0]), 5000)

// 1. setup, as `npm run dev` does it, on a fresh state (ticket objects are one SQLite file each)
const vars = ensureDevVars({ quiet: true })
const admin = { mobile: vars.BOOTSTRAP_ADMIN_MOBILE, password: vars.BOOTSTRAP_ADMIN_PASSWORD }
rmSync(path.join(root, STATE), { recursive: true, force: true })
migrateLocal(['--persist-to', STATE])

const runAutocannon = (opts) =>
  new Promise((resolve, reject) => {
    const inst = autocannon(opts, (err, res) => (err ? reject(err) : resolve(res)))
    inst.on('error', reject)
  })

// 2. scenarios
const scenarioDir = path.join(root, 'bench', 'scenarios')
const files = readdirSync(scenarioDir)
  .filter((f) => f.endsWith('.mjs'))
  .filter((f) => !ONLY || ONLY.includes(f.replace(/\.mjs$/, '')))
const scenarios = []
for (const f of files) scenarios.push({ file: f, passes: ['default'], ...(await import(pathToFileURL(path.join(scenarioDir, f)).href)).default })
scenarios.sort((a, b) => (a.order ?? 100) - (b.order ?? 100) || a.name.localeCompare(b.name))

const rows = []
const checks = []
const shared = {}
for (const pass of PASSES) {
  const list = scenarios.filter((s) => s.passes.includes(pass.id))
  if (!list.length) continue
  const logFile = path.join(resultsDir, `wrangler-${pass.id}.log`)
  const server = await startWrangler({ persistTo: STATE, vars: pass.vars, logFile })
  const base = server.base
  try {
    console.log(`bench: pass ${pass.id} (${pass.label}): wrangler dev on ${base} (log: ${path.relative(root, logFile)})`)
    await server.waitReady()
    const client = apiClient(base, admin)
    for (const s of list) {
      const connections = Math.min(s.connections ?? CONNECTIONS, CONNECTIONS)
      const ctx = { base, connections, duration: DURATION, pass: pass.id, admin, shared, ...client }
      const state = s.setup ? await s.setup(ctx) : {}
      // a warm-up second so JIT, isolate caches, D1 pages and object classes are hot
      const warmup = await runAutocannon({ url: base, connections, duration: 1, requests: s.requests(state, ctx), ...s.options?.(state, ctx, 'warmup') })
      if (s.reset) await s.reset(state, ctx, warmup)
      const extra = s.options?.(state, ctx, 'run') ?? {}
      process.stdout.write(`bench: ${s.name} (${s.route}), ${connections} connections, ${extra.amount ? `${extra.amount} requests` : `${DURATION} s`} ... `)
      const r = await runAutocannon({ url: base, connections, duration: DURATION, requests: s.requests(state, ctx), timeout: 30, ...extra })
      const row = {
        pass: pass.id,
        scenario: s.name,
        route: s.route,
        bare: !!s.bare,
        connections,
        seconds: r.duration,
        requests: r.requests.total,
        // total over wall time: also right for runs bounded by `amount`, whose last second is partial
        rps: r.requests.total / r.duration,
        p50: r.latency.p50,
        p99: r.latency.p99,
        non2xx: r.non2xx,
        errors: r.errors + r.timeouts,
      }
      rows.push(row)
      console.log(`${row.rps.toFixed(1)} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, non-2xx ${row.non2xx}, errors ${row.errors}`)
      if (s.check) {
        const c = { pass: pass.id, scenario: s.name, ...(await s.check(state, ctx)) }
        checks.push(c)
        console.log(`bench: check ${c.ok ? 'ok' : 'FAILED'}: ${c.name}: ${c.detail}`)
      }
    }
  } finally {
    await server.stop()
  }
}
clearInterval(loadTimer)
load.push(os.loadavg()[0])

// 3. report
const cpus = os.cpus()
const date = new Date().toISOString()
const wranglerVersion = (await import(pathToFileURL(path.join(root, 'node_modules', 'wrangler', 'package.json')).href, { with: { type: 'json' } })).default.version
const loadStats = `min ${Math.min(...load).toFixed(2)}, mean ${(load.reduce((a, b) => a + b, 0) / load.length).toFixed(2)}, max ${Math.max(...load).toFixed(2)} (${load.length} samples, every 5 s)`
writeFileSync(path.join(resultsDir, `bench-${date.replace(/[:.]/g, '-')}.json`), JSON.stringify({ date, load, rows, checks }, null, 2))

const bareOf = (pass) => rows.find((r) => r.pass === pass && r.bare)
const times = (a, b) => (!b ? '–' : a / b < 0.01 ? '<0.01×' : `${(a / b).toFixed(2)}×`)
const resultTable = (pass) =>
  [
    '| scenario | route | connections | s | requests | req/s | p50 ms | p99 ms | non-2xx | errors | p50 ÷ bare | req/s ÷ bare |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows
      .filter((r) => r.pass === pass)
      .map((r) => {
        const b = bareOf(pass)
        return `| ${r.scenario} | \`${r.route}\` | ${r.connections} | ${r.seconds.toFixed(1)} | ${r.requests} | ${r.rps.toFixed(1)} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors} | ${times(r.p50, b?.p50)} | ${times(r.rps, b?.rps)} |`
      }),
  ].join('\n')
const ticketRows = rows.filter((r) => r.scenario.startsWith('ticket '))
const ticketTable = [
  '| pass | scenario | p50 ms | bare p50 ms | p50 ÷ bare | p99 ÷ bare | req/s | bare req/s | req/s ÷ bare |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...ticketRows.map((r) => {
    const b = bareOf(r.pass)
    return `| ${r.pass} | ${r.scenario} | ${r.p50} | ${b?.p50 ?? '–'} | ${times(r.p50, b?.p50)} | ${times(r.p99, b?.p99)} | ${r.rps.toFixed(1)} | ${b ? b.rps.toFixed(1) : '–'} | ${times(r.rps, b?.rps)} |`
  }),
].join('\n')
const passSections = PASSES.filter((p) => rows.some((r) => r.pass === p.id))
  .map((p) => `### Pass \`${p.id}\`: ${p.label}\n${resultTable(p.id)}`)
  .join('\n\n')
const checkList = checks.length ? checks.map((c) => `- ${c.ok ? 'ok' : '**FAILED**'} (pass \`${c.pass}\`) ${c.name}: ${c.detail}`).join('\n') : '- none ran'

const md = `# Benchmarks

Generated by \`npm run bench\` (bench/run.mjs); rerun it to refresh this file.

## How it runs
\`wrangler dev\` (local workerd, Miniflare's D1/KV/DO on disk under \`${STATE}\`, wiped and
migrated at the start of every run) on \`127.0.0.1\`, driven by
[autocannon](https://github.com/mcollina/autocannon) from the same machine. Each scenario
(bench/scenarios/*.mjs) gets a 1 s warm-up, then ${DURATION} s of load with its connection
count (ticket redeem: a fixed number of requests instead, see below). req/s is requests
over wall time; "÷ bare" compares a row with the bare route **of the same pass**.

- Login uses the production password-hash profile (scrypt N=2^13, r=8, p=10; see
  docs/passwords.md). Refresh draws every request from a pool of never-used refresh tokens
  that each response refills with its successor.
- The simple-SSO world (two SIMPLE_API apps with https callbacks, a user, the user's mapping
  in the target app) is seeded through the admin API and mapping sync, as an operator would.
  Every signed request (ping, exchange, redeem) is signed afresh in autocannon's
  \`setupRequest\`: current timestamp, unique nonce (bench/lib.mjs, checked against the worked
  example in docs/signing.md at start-up).
- Ticket redeem spends a pool of never-used tickets minted by signed exchanges just before
  the run; the run is bounded to the pool (sized from the warm-up's rate to last about
  ${DURATION} s) and minted quickly enough that no ticket reaches its 60 s lifetime. An
  exhausted pool would send a dud ticket, counted as non-2xx.
- Rate limits: wrangler dev runs with \`--var RATE_LIMITS:...\` raising \`partner_ip\`,
  \`signed_app\`, \`app_token\` and \`ticket_exchange_app\` to ${RAISED.limit} per ${RAISED.windowS} s: every
  request comes from 127.0.0.1 as one app, and the defaults (600–1200/min) would turn the
  run into a measurement of 429s. The limiter objects are still called on every request.
- Pass \`shards\` restarts wrangler dev over the same state with \`TICKET_SHARDS=${SHARDS}\`
  (tickets spread over ${SHARDS} long-lived objects instead of one object each;
  docs/tickets.md) and runs the bare route and the ticket scenarios again.
- Post-checks run after their scenario, on the same Worker.

These are **local** numbers: one workerd process, one isolate, SQLite files for D1 and every
Durable Object, load generator on the same CPUs. They compare routes with each other and
catch regressions; they do not predict production latency on Cloudflare's network, where D1
is a network hop away and requests spread over many isolates and locations.

## Machine
- date: ${date}
- CPU: ${cpus[0]?.model ?? 'unknown'} × ${cpus.length} (\`nproc\` ${os.availableParallelism?.() ?? cpus.length})
- memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB
- 1-minute load average during the run (the bench's own wrangler dev and autocannon included): ${loadStats}
- OS: ${os.type()} ${os.release()} (${os.arch()})
- Node ${process.version}, wrangler ${wranglerVersion}

## Results
${passSections}

## Simple-SSO tickets vs the bare route
Same pass, same Worker, same run. Latency ratios: higher is slower; req/s ratio: lower is
fewer requests per second.

${ticketTable}

## Checks
${checkList}

## Reading them
- **bare route** is the floor: routing, request id, config check and the JSON access log.
- **JWKS** adds the key set (D1 read at most once a minute per isolate) and JSON encoding.
  Both sit at the ceiling of this setup (wrangler dev's local proxy and the load generator
  sharing the same CPUs), so they come out within run-to-run noise of each other (±20 %,
  either may be ahead); the Worker's own cost for them is not what is being measured.
- **health (D1)** is one D1 query: the floor for anything that reads D1.
- **login** is dominated by the password hash: about one hash's CPU time per request, and
  an isolate runs one hash at a time (src/lib/password.ts), so requests queue behind each
  other. Throughput per isolate ≈ 1000 / (CPU ms per hash).
- **refresh** is three D1 reads and one D1 batch, an AES-GCM encryption and an ES256 signature.
- **signed ping** is the signature check every partner call pays and nothing else: D1 app
  lookup, secret decryption, HMAC, the \`partner_ip\` and \`signed_app\` limiter objects, a KV
  nonce read and write.
- **ticket exchange** is the signature check, the \`ticket_exchange_app\` limiter, one D1
  batch (target app, user, mapping) and the creation of the ticket's object (one row and an
  alarm). **ticket redeem** is the signature check, one call to the ticket's object (atomic
  check-and-consume) and one D1 read (user and mapping still active). The ticket rows minus
  **signed ping** is what the tickets themselves cost; docs/tickets.md discusses them.
`
mkdirSync(path.dirname(OUT), { recursive: true })
writeFileSync(OUT, md)
console.log(`bench: wrote ${path.relative(root, OUT)}`)
const failed = rows.some((r) => r.errors > 0 || r.non2xx > 0) || checks.some((c) => !c.ok)
if (failed) console.error('bench: errors, non-2xx answers or a failed check; see the report')
process.exit(failed ? 1 : 0)
