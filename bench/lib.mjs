// Shared by bench/run.mjs and bench/scenarios/*.mjs: wrangler dev on loopback, a small
// client for the admin API, request signing (docs/signing.md) and the simple-SSO world
// (two SIMPLE_API apps, a user, the user's mapping) seeded through the real admin API.
import { spawn } from 'node:child_process'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { createWriteStream, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
/** The only ports the bench may listen on. */
export const PORTS = [8791, 8792, 8793, 8794, 8795, 8796, 8797, 8798, 8799, 8821, 8822, 8823, 8824, 8825, 8826, 8827, 8828, 8829]
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// ---------- wrangler dev ----------
const isFree = (port) =>
  new Promise((resolve) => {
    const s = createServer()
    s.once('error', () => resolve(false))
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)))
  })

export async function freePorts(n) {
  const found = []
  for (const p of PORTS) if (found.length < n && (await isFree(p))) found.push(p)
  if (found.length < n) throw new Error(`need ${n} free ports in 8791-8799 / 8821-8829`)
  return found
}

/**
 * Starts `wrangler dev` on 127.0.0.1 in its own process group (wrangler and its workerd),
 * output to `logFile` (the Worker logs every request). `vars` become `--var KEY:VALUE`.
 */
export async function startWrangler({ persistTo, vars = {}, logFile }) {
  const [port, inspectorPort] = await freePorts(2)
  const base = `http://127.0.0.1:${port}`
  const log = createWriteStream(logFile)
  const args = ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort), '--persist-to', persistTo, '--show-interactive-dev-session=false']
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`)
  const child = spawn(path.join(root, 'node_modules', '.bin', 'wrangler'), args, {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' },
  })
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
    base,
    port,
    async waitReady(timeoutMs = 90_000) {
      const until = Date.now() + timeoutMs
      while (Date.now() < until) {
        if (!running()) throw new Error(`wrangler dev exited (${child.exitCode}); see ${logFile}`)
        try {
          if ((await fetch(`${base}/livez`)).ok) return
        } catch {}
        await sleep(500)
      }
      throw new Error(`wrangler dev did not answer on ${base} within ${timeoutMs / 1000} s; see ${logFile}`)
    },
    /** SIGINT (what Ctrl-C sends; wrangler then stops workerd), SIGKILL after 10 s; resolves once the ports are free. */
    async stop() {
      if (running()) {
        killGroup('SIGINT')
        const force = setTimeout(() => killGroup('SIGKILL'), 10_000)
        await exited
        clearTimeout(force)
      }
      process.off('exit', onExit)
      for (let i = 0; i < 40 && !((await isFree(port)) && (await isFree(inspectorPort))); i++) await sleep(250)
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
 * Two SIMPLE_API apps with registered https callbacks, a user, and the user's mapping in
 * the target app (mapping sync with the target's X-App-Access-Token), all through the
 * admin and partner APIs. Seeded once per bench run (kept in ctx.shared: the data sits on
 * disk, so later wrangler passes over the same state reuse it).
 */
export function ticketWorld(ctx) {
  ctx.shared.ticketWorld ??= (async () => {
    const tag = randomBytes(3).toString('hex')
    const app = (name) => ctx.createApp({ app_name: `bench ${name} ${tag}`, protocol_type: 'SIMPLE_API', redirect_uris: [`https://bench-${name}.example.com/sso/callback`] })
    const source = await app('source')
    const target = await app('target')
    const user = await ctx.createUser('bench ticket user')
    const r = await ctx.api('/api/v1/apps/mapping/sync', {
      method: 'POST',
      headers: { 'X-App-Access-Token': target.accessToken },
      json: { items: [{ mobile: user.mobile, mapped_key: `bench.${tag}@target.example.com`, action: 'ADD' }] },
    })
    if (r.status !== 200 || r.body.results[0].status !== 'ok') throw new Error(`mapping sync failed: ${r.status} ${JSON.stringify(r.body)}`)
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
