#!/usr/bin/env node
// `npm run bench:password`: what one password hash costs inside workerd.
//
// workerd freezes Date.now() and timers while a request runs (Spectre mitigation), so the
// Worker cannot time itself. Instead this script bundles src/lib/password.ts into a tiny
// Worker, runs it in Miniflare (the same workerd as `wrangler dev`) and measures from
// outside, two ways:
//  - CPU: the workerd process's own CPU time (/proc/<pid>/stat utime+stime, Linux) over
//    RUNS hashes, minus the same for empty requests. Robust on a busy machine.
//  - latency: median wall time per request seen from Node, minus the empty-request median.
// A hash is pure computation with no I/O, so on an idle machine the two agree.
// Results feed docs/passwords.md.
import { Miniflare } from 'miniflare'
import { build } from 'esbuild'
import os from 'node:os'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RUNS = Number(process.env.RUNS ?? 15)

const entry = `
import { hashPassword } from './src/lib/password'
export default {
  async fetch(req) {
    const u = new URL(req.url)
    const q = (k) => Number(u.searchParams.get(k))
    if (u.pathname === '/scrypt') {
      const phc = await hashPassword('correct horse battery staple', { ln: q('ln'), r: q('r'), p: q('p') })
      return new Response(phc)
    }
    if (u.pathname === '/pbkdf2') {
      const key = await crypto.subtle.importKey('raw', new TextEncoder().encode('correct horse battery staple'), 'PBKDF2', false, ['deriveBits'])
      try {
        const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: crypto.getRandomValues(new Uint8Array(16)), iterations: q('i') }, key, 256)
        return new Response(String(bits.byteLength))
      } catch (e) {
        return new Response(String(e), { status: 500 })
      }
    }
    return new Response('noop')
  },
}`

const { outputFiles } = await build({
  stdin: { contents: entry, resolveDir: root, loader: 'js' },
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  write: false,
  target: 'es2022',
})
const mf = new Miniflare({ modules: true, script: outputFiles[0].text, compatibilityDate: '2026-04-01', compatibilityFlags: ['nodejs_compat'] })
const url = await mf.ready

// workerd is a child of this process; its CPU clock ticks are in /proc/<pid>/stat (fields 14, 15).
const workerdPid = (() => {
  try {
    return execFileSync('pgrep', ['-P', String(process.pid), 'workerd']).toString().trim().split('\n')[0]
  } catch {
    return null
  }
})()
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK']).toString().trim() || 100)
function cpuMs() {
  if (!workerdPid) return NaN
  const fields = readFileSync(`/proc/${workerdPid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS
}

async function measure(pathname, runs = RUNS) {
  const times = []
  let cpu0 = 0
  for (let i = 0; i < runs + 2; i++) {
    if (i === 2) cpu0 = cpuMs() // first two warm the isolate and JIT
    const t = performance.now()
    const res = await fetch(new URL(pathname, url))
    const text = await res.text()
    if (!res.ok) return { error: text.slice(0, 160) }
    if (i >= 2) times.push(performance.now() - t)
  }
  const cpu = (cpuMs() - cpu0) / runs
  times.sort((a, b) => a - b)
  return { ms: times[Math.floor(times.length / 2)], min: times[0], max: times[times.length - 1], cpu }
}

const floor = await measure('/noop', 50)
const rows = []
const scrypt = [
  ['scrypt N=2^13 r=8 p=10 (8 MiB) — OWASP, chosen', 13, 8, 10],
  ['scrypt N=2^14 r=8 p=5 (16 MiB) — OWASP', 14, 8, 5],
  ['scrypt N=2^15 r=8 p=3 (32 MiB) — OWASP', 15, 8, 3],
  ['scrypt N=2^16 r=8 p=2 (64 MiB) — OWASP', 16, 8, 2],
  ['scrypt N=2^10 r=8 p=1 (1 MiB) — test profile, not OWASP', 10, 8, 1],
]
for (const [label, ln, r, p] of scrypt) rows.push([label, await measure(`/scrypt?ln=${ln}&r=${r}&p=${p}`)])
for (const i of [100_000, 600_000]) rows.push([`PBKDF2-HMAC-SHA256 ${i.toLocaleString('en')} iterations (WebCrypto)`, await measure(`/pbkdf2?i=${i}`)])
await mf.dispose()

const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
console.log(`# password hash cost in workerd (Miniflare), ${new Date().toISOString().slice(0, 10)}`)
console.log(`# ${cpu}, ${os.cpus().length} vCPU, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${RUNS} runs each`)
console.log(`# load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; floor (empty request): ${floor.ms.toFixed(2)} ms latency, ${floor.cpu.toFixed(2)} ms workerd CPU`)
console.log('| hash | workerd CPU ms per hash | latency ms (median − floor) | latency min–max ms |')
console.log('| --- | ---: | ---: | ---: |')
for (const [label, m] of rows) {
  if (m.error) console.log(`| ${label} | refused: ${m.error.replace(/\|/g, '/')} | | |`)
  else console.log(`| ${label} | ${(m.cpu - floor.cpu).toFixed(1)} | ${(m.ms - floor.ms).toFixed(1)} | ${m.min.toFixed(1)}–${m.max.toFixed(1)} |`)
}
