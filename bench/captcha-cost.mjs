#!/usr/bin/env node
// `npm run bench:captcha`: what drawing one captcha picture costs inside workerd.
//
// Same method as bench/password-cost.mjs (workerd freezes Date.now() while a request runs,
// so the Worker cannot time itself): src/captcha/image.ts is bundled into a tiny Worker
// run by Miniflare (the workerd of `wrangler dev`); the workerd process's own CPU time
// (/proc/<pid>/stat, Linux) over RUNS requests, minus the same for empty requests, is
// the cost. Each request draws PER_REQUEST pictures (answer, raster, PNG, data URI), so
// the figure is not lost in the per-request overhead. Results feed README "Captcha".
import { Miniflare } from 'miniflare'
import { build } from 'esbuild'
import os from 'node:os'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RUNS = Number(process.env.RUNS ?? 40)
const PER_REQUEST = 10

const entry = `
import { randomAnswer, renderCaptchaPng, pngDataUri } from './src/captcha/image'
export default {
  async fetch(req) {
    const u = new URL(req.url)
    if (u.pathname === '/draw') {
      let bytes = 0
      for (let i = 0; i < ${PER_REQUEST}; i++) bytes += pngDataUri(renderCaptchaPng(randomAnswer(5))).length
      return new Response(String(bytes / ${PER_REQUEST}))
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

async function measure(pathname, runs) {
  let cpu0 = 0
  let t0 = 0
  let body = ''
  for (let i = 0; i < runs + 5; i++) {
    if (i === 5) {
      // the first requests warm the isolate and the JIT
      cpu0 = cpuMs()
      t0 = performance.now()
    }
    const res = await fetch(new URL(pathname, url))
    body = await res.text()
  }
  return { cpu: (cpuMs() - cpu0) / runs, wall: (performance.now() - t0) / runs, body }
}

const floor = await measure('/noop', RUNS)
const draw = await measure('/draw', RUNS)
await mf.dispose()

const perImage = (draw.cpu - floor.cpu) / PER_REQUEST
console.log(`# captcha drawing cost in workerd (Miniflare), ${new Date().toISOString().slice(0, 10)}`)
console.log(`# ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} vCPU, Node ${process.version}, ${RUNS} requests × ${PER_REQUEST} pictures`)
console.log(`# load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)
console.log(`workerd CPU per picture (answer, raster, PNG, data URI): ${perImage.toFixed(2)} ms`)
console.log(`wall time per picture: ${((draw.wall - floor.wall) / PER_REQUEST).toFixed(2)} ms`)
console.log(`data URI: ${Math.round(Number(draw.body))} characters on average`)
