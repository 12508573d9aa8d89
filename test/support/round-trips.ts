// Storage round trips on the routes issue 14 gives budgets for, measured with
// test/support/storage.ts. `npm run bench` runs test/storage-counter.test.ts, which calls
// measureTargetRoutes(), and prints the table in docs/benchmarks.md ("Round trips per
// request"); test/round-trips.test.ts enforces the budgets.
import { createUser, login } from './api'
import { createApp, createOidcApp, mapUser } from './apps'
import { Browser } from './browser'
import { codeFlow } from './oidc'
import { signRequest } from '../../src/signing/client'
import { describeCall, measureStorage, type KindCounts } from './storage'

/** Issue 14's budgets: at most this many sequential storage stages per request. */
export const ROUND_TRIP_BUDGETS: Record<string, { stages: number; note: string }> = {
  refresh: { stages: 2, note: 'one read, one write batch' },
  'OIDC refresh': { stages: 2, note: 'one read, one write batch' },
  userinfo: { stages: 1, note: '' },
  introspection: { stages: 1, note: '' },
  'signed ping': { stages: 1, note: 'nonce, rate limits and the secret version from one Durable Object call, or an equally exact design' },
  // and no new Durable Object per ticket (RouteCount.newObjects = 0)
  'ticket exchange': { stages: 2, note: '' },
  'ticket verify': { stages: 2, note: '' },
}

export interface RouteCount {
  name: string
  route: string
  status: number
  calls: KindCounts
  stages: number
  background: { calls: KindCounts; stages: number }
  /** Durable Objects created by the request (calls on ids from newUniqueId) */
  newObjects: number
  /** `stage kind BINDING.op detail`, in call order (path, then background) */
  log: string[]
}

const BASIC = (id: string, secret: string) => 'Basic ' + btoa(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`)
const form = (fields: Record<string, string>, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
  body: new URLSearchParams(fields).toString(),
})
const json = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({ method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) })

async function signed(app: { app_id: string; app_secret: string }, method: string, path: string, body?: unknown): Promise<Request> {
  const url = `http://localhost${path}`
  const text = body === undefined ? undefined : JSON.stringify(body)
  const headers: Record<string, string> = await signRequest({ appId: app.app_id, appSecret: app.app_secret, method, url, body: text })
  if (text !== undefined) headers['Content-Type'] = 'application/json'
  return new Request(url, { method, headers, body: text })
}

/**
 * Measures one request built by `make` (called twice: the first request warms the isolate's
 * caches for the recording env and is discarded, the second is reported) and keeps the
 * response body for `then`, which refills whatever the request used up.
 */
async function measured(name: string, route: string, make: () => Promise<Request> | Request, then?: (body: any) => void): Promise<RouteCount> {
  let last: RouteCount | undefined
  for (let round = 0; round < 2; round++) {
    const m = await measureStorage(await make())
    const text = await m.response.text()
    let body: any = text
    try {
      body = JSON.parse(text)
    } catch {}
    if (m.response.status !== 200) throw new Error(`${name}: ${route} answered ${m.response.status} ${text.slice(0, 300)}`)
    then?.(body)
    last = {
      name,
      route,
      status: m.response.status,
      calls: m.calls,
      stages: m.stages,
      background: { calls: m.background.calls, stages: m.background.stages },
      newObjects: [...m.log, ...m.background.log].filter((c) => c.newObject).length,
      log: [...m.log.map(describeCall), ...m.background.log.map((c) => `after the response: ${describeCall(c)}`)],
    }
  }
  return last!
}

/** Today's calls and stages for every route with a budget (after one warm-up request each). */
export async function measureTargetRoutes(): Promise<RouteCount[]> {
  const out: RouteCount[] = []
  const user = await createUser({ name: 'Round trips' })

  // first-party refresh: every request spends a never-used token and keeps its successor
  let refresh = (await login(user.mobile, user.password)).refresh_token
  out.push(await measured('refresh', 'POST /api/v1/auth/refresh', () => new Request('http://localhost/api/v1/auth/refresh', json({ refresh_token: refresh })), (b) => (refresh = b.refresh_token)))

  // OIDC: a confidential client, the user mapped into it, tokens from the real code flow
  const rp = await createOidcApp({ app_name: 'Round-trip RP' })
  await mapUser(rp.app_id, user, { mappedKey: `rt.${user.id.slice(0, 8)}@rp.example.com` })
  const b = new Browser()
  await b.loginOnPage(user)
  const tokens = await codeFlow(b, rp, 'openid email offline_access')
  let oidcRefresh = tokens.refresh_token!
  let access = tokens.access_token
  const basic = { Authorization: BASIC(rp.app_id, rp.app_secret) }
  out.push(
    await measured(
      'OIDC refresh',
      'POST /oauth2/token (grant_type=refresh_token)',
      () => new Request('http://localhost/oauth2/token', form({ grant_type: 'refresh_token', refresh_token: oidcRefresh }, basic)),
      (b) => {
        oidcRefresh = b.refresh_token
        access = b.access_token
      },
    ),
  )
  out.push(await measured('userinfo', 'GET /oauth2/userinfo', () => new Request('http://localhost/oauth2/userinfo', { headers: { Authorization: `Bearer ${access}` } })))
  out.push(await measured('introspection', 'POST /oauth2/introspect (access token)', () => new Request('http://localhost/oauth2/introspect', form({ token: access }, basic))))

  out.push(...(await measurePartnerRoutes(user)))
  return out
}

/**
 * Signed partner calls and simple-SSO tickets: two SIMPLE_API apps, the source allowed to
 * exchange into the target, the user mapped in both (after one warm-up request each).
 */
export async function measurePartnerRoutes(user?: { id: string; mobile: string }): Promise<RouteCount[]> {
  const out: RouteCount[] = []
  const u = user ?? (await createUser({ name: 'Round trips' }))
  const target = await createApp({ app_name: 'Round-trip target', redirect_uris: ['https://target.example.com/sso/callback'] })
  const source = await createApp({ app_name: 'Round-trip source', redirect_uris: ['https://source.example.com/sso/callback'], sso_targets: [target.app_id] })
  await mapUser(source.app_id, u)
  await mapUser(target.app_id, u)
  out.push(await measured('signed ping', 'GET /api/v1/open/ping', () => signed(source, 'GET', '/api/v1/open/ping')))
  const exchangeBody = { target_app_id: target.app_id, user_mobile: u.mobile }
  const tickets: string[] = []
  out.push(await measured('ticket exchange', 'POST /api/v1/simple/ticket/exchange', () => signed(source, 'POST', '/api/v1/simple/ticket/exchange', exchangeBody), (b) => tickets.push(b.ticket)))
  out.push(await measured('ticket verify', 'POST /api/v1/simple/ticket/verify', () => signed(target, 'POST', '/api/v1/simple/ticket/verify', { ticket: tickets.shift() })))
  return out
}
