#!/usr/bin/env node
// `npm run bench`: load-test the Worker on loopback next to a peer OpenID Provider (panva's
// oidc-provider) and write docs/benchmarks.md. Steps:
//   0. round trips: test/storage-counter.test.ts counts each budgeted route's D1 / KV /
//      Durable Object / Queue calls in workerd (vitest, JSON reporter) — counts, not timings;
//   1. dev setup (.dev.vars, local migrations into a fresh bench state dir), the peer started;
//   2. for each pass: start the Worker (bench/lib.mjs: wrangler's bundle in Miniflare on a
//      socket of its own, bench/worker-direct.mjs), run the pass's scenarios (bench/scenarios/*.mjs) with autocannon,
//      each against UAP Edge and, for the OIDC ones, right after against the peer with the
//      same connections and duration; CPU time of every process from /proc before and after
//      each run; post-checks; stop the Worker;
//   3. the report, with the issue 14 targets evaluated from what was measured.
// Passes: "default", and "api" (the throughput scenarios again under BENCH_RUNNER=api); a
// scenario names its passes in `passes`; each pass restarts the Worker, with its own runner
// and variables, over the same state.
//
// A scenario module default-exports:
//   { name, route (string, or (ctx) → string), order?, connections?, bare?,
//     passes? (default ['default']), targets? (default ['uap']; 'peer' runs it against
//     oidc-provider too, default pass only),
//     setup?(ctx) → state, requests(state, ctx) → autocannon requests[],
//     options?(state, ctx, phase: 'warmup'|'run') → extra autocannon options (e.g. amount),
//     reset?(state, ctx, warmupResult), check?(state, ctx) → {name, ok, detail} }
// or, for what autocannon cannot measure (webhook delivery), instead of requests:
//   { name, route, order?, measure(ctx) → { result, markdown, check? } } (UAP Edge only; ctx
//   has cpu() as well: the Worker's CPU ms so far by process role; the markdown goes to the
//   report's "Measured scenarios" section)
//   or, for work that is a job rather than a stream of requests (bulk import):
//   { name, route, order?, passes?, job(ctx, cpuOf) → [{ metric, seconds, cpuMs,
//     rowsPerS?, target?: { op: '<=', seconds } | { op: '>=', rowsPerS } }] }
// ctx: { target ('uap'|'peer'), base, connections, duration, pass, shared (kept across
//        scenarios and passes), paths (the target's OIDC endpoints), oidc() → the target's
//        OIDC world (bench/oidc.mjs: client, tokens()), and for 'uap' also admin,
//        api(path, init), login(mobile, password), adminToken(), createUser(name?), createApp(body) }
//
// Environment: BENCH_DURATION (s per run, default 10), BENCH_CONNECTIONS (default 8),
// BENCH_ONLY (comma-separated scenario file names), BENCH_OUT (default docs/benchmarks.md),
// BENCH_PORTS (ports the bench may listen on, e.g. 8950-8999; default 8791-8799,8821-8829),
// BENCH_PEER (0 skips oidc-provider), BENCH_PEER_ROUNDS (UAP Edge / peer pairs per compared
// scenario, default 3), BENCH_ROUND_TRIPS (0 skips step 0),
// BENCH_RUNNER (direct: bench/worker-direct.mjs (default); api: unstable_startWorker, inspector
// off, behind wrangler's proxy and Miniflare's entry Worker; wrangler-dev: `wrangler dev`),
// BENCH_API_PASS (0 skips the `api` pass that repeats the throughput scenarios behind wrangler's proxy),
// BENCH_PROFILE (1: CPU-profile each measured run through the inspector, bench/profile.mjs).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import autocannon from 'autocannon'
import { ensureDevVars, migrateLocal } from '../scripts/dev.mjs'
import { CLK_TCK, apiClient, root, startPeer, startWorker } from './lib.mjs'
import { REDIRECT, peerOidcWorld, uapOidcWorld } from './oidc.mjs'
import { startProfile } from './profile.mjs'

const DURATION = Number(process.env.BENCH_DURATION ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8)
// a profiled run pays for the inspector: its numbers stay out of docs/benchmarks.md
const OUT = path.resolve(root, process.env.BENCH_OUT ?? (process.env.BENCH_PROFILE === '1' ? 'bench/results/profiled.md' : 'docs/benchmarks.md'))
const ONLY = process.env.BENCH_ONLY?.split(',').map((s) => s.trim())
const WITH_PEER = process.env.BENCH_PEER !== '0'
const WITH_ROUND_TRIPS = process.env.BENCH_ROUND_TRIPS !== '0'
const RUNNER = process.env.BENCH_RUNNER ?? 'direct'
const PROFILE = process.env.BENCH_PROFILE === '1'
// A scenario run against both sides runs UAP Edge then the peer this many times in turn; the
// CPU ratio is the median of the rounds' ratios, so one drift of this shared machine between
// two adjacent runs does not decide a target.
const PEER_ROUNDS = Math.max(1, Number(process.env.BENCH_PEER_ROUNDS ?? 3))
const STATE = '.wrangler/bench-state' // kept apart from `npm run dev`'s data
const resultsDir = path.join(root, 'bench', 'results')
mkdirSync(resultsDir, { recursive: true })

// Partner calls are rate limited per app and per client IP, and every bench request comes
// from 127.0.0.1 as one app: raise the limits so the run measures the path, not 429s. The
// limiter objects are still called on every request.
const RAISED = { limit: 1_000_000_000, windowS: 60 }
const RATE_LIMITS = JSON.stringify({ partner_ip: RAISED, oauth_ip: RAISED, signed_app: RAISED, app_token: RAISED, ticket_exchange_app: RAISED })
// The throughput targets were set, and the issue's harness defined, with every request behind
// wrangler's proxy (`unstable_startWorker`, inspector off). That proxy caps the bare route, so a
// ratio to it depends on the runner: the `api` pass runs the bare route and the three
// throughput scenarios again in that harness, and the report gives the targets for both.
const PASSES = [
  { id: 'default', label: "tickets in the target app's AppGate", vars: { RATE_LIMITS }, runner: RUNNER },
  ...(RUNNER === 'api' || process.env.BENCH_API_PASS === '0' ? [] : [{ id: 'api', label: "the issue's harness (runner `api`: unstable_startWorker, inspector off, wrangler's proxy and Miniflare's entry Worker in front)", vars: { RATE_LIMITS }, runner: 'api' }]),
]

