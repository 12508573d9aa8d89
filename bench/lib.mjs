// Shared by bench/run.mjs and bench/scenarios/*.mjs: the Worker (wrangler's API, inspector
// off) and the peer OIDC provider on loopback, their CPU time from /proc, a small client for
// the admin API, request signing (docs/signing.md) and the simple-SSO world
// (two SIMPLE_API apps, a user, the user's mapping) seeded through the real admin API.
import { execFileSync, spawn } from 'node:child_process'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { createWriteStream, readdirSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

// ---------- ports ----------
/**
 * The ports the bench may listen on: BENCH_PORTS ("8950-8999" or "8791,8792,..."), by
 * default 8791-8799 and 8821-8829. Servers the bench does not address itself (the Worker's
 * own workerd behind wrangler's proxy, Miniflare's loopback) take OS-assigned ephemeral ports.
 */
export const PORTS = parsePorts(process.env.BENCH_PORTS) ?? [8791, 8792, 8793, 8794, 8795, 8796, 8797, 8798, 8799, 8821, 8822, 8823, 8824, 8825, 8826, 8827, 8828, 8829]
function parsePorts(spec) {
  if (!spec) return null
  const out = []
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part)
    if (!m) throw new Error(`BENCH_PORTS: "${part}" is neither a port nor a range like 8950-8999`)
    for (let p = Number(m[1]); p <= Number(m[2] ?? m[1]); p++) out.push(p)
  }
  return out
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const isFree = (port) =>
  new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })

const claimed = new Set()
/** n free ports from PORTS, not handed out before in this run (a server may not be listening yet). */
export async function freePorts(n) {
  const found = []
  for (const p of PORTS) if (found.length < n && !claimed.has(p) && (await isFree(p))) found.push(p)
  if (found.length < n) throw new Error(`need ${n} free ports among ${PORTS.length} (BENCH_PORTS ${process.env.BENCH_PORTS ?? 'unset'})`)
  for (const p of found) claimed.add(p)
  return found
}
const release = (...ports) => ports.forEach((p) => claimed.delete(p))

// ---------- CPU time from /proc ----------
/** Clock ticks per second of /proc/<pid>/stat's utime and stime. */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // fields after "(comm)": state ppid ... utime (14th field of the line) stime (15th)
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) }
  } catch {
    return null
  }
}
const readText = (file) => {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

/** `root` and every process below it: {pid, comm, args}. */
export function processTree(root) {
  const children = new Map()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const st = readStat(name)
    if (!st) continue
    if (!children.has(st.ppid)) children.set(st.ppid, [])
    children.get(st.ppid).push(Number(name))
  }
  const out = []
  const walk = (pid) => {
    out.push({ pid, comm: readText(`/proc/${pid}/comm`).trim(), args: readText(`/proc/${pid}/cmdline`).split('\0').filter(Boolean) })
    for (const c of children.get(pid) ?? []) walk(c)
  }
  walk(root)
  return out
}

/**
 * CPU time (ms, user + system, all threads) per role of the processes under `root`;
 * `roleOf(proc)` names each process's role. Subtract two readings to get a run's share.
 */
export function cpuByRole(root, roleOf) {
  const out = {}
  for (const proc of processTree(root)) {
    const st = readStat(proc.pid)
    if (!st) continue
    const role = roleOf(proc)
    out[role] = (out[role] ?? 0) + (st.ticks * 1000) / CLK_TCK
  }
  return out
}
export const cpuDelta = (before, after) => Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - (before[k] ?? 0)]))

