#!/usr/bin/env node
// Runs the Worker for `npm run bench` through wrangler's JS API (unstable_startWorker) with
// the devtools inspector off. `wrangler dev` always attaches the inspector and relays every
// binding call's inspector messages through Node, which the Worker's CPU then pays for
// (issue 14). Own process, so the bench can tell wrangler's Node and proxy apart from the
// workerd that runs the Worker (bench/lib.mjs reads their CPU from /proc).
//
// Configuration in BENCH_WORKER (JSON): { port, persistTo, vars: { NAME: value }, config? }
// (config: another wrangler.toml, relative to the project root, e.g. the floor Worker's).
// Prints "bench-worker: ready <url>" once the Worker answers; SIGINT/SIGTERM dispose it.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { unstable_startWorker } from 'wrangler'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const cfg = JSON.parse(process.env.BENCH_WORKER ?? '{}')
if (!cfg.port || !cfg.persistTo) throw new Error('BENCH_WORKER needs port and persistTo')

const worker = await unstable_startWorker({
  config: path.join(root, cfg.config ?? 'wrangler.toml'),
  // plain-text vars on top of wrangler.toml [vars] and .dev.vars, like `wrangler dev --var`
  bindings: Object.fromEntries(Object.entries(cfg.vars ?? {}).map(([name, value]) => [name, { type: 'plain_text', value: String(value) }])),
  sendMetrics: false,
  dev: {
    // BENCH_PROFILE: the inspector on, for bench/profile.mjs
    inspector: cfg.inspectorPort ? { hostname: '127.0.0.1', port: Number(cfg.inspectorPort) } : false,
    remote: false,
    persist: path.resolve(root, cfg.persistTo),
    server: { hostname: '127.0.0.1', port: Number(cfg.port) },
    watch: false,
    liveReload: false,
  },
})
await worker.ready
console.log(`bench-worker: ready ${await worker.url}`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  try {
    await worker.dispose()
  } finally {
    process.exit(0)
  }
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