const hardStop = setTimeout(() => {
  console.error('bench: overall time limit reached')
  process.exit(1)
}, 45 * 60_000)
hardStop.unref()
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130)) // 'exit' kills the servers

// the machine may be shared: sample the load average throughout
const load = [os.loadavg()[0]]
const loadTimer = setInterval(() => load.push(os.loadavg()[0]), 5000)

// 0. round trips per request, counted in workerd (test/support/round-trips.ts)
let roundTrips = { rows: [], note: 'skipped (BENCH_ROUND_TRIPS=0)' }
if (WITH_ROUND_TRIPS) {
  const out = path.join(resultsDir, 'round-trips.json')
  rmSync(out, { force: true })
  process.stdout.write('bench: counting storage round trips (vitest, test/storage-counter.test.ts) ... ')
  const r = spawnSync(path.join(root, 'node_modules', '.bin', 'vitest'), ['run', 'test/storage-counter.test.ts', '-t', 'budgeted', '--reporter=json', `--outputFile=${out}`], {
    cwd: root,
    encoding: 'utf8',
    timeout: 5 * 60_000,
  })
  const found = existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')).testResults.flatMap((f) => f.assertionResults).find((a) => a.meta?.roundTrips) : null
  roundTrips = found && found.status === 'passed' ? { rows: found.meta.roundTrips, note: '' } : { rows: [], note: `not measured: vitest exited ${r.status}${found ? ` (${found.failureMessages?.[0]?.split('\n')[0]})` : ''}` }
  console.log(roundTrips.note || `${roundTrips.rows.length} routes`)
}

// 1. setup, as `npm run dev` does it, on a fresh state (ticket objects are one SQLite file each)
const vars = ensureDevVars({ quiet: true })
const admin = { mobile: vars.BOOTSTRAP_ADMIN_MOBILE, password: vars.BOOTSTRAP_ADMIN_PASSWORD }
rmSync(path.join(root, STATE), { recursive: true, force: true })
migrateLocal(['--persist-to', STATE])

const ms = (v) => (Number.isFinite(v) ? v.toFixed(v < 1 ? 3 : 2) : '–')

// autocannon ends a run bounded by `amount` on its once-a-second tick, so its `duration`
// is then whole seconds: `wallS` runs from the start to the last response instead.
const runAutocannon = (opts) =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    let last = started
    const inst = autocannon(opts, (err, res) => (err ? reject(err) : resolve({ ...res, wallS: opts.amount ? (last - started) / 1000 : res.duration })))
    inst.on('response', () => {
      last = performance.now()
    })
    inst.on('error', reject)
  })

// The ratio targets on throughput (issue 14); their scenarios get bare runs of their own.
const THROUGHPUT_TARGETS = new Map([
  ['signed ping', 0.5],
  ['ticket exchange', 0.35],
  ['ticket redeem', 0.35],
])
/** GET /livez for the scenario duration: the bare route, measured next to one scenario. */
async function bareRun(base, connections) {
  const r = await runAutocannon({ url: base, connections, duration: DURATION, requests: [{ method: 'GET', path: '/livez' }], timeout: 30 })
  if (r.non2xx || r.errors) throw new Error(`bench: bare route answered non-2xx ${r.non2xx}, errors ${r.errors}`)
  return { rps: r.requests.total / r.duration }
}
const bracketRps = (r) => r.bracket.reduce((a, b) => a + b.rps, 0) / r.bracket.length

// 2. scenarios
const scenarioDir = path.join(root, 'bench', 'scenarios')
const files = readdirSync(scenarioDir)
  .filter((f) => f.endsWith('.mjs'))
  .filter((f) => !ONLY || ONLY.includes(f.replace(/\.mjs$/, '')))
const scenarios = []
for (const f of files) scenarios.push({ file: f, passes: ['default'], targets: ['uap'], ...(await import(pathToFileURL(path.join(scenarioDir, f)).href)).default })
scenarios.sort((a, b) => (a.order ?? 100) - (b.order ?? 100) || a.name.localeCompare(b.name))

const UAP_PATHS = { discovery: '/.well-known/openid-configuration', jwks: '/.well-known/jwks.json', token: '/oauth2/token', userinfo: '/oauth2/userinfo', introspection: '/oauth2/introspect' }
const PEER_PATHS = { discovery: '/.well-known/openid-configuration', jwks: '/jwks', token: '/token', userinfo: '/me', introspection: '/token/introspection' }

let peer = null
if (WITH_PEER && scenarios.some((s) => s.targets.includes('peer'))) {
  const logFile = path.join(resultsDir, 'peer.log')
  peer = await startPeer({ logFile, redirectUri: REDIRECT })
  await peer.waitReady()
  console.log(`bench: peer oidc-provider on ${peer.base} (log: ${path.relative(root, logFile)})`)
}

