#!/usr/bin/env node
// Runs the Worker for `npm run bench` in Miniflare on a socket of its own (`unsafeDirectSockets`),
// so a request goes from the socket straight into the Worker's fetch handler, as on Cloudflare.
// Under `wrangler dev` and unstable_startWorker every request also runs Miniflare's entry
// Worker (JavaScript in the same workerd: it routes, adds the CF-* headers and request.cf,
// injects live reload) and, before that, wrangler's proxy workerd. Neither exists in
// production, and the entry Worker alone was about 0.1 ms of workerd CPU per request here:
// half the floor of a Worker that only answers "ok" (issue 14).
//
// The bundle is wrangler's own (`wrangler deploy --dry-run --outdir`), the bindings, Durable
// Objects, queues and .dev.vars come from wrangler's unstable_getMiniflareWorkerOptions, and the
// local state is the same `<persistTo>/v3` tree `wrangler d1 migrations apply --persist-to` writes.
//
// Configuration in BENCH_WORKER (JSON): { port, persistTo, vars: { NAME: value }, config? }, as
// bench/worker-host.mjs. Prints "bench-worker: ready <url>" once the Worker answers;
// SIGINT/SIGTERM dispose it.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(path.join(root, 'package.json'))
const { unstable_getMiniflareWorkerOptions } = require('wrangler')
// the Miniflare that wrangler itself runs
const { Miniflare } = createRequire(require.resolve('wrangler'))('miniflare')

const cfg = JSON.parse(process.env.BENCH_WORKER ?? '{}')
if (!cfg.port || !cfg.persistTo) throw new Error('BENCH_WORKER needs port and persistTo')
const configPath = path.join(root, cfg.config ?? 'wrangler.toml')

const outDir = mkdtempSync(path.join(os.tmpdir(), 'uap-bench-bundle-'))
execFileSync(path.join(root, 'node_modules', '.bin', 'wrangler'), ['deploy', '--dry-run', '--outdir', outDir, '--config', configPath], {
  cwd: root,
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' },
})
// wrangler's default module rules: imported .wasm is compiled, other imported files are text
const files = readdirSync(outDir).filter((f) => f !== 'README.md' && !f.endsWith('.map'))
const main = files.find((f) => f.endsWith('.js') && !/^[0-9a-f]{40}-/.test(f))
if (!main) throw new Error(`bench: no entry module in ${outDir}`)
const modules = [main, ...files.filter((f) => f !== main)].map((f) => ({
  type: f === main ? 'ESModule' : f.endsWith('.wasm') ? 'CompiledWasm' : 'Text',
  path: path.join(outDir, f),
}))

const prev = process.cwd()
process.chdir(root) // .dev.vars is read from the working directory
const { workerOptions } = unstable_getMiniflareWorkerOptions(configPath)
process.chdir(prev)
const name = /^name\s*=\s*"([^"]+)"/m.exec(readFileSync(configPath, 'utf8'))?.[1] ?? 'bench-worker'

const mf = new Miniflare({
  host: '127.0.0.1',
  port: 0, // Miniflare's entry socket: nothing is sent there
  defaultPersistRoot: path.resolve(root, cfg.persistTo, 'v3'),
  workers: [
    {
      name,
      ...workerOptions,
      modulesRoot: outDir,
      modules,
      bindings: { ...workerOptions.bindings, ...(cfg.vars ?? {}) },
      unsafeDirectSockets: [{ host: '127.0.0.1', port: Number(cfg.port) }],
    },
  ],
})
await mf.ready
const url = `http://127.0.0.1:${cfg.port}/`
console.log(`bench-worker: ready ${url}`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  try {
    await mf.dispose()
  } finally {
    rmSync(outDir, { recursive: true, force: true })
    process.exit(0)
  }
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
