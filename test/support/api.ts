// Calling the Worker from a test: JSON API calls, signed partner calls, sign-in, users.
import { SELF, createExecutionContext, env, waitOnExecutionContext } from 'cloudflare:test'
import worker from '../../src/index'
import type { Env } from '../../src/env'
import { signRequest } from '../../src/signing/client'
import type { E164 } from '../../src/lib/mobile'

/** The Worker's origin in tests, which is also the OIDC issuer (ISSUER in vitest.config.mts). */
export const ISSUER = 'http://localhost'

/** The bootstrap admin of vitest.config.mts. */
export const ADMIN = { mobile: '+8613900000000', password: 'dev-bootstrap-admin-password' }

let counter = 0
/** A mobile number no other test uses. */
export function uniqueMobile(): E164 {
  counter++
  const n = (Date.now() % 1e6) * 1000 + (counter % 1000) + Math.floor(Math.random() * 1000) * 1e9
  return ('+86137' + String(n % 1e8).padStart(8, '0')) as E164
}

/** Status, headers and body (parsed as JSON when it is JSON, else the text) of a response. */
export async function readResponse(res: Response) {
  const text = await res.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, body }
}

/** A path on the Worker (or an absolute URL) as a URL string. */
export const url = (path: string) => (path.startsWith('/') ? ISSUER + path : path)

export type ApiInit = RequestInit & {
  /** sent as the JSON body */
  json?: unknown
  /** sent as `Authorization: Bearer` */
  token?: string
  /**
   * Variables changed for this one call: the Worker's fetch handler is then called in-process
   * with a fresh env object, so its configuration is parsed anew (and waitUntil work is awaited).
   */
  env?: Partial<Env>
}

/** One request to the Worker (SELF, or the handler with changed variables when `env` is given). */
export async function api(path: string, init: ApiInit = {}) {
  const { json, token, env: overrides, ...rest } = init
  const headers = new Headers(rest.headers)
  if (json !== undefined) headers.set('Content-Type', 'application/json')
  if (token) headers.set('Authorization', `Bearer ${token}`)
  const request = new Request(url(path), { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body })
  if (!overrides) return readResponse(await SELF.fetch(request))
  const ctx = createExecutionContext()
  const res = await worker.fetch(request, { ...env, ...overrides } as Env, ctx)
  await waitOnExecutionContext(ctx)
  return readResponse(res)
}

/** A request signed with an app's secret (docs/signing.md), as a partner app sends it. */
export async function signedApi(
  app: { app_id: string; app_secret: string },
  method: string,
  path: string,
  opts: { json?: unknown; rawBody?: string; headers?: Record<string, string>; timestamp?: number; nonce?: string } = {},
) {
  const target = url(path)
  const body = opts.rawBody ?? (opts.json === undefined ? undefined : JSON.stringify(opts.json))
  const sig = await signRequest({ appId: app.app_id, appSecret: app.app_secret, method, url: target, body, timestamp: opts.timestamp, nonce: opts.nonce })
  const headers: Record<string, string> = { ...sig, ...(body ? { 'Content-Type': 'application/json' } : {}), ...opts.headers }
  return readResponse(await SELF.fetch(target, { method, headers, body }))
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
export async function appLoginRequest(
  app: { app_id: string; app_secret: string },
  mobile: string,
  password: string,
  opts: { via?: 'basic' | 'signed'; extra?: Record<string, unknown>; headers?: Record<string, string> } = {},
) {
  const json = { mobile, password, app_id: app.app_id, ...opts.extra }
  if (opts.via === 'signed') return signedApi(app, 'POST', '/api/v1/auth/login', { json, headers: opts.headers })
  return api('/api/v1/auth/login', { method: 'POST', json, headers: { Authorization: 'Basic ' + btoa(`${app.app_id}:${app.app_secret}`), ...opts.headers } })
}

/** A successful login for an app (see appLoginRequest). */
export async function appLogin(app: { app_id: string; app_secret: string }, mobile: string, password: string, via: 'basic' | 'signed' = 'basic') {
  const r = await appLoginRequest(app, mobile, password, { via })
  if (r.status !== 200) throw new Error(`app login failed ${r.status} ${JSON.stringify(r.body)}`)
  return r.body as { access_token: string; refresh_token: string; expires_in: number; token_type: string }
}

let admin: { token: string; until: number } | undefined
/**
 * The bootstrap admin's access token, signed in once per test file and reused until a minute
 * before it expires: setup through the admin API then costs one request, not a sign-in each.
 */
export async function adminToken() {
  if (!admin || Date.now() > admin.until) {
    const t = await login(ADMIN.mobile, ADMIN.password)
    admin = { token: t.access_token, until: Date.now() + (t.expires_in - 60) * 1000 }
  }
  return admin.token
}

/** An admin API call that is setup, not the thing under test: anything but 2xx throws. */
export async function adminApi(method: string, path: string, json?: unknown) {
  const r = await api(path, { method, json, token: await adminToken() })
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

/** A user created through the admin API, with the password it signs in with. */
export async function createUser(opts: { mobile?: string; password?: string; name?: string } = {}) {
  const mobile = opts.mobile ?? uniqueMobile()
  const password = opts.password ?? 'user-password-123'
  const body = await adminApi('POST', '/api/v1/admin/users', { mobile, password, name: opts.name })
  return { id: body.id as string, mobile, password }
}

/** Sets a user's status through the admin API (disabling ends the user's sessions). */
export async function setUserStatus(userId: string, status: 'ACTIVE' | 'DISABLED') {
  await adminApi('PATCH', `/api/v1/admin/users/${userId}`, { status })
}

/** Audit entries through the admin API (GET /api/v1/admin/audit), newest first. */
export async function auditLog(filter: { target_id?: string; action?: string; limit?: number }) {
  const q = new URLSearchParams(Object.entries(filter).map(([k, v]) => [k, String(v)]))
  const body = await adminApi('GET', `/api/v1/admin/audit?${q}`)
  return body.items as { id: number; at: string; actor_type: string; actor_id: string | null; action: string; target_type: string | null; target_id: string | null; request_id: string | null; ip: string | null; details: any }[]
}