const rows = []
// The workerd floor: a Worker answering "ok" (bench/floor/worker.js) on the same host, so the
// report shows what any Worker costs here before it does anything, next to the peer's CPU.
// Measured whenever the peer runs (the CPU targets are ratios to the peer).
let floor = null
if (peer) {
  const logFile = path.join(resultsDir, 'worker-floor.log')
  const server = await startWorker({ persistTo: `${STATE}-floor`, logFile, runner: RUNNER, config: 'bench/floor/wrangler.toml' })
  try {
    await server.waitReady('/')
    await runAutocannon({ url: server.base, connections: CONNECTIONS, duration: 1 })
    process.stdout.write(`bench: workerd floor (GET / on bench/floor/worker.js), ${CONNECTIONS} connections, ${DURATION} s ... `)
    const before = server.cpu()
    const r = await runAutocannon({ url: server.base, connections: CONNECTIONS, duration: DURATION, timeout: 30 })
    const after = server.cpu()
    const cpu = Object.fromEntries(Object.keys(after).map((k) => [k, (after[k] - (before[k] ?? 0)) / Math.max(r.requests.total, 1)]))
    floor = { pass: 'default', target: 'uap', scenario: 'workerd floor', route: 'GET / (bench/floor/worker.js: answers "ok")', bare: false, floor: true, connections: CONNECTIONS, seconds: r.duration, requests: r.requests.total, rps: r.requests.total / r.duration, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors + r.timeouts, cpu, serverCpu: cpu.worker ?? NaN }
    rows.push(floor)
    console.log(`${floor.rps.toFixed(1)} req/s, p50 ${floor.p50} ms, CPU ms/req worker ${ms(floor.serverCpu)}`)
  } finally {
    await server.stop()
  }
}
const measured = []
const jobRows = []
const checks = []
const shared = {}
const processes = {}
try {
  for (const pass of PASSES) {
    const list = scenarios.filter((s) => s.passes.includes(pass.id))
    if (!list.length) continue
    const logFile = path.join(resultsDir, `worker-${pass.id}.log`)
    const server = await startWorker({ persistTo: STATE, vars: { ...pass.vars }, logFile, runner: pass.runner, profile: PROFILE })
    try {
      console.log(`bench: pass ${pass.id} (${pass.label}): Worker (${pass.runner}) on ${server.base} (log: ${path.relative(root, logFile)})`)
      await server.waitReady()
      processes[pass.id] = server.processes()
      const client = apiClient(server.base, admin)
      for (const s of list) {
        const connections = Math.min(s.connections ?? CONNECTIONS, CONNECTIONS)
        if (s.job) {
          const ctx = { target: 'uap', connections, duration: DURATION, pass: pass.id, shared, base: server.base, admin, paths: UAP_PATHS, ...client }
          process.stdout.write(`bench: ${s.name} (${s.route}) ... `)
          for (const m of await s.job(ctx, server.cpu)) jobRows.push({ pass: pass.id, scenario: s.name, ...m })
          console.log(jobRows.filter((r) => r.scenario === s.name).map((r) => `${r.metric}: ${r.seconds.toFixed(2)} s${r.rowsPerS ? ` (${Math.round(r.rowsPerS)} rows/s)` : ''}`).join('; '))
          continue
        }
        const targets = s.targets.filter((t) => t === 'uap' || (t === 'peer' && peer && pass.id === 'default'))
        const compared = targets.includes('uap') && targets.includes('peer')
        const runs = compared ? Array.from({ length: PEER_ROUNDS }, (_, i) => targets.map((target) => ({ target, round: i + 1 }))).flat() : targets.map((target) => ({ target }))
        const states = {}
        if (s.measure) {
          const ctx = { target: 'uap', connections, duration: DURATION, pass: pass.id, shared, base: server.base, admin, paths: UAP_PATHS, cpu: server.cpu, ...client }
          process.stdout.write(`bench: ${s.name} (${s.route}) ... `)
          const m = await s.measure(ctx)
          measured.push({ pass: pass.id, scenario: s.name, route: s.route, result: m.result, markdown: m.markdown })
          console.log(JSON.stringify(m.result))
          if (m.check) {
            checks.push({ pass: pass.id, target: 'uap', scenario: s.name, ...m.check })
            console.log(`bench: check ${m.check.ok ? 'ok' : 'FAILED'}: ${m.check.name}: ${m.check.detail}`)
          }
          continue
        }
        for (const { target, round } of runs) {
          const common = { target, connections, duration: DURATION, pass: pass.id, shared }
          const ctx =
            target === 'uap'
              ? { ...common, base: server.base, admin, paths: UAP_PATHS, ...client, oidc: () => uapOidcWorld(ctx) }
              : { ...common, base: peer.base, paths: PEER_PATHS, oidc: () => peerOidcWorld(peer) }
          const cpuOf = target === 'uap' ? server.cpu : peer.cpu
          const route = typeof s.route === 'function' ? s.route(ctx) : s.route
          // later rounds reuse the side's state: its pools refill themselves, and reset() tops them up
          const state = (states[target] ??= s.setup ? await s.setup(ctx) : {})
          // a warm-up second so JIT, isolate caches, D1 pages and object classes are hot
          const warmup = await runAutocannon({ url: ctx.base, connections, duration: 1, requests: s.requests(state, ctx), ...s.options?.(state, ctx, 'warmup') })
          // a throughput target's scenario is bracketed by bare-route runs (before its reset,
          // right after its run), so its ratio is taken against the machine as it was then
          const bracket = target === 'uap' && THROUGHPUT_TARGETS.has(s.name) ? [await bareRun(ctx.base, connections)] : null
          if (s.reset) await s.reset(state, ctx, warmup)
          const extra = s.options?.(state, ctx, 'run') ?? {}
          process.stdout.write(`bench: ${s.name} on ${target === 'uap' ? 'UAP Edge' : 'oidc-provider'} (${route})${round ? `, round ${round}/${PEER_ROUNDS}` : ''}, ${connections} connections, ${extra.amount ? `${extra.amount} requests` : `${DURATION} s`} ... `)
          const stopProfile = PROFILE && target === 'uap' && (round ?? 1) === 1 ? await startProfile(server.inspectorPort, { file: path.join(resultsDir, `${s.file.replace(/\.mjs$/, '')}.cpuprofile`) }) : null
          const cpuBefore = cpuOf()
          const r = await runAutocannon({ url: ctx.base, connections, duration: DURATION, requests: s.requests(state, ctx), timeout: 30, ...extra })
          const cpuAfter = cpuOf()
          if (stopProfile) console.log(`\n${await stopProfile()}`)
          const cpu = Object.fromEntries(Object.keys(cpuAfter).map((k) => [k, (cpuAfter[k] - (cpuBefore[k] ?? 0)) / Math.max(r.requests.total, 1)]))
          const row = {
            pass: pass.id,
            target,
            scenario: s.name,
            route,
            bare: !!s.bare,
            connections,
            seconds: r.wallS,
            requests: r.requests.total,
            // total over wall time: also right for runs bounded by `amount`, whose last second is partial
            rps: r.requests.total / r.wallS,
            p50: r.latency.p50,
            p99: r.latency.p99,
            non2xx: r.non2xx,
            errors: r.errors + r.timeouts,
            /** CPU ms per request by process role (uap: worker, proxy, wrangler; peer: peer) */
            cpu,
            /** the serving process's own CPU ms per request: the Worker's workerd, or the peer's Node */
            serverCpu: target === 'uap' ? (cpu.worker ?? NaN) : (cpu.peer ?? NaN),
            round,
          }
          if (bracket) {
            bracket.push(await bareRun(ctx.base, connections))
            row.bracket = bracket
          }
          rows.push(row)
          const cpuText = Object.entries(cpu)
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(', ')
          console.log(`${row.rps.toFixed(1)} req/s, p50 ${row.p50} ms, p99 ${row.p99} ms, non-2xx ${row.non2xx}, errors ${row.errors}, CPU ms/req ${cpuText}`)
          if (bracket) console.log(`bench:   bare route around it: ${bracket.map((b) => b.rps.toFixed(1)).join(' and ')} req/s (${(row.rps / bracketRps(row)).toFixed(2)}× their mean)`)
          if (s.check) {
            const c = { pass: pass.id, target, scenario: s.name, ...(await s.check(state, ctx)) }
            checks.push(c)
            console.log(`bench: check ${c.ok ? 'ok' : 'FAILED'}: ${c.name}: ${c.detail}`)
          }
        }
      }
    } finally {
      await server.stop()
    }
  }
} finally {
  if (peer) await peer.stop()
}
clearInterval(loadTimer)
load.push(os.loadavg()[0])