function spawnLogged(command, args, { logFile, env }) {
  const log = createWriteStream(logFile)
  const child = spawn(command, args, { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  child.stdout.pipe(log)
  child.stderr.pipe(log)
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const killGroup = (sig) => {
    try {
      process.kill(-child.pid, sig)
    } catch {}
  }
  const onExit = () => killGroup('SIGKILL') // last resort if the bench dies early
  process.on('exit', onExit)
  const running = () => child.exitCode === null && child.signalCode === null
  return {
    child,
    running,
    /** SIGINT (what Ctrl-C sends), SIGKILL after 10 s. */
    async stop() {
      if (running()) {
        killGroup('SIGINT')
        const force = setTimeout(() => killGroup('SIGKILL'), 10_000)
        await exited
        clearTimeout(force)
      }
      // children outlive a parent that was killed: end the group
      killGroup('SIGKILL')
      process.off('exit', onExit)
    },
  }
}

async function waitHttp(url, proc, what, logFile, timeoutMs = 90_000) {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (!proc.running()) throw new Error(`${what} exited (${proc.child.exitCode}); see ${logFile}`)
    try {
      if ((await fetch(url)).ok) return
    } catch {}
    await sleep(500)
  }
  throw new Error(`${what} did not answer on ${url} within ${timeoutMs / 1000} s; see ${logFile}`)
}

// ---------- the Worker ----------
/**
 * Starts the Worker on 127.0.0.1 in its own process group, output to `logFile` (the Worker
 * logs every request). `vars` are plain-text variables on top of wrangler.toml and .dev.vars
 * (ISSUER defaults to the Worker's own address).
 * runner "direct" (default): bench/worker-direct.mjs, wrangler's bundle in Miniflare on a
 * socket of the Worker's own, without Miniflare's entry Worker and wrangler's proxy in front
 * (profiling falls back to "api"). runner "api": bench/worker-host.mjs, wrangler's
 * unstable_startWorker with the inspector off, behind wrangler's proxy and Miniflare's entry
 * Worker. runner "wrangler-dev": `wrangler dev` as a developer runs it (inspector
 * attached), to see what the inspector costs.
 * cpu() → CPU ms so far by role: worker (the workerd running the Worker and its local
 * bindings), proxy (wrangler's proxy workerd, which every request passes), wrangler (Node,
 * esbuild: logging, the inspector relay when attached).
 */
export async function startWorker({ persistTo, vars = {}, logFile, runner = 'direct', config, profile = false }) {
  if (profile && runner === 'direct') runner = 'api'
  const [port, inspectorPort] = await freePorts(runner === 'wrangler-dev' || profile ? 2 : 1)
  const base = `http://127.0.0.1:${port}`
  // the issuer follows the port (discovery, `iss`), as `npm run dev -- --port` does it
  // wrangler.toml says production; the bench runs the local development setup (.dev.vars)
  vars = { ENVIRONMENT: 'development', ISSUER: base, ...vars }
  const env = { CI: 'true', WRANGLER_SEND_METRICS: 'false' }
  let proc
  if (runner === 'wrangler-dev') {
    const args = ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort), '--persist-to', persistTo, '--show-interactive-dev-session=false']
    for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`)
    if (config) args.push('--config', path.join(root, config))
    proc = spawnLogged(path.join(root, 'node_modules', '.bin', 'wrangler'), args, { logFile, env })
  } else if (runner === 'api' || runner === 'direct') {
    const host = runner === 'api' ? 'worker-host.mjs' : 'worker-direct.mjs'
    proc = spawnLogged(process.execPath, [path.join(root, 'bench', host)], { logFile, env: { ...env, BENCH_WORKER: JSON.stringify({ port, persistTo, vars, config, inspectorPort: profile ? inspectorPort : undefined }) } })
  } else throw new Error(`BENCH_RUNNER must be "direct", "api" or "wrangler-dev", not "${runner}"`)
  // the proxy's workerd listens on the public port; the Worker's own workerd elsewhere
  const roleOf = (p) => (p.comm !== 'workerd' ? 'wrangler' : p.args.includes(`--socket-addr=entry=127.0.0.1:${port}`) ? 'proxy' : 'worker')
  return {
    base,
    port,
    runner,
    inspectorPort,
    waitReady: (probe = '/livez') => waitHttp(`${base}${probe}`, proc, runner === 'wrangler-dev' ? 'wrangler dev' : 'the bench worker host', logFile),
    cpu: () => cpuByRole(proc.child.pid, roleOf),
    processes: () => processTree(proc.child.pid).map((p) => ({ pid: p.pid, comm: p.comm, role: roleOf(p) })),
    /** Resolves once the ports are free. */
    async stop() {
      await proc.stop()
      const ports = inspectorPort ? [port, inspectorPort] : [port]
      for (let i = 0; i < 40 && !(await Promise.all(ports.map(isFree))).every(Boolean); i++) await sleep(250)
      release(...ports)
    },
  }
}

// ---------- the peer ----------
/**
 * panva's oidc-provider (bench/peer/oidc-provider.mjs) in its own Node process on 127.0.0.1,
 * with one confidential client whose credentials are returned. cpu() → { peer: ms }.
 */
export async function startPeer({ logFile, redirectUri }) {
  const [port] = await freePorts(1)
  const client = { id: 'bench-rp', secret: randomBytes(24).toString('base64url') }
  const proc = spawnLogged(process.execPath, [path.join(root, 'bench', 'peer', 'oidc-provider.mjs')], {
    logFile,
    env: { NODE_ENV: 'production', BENCH_PEER: JSON.stringify({ port, clientId: client.id, clientSecret: client.secret, redirectUri }) },
  })
  const base = `http://127.0.0.1:${port}`
  return {
    base,
    port,
    client,
    waitReady: () => waitHttp(`${base}/.well-known/openid-configuration`, proc, 'oidc-provider', logFile),
    cpu: () => cpuByRole(proc.child.pid, () => 'peer'),
    async stop() {
      await proc.stop()
      release(port)
    },
  }
}

