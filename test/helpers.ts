import { SELF, env } from 'cloudflare:test'
import type { E164 } from '../src/lib/mobile'

export const ADMIN = { mobile: '+8613900000000', password: 'dev-bootstrap-admin-password' }

let counter = 0
/** A mobile number no other test uses. */
export function uniqueMobile(): E164 {
  counter++
  const n = (Date.now() % 1e6) * 1000 + (counter % 1000) + Math.floor(Math.random() * 1000) * 1e9
  return ('+86137' + String(n % 1e8).padStart(8, '0')) as E164
}

/** Status, headers and body (parsed as JSON when it is JSON) of a response. */
export async function readResponse(res: Response) {
  const text = await res.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, body }
}

export async function api(path: string, init: RequestInit & { json?: unknown; token?: string } = {}) {
  const headers = new Headers(init.headers)
  if (init.json !== undefined) headers.set('Content-Type', 'application/json')
  if (init.token) headers.set('Authorization', `Bearer ${init.token}`)
  const res = await SELF.fetch(`http://localhost${path}`, { ...init, headers, body: init.json !== undefined ? JSON.stringify(init.json) : init.body })
  return readResponse(res)
}

export async function login(mobile: string, password: string, extra: Record<string, unknown> = {}) {
  const r = await api('/api/v1/auth/login', { method: 'POST', json: { mobile, password, ...extra } })
  if (r.status !== 200) throw new Error(`login failed ${r.status} ${JSON.stringify(r.body)}`)
  return r.body as { access_token: string; refresh_token: string; expires_in: number; token_type: string }
}

/**
 * POST /api/v1/auth/login with app_id, authenticated as the app: HTTP Basic app_id:app_secret
 * (default) or signed like the /api/v1/open/* calls. Returns the raw answer.
 */
export async function appLoginRequest(app: { appId: string; secret: string }, mobile: string, password: string, opts: { via?: 'basic' | 'signed'; extra?: Record<string, unknown>; headers?: Record<string, string> } = {}) {
  const json = { mobile, password, app_id: app.appId, ...opts.extra }
  if (opts.via === 'signed') return signedApi(app, 'POST', '/api/v1/auth/login', { json, headers: opts.headers })
  return api('/api/v1/auth/login', { method: 'POST', json, headers: { Authorization: 'Basic ' + btoa(`${app.appId}:${app.secret}`), ...opts.headers } })
}

/** A successful login for an app (see appLoginRequest). */
export async function appLogin(app: { appId: string; secret: string }, mobile: string, password: string, via: 'basic' | 'signed' = 'basic') {
  const r = await appLoginRequest(app, mobile, password, { via })
  if (r.status !== 200) throw new Error(`app login failed ${r.status} ${JSON.stringify(r.body)}`)
  return r.body as { access_token: string; refresh_token: string; expires_in: number; token_type: string }
}

export async function adminToken() {
  return (await login(ADMIN.mobile, ADMIN.password)).access_token
}

export async function createUser(opts: { mobile?: string; password?: string; name?: string } = {}) {
  const mobile = opts.mobile ?? uniqueMobile()
  const password = opts.password ?? 'user-password-123'
  const r = await api('/api/v1/admin/users', { method: 'POST', token: await adminToken(), json: { mobile, password, name: opts.name } })
  if (r.status !== 201) throw new Error(`create user failed ${r.status} ${JSON.stringify(r.body)}`)
  return { id: r.body.id as string, mobile, password }
}

export { env }

import { createApplication, type NewApplicationInput } from '../src/apps/service'
import { signRequest } from '../src/signing/client'

/** Creates an application straight in D1 (returns its one-time credentials). */
export async function createApp(input: Partial<NewApplicationInput> = {}) {
  return createApplication(env, { appName: 'Test app', protocolType: 'SIMPLE_API', redirectUris: ['https://app.example.com/callback'], ...input })
}

/** A request signed with an app's secret (see docs/signing.md), sent to the Worker. */
export async function signedApi(
  app: { appId: string; secret: string },
  method: string,
  path: string,
  opts: { json?: unknown; headers?: Record<string, string>; timestamp?: number; nonce?: string } = {},
) {
  const url = `http://localhost${path}`
  const body = opts.json === undefined ? undefined : JSON.stringify(opts.json)
  const sig = await signRequest({ appId: app.appId, appSecret: app.secret, method, url, body, timestamp: opts.timestamp, nonce: opts.nonce })
  const headers: Record<string, string> = { ...sig, ...(body ? { 'Content-Type': 'application/json' } : {}), ...opts.headers }
  const res = await SELF.fetch(url, { method, headers, body })
  return readResponse(res)
}

/** Maps a user into an app straight in D1 (active unless isActive is false); returns the mapped key. */
export async function mapUser(appId: string, userId: string, opts: { mappedKey?: string; isActive?: boolean } = {}) {
  const mappedKey = opts.mappedKey ?? `user-${crypto.randomUUID().slice(0, 8)}`
  const now = Date.now()
  await env.DB.prepare('INSERT INTO app_user_mappings (id, app_id, user_id, mapped_key, is_active, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
    .bind(crypto.randomUUID(), appId, userId, mappedKey, opts.isActive === false ? 0 : 1, now, now)
    .run()
  return mappedKey
}