// 3. report
const cpus = os.cpus()
const date = new Date().toISOString()
const versionOf = (pkg) => JSON.parse(readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version
const loadStats = `min ${Math.min(...load).toFixed(2)}, mean ${(load.reduce((a, b) => a + b, 0) / load.length).toFixed(2)}, max ${Math.max(...load).toFixed(2)} (${load.length} samples, every 5 s)`
writeFileSync(path.join(resultsDir, `bench-${date.replace(/[:.]/g, '-')}.json`), JSON.stringify({ date, runner: RUNNER, load, rows, measured, jobRows, checks, roundTrips, processes }, null, 2))

// A scenario compared over several rounds is reported by its median round (the lower of the
// middle two for an even count): its UAP Edge and peer rows are the ones in the tables and
// the target; every round's ratio is listed beside it. The JSON above keeps every run.
const ratioOfRound = (u) => {
  const p = rows.find((x) => x.pass === u.pass && x.target === 'peer' && x.scenario === u.scenario && x.round === u.round)
  return p ? u.serverCpu / p.serverCpu : NaN
}
const roundsOf = (r) => rows.filter((x) => x.pass === r.pass && x.target === 'uap' && x.scenario === r.scenario && x.round !== undefined).sort((a, b) => a.round - b.round)
const medianRound = new Map()
for (const u of rows.filter((x) => x.target === 'uap' && x.round === 1)) {
  const sorted = roundsOf(u).filter((x) => Number.isFinite(ratioOfRound(x))).sort((a, b) => ratioOfRound(a) - ratioOfRound(b))
  if (sorted.length) medianRound.set(`${u.pass}/${u.scenario}`, sorted[Math.floor((sorted.length - 1) / 2)].round)
}
const shown = rows.filter((r) => r.round === undefined || r.round === (medianRound.get(`${r.pass}/${r.scenario}`) ?? 1))
/** every round's CPU ratio, in the order they ran, the shown one in bold */
const roundRatios = (r) =>
  roundsOf(r)
    .map((x) => {
      const v = ratioOfRound(x)
      const t = Number.isFinite(v) ? `${v.toFixed(2)}×` : '–'
      return x.round === r.round ? `**${t}**` : t
    })
    .join(', ')
const uapRows = (pass) => shown.filter((r) => r.pass === pass && r.target === 'uap')
const bareOf = (pass) => shown.find((r) => r.pass === pass && r.target === 'uap' && r.bare)
const peerOf = (r) => shown.find((p) => p.pass === r.pass && p.target === 'peer' && p.scenario === r.scenario)
const ratio = (a, b) => (!b || !Number.isFinite(a) || !Number.isFinite(b) ? NaN : a / b)
const times = (a, b) => {
  const x = ratio(a, b)
  return Number.isNaN(x) ? '–' : x < 0.01 ? '<0.01×' : `${x.toFixed(2)}×`
}
const wranglerCpu = (r) => (r.cpu.proxy ?? 0) + (r.cpu.wrangler ?? 0)

const resultTable = (pass) =>
  [
    '| scenario | route | connections | s | requests | req/s | p50 ms | p99 ms | non-2xx | errors | Worker CPU ms/req | wrangler CPU ms/req | p50 ÷ bare | req/s ÷ bare |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...uapRows(pass).map((r) => {
      const b = bareOf(pass)
      return `| ${r.scenario} | \`${r.route}\` | ${r.connections} | ${r.seconds.toFixed(1)} | ${r.requests} | ${r.rps.toFixed(1)} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors} | ${ms(r.serverCpu)} | ${ms(wranglerCpu(r))} | ${times(r.p50, b?.p50)} | ${times(r.rps, b?.rps)} |`
    }),
  ].join('\n')
const passSections = PASSES.filter((p) => shown.some((r) => r.pass === p.id))
  .map((p) => `### Pass \`${p.id}\`: ${p.label}\n${resultTable(p.id)}`)
  .join('\n\n')