// ---------- admin API ----------
/** `api(path, {method, json, token, headers})` → {status, body}, and admin helpers, for one Worker. */
export function apiClient(base, admin) {
  async function api(p, init = {}) {
    const headers = { ...(init.headers ?? {}) }
    if (init.json !== undefined) headers['content-type'] = 'application/json'
    if (init.token) headers.authorization = `Bearer ${init.token}`
    const res = await fetch(base + p, { method: init.method ?? 'GET', headers, body: init.json !== undefined ? JSON.stringify(init.json) : undefined })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : null }
  }
  const expect = (r, status, what) => {
    if (r.status !== status) throw new Error(`${what} failed: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body
  }
  const login = async (mobile, password) => expect(await api('/api/v1/auth/login', { method: 'POST', json: { mobile, password } }), 200, 'login')
  let adminAccess
  const adminToken = async () => (adminAccess ??= (await login(admin.mobile, admin.password)).access_token)
  return {
    api,
    login,
    adminToken,
    async createUser(name = 'bench user') {
      const mobile = '+86139' + String(Math.floor(Math.random() * 1e8)).padStart(8, '0')
      const password = `bench-${randomBytes(9).toString('base64url')}-pw`
      const body = expect(await api('/api/v1/admin/users', { method: 'POST', token: await adminToken(), json: { mobile, password, name } }), 201, 'create user')
      return { mobile, password, id: body.id }
    },
    /** POST /api/v1/admin/apps: {appId, secret, accessToken}. */
    async createApp(json) {
      const body = expect(await api('/api/v1/admin/apps', { method: 'POST', token: await adminToken(), json }), 201, `create app ${json.app_name}`)
      return { appId: body.app_id, secret: body.app_secret, accessToken: body.access_token }
    },
  }
}

// ---------- signing (docs/signing.md; the same lines as src/signing/canonical.ts) ----------
const rfc3986 = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase())
function canonicalQuery(search) {
  const pairs = []
  new URLSearchParams(search).forEach((v, k) => pairs.push([rfc3986(k), rfc3986(v)]))
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
  return pairs.map(([k, v]) => `${k}=${v}`).join('&')
}
const sha256Hex = (s) => createHash('sha256').update(s).digest('hex')

function signature({ appId, secret }, method, pathAndQuery, body, timestamp, nonce) {
  const q = pathAndQuery.indexOf('?')
  const p = q === -1 ? pathAndQuery : pathAndQuery.slice(0, q)
  const search = q === -1 ? '' : pathAndQuery.slice(q)
  const message = ['UAP-HMAC-SHA256', appId, method.toUpperCase(), p, canonicalQuery(search), timestamp, nonce, sha256Hex(body)].join('\n')
  return createHmac('sha256', secret).update(message).digest('hex')
}

/**
 * The four X-UAP-* headers for one request, synchronous (node:crypto) so autocannon's
 * setupRequest can sign every request afresh: current timestamp, unique nonce.
 */
export function signHeaders(app, method, pathAndQuery, body = '') {
  const timestamp = String(Math.floor(Date.now() / 1000))
  const nonce = randomBytes(16).toString('hex')
  return {
    'X-UAP-App-Id': app.appId,
    'X-UAP-Timestamp': timestamp,
    'X-UAP-Nonce': nonce,
    'X-UAP-Signature': signature(app, method, pathAndQuery, body, timestamp, nonce),
  }
}

// Self-check against the worked example in docs/signing.md (the signature is read from the
// doc, which test/signing.test.ts pins to the server's code), so a drift fails loudly here.
{
  const doc = readFileSync(path.join(root, 'docs', 'signing.md'), 'utf8')
  const expected = /X-UAP-Signature: ([0-9a-f]{64})/.exec(doc)?.[1]
  const got = signature(
    { appId: 'app_0123456789abcdef', secret: 'sk_worked_example_secret_never_use_it' },
    'POST',
    '/api/v1/simple/ticket/exchange?q=Li%20Lei&a=1&a=0',
    '{"target_app_id":"app_fedcba9876543210","user_mobile":"+8613800138000"}',
    '1767225600',
    'b5f1c0a4e9d84c2a9f1e7d3c6b2a8f40',
  )
  if (got !== expected) throw new Error(`bench/lib.mjs signing disagrees with docs/signing.md's worked example (${got} vs ${expected})`)
}

/** A signed JSON request with fetch → {status, body}. */
export async function signedFetch(base, app, method, p, json) {
  const body = json === undefined ? '' : JSON.stringify(json)
  const headers = signHeaders(app, method, p, body)
  if (json !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(base + p, { method, headers, body: json === undefined ? undefined : body })
  const text = await res.text()
  let parsed = text
  try {
    parsed = JSON.parse(text)
  } catch {}
  return { status: res.status, body: parsed }
}

/** Runs `count` calls of `fn(i)` with at most `concurrency` in flight, stopping early after `timeLimitMs`. */
export async function bounded(count, concurrency, fn, timeLimitMs = Infinity) {
  const deadline = Date.now() + timeLimitMs
  let next = 0
  const worker = async () => {
    while (next < count && Date.now() < deadline) await fn(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
}

// ---------- the simple-SSO world ----------
/**
 * Two SIMPLE_API apps with registered https callbacks, the target in the source's
 * `sso_targets`, a user, and the user's mapping in both apps (mapping sync with each app's
 * X-App-Access-Token), all through the admin and partner APIs. Seeded once per bench run
 * (kept in ctx.shared: the data sits on disk, so later wrangler passes over the same state
 * reuse it).
 */
export function ticketWorld(ctx) {
  ctx.shared.ticketWorld ??= (async () => {
    const tag = randomBytes(3).toString('hex')
    const app = (name, extra = {}) =>
      ctx.createApp({ app_name: `bench ${name} ${tag}`, protocol_type: 'SIMPLE_API', redirect_uris: [`https://bench-${name}.example.com/sso/callback`], ...extra })
    const target = await app('target')
    const source = await app('source', { sso_targets: [target.appId] })
    const user = await ctx.createUser('bench ticket user')
    for (const [name, a] of [['source', source], ['target', target]]) {
      const r = await ctx.api('/api/v1/apps/mapping/sync', {
        method: 'POST',
        headers: { 'X-App-Access-Token': a.accessToken },
        json: { items: [{ mobile: user.mobile, mapped_key: `bench.${tag}@${name}.example.com`, action: 'ADD' }] },
      })
      if (r.status !== 200 || r.body.results[0].status !== 'ok') throw new Error(`mapping sync failed: ${r.status} ${JSON.stringify(r.body)}`)
    }
    return { source, target, user }
  })()
  return ctx.shared.ticketWorld
}

export const EXCHANGE_PATH = '/api/v1/simple/ticket/exchange'
export const VERIFY_PATH = '/api/v1/simple/ticket/verify'

/** One exchange by fetch: the ticket, or null (status kept in `failures`). */
export async function exchangeTicket(ctx, world, failures = {}) {
  const r = await signedFetch(ctx.base, world.source, 'POST', EXCHANGE_PATH, { target_app_id: world.target.appId, user_mobile: world.user.mobile })
  if (r.status === 200) return r.body.ticket
  failures[r.status] = (failures[r.status] ?? 0) + 1
  return null
}
