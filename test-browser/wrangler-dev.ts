import { chromium } from 'playwright-core'
// Starts `wrangler dev` for browser tests on a fixed port with a throw-away state
// directory and generated dev-only variables, and stops it afterwards.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import path from 'node:path'

const root = path.resolve(import.meta.dirname, '..')
const wrangler = path.join(root, 'node_modules', '.bin', 'wrangler')

/**
 * Port `offset` above UAP_TEST_PORT_BASE (default 8800), so two checkouts can run their
 * browser tests at once without fighting over ports.
 */
export function testPort(offset: number): number {
  return Number(process.env.UAP_TEST_PORT_BASE ?? 8800) + offset
}

export interface DevServer {
  url: string
  vars: Record<string, string>
  stop(): Promise<void>
}

export async function startWranglerDev(opts: { port: number; inspectorPort: number; vars?: Record<string, string> }): Promise<DevServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'uap-edge-browser-'))
  const url = `http://localhost:${opts.port}`
  const vars: Record<string, string> = {
    ENVIRONMENT: 'development',
    ISSUER: url,
    MASTER_KEY: `dev-${randomBytes(32).toString('base64url')}`,
    BOOTSTRAP_ADMIN_MOBILE: '+8613800000000',
    BOOTSTRAP_ADMIN_PASSWORD: `dev-${randomBytes(12).toString('base64url')}`,
    PASSWORD_HASH_PROFILE: 'test',
    SMS_PROVIDER: 'console',
    REGISTRATION_OPEN: 'true',
    ...opts.vars,
  }
  const envFile = path.join(dir, '.dev.vars')
  writeFileSync(envFile, Object.entries(vars).map(([k, v]) => `${k}="${v}"`).join('\n') + '\n', { mode: 0o600 })
  const childEnv = { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1' }

  const migrate = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', dir], { cwd: root, env: childEnv, encoding: 'utf8' })
  if (migrate.status !== 0) throw new Error(`migrations failed: ${migrate.stderr || migrate.stdout}`)

  const child: ChildProcess = spawn(
    wrangler,
    ['dev', '--local', '--ip', '127.0.0.1', '--port', String(opts.port), '--inspector-port', String(opts.inspectorPort), '--persist-to', dir, '--env-file', envFile, '--show-interactive-dev-session=false', '--log-level', 'warn'],
    { cwd: root, env: childEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let output = ''
  child.stdout!.on('data', (d) => (output += d))
  child.stderr!.on('data', (d) => (output += d))

  const stop = async () => {
    if (child.exitCode === null && child.pid) {
      try {
        process.kill(-child.pid, 'SIGTERM') // the process group: wrangler and its workerd
      } catch {}
      await new Promise((r) => {
        const t = setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL')
          } catch {}
          r(null)
        }, 5000)
        child.once('exit', () => {
          clearTimeout(t)
          r(null)
        })
      })
    }
    rmSync(dir, { recursive: true, force: true })
  }

  const deadline = Date.now() + 90_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode}):\n${output}`)
    try {
      const r = await fetch(`${url}/healthz`)
      if (r.status === 200) break
    } catch {}
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`wrangler dev did not become healthy:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 500))
  }
  return { url, vars, stop }
}

/** Debian's Chromium, headless, with the flags this closed network needs (no background connections). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
}

export interface CallOptions {
  token?: string
  json?: unknown
  form?: Record<string, string>
  basic?: [string, string]
  headers?: Record<string, string>
}

/** One API call to the Worker under test, as a program outside the browser makes it: JSON or form body, bearer or Basic credentials; the answer's JSON body. */
export async function callWorker(base: string, method: string, p: string, opts: CallOptions = {}) {
  const headers: Record<string, string> = { ...opts.headers }
  let body: string | undefined
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(opts.json)
  }
  if (opts.form) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded'
    body = new URLSearchParams(opts.form).toString()
  }
  if (opts.basic) headers.Authorization = 'Basic ' + Buffer.from(opts.basic.map(encodeURIComponent).join(':')).toString('base64')
  const r = await fetch(`${base}${p}`, { method, headers, body })
  return { status: r.status, data: (await r.json()) as any }
}