const peerPairs = shown.filter((r) => r.target === 'uap' && peerOf(r))
const peerTable = peerPairs.length
  ? [
      '| scenario | UAP Edge route | oidc-provider route | connections | UAP req/s | peer req/s | req/s UAP ÷ peer | UAP p50 / p99 ms | peer p50 / p99 ms | UAP Worker CPU ms/req | peer CPU ms/req | CPU UAP ÷ peer | CPU ratio of each round | workerd floor ÷ peer CPU | non-2xx UAP / peer |',
      '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...peerPairs.map((r) => {
        const p = peerOf(r)
        return `| ${r.scenario} | \`${r.route}\` | \`${p.route}\` | ${r.connections} | ${r.rps.toFixed(1)} | ${p.rps.toFixed(1)} | ${times(r.rps, p.rps)} | ${r.p50} / ${r.p99} | ${p.p50} / ${p.p99} | ${ms(r.serverCpu)} | ${ms(p.serverCpu)} | ${times(r.serverCpu, p.serverCpu)} | ${roundRatios(r) || '–'} | ${floor ? times(floor.serverCpu, p.serverCpu) : '–'} | ${r.non2xx + r.errors} / ${p.non2xx + p.errors} |`
      }),
    ].join('\n')
  : WITH_PEER
    ? '_No OIDC scenario ran (BENCH_ONLY)._'
    : '_The peer was skipped (BENCH_PEER=0)._'

const ticketRows = shown.filter((r) => r.target === 'uap' && r.scenario.startsWith('ticket '))
const ticketTable = [
  '| pass | scenario | p50 ms | bare p50 ms | p50 ÷ bare | p99 ÷ bare | req/s | bare req/s | req/s ÷ bare |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...ticketRows.map((r) => {
    const b = bareOf(r.pass)
    return `| ${r.pass} | ${r.scenario} | ${r.p50} | ${b?.p50 ?? '–'} | ${times(r.p50, b?.p50)} | ${times(r.p99, b?.p99)} | ${r.rps.toFixed(1)} | ${b ? b.rps.toFixed(1) : '–'} | ${times(r.rps, b?.rps)} |`
  }),
].join('\n')

// the issue 14 targets, each from a measurement of this run
const targets = []
const verdict = (ok) => (ok === undefined ? 'for reference' : ok === null ? 'not measured' : ok ? '**met**' : '**not met**')
const kinds = (c) =>
  Object.entries(c)
    .filter(([, n]) => n)
    .map(([k, n]) => `${k.toUpperCase()} ${n}`)
    .join(', ') || 'none'
for (const [name, budget] of Object.entries({ refresh: 2, 'OIDC refresh': 2, userinfo: 1, introspection: 1, 'signed ping': 1, 'ticket exchange': 2, 'ticket verify': 2 })) {
  const rt = roundTrips.rows.find((r) => r.name === name)
  const b = rt?.budget?.stages ?? budget
  targets.push({
    target: `${name}: ≤ ${b} sequential storage stage${b > 1 ? 's' : ''}${rt?.budget?.note ? ` (${rt.budget.note})` : ''}`,
    measured: rt ? `${rt.stages} stages (${kinds(rt.calls)})` : roundTrips.note || 'not measured',
    ok: rt ? rt.stages <= b : null,
  })
  if (name === 'ticket exchange') {
    targets.push({ target: 'ticket exchange: no new Durable Object per ticket', measured: rt ? `${rt.newObjects} new object${rt.newObjects === 1 ? '' : 's'} per exchange` : 'not measured', ok: rt ? rt.newObjects === 0 : null })
  }
}
for (const p of PASSES.filter((q) => q.id === 'default' || rows.some((r) => r.pass === q.id))) {
  for (const [scenario, min] of THROUGHPUT_TARGETS) {
    const r = shown.find((x) => x.pass === p.id && x.target === 'uap' && x.scenario === scenario)
    const b = r?.bracket ? bracketRps(r) : NaN
    const x = r ? ratio(r.rps, b) : NaN
    const pass = bareOf(p.id)
    targets.push({
      target: `${scenario}: req/s ≥ ${min}× the bare route's (runner \`${p.runner}\`${p.runner === 'api' ? ", the issue's harness" : ''})`,
      measured: Number.isNaN(x)
        ? 'not measured'
        : `${x.toFixed(2)}× (${r.rps.toFixed(1)} ÷ ${b.toFixed(1)} req/s, the mean of the bare runs just before and after it: ${r.bracket.map((v) => v.rps.toFixed(1)).join(', ')})${pass ? `; ${times(r.rps, pass.rps)} of the pass's bare row` : ''}`,
      ok: Number.isNaN(x) ? null : x >= min,
    })
  }
}
for (const [scenario, max] of [
  ['discovery', 3],
  ['JWKS', 3],
  ['OIDC refresh', 5],
  ['introspection', 5],
  ['userinfo', 5],
]) {
  const r = shown.find((x) => x.pass === 'default' && x.target === 'uap' && x.scenario === scenario)
  const p = r && peerOf(r)
  const x = p ? ratio(r.serverCpu, p.serverCpu) : NaN
  // What the route's storage calls alone cost here: the bare route plus, for each D1 call the
  // round-trip count found, /healthz's one D1 query (its CPU above the bare route's). A route
  // that must read its state (revocation, rotation) cannot cost less than that in this harness.
  const rt = roundTrips.rows.find((t) => t.name === scenario)
  const bare = bareOf('default')
  const health = shown.find((h) => h.pass === 'default' && h.target === 'uap' && h.scenario === 'health (D1)')
  const storage = rt?.calls.d1 && bare && health ? bare.serverCpu + rt.calls.d1 * (health.serverCpu - bare.serverCpu) : NaN
  targets.push({
    target: `${scenario}: Worker CPU per request ≤ ${max}× oidc-provider's`,
    // the floors say whether the target is reachable in this harness at all: a Worker that does nothing costs the first
    measured: Number.isNaN(x)
      ? 'not measured'
      : `${x.toFixed(2)}× (${ms(r.serverCpu)} vs ${ms(p.serverCpu)} ms${r.round ? `; the median of ${roundsOf(r).length} rounds: ${roundRatios(r)}` : ''})${floor ? `; the workerd floor alone is ${times(floor.serverCpu, p.serverCpu)} (${ms(floor.serverCpu)} ms)` : ''}${Number.isFinite(storage) ? `; the bare route and its ${rt.calls.d1} D1 call${rt.calls.d1 > 1 ? 's' : ''} at /healthz's cost alone are ${times(storage, p.serverCpu)} (${ms(storage)} ms)` : ''}`,
    ok: Number.isNaN(x) ? null : x <= max,
  })
}
// issue 15: a permission check is one D1 round trip, read next to /healthz's one SELECT 1
{
  const r = shown.find((x) => x.pass === 'default' && x.target === 'uap' && x.scenario === 'permission check')
  const h = shown.find((x) => x.pass === 'default' && x.target === 'uap' && x.scenario === 'health (D1)')
  const m = shown.find((x) => x.pass === 'default' && x.target === 'uap' && x.scenario === 'mapping lookup')
  targets.push({
    target: 'permission check, user in 10 groups of 6-level trees (issue 15): compared with `GET /healthz` and with a mapping lookup behind the same app token',
    measured: r && h ? `p50 ${r.p50} vs ${h.p50} ms (/healthz)${m ? ` vs ${m.p50} ms (lookup)` : ''}; req/s ${times(r.rps, h.rps)} of /healthz's${m ? `, ${times(r.rps, m.rps)} of the lookup's` : ''}` : 'not measured',
    ok: r && h ? undefined : null,
  })
}
// issue 13: the bulk import figures
for (const r of jobRows.filter((x) => x.target)) {
  const t = r.target
  const ok = t.op === '<=' ? r.seconds <= t.seconds : r.rowsPerS >= t.rowsPerS
  targets.push({
    target: `${r.metric}: ${t.op === '<=' ? `≤ ${t.seconds} s` : `≥ ${t.rowsPerS.toLocaleString('en')} rows/s`} (issue 13)`,
    measured: t.op === '<=' ? `${r.seconds.toFixed(2)} s` : `${Math.round(r.rowsPerS).toLocaleString('en')} rows/s (${r.seconds.toFixed(2)} s)`,
    ok,
  })
}
const jobTable = jobRows.length
  ? [
      '| scenario | what | s | rows/s | Worker CPU s |',
      '| --- | --- | ---: | ---: | ---: |',
      ...jobRows.map((r) => `| ${r.scenario} | ${r.metric} | ${r.seconds.toFixed(2)} | ${r.rowsPerS ? Math.round(r.rowsPerS).toLocaleString('en') : '–'} | ${(r.cpuMs / 1000).toFixed(2)} |`),
    ].join('\n')
  : '_not run (BENCH_ONLY)_'
