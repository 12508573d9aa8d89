#!/usr/bin/env node
// `npm run dev`: first-run setup, then wrangler dev.
// 1. Generates a git-ignored .dev.vars with random dev-only secrets (prefixed "dev-",
//    which production refuses) and prints the bootstrap admin's credentials.
// 2. Applies D1 migrations to the local database under .wrangler/.
// 3. Starts `wrangler dev` (extra arguments are passed through, e.g. `npm run dev -- --port 9000`).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const devVars = path.join(root, '.dev.vars')
const wrangler = path.join(root, 'node_modules', '.bin', 'wrangler')
const b64url = (n) => randomBytes(n).toString('base64url')

export function ensureDevVars({ quiet = false } = {}) {
  if (!existsSync(devVars)) {
    const vars = {
      ENVIRONMENT: 'development',
      MASTER_KEY: `dev-${b64url(32)}`,
      BOOTSTRAP_ADMIN_MOBILE: '+8613800000000',
      BOOTSTRAP_ADMIN_PASSWORD: `dev-${b64url(12)}`,
      SMS_PROVIDER: 'console',
    }
    writeFileSync(devVars, Object.entries(vars).map(([k, v]) => `${k}="${v}"`).join('\n') + '\n', { mode: 0o600 })
    if (!quiet) {
      console.log('Created .dev.vars with fresh dev-only secrets (git-ignored; production refuses them).')
      console.log(`Bootstrap admin: mobile ${vars.BOOTSTRAP_ADMIN_MOBILE}  password ${vars.BOOTSTRAP_ADMIN_PASSWORD}`)
    }
  }
  return Object.fromEntries(
    readFileSync(devVars, 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => {
        const i = l.indexOf('=')
        return [l.slice(0, i).trim(), l.slice(i + 1).trim().replace(/^"|"$/g, '')]
      }),
  )
}

export function migrateLocal(extraArgs = []) {
  const r = spawnSync(wrangler, ['d1', 'migrations', 'apply', 'DB', '--local', ...extraArgs], { cwd: root, stdio: 'inherit', env: { ...process.env, CI: 'true' } })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const vars = ensureDevVars()
  console.log(`Admin sign-in: mobile ${vars.BOOTSTRAP_ADMIN_MOBILE} (password in .dev.vars)`)
  migrateLocal()
  const args = process.argv.slice(2)
  // On another port the issuer must follow, or discovery and token `iss` point at :8787.
  const port = args.find((a, i) => args[i - 1] === '--port') ?? args.find((a) => a.startsWith('--port='))?.slice(7)
  if (port && !args.some((a) => a.includes('ISSUER:') || a.includes('ISSUER='))) args.push('--var', `ISSUER:http://localhost:${port}`)
  // wrangler.toml says production; a .dev.vars written before it said so carries no ENVIRONMENT
  if (!vars.ENVIRONMENT && !args.some((a) => a.includes('ENVIRONMENT:') || a.includes('ENVIRONMENT='))) args.push('--var', 'ENVIRONMENT:development')
  const child = spawn(wrangler, ['dev', ...args], { cwd: root, stdio: 'inherit' })
  const stop = (sig) => child.kill(sig)
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  child.on('exit', (code) => process.exit(code ?? 0))
}
