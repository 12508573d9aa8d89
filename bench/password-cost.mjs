#!/usr/bin/env node
// `npm run bench:password`: what one password hash costs inside workerd, for the chosen
// scheme (argon2id through src/lib/password), the libraries it was chosen over, and every
// legacy format verifyPassword accepts.
//
// workerd freezes Date.now() and timers while a request runs (Spectre mitigation), so the
// Worker cannot time itself. Instead this script bundles a tiny Worker around the code under
// test (the .wasm files as WebAssembly.Module imports, as wrangler bundles them), runs it in
// Miniflare (the same workerd as `wrangler dev`) and measures from outside, two ways:
//  - CPU: the workerd process's own CPU time (/proc/<pid>/stat utime+stime, Linux) over
//    RUNS requests, minus the same for empty requests. Robust on a busy machine.
//  - latency: median wall time per request seen from Node, minus the empty-request median.
// It also reports memory (the shared argon2 instance's WebAssembly memory, workerd's RSS) and
// runs hashes concurrently in one isolate. Results feed docs/passwords.md.
import { Miniflare } from 'miniflare'
import { build } from 'esbuild'
import bcrypt from 'bcryptjs'
import os from 'node:os'
import { execFileSync } from 'node:child_process'
import { pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RUNS = Number(process.env.RUNS ?? 15)
const PW = 'correct horse battery staple'
const OWASP_ARGON2 = { m: 19_456, t: 2, p: 1 }

const entry = `
import { hashPassword, legacyHashFormat, verifyPassword } from './src/lib/password'
import { sharedInstanceBytes } from './src/lib/password/argon2id'
import { argon2id as nobleArgon2id } from '@noble/hashes/argon2.js'
import { scrypt as nobleScrypt } from '@noble/hashes/scrypt.js'
import { scryptSync } from 'node:crypto'
import { argon2id as edgeArgon2id, setWASMModules } from 'argon2-wasm-edge'
import edgeArgon2Wasm from 'argon2-wasm-edge/wasm/argon2.wasm'
import edgeBlake2bWasm from 'argon2-wasm-edge/wasm/blake2b.wasm'
import setupOpenpgpArgon2id from 'argon2id/lib/setup.js'
import openpgpSimd from 'argon2id/dist/simd.wasm'
import openpgpNoSimd from 'argon2id/dist/no-simd.wasm'
import { argon2id as hashWasmArgon2id } from 'hash-wasm'

setWASMModules({ argon2WASM: edgeArgon2Wasm, blake2bWASM: edgeBlake2bWasm })
const PW = ${JSON.stringify(PW)}
const salt = () => crypto.getRandomValues(new Uint8Array(16))
let openpgp
const openpgpMemory = () => openpgp?.memoryBytes ?? 0

export default {
  async fetch(req) {
    const u = new URL(req.url)
    const q = (k) => Number(u.searchParams.get(k))
    const a = () => ({ m: q('m'), t: q('t'), p: q('p') })
    try {
      switch (u.pathname) {
        case '/hash': return new Response(await hashPassword(PW, a()))
        case '/verify': {
          const h = u.searchParams.get('h')
          const format = legacyHashFormat(h)
          if (format.error) return new Response(format.error, { status: 422 })
          return new Response(String(await verifyPassword(u.searchParams.get('pw') ?? PW, h)))
        }
        case '/noble-argon2id': return new Response(String(nobleArgon2id(PW, salt(), { ...a(), dkLen: 32 }).length))
        case '/edge-argon2id': {
          const { m, t, p } = a()
          return new Response(await edgeArgon2id({ password: PW, salt: salt(), memorySize: m, iterations: t, parallelism: p, hashLength: 32, outputType: 'encoded' }))
        }
        case '/openpgp-argon2id': {
          if (!openpgp) {
            let memory
            const load = (mod) => async (importObject) => { memory = importObject.env.memory; return { instance: await WebAssembly.instantiate(mod, importObject) } }
            const hash = await setupOpenpgpArgon2id(load(openpgpSimd), load(openpgpNoSimd))
            openpgp = { hash, get memoryBytes() { return memory.buffer.byteLength } }
          }
          const { m, t, p } = a()
          return new Response(String(openpgp.hash({ password: new TextEncoder().encode(PW), salt: salt(), memorySize: m, passes: t, parallelism: p, tagLength: 32 }).length))
        }
        case '/hash-wasm-argon2id': {
          const { m, t, p } = a()
          return new Response(await hashWasmArgon2id({ password: PW, salt: salt(), memorySize: m, iterations: t, parallelism: p, hashLength: 32, outputType: 'encoded' }))
        }
        case '/noble-scrypt': return new Response(String(nobleScrypt(PW, salt(), { N: 2 ** q('ln'), r: q('r'), p: q('p'), dkLen: 32 }).length))
        case '/native-scrypt': return new Response(String(scryptSync(PW, salt(), 32, { N: 2 ** q('ln'), r: q('r'), p: q('p'), maxmem: 256 * 2 ** q('ln') * q('r') }).length))
        case '/webcrypto-pbkdf2': {
          const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(PW), 'PBKDF2', false, ['deriveBits'])
          const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: salt(), iterations: q('i') }, key, 256)
          return new Response(String(bits.byteLength))
        }
        case '/mem': return Response.json({ shared: sharedInstanceBytes(), openpgp: openpgpMemory() })
        default: return new Response('noop')
      }
    } catch (e) {
      return new Response(String(e), { status: 500 })
    }
  },
}`

// .wasm imports stay imports, each served to workerd as a CompiledWasm module, the way
// wrangler deploys them (and the only way workerd accepts WebAssembly).
const wasmFiles = new Map()
const wasmAsModule = {
  name: 'wasm-module',
  setup(b) {
    b.onResolve({ filter: /\.wasm$/ }, async (args) => {
      if (args.namespace === 'wasm-module') return
      const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, namespace: 'wasm-module' })
      const name = `wasm/${path.relative(path.join(root, 'node_modules'), resolved.path).replace(/[^A-Za-z0-9.]+/g, '_')}`
      wasmFiles.set(name, resolved.path)
      return { path: `./${name}`, external: true }
    })
  },
}
const { outputFiles } = await build({
  stdin: { contents: entry, resolveDir: root, loader: 'js' },
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  mainFields: ['module', 'main'],
  conditions: ['workerd', 'worker', 'import'],
  external: ['node:*', 'crypto'],
  plugins: [wasmAsModule],
  write: false,
  target: 'es2022',
})
const bundleDir = path.join(os.tmpdir(), 'uap-password-bench')
const mf = new Miniflare({
  modulesRoot: bundleDir,
  modules: [
    { type: 'ESModule', path: path.join(bundleDir, 'worker.js'), contents: outputFiles[0].text },
    ...[...wasmFiles].map(([name, file]) => ({ type: 'CompiledWasm', path: path.join(bundleDir, name), contents: readFileSync(file) })),
  ],
  compatibilityDate: '2026-04-01',
  compatibilityFlags: ['nodejs_compat'],
  host: '127.0.0.1',
  // the last port of this checkout's test range (UAP_TEST_PORT_BASE .. +49)
  port: Number(process.env.UAP_TEST_PORT_BASE ?? 8800) + 49,
})
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
function rssMiB() {
  if (!workerdPid) return NaN
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${workerdPid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

async function measure(pathname, runs = RUNS) {
  const times = []
  let cpu0 = 0
  for (let i = 0; i < runs + 2; i++) {
    if (i === 2) cpu0 = cpuMs() // first two warm the isolate and JIT
    const t = performance.now()
    const res = await fetch(new URL(pathname, url))
    const text = await res.text()
    if (!res.ok) return { error: text.slice(0, 200) }
    if (pathname.startsWith('/verify') && text !== 'true') return { error: `verify answered ${text}` }
    if (i >= 2) times.push(performance.now() - t)
  }
  const cpu = (cpuMs() - cpu0) / runs
  times.sort((a, b) => a - b)
  return { ms: times[Math.floor(times.length / 2)], min: times[0], max: times[times.length - 1], cpu }
}
const mem = async () => (await fetch(new URL('/mem', url))).json()
const qs = (o) => new URLSearchParams(Object.entries(o).map(([k, v]) => [k, String(v)])).toString()
const verifyPath = (h) => `/verify?${qs({ h })}`

// Stored hashes of PW in every legacy format, made here in Node by independent code.
const salt16 = randomBytes(16)
const b64 = (b) => Buffer.from(b).toString('base64').replace(/=+$/, '')
const scryptPhc = (ln, r, p) => `$scrypt$ln=${ln},r=${r},p=${p}$${b64(salt16)}$${b64(scryptSync(PW, salt16, 32, { N: 2 ** ln, r, p, maxmem: 256 * 2 ** ln * r }))}`
const django = (i) => `pbkdf2_sha256$${i}$${'s'.repeat(22)}$${pbkdf2Sync(PW, 's'.repeat(22), i, 32, 'sha256').toString('base64')}`
const sha256 = `sha256:${(await import('node:crypto')).createHash('sha256').update(PW).digest('hex')}`

const floor = await measure('/noop', 50)
const snapshots = []
const sections = []
const section = (title) => {
  const rows = []
  sections.push([title, rows])
  return async (label, pathname, runs) => rows.push([label, await measure(pathname, runs)])
}

{
  const row = section('argon2id m=19 MiB, t=2, p=1 (OWASP first choice): one hash, by implementation')
  await row('**this module** (@phi-ag/argon2 WebAssembly SIMD, own glue), hash', `/hash?${qs(OWASP_ARGON2)}`)
  const h = await (await fetch(new URL(`/hash?${qs(OWASP_ARGON2)}`, url))).text()
  await row('**this module**, verify (= the decoy for an unknown mobile)', verifyPath(h))
  await row('argon2-wasm-edge 1.0.23 (hash-wasm fork, WebAssembly, no SIMD)', `/edge-argon2id?${qs(OWASP_ARGON2)}`)
  await row('argon2id 1.0.1 (openpgpjs, WebAssembly SIMD)', `/openpgp-argon2id?${qs(OWASP_ARGON2)}`)
  await row('@noble/hashes 2.4.0 argon2id (pure JavaScript)', `/noble-argon2id?${qs(OWASP_ARGON2)}`, 5)
  await row('hash-wasm (compiles WebAssembly from bytes at run time)', `/hash-wasm-argon2id?${qs(OWASP_ARGON2)}`, 1)
  snapshots.push(['after the OWASP hashes above', await mem()])
}
{
  const row = section('the other OWASP argon2id rows, this module')
  for (const [m, t] of [[47_104, 1], [12_288, 3], [9_216, 4], [7_168, 5]]) await row(`argon2id m=${m / 1024} MiB t=${t} p=1`, `/hash?${qs({ m, t, p: 1 })}`)
  await row('argon2id m=1 MiB t=1 p=1 (test profile, not OWASP)', `/hash?${qs({ m: 1024, t: 1, p: 1 })}`)
  snapshots.push(['after the 46 MiB row (more than ours: a 65 MiB instance replaces the 20 MiB one)', await mem()])
}
{
  const row = section('scrypt (the previous scheme, OWASP N=2^13 r=8 p=10)')
  await row('@noble/hashes scrypt, hash (pure JavaScript; what hashed until now)', '/noble-scrypt?ln=13&r=8&p=10', 8)
  await row('node:crypto scryptSync (native BoringSSL), hash', '/native-scrypt?ln=13&r=8&p=10', 8)
}
{
  const row = section('legacy formats: verifyPassword on a stored hash made outside the Worker')
  await row('`$scrypt$ln=13,r=8,p=10` (ours until now; native scrypt)', verifyPath(scryptPhc(13, 8, 10)), 8)
  await row('`$scrypt$ln=16,r=8,p=1` (passlib default; native scrypt)', verifyPath(scryptPhc(16, 8, 1)), 8)
  await row('`$scrypt$ln=17,r=8,p=1` (OWASP 128 MiB row)', verifyPath(scryptPhc(17, 8, 1)), 1)
  for (const cost of [10, 12, 14]) await row(`bcrypt \`$2b$${cost}$\` (bcryptjs)`, verifyPath(bcrypt.hashSync(PW, cost)), cost > 11 ? 3 : RUNS)
  await row('Django `pbkdf2_sha256$100000$` (WebCrypto, native)', verifyPath(django(100_000)))
  for (const i of [600_000, 1_000_000, 1_200_000]) await row(`Django \`pbkdf2_sha256$${i}$\` (@noble/hashes, JavaScript)`, verifyPath(django(i)), 3)
  await row('`sha256:<hex>` (memberapi, WebCrypto digest)', verifyPath(sha256))
  for (const [m, t, p] of [[65_536, 3, 4], [65_536, 2, 1]]) {
    const h = `$argon2id$v=19$m=${m},t=${t},p=${p}$${b64(salt16)}$` // completed below with the noble reference tag
    const { argon2id } = await import('@noble/hashes/argon2.js')
    await row(`\`$argon2id$v=19$m=${m},t=${t},p=${p}$\` (imported)`, verifyPath(h + b64(argon2id(PW, salt16, { m, t, p, dkLen: 32 }))), 5)
  }
}
{
  const row = section('PBKDF2-HMAC-SHA256 through WebCrypto (what production allows)')
  await row('100,000 iterations (WebCrypto, native), the production maximum', '/webcrypto-pbkdf2?i=100000')
  await row('600,000 iterations (WebCrypto), refused in production, accepted by local workerd', '/webcrypto-pbkdf2?i=600000', 5)
}

// Memory: the shared instance grows to the largest hash it has run and is reused, and RSS
// stays flat; concurrent requests in one isolate all get the right answer.
const memory = []
{
  snapshots.push(['after the imported 64 MiB hashes', await mem()])
  const rss0 = rssMiB()
  const { argon2id } = await import('@noble/hashes/argon2.js')
  const big = `$argon2id$v=19$m=65536,t=1,p=1$${b64(salt16)}$${b64(argon2id(PW, salt16, { m: 65_536, t: 1, p: 1, dkLen: 32 }))}`
  const rss = []
  for (let i = 0; i < 20; i++) {
    await fetch(new URL(i % 2 ? verifyPath(big) : `/hash?${qs(OWASP_ARGON2)}`, url)).then((r) => r.text())
    if (i % 5 === 4) rss.push(rssMiB().toFixed(0))
  }
  snapshots.push(['after 20 more, alternating 64 MiB verifies and OWASP hashes', await mem()])
  for (const [when, m] of snapshots) memory.push(`shared argon2 instance ${when}: ${(m.shared / 2 ** 20).toFixed(1)} MiB of WebAssembly memory`)
  memory.push(`workerd RSS over those 20: ${rss0.toFixed(0)} MiB before, ${rss.join(', ')} MiB after every 5th`)
  memory.push(`openpgpjs argon2id instance: ${(snapshots.at(-1)[1].openpgp / 2 ** 20).toFixed(1)} MiB of WebAssembly memory`)
  const h = await (await fetch(new URL(`/hash?${qs(OWASP_ARGON2)}`, url))).text()
  const t = performance.now()
  const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => fetch(new URL(`/verify?${qs({ h, pw: i % 2 ? PW : 'wrong' })}`, url)).then((r) => r.text())))
  const ok = answers.every((a, i) => a === String(i % 2 === 1))
  memory.push(`8 concurrent verifies in one isolate: ${ok ? 'all answered correctly' : `WRONG: ${answers.join(',')}`} in ${(performance.now() - t).toFixed(0)} ms wall (they run one after another)`)
}
await mf.dispose()

const cpu = os.cpus()[0]?.model ?? 'unknown CPU'
console.log(`# password hash cost in workerd (Miniflare), ${new Date().toISOString().slice(0, 10)}`)
console.log(`# ${cpu}, ${os.cpus().length} vCPU, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${RUNS} runs unless fewer are shown`)
console.log(`# load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}; floor (empty request): ${floor.ms.toFixed(2)} ms latency, ${floor.cpu.toFixed(2)} ms workerd CPU`)
for (const [title, rows] of sections) {
  console.log(`\n## ${title}\n| hash | workerd CPU ms per hash | latency ms (median − floor) | latency min–max ms |`)
  console.log('| --- | ---: | ---: | ---: |')
  for (const [label, m] of rows) {
    if (m.error) console.log(`| ${label} | refused: ${m.error.replace(/\|/g, '/').replace(/\n/g, ' ')} | | |`)
    else console.log(`| ${label} | ${(m.cpu - floor.cpu).toFixed(1)} | ${(m.ms - floor.ms).toFixed(1)} | ${m.min.toFixed(1)}–${m.max.toFixed(1)} |`)
  }
}
console.log('\n## memory and concurrency')
for (const line of memory) console.log(`- ${line}`)