const targetTable = ['| target | measured in this run | |', '| --- | --- | --- |', ...targets.map((t) => `| ${t.target} | ${t.measured} | ${verdict(t.ok)} |`)].join('\n')

const roundTripSection = roundTrips.rows.length
  ? [
      '| route | D1 | KV | DO | Queue | sequential stages | budget (stages) | after the response |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
      ...roundTrips.rows.map((r) => {
        const after = r.log.filter((l) => l.startsWith('after the response: ')).length
        return `| ${r.name} \`${r.route}\` | ${r.calls.d1} | ${r.calls.kv} | ${r.calls.do} | ${r.calls.queue} | ${r.stages} | ≤ ${r.budget?.stages ?? '–'} | ${after ? `${kinds(r.background.calls)} (${after} call${after > 1 ? 's' : ''})` : '–'} |`
      }),
      '',
      'The calls, in the order they started (`stage kind binding.method what`):',
      '',
      ...roundTrips.rows.flatMap((r) => [`**${r.name}** \`${r.route}\``, '', '```', ...r.log, '```', '']),
    ]
      .join('\n')
      .trimEnd()
  : `_${roundTrips.note}_`

const checkList = checks.length ? checks.map((c) => `- ${c.ok ? 'ok' : '**FAILED**'} (pass \`${c.pass}\`) ${c.name}: ${c.detail}`).join('\n') : '- none ran'
const procList = Object.entries(processes)
  .map(([pass, list]) => `pass \`${pass}\`: ${list.map((p) => `${p.comm} (${p.role})`).join(', ')}`)
  .join('; ')

const md = `# Benchmarks

Generated by \`npm run bench\` (bench/run.mjs); rerun it to refresh this file.

## How it runs
The Worker runs in local workerd (Miniflare's D1/KV/DO on disk under \`${STATE}\`, wiped and
migrated at the start of every run): wrangler's own bundle (\`wrangler deploy --dry-run\`) with
the bindings, Durable Objects, queues and .dev.vars wrangler derives from wrangler.toml
(\`unstable_getMiniflareWorkerOptions\`), in Miniflare with **a socket of the Worker's own**
(bench/worker-direct.mjs), so a request goes from the socket straight into the Worker's fetch
handler, as on Cloudflare. Under \`wrangler dev\` a request first passes wrangler's proxy (a
second workerd) and then Miniflare's entry Worker, JavaScript in the Worker's own workerd that
routes, adds the CF-* headers and \`request.cf\` and injects live reload: about 0.1 ms of that
workerd's CPU per request on this machine, half the floor of a Worker that answers "ok", none
of which runs in production. \`wrangler dev\` also attaches the devtools inspector and relays
every binding call's inspector messages through Node (issue 14 found 2/3 of all CPU going there
on I/O-heavy routes). For comparison, \`BENCH_RUNNER=api\` runs the same scenarios through
wrangler's JS API (\`unstable_startWorker\`, bench/worker-host.mjs: inspector off, proxy and
entry Worker in front) and \`BENCH_RUNNER=wrangler-dev\` under \`wrangler dev\`.
The load comes from [autocannon](https://github.com/mcollina/autocannon) on the same
machine. Each scenario (bench/scenarios/*.mjs) gets a 1 s warm-up, then ${DURATION} s of load
with its connection count (ticket redeem: a fixed number of requests instead, see below).
req/s is requests over wall time; "÷ bare" compares a row with the bare route **of the same
pass**. The throughput targets (signed ping, ticket exchange and redeem) are taken against
bare-route runs of their own, one just before the scenario's run (before its pool is minted)
and one just after (the target line gives both): this machine is shared and its speed drifts
(in one run of the same code the bare route measured from 947 to 1,520 req/s), so a bare
row measured minutes earlier is a weaker yardstick.

**CPU per request** is read from \`/proc/<pid>/stat\` (utime + stime of all threads, clock
ticks of ${1000 / CLK_TCK} ms from \`getconf CLK_TCK\`) before and after each measured run, divided
by the requests of the run. "Worker CPU" is the workerd process that runs the Worker, which
also runs the local D1, KV and Durable Object simulators (their SQLite work is charged
here, as a real network hop would not be). "wrangler CPU" is everything else the runner
adds: the Node process that hosts Miniflare (and, with \`BENCH_RUNNER=api\` or
\`wrangler-dev\`, wrangler's proxy workerd and request logging). For the peer it is its one
Node process, storage included (in memory).

- Login uses the production password-hash profile (argon2id m=19 MiB, t=2, p=1; see
  docs/passwords.md). Refresh draws every request from a pool of never-used refresh tokens
  that each response refills with its successor; so does OIDC refresh, on both sides.
- The simple-SSO world (two SIMPLE_API apps with https callbacks, the target in the source's
  \`sso_targets\`, a user mapped in both apps) is seeded through the admin API and mapping
  sync, as an operator would.
  Every signed request (ping, exchange, redeem) is signed afresh in autocannon's
  \`setupRequest\`: current timestamp, unique nonce (bench/lib.mjs, checked against the worked
  example in docs/signing.md at start-up).
- The OIDC world (bench/oidc.mjs): UAP Edge gets a confidential client
  (client_secret_basic) registered through the admin API and a user mapped into it with
  mapping sync; tokens come from the real code + PKCE flow over HTTP (\`/oauth2/authorize\`,
  \`/page/login\` with its CSRF cookie, \`/page/consent\`, \`/oauth2/token\`), one flow per
  refresh token. The peer's tokens come from its own code + PKCE flow through its
  development login and consent pages.
- Ticket redeem spends a pool of never-used tickets minted by signed exchanges just before
  the run; the run is bounded to the pool (sized from the warm-up's rate to last about
  ${DURATION} s) and minted quickly enough that no ticket reaches its 60 s lifetime. An
  exhausted pool would send a dud ticket, counted as non-2xx. The run starts 3 s after the
  minting, once the gates have shipped the minting's audit rows to D1, and is timed to its
  last response (autocannon reports a run bounded by a request count in whole seconds).
- Rate limits: the Worker runs with the variable \`RATE_LIMITS\` raising \`partner_ip\`, \`oauth_ip\`,
  \`signed_app\`, \`app_token\` and \`ticket_exchange_app\` to ${RAISED.limit} per ${RAISED.windowS} s: every
  request comes from 127.0.0.1 as one app, and the defaults (600–1200/min) would turn the
  run into a measurement of 429s. The limiters are still called as in production: the
  app's AppGate counts the per-app policies with the nonce on every signed call, the
  \`oauth_ip\` object every token-endpoint request; \`partner_ip\` (signed calls) and
  \`oauth_ip\` on UserInfo and introspection count only refused calls, so a valid call there
  makes no limiter call (src/ratelimit/refused.ts).
- Post-checks run after their scenario, on the same Worker.
- Ports: the Worker and the peer listen on ports from \`BENCH_PORTS\` (default 8791-8799,
  8821-8829); the Worker's own workerd and Miniflare's loopback take ephemeral ports.

The machine may be shared (see the load line below). Under load, the CPU one request costs
grows too (cache and scheduler contention): on this 2-core machine the same route's Worker
CPU per request has varied up to about 2× between runs at load averages of 4–8. Compare
numbers from one run, where both sides met the same load, and rerun when the load was high.

These are **local** numbers: one workerd process, one isolate, SQLite files for D1 and every
Durable Object, load generator on the same CPUs. They compare routes with each other and
catch regressions; they do not predict production latency on Cloudflare's network, where D1
is a network hop away and requests spread over many isolates and locations.

## Machine
- date: ${date}
- CPU: ${cpus[0]?.model ?? 'unknown'} × ${cpus.length} (\`nproc\` ${os.availableParallelism?.() ?? cpus.length})
- memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB
- 1-minute load average during the run (the bench's own servers and autocannon included): ${loadStats}
- OS: ${os.type()} ${os.release()} (${os.arch()})
- Node ${process.version}, wrangler ${versionOf('wrangler')} (runner \`${RUNNER}\`${PASSES.some((q) => q.id === 'api') ? '; pass \`api\`: runner \`api\`' : ''}), oidc-provider ${peer ? versionOf('oidc-provider') : '– (skipped)'}
- processes measured: ${procList || '–'}${peer ? '; the peer: node (peer)' : ''}

## Targets (issues 13 and 14)
Each line is evaluated from this run's measurements: round trips from the storage counter
(below), throughput ratios from each pass named in the line (\`direct\`: the default pass; \`api\`: the pass \`api\`), CPU ratios from the UAP Edge vs
oidc-provider table.

${targetTable}

## UAP Edge vs oidc-provider
Same scenarios, same connection count and duration, run back to back (UAP Edge first, then
the peer), ${PEER_ROUNDS} round${PEER_ROUNDS > 1 ? 's' : ''} in turn (\`BENCH_PEER_ROUNDS\`). Each round's CPU ratio compares two runs a few seconds
apart; the table shows the round with the median ratio (the lower of the middle two for an
even count), and the CPU targets are read from it: on this shared machine the peer's CPU per
request alone has moved by a third between runs of one day, so one pair is a weak verdict.
req/s ratio: higher is better for UAP Edge; CPU ratio: lower is better.

${peerTable}

## Round trips per request
Counted by test/support/storage.ts in workerd (\`test/storage-counter.test.ts\`, run at the
start of the bench): every D1, KV, Durable Object and Queue call one request makes, after one
warm-up request of the same kind, and the **sequential stages** (a call's stage is 1 + the
highest stage among the calls that had finished before it started; calls started together
share a stage). Calls settled after the response was returned (\`waitUntil\`) are listed
apart and do not count as stages. These are counts, not timings; the budgets are issue 14's,
enforced by \`test/round-trips.test.ts\`.

${roundTripSection}

## Results
${passSections}

## Measured scenarios
${measured.length ? measured.map((m) => `### ${m.scenario} (pass \`${m.pass}\`): ${m.route}\n${m.markdown}`).join('\n\n') : '_none ran_'}
## Bulk import (issue 13)
bench/scenarios/import.mjs, over HTTP as an operator would: a users file (preview, then a
SKIP import), then a mapping file of the same users into one app (preview as CSV and as
XLSX, the import, and the same file imported again). An import's time runs from its 202 to
the job's \`done\` (polled every 100 ms, so up to 0.1 s late); the job runs in the app's
MappingImporter object, from its alarm, 1,000 mapping rows per D1 batch, users in batches of at most 300 statements (docs/import.md). Worker CPU
is the workerd process (the Worker, its Durable Objects and the local D1) over the same span.

${jobTable}

## Simple-SSO tickets vs the bare route
Same pass, same Worker, same run. Latency ratios: higher is slower; req/s ratio: lower is
fewer requests per second.

${ticketTable}

## Checks
${checkList}

## How the peer differs
oidc-provider ${peer ? versionOf('oidc-provider') : ''} (bench/peer/oidc-provider.mjs; 8.x is the last major that supports Node 20,
9.x asks for Node 22) in one Node process on 127.0.0.1: its in-memory adapter, one ES256 key,
one confidential client (client_secret_basic, code + PKCE S256), introspection on, refresh
tokens rotated on every use. Where it cannot be configured like UAP Edge:
- **Access tokens** are opaque there (its userinfo and introspection accept only opaque
  tokens; JWT access tokens are for resource indicators), so its userinfo and introspection
  are a lookup in memory. UAP Edge's are ES256 JWTs (RFC 9068): verified by signature, then
  one D1 read for the session, user, app, mapping and the revocation denylist.
- **Refresh** responses: the peer issues a new ID token (one ES256 signature) because the
  scope has openid; UAP Edge issues a new JWT access token (one ES256 signature) and no ID
  token. Reusing a rotated token revokes the grant at once there; UAP Edge returns the same
  successor for 10 s (a retried refresh) before treating reuse as theft.
- **Storage**: an LRU in the process's memory (quick-lru, maxSize 1,000) against D1 / KV / Durable
  Objects on SQLite files. Accounts are in-memory claims there; UAP Edge reads the user and
  the user's mapping in the app from D1.
- **Client authentication**: both compare the client secret; UAP Edge takes the client's row
  from the token's own read (the app joined to the refresh token or access token, when it
  is the calling client's; otherwise one more read) and decrypts its stored secret first.
- Login and consent (development pages with no password there, argon2id here) are not
  benchmarked on the peer; they only mint its tokens.

## Reading them
- **workerd floor** is a Worker that answers "ok" (bench/floor/worker.js), on the same host
  and measured the same way: what any Worker costs per request in this harness (workerd's
  HTTP handling and isolate entry) before it does any work. The CPU targets are ratios to
  the peer; where the floor alone is above a target's ratio, no Worker can meet it here.
- **bare route** is UAP Edge's floor: routing, request id, config check and the JSON access
  log; minus the workerd floor, what the framework and middleware cost.
- **JWKS** answers the key set's JSON text, made once with the isolate's key list (D1 read at
  most once a minute); **discovery** answers its document's text, made once per issuer. Their req/s is bounded by the load generator
  sharing the same two CPUs; their Worker CPU per request is the comparable number.
- **Throughput ratios depend on the runner.** With \`BENCH_RUNNER=api\` (or \`wrangler dev\`)
  every request passes wrangler's proxy, which caps the bare route at about a tenth of what
  it reaches on the Worker's own socket; a route that spends its time in Durable Object or
  D1 calls then looks close to the bare one. On the Worker's own socket (the default) the
  bare route is bounded by the Worker's own CPU, and the ratio is close to the ratio of CPU
  per request, local simulators included. The targets were set with the proxy in front, so
  the pass \`api\` repeats the bare route and the three throughput scenarios in that harness
  (\`BENCH_API_PASS=0\` skips it) and the targets are given for both.
- **health (D1)** is one D1 query: the floor for anything that reads D1.
- **login** is dominated by the password hash: about one hash's CPU time per request, and
  an isolate runs one hash at a time (synchronous WebAssembly, src/lib/password/), so
  requests queue behind each other. Throughput per isolate ≈ 1000 / (CPU ms per hash).
- **refresh** and **OIDC refresh**: see the round-trip table for their D1 reads and batch;
  plus an AES-GCM encryption and an ES256 signature.
- **userinfo** and **introspection**: an ES256 verification plus the one read listed above;
  no limiter call for a valid token (\`oauth_ip\` counts only refusals there).
- **D1 statements** cost Worker CPU of their own here (Miniflare's D1 runs in the same
  workerd process): about 0.2 ms per statement on top of about 0.7 ms per call in one
  measurement (a batch of five against ten). The hot reads are therefore one statement each,
  and their SQL is built once per isolate (\`preparedOnce\`, src/db).
- **signed ping** is the signature check every partner call pays and nothing else: HMAC
  against the isolate's copy of the app row (secret decrypted each time), then the app's
  AppGate (nonce, \`signed_app\`, row version) in one call (docs/signing.md); the
  \`partner_ip\` limiter is called only for calls that are not admitted.
- **ticket exchange** is the signature check with \`ticket_exchange_app\` counted in the same
  gate call and one D1 statement (target app, user, the user's mappings in both apps) beside it,
  then one call storing the ticket (and its audit row) in the target's AppGate. **ticket
  redeem** is the signature check with the atomic check-and-consume of the ticket in the same
  gate call and, beside it, one D1 statement (user and mapping still active; the user is sealed
  in the ticket). The ticket rows minus **signed ping** is what the tickets themselves cost;
  docs/tickets.md discusses them.
`
mkdirSync(path.dirname(OUT), { recursive: true })
writeFileSync(OUT, md)
console.log(`bench: wrote ${path.relative(root, OUT)}`)
const failed = rows.some((r) => r.errors > 0 || r.non2xx > 0) || checks.some((c) => !c.ok) || (WITH_ROUND_TRIPS && !roundTrips.rows.length)
if (failed) console.error('bench: errors, non-2xx answers, a failed check or no round-trip counts; see the report')
process.exit(failed ? 1 : 0)
