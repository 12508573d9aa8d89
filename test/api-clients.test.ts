import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { adminToken, api, createUser, login } from './support/api'
import { createApp } from './support/apps'
import { createGroup, groupType } from './support/directory'
import { randomIp } from './support/browser'
import { sha256Hex } from '../src/lib/crypto'

// API clients (docs/api-clients.md): managed through the admin API, authenticated by
// authenticateApiClient. The dev route /api/v1/dev/api-client-whoami[/*] calls it and answers
// the principal, so these tests drive it with real headers, client IPs and paths.

const BASE = '/api/v1/admin/api-clients'
const WHOAMI = '/api/v1/dev/api-client-whoami'

interface Issued {
  api_client: { id: string; client_key: string; [k: string]: any }
  client_key: string
  api_key: string
}

async function create(body: Record<string, unknown> = {}) {
  return api(BASE, { method: 'POST', token: await adminToken(), json: { name: 'Test client', rights: ['users.read'], ...body } })
}

async function createClient(body: Record<string, unknown> = {}): Promise<Issued> {
  const r = await create(body)
  if (r.status !== 201) throw new Error(`create api client: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

async function admin(method: string, path: string, json?: unknown) {
  return api(`${BASE}${path}`, { method, json, token: await adminToken() })
}

type Call = { clientKey?: string; apiKey?: string; path?: string; ip?: string; origin?: string; method?: string }

/** One authenticated call as a machine would make it; every call from its own random IP unless told. */
function whoami(o: Call) {
  const headers: Record<string, string> = { 'CF-Connecting-IP': o.ip ?? randomIp() }
  if (o.clientKey !== undefined) headers['X-Client-Key'] = o.clientKey
  if (o.apiKey !== undefined) headers['X-API-Key'] = o.apiKey
  if (o.origin !== undefined) headers.Origin = o.origin
  return api(o.path ?? WHOAMI, { method: o.method ?? 'GET', headers })
}

const as = (c: Issued, o: Omit<Call, 'clientKey' | 'apiKey'> = {}) => whoami({ clientKey: c.client_key, apiKey: c.api_key, ...o })

async function row(id: string) {
  return env.DB.prepare('SELECT * FROM api_clients WHERE id = ?').bind(id).first<Record<string, unknown>>()
}

async function auditRows(where: string, ...binds: unknown[]) {
  const r = await env.DB.prepare(`SELECT * FROM audit_logs WHERE ${where} ORDER BY id`).bind(...binds).all<Record<string, any>>()
  return r.results.map((x) => ({ ...x, details: x.details ? JSON.parse(x.details) : null }) as Record<string, any>)
}

describe('creating an API client: the key is shown once, kept hashed', () => {
  it('create answers client_key and api_key once; get and list never show the key; D1 holds only its SHA-256', async () => {
    const r = await create({ name: 'Key once' })
    expect(r.status).toBe(201)
    expect(r.headers.get('Cache-Control')).toBe('no-store')
    const c = r.body as Issued
    expect(c.api_key).toMatch(/^ak_[A-Za-z0-9_-]{43}$/)
    expect(c.client_key).toMatch(/^ck_[0-9a-f]{32}$/)
    expect(c.api_client.client_key).toBe(c.client_key)
    expect(c.api_client).toMatchObject({ name: 'Key once', status: 'ACTIVE', expires_at: null, expired: false, rights: ['users.read'], scope: { groups: [], users: [], apps: [] }, allowlist: { ips: [], origins: [], paths: [] }, rate_limit_per_minute: 600, last_used_at: null })
    expect(c.api_client).not.toHaveProperty('api_key')
    expect(JSON.stringify(c.api_client)).not.toContain(c.api_key)

    const got = await admin('GET', `/${c.api_client.id}`)
    expect(got.status).toBe(200)
    expect(got.body.client_key).toBe(c.client_key)
    const listed = await admin('GET', `?q=${c.client_key}`)
    expect(listed.status).toBe(200)
    expect(listed.body.items.map((i: any) => i.id)).toEqual([c.api_client.id])
    for (const text of [JSON.stringify(got.body), JSON.stringify(listed.body)]) {
      expect(text).not.toContain(c.api_key)
      expect(text).not.toContain(await sha256Hex(c.api_key))
      expect(text).not.toContain('api_key')
    }

    const stored = (await row(c.api_client.id))!
    expect(stored.api_key_hash).toBe(await sha256Hex(c.api_key))
    expect(Object.values(stored).some((v) => typeof v === 'string' && v.includes(c.api_key))).toBe(false)
    expect(stored.created_by).toBe(got.body.created_by)
    expect(typeof stored.created_by).toBe('string')
  })

  it('the key authenticates: the principal is the client with one grant of its rights over its scope', async () => {
    const type = await groupType()
    const group = await createGroup(type, 'Sales')
    const user = await createUser()
    const app = await createApp()
    const c = await createClient({ rights: ['users.read', 'mappings.write'], scope: { groups: [group], users: [user.id], apps: [app.app_id] } })
    const r = await as(c)
    expect(r.status).toBe(200)
    expect(r.body).toEqual({
      kind: 'client',
      clientId: c.api_client.id,
      clientKey: c.client_key,
      grants: [{ rights: ['users.read', 'mappings.write'], scope: { groups: [group], users: [user.id], apps: [app.app_id] }, source: { type: 'api_client', id: c.api_client.id } }],
    })
    expect(r.headers.get('X-RateLimit-Limit')).toBe('600')
    expect(r.headers.get('X-RateLimit-Remaining')).toBe('599')
  })

  it('only admins manage API clients: no token 401, a plain user 403', async () => {
    expect((await api(BASE)).status).toBe(401)
    const u = await createUser()
    const t = (await login(u.mobile, u.password)).access_token
    const r = await api(BASE, { method: 'POST', token: t, json: { name: 'x', rights: ['users.read'] } })
    expect(r.status).toBe(403)
    expect((await api(BASE, { token: t })).status).toBe(403)
  })

  it('an unknown id is 404 on every route', async () => {
    const id = crypto.randomUUID()
    for (const [m, p, json] of [
      ['GET', `/${id}`],
      ['PATCH', `/${id}`, { name: 'x' }],
      ['POST', `/${id}/rotate`],
      ['POST', `/${id}/disable`],
      ['POST', `/${id}/enable`],
      ['POST', `/${id}/expire`],
    ] as const) {
      const r = await admin(m, p, json)
      expect(r.status, `${m} ${p}`).toBe(404)
      expect(r.body.error.code).toBe('not_found')
    }
  })
})

describe('validation: every bad input is a 400 naming the problem', () => {
  it('unknown rights, bad CIDRs, origins and path prefixes, limits, unknown fields', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ rights: ['users.read', 'root'] }, 'rights.1'],
      [{ rights: [] }, 'rights'],
      [{ rights: ['users.read', 'users.read'] }, 'rights'],
      [{ name: '' }, 'name'],
      [{ allowlist: { ips: ['10.0.0.1/8'] } }, 'allowlist.ips.0'],
      [{ allowlist: { ips: ['203.0.113.0/24', 'not-an-ip'] } }, 'allowlist.ips.1'],
      [{ allowlist: { ips: ['10.0.0.0/33'] } }, 'allowlist.ips.0'],
      [{ allowlist: { ips: ['2001:db8::1/32'] } }, 'allowlist.ips.0'],
      [{ allowlist: { ips: ['fe80::1%eth0'] } }, 'allowlist.ips.0'],
      [{ allowlist: { origins: ['https://ops.example.com/path'] } }, 'allowlist.origins.0'],
      [{ allowlist: { origins: ['ops.example.com'] } }, 'allowlist.origins.0'],
      [{ allowlist: { origins: ['ftp://ops.example.com'] } }, 'allowlist.origins.0'],
      [{ allowlist: { origins: ['null'] } }, 'allowlist.origins.0'],
      [{ allowlist: { paths: ['api/v1/admin'] } }, 'allowlist.paths.0'],
      [{ allowlist: { paths: ['/api/v1/../admin'] } }, 'allowlist.paths.0'],
      [{ allowlist: { paths: ['/api/v1/admin?x=1'] } }, 'allowlist.paths.0'],
      [{ allowlist: { paths: ['/api//v1'] } }, 'allowlist.paths.0'],
      [{ allowlist: { hosts: ['x'] } }, 'allowlist'],
      [{ allowlist: { ips: Array.from({ length: 51 }, (_, i) => `10.0.${i}.0/24`) } }, 'allowlist.ips'],
      [{ rate_limit_per_minute: 0 }, 'rate_limit_per_minute'],
      [{ rate_limit_per_minute: 60_001 }, 'rate_limit_per_minute'],
      [{ rate_limit_per_minute: 1.5 }, 'rate_limit_per_minute'],
      [{ expires_at: 'tomorrow' }, 'expires_at'],
      [{ scope: { groups: 'all' } }, 'scope.groups'],
      [{ scope: { teams: [] } }, 'scope'],
      [{ status: 'DISABLED' }, ''],
    ]
    for (const [body, path] of cases) {
      const r = await create(body)
      expect(r.status, JSON.stringify(body)).toBe(400)
      expect(r.body.error.code, JSON.stringify(body)).toBe('invalid_request')
      const issuePaths = r.body.error.details.issues.map((i: any) => i.path)
      expect(issuePaths, JSON.stringify(body)).toContain(path)
    }
    // the message says what is wrong with the entry
    const r = await create({ allowlist: { ips: ['10.0.0.1/8'] } })
    expect(r.body.error.message).toContain('the block is 10.0.0.0/8')
  })

  it('scope ids must exist: unknown group, user or app is a 400 naming the ids, and nothing is created', async () => {
    const type = await groupType()
    const group = await createGroup(type, 'Real')
    const user = await createUser()
    const app = await createApp()
    const before = (await env.DB.prepare('SELECT count(*) AS n FROM api_clients').first<{ n: number }>())!.n
    const ghost = crypto.randomUUID()
    const cases: [Record<string, unknown>, string, string][] = [
      [{ groups: [group, ghost] }, 'scope_group_unknown', 'ids'],
      [{ users: [user.id, ghost] }, 'scope_user_unknown', 'ids'],
      [{ apps: [app.app_id, 'app_0000000000000000'] }, 'scope_app_unknown', 'app_ids'],
      // a user id is not a group id
      [{ groups: [user.id] }, 'scope_group_unknown', 'ids'],
    ]
    for (const [scope, code, field] of cases) {
      const r = await create({ scope })
      expect(r.status, code).toBe(400)
      expect(r.body.error.code).toBe(code)
      expect(r.body.error.details[field].length).toBe(1)
    }
    expect((await env.DB.prepare('SELECT count(*) AS n FROM api_clients').first<{ n: number }>())!.n).toBe(before)
    // and on update
    const c = await createClient()
    const u = await admin('PATCH', `/${c.api_client.id}`, { scope: { users: [ghost] } })
    expect(u.status).toBe(400)
    expect(u.body.error.code).toBe('scope_user_unknown')
    expect((await admin('GET', `/${c.api_client.id}`)).body.scope).toEqual({ groups: [], users: [], apps: [] })
  })

  it('a scope id whose object was deleted later stays named and does not block other changes of the scope', async () => {
    const gone = await createApp()
    const kept = await createApp()
    const c = await createClient({ scope: { apps: [gone.app_id] } })
    expect((await api(`/api/v1/admin/apps/${gone.app_id}`, { method: 'DELETE', token: await adminToken() })).status).toBe(200)
    const u = await admin('PATCH', `/${c.api_client.id}`, { scope: { apps: [gone.app_id, kept.app_id] } })
    expect(u.status, JSON.stringify(u.body)).toBe(200)
    expect(u.body.scope.apps).toEqual([gone.app_id, kept.app_id])
    // a newly added id is still checked
    const ghost = await admin('PATCH', `/${c.api_client.id}`, { scope: { apps: [gone.app_id, 'app_0000000000000000'] } })
    expect(ghost.body.error.code).toBe('scope_app_unknown')
    expect(ghost.body.error.details.app_ids).toEqual(['app_0000000000000000'])
  })

  it('expires_at must be in the future (create and update)', async () => {
    const past = new Date(Date.now() - 1000).toISOString()
    const r = await create({ expires_at: past })
    expect(r.status).toBe(400)
    expect(r.body.error.code).toBe('expires_at_in_past')
    const c = await createClient()
    const u = await admin('PATCH', `/${c.api_client.id}`, { expires_at: past })
    expect(u.status).toBe(400)
    expect(u.body.error.code).toBe('expires_at_in_past')
    expect((await admin('PATCH', `/${c.api_client.id}`, {})).status).toBe(400)
  })

  it('allowlist entries are stored canonical, duplicates after canonicalisation dropped', async () => {
    const c = await createClient({
      allowlist: {
        ips: ['203.0.113.7', '203.0.113.7/32', '2001:DB8:0:0::/32', '::ffff:10.0.0.0/104'],
        origins: ['HTTPS://Ops.Example.com:443', 'http://localhost:8080/'],
        paths: ['/api/v1/admin/users/', '/api/v1/admin/users'],
      },
    })
    expect(c.api_client.allowlist).toEqual({ ips: ['203.0.113.7/32', '2001:db8::/32', '10.0.0.0/8'], origins: ['https://ops.example.com', 'http://localhost:8080'], paths: ['/api/v1/admin/users'] })
  })
})

describe('authentication: wrong key, unknown client, missing headers', () => {
  it('a wrong key and an unknown client key get the same 401; missing headers their own', async () => {
    const c = await createClient()
    const wrong = await whoami({ clientKey: c.client_key, apiKey: c.api_key.slice(0, -1) + (c.api_key.endsWith('A') ? 'B' : 'A') })
    const unknown = await whoami({ clientKey: 'ck_' + '0'.repeat(32), apiKey: c.api_key })
    const malformed = await whoami({ clientKey: 'ck_<script>', apiKey: c.api_key })
    const tooLong = await whoami({ clientKey: c.client_key, apiKey: c.api_key + 'x'.repeat(300) })
    for (const r of [wrong, unknown, malformed, tooLong]) {
      expect(r.status).toBe(401)
      expect(r.body.error.code).toBe('invalid_api_client')
      expect(r.body.error.message).toBe(wrong.body.error.message)
      expect(r.body.error.details).toBeUndefined()
    }
    for (const o of [{ clientKey: c.client_key }, { apiKey: c.api_key }, {}, { clientKey: '', apiKey: c.api_key }]) {
      const r = await whoami(o)
      expect(r.status).toBe(401)
      expect(r.body.error.code).toBe('api_client_credentials_missing')
    }
    // on the admin API itself too: an API key without its client key is an API client's call, not a missing bearer token
    for (const headers of [{ 'X-API-Key': c.api_key }, { 'X-Client-Key': c.client_key }] as Record<string, string>[]) {
      const r = await api('/api/v1/admin/users', { headers })
      expect(r.status).toBe(401)
      expect(r.body.error.code).toBe('api_client_credentials_missing')
    }
    // the right key still works
    expect((await as(c)).status).toBe(200)
  })

  it('a disabled or expired client is told so only once its key is proved', async () => {
    const c = await createClient()
    const wrong = { clientKey: c.client_key, apiKey: 'ak_' + 'x'.repeat(43) }
    expect((await admin('POST', `/${c.api_client.id}/disable`)).body.status).toBe('DISABLED')
    expect((await whoami(wrong)).body.error.code).toBe('invalid_api_client')
    const d = await as(c)
    expect(d.status).toBe(401)
    expect(d.body.error.code).toBe('api_client_disabled')
    expect((await admin('POST', `/${c.api_client.id}/enable`)).body.status).toBe('ACTIVE')
    expect((await as(c)).status).toBe(200)

    const e = await admin('POST', `/${c.api_client.id}/expire`)
    expect(e.status).toBe(200)
    expect(e.body.expired).toBe(true)
    expect(Date.parse(e.body.expires_at)).toBeLessThanOrEqual(Date.now())
    expect((await whoami(wrong)).body.error.code).toBe('invalid_api_client')
    const x = await as(c)
    expect(x.status).toBe(401)
    expect(x.body.error.code).toBe('api_client_expired')
    // enable does not undo an expiry; a later expires_at does
    expect((await admin('POST', `/${c.api_client.id}/enable`)).status).toBe(200)
    expect((await as(c)).body.error.code).toBe('api_client_expired')
    const later = new Date(Date.now() + 3600_000).toISOString()
    const p = await admin('PATCH', `/${c.api_client.id}`, { expires_at: later })
    expect(p.body).toMatchObject({ expired: false, expires_at: later })
    expect((await as(c)).status).toBe(200)
    // null removes the expiry
    expect((await admin('PATCH', `/${c.api_client.id}`, { expires_at: null })).body.expires_at).toBeNull()
    expect((await as(c)).status).toBe(200)
  })

  it('an expiry in the future is accepted until it passes', async () => {
    const c = await createClient({ expires_at: new Date(Date.now() + 60_000).toISOString() })
    expect(c.api_client.expired).toBe(false)
    expect((await as(c)).status).toBe(200)
    // time passes: the stored instant is now behind us (written straight to D1, the API refuses a past expires_at)
    await env.DB.prepare('UPDATE api_clients SET expires_at = ? WHERE id = ?').bind(Date.now() - 1, c.api_client.id).run()
    const r = await as(c)
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('api_client_expired')
  })

  it('rotate: the new key is shown once and works, the old one stops at once; the client key stays', async () => {
    const c = await createClient()
    expect((await as(c)).status).toBe(200)
    const r = await admin('POST', `/${c.api_client.id}/rotate`)
    expect(r.status).toBe(200)
    expect(r.headers.get('Cache-Control')).toBe('no-store')
    expect(r.body.client_key).toBe(c.client_key)
    expect(r.body.api_key).toMatch(/^ak_/)
    expect(r.body.api_key).not.toBe(c.api_key)
    const old = await as(c)
    expect(old.status).toBe(401)
    expect(old.body.error.code).toBe('invalid_api_client')
    expect((await whoami({ clientKey: c.client_key, apiKey: r.body.api_key })).status).toBe(200)
    expect((await row(c.api_client.id))!.api_key_hash).toBe(await sha256Hex(r.body.api_key))
    expect(JSON.stringify((await admin('GET', `/${c.api_client.id}`)).body)).not.toContain(r.body.api_key)
  })
})

describe('allowlists', () => {
  it('IP allowlist: IPv4 and IPv6 CIDRs, IPv4-mapped IPv6 clients', async () => {
    const c = await createClient({ allowlist: { ips: ['203.0.113.0/24', '2001:db8:abcd::/48'] } })
    for (const ip of ['203.0.113.9', '203.0.113.255', '::ffff:203.0.113.10', '2001:db8:abcd:1::5', '2001:db8:abcd:ffff:ffff:ffff:ffff:ffff']) {
      expect((await as(c, { ip })).status, ip).toBe(200)
    }
    for (const ip of ['198.51.100.1', '203.0.114.1', '::ffff:198.51.100.1', '2001:db8:abce::1', '::1', 'garbage']) {
      const r = await as(c, { ip })
      expect(r.status, ip).toBe(403)
      expect(r.body.error.code).toBe('api_client_ip_not_allowed')
    }
    // lifting the IP restriction (an empty list) leaves the other kinds alone
    await admin('PATCH', `/${c.api_client.id}`, { allowlist: { origins: ['https://ops.example.com'] } })
    expect((await as(c, { ip: '198.51.100.1' })).status).toBe(403)
    const lifted = await admin('PATCH', `/${c.api_client.id}`, { allowlist: { ips: [] } })
    expect(lifted.body.allowlist).toEqual({ ips: [], origins: ['https://ops.example.com'], paths: [] })
    expect((await as(c, { ip: '198.51.100.1' })).status).toBe(200)
  })

  it('a wrong key from a non-allowlisted IP is still the generic 401 (the allowlists are checked after the key)', async () => {
    const c = await createClient({ allowlist: { ips: ['203.0.113.0/24'] } })
    const r = await whoami({ clientKey: c.client_key, apiKey: 'ak_nope', ip: '198.51.100.1' })
    expect(r.status).toBe(401)
    expect(r.body.error.code).toBe('invalid_api_client')
  })

  it('origin allowlist: checked when an Origin header is sent; none sent (a machine) is allowed', async () => {
    const c = await createClient({ allowlist: { origins: ['https://ops.example.com', 'http://localhost:8080'] } })
    expect((await as(c, { origin: 'https://ops.example.com' })).status).toBe(200)
    expect((await as(c, { origin: 'http://localhost:8080' })).status).toBe(200)
    expect((await as(c, { origin: 'HTTPS://OPS.EXAMPLE.COM:443' })).status).toBe(200)
    expect((await as(c)).status).toBe(200)
    for (const origin of ['https://evil.example.com', 'http://ops.example.com', 'https://ops.example.com:8443', 'http://localhost:8081', 'null', 'https://ops.example.com.evil.example']) {
      const r = await as(c, { origin })
      expect(r.status, origin).toBe(403)
      expect(r.body.error.code).toBe('api_client_origin_not_allowed')
    }
    // without an origin list, any Origin
    const open = await createClient()
    expect((await as(open, { origin: 'https://anything.example' })).status).toBe(200)
  })

  it('path-prefix allowlist: matched at a segment boundary, on any method', async () => {
    const c = await createClient({ allowlist: { paths: [`${WHOAMI}/users`, `${WHOAMI}/apps/`] } })
    for (const path of [`${WHOAMI}/users`, `${WHOAMI}/users/42`, `${WHOAMI}/users/42/groups`, `${WHOAMI}/apps`, `${WHOAMI}/apps/app_1`]) {
      expect((await as(c, { path })).status, path).toBe(200)
    }
    expect((await as(c, { path: `${WHOAMI}/users/42`, method: 'POST' })).status).toBe(200)
    for (const path of [WHOAMI, `${WHOAMI}/users-export`, `${WHOAMI}/usersx/1`, `${WHOAMI}/groups`, `${WHOAMI}/Users`]) {
      const r = await as(c, { path })
      expect(r.status, path).toBe(403)
      expect(r.body.error.code).toBe('api_client_path_not_allowed')
    }
    // dot segments are resolved before routing: /users/../groups is /groups
    expect((await as(c, { path: `${WHOAMI}/users/../groups` })).status).toBe(403)
  })
})

describe('per-client rate limit (exact, RateLimiter Durable Object)', () => {
  it('limit 5, 8 concurrent calls: exactly 5 pass, 3 get 429 with Retry-After; another client is counted apart', async () => {
    const c = await createClient({ rate_limit_per_minute: 5 })
    const other = await createClient({ rate_limit_per_minute: 5 })
    const results = await Promise.all(Array.from({ length: 8 }, () => as(c)))
    expect(results.filter((r) => r.status === 200).length).toBe(5)
    const refused = results.filter((r) => r.status === 429)
    expect(refused.length).toBe(3)
    for (const r of refused) {
      expect(r.body.error.code).toBe('rate_limited')
      expect(Number(r.headers.get('Retry-After'))).toBeGreaterThan(0)
      expect(Number(r.headers.get('Retry-After'))).toBeLessThanOrEqual(60)
      expect(r.headers.get('X-RateLimit-Limit')).toBe('5')
      expect(r.headers.get('X-RateLimit-Remaining')).toBe('0')
    }
    expect((await as(other)).status).toBe(200)
    // raising the limit counts from the next call, in the same window
    await admin('PATCH', `/${c.api_client.id}`, { rate_limit_per_minute: 6 })
    expect((await as(c)).status).toBe(200)
    expect((await as(c)).status).toBe(429)
  })

  it('refused authentications do not spend the client its budget', async () => {
    const c = await createClient({ rate_limit_per_minute: 2, allowlist: { ips: ['203.0.113.0/24'] } })
    for (let i = 0; i < 3; i++) {
      expect((await whoami({ clientKey: c.client_key, apiKey: 'ak_wrong', ip: '203.0.113.1' })).status).toBe(401)
      expect((await as(c, { ip: '198.51.100.1' })).status).toBe(403)
    }
    expect((await as(c, { ip: '203.0.113.1' })).status).toBe(200)
    expect((await as(c, { ip: '203.0.113.1' })).status).toBe(200)
    expect((await as(c, { ip: '203.0.113.1' })).status).toBe(429)
  })
})

describe('last_used_at: recorded to the minute, not written on every call', () => {
  const lastUsed = async (id: string) => (await row(id))!.last_used_at as number | null
  const until = async (check: () => Promise<boolean>) => {
    for (let i = 0; i < 50 && !(await check()); i++) await new Promise((r) => setTimeout(r, 20))
  }

  it('the first use sets it; a use within the minute leaves it; a use after it moves it', async () => {
    const c = await createClient()
    expect(await lastUsed(c.api_client.id)).toBeNull()
    const before = Date.now()
    expect((await as(c)).status).toBe(200)
    await until(async () => (await lastUsed(c.api_client.id)) !== null)
    const first = (await lastUsed(c.api_client.id))!
    expect(first).toBeGreaterThanOrEqual(before)
    expect((await admin('GET', `/${c.api_client.id}`)).body.last_used_at).toBe(new Date(first).toISOString())

    // 30 s ago: within the minute, so the next calls write nothing
    const recent = Date.now() - 30_000
    await env.DB.prepare('UPDATE api_clients SET last_used_at = ? WHERE id = ?').bind(recent, c.api_client.id).run()
    for (let i = 0; i < 3; i++) expect((await as(c)).status).toBe(200)
    await new Promise((r) => setTimeout(r, 200))
    expect(await lastUsed(c.api_client.id)).toBe(recent)

    // 61 s ago: the next call records the use
    const old = Date.now() - 61_000
    await env.DB.prepare('UPDATE api_clients SET last_used_at = ? WHERE id = ?').bind(old, c.api_client.id).run()
    expect((await as(c)).status).toBe(200)
    await until(async () => (await lastUsed(c.api_client.id)) !== old)
    expect(await lastUsed(c.api_client.id)).toBeGreaterThan(old + 60_000)

    // a refused call is no use
    await admin('POST', `/${c.api_client.id}/disable`)
    await env.DB.prepare('UPDATE api_clients SET last_used_at = ? WHERE id = ?').bind(old, c.api_client.id).run()
    expect((await as(c)).status).toBe(401)
    await new Promise((r) => setTimeout(r, 200))
    expect(await lastUsed(c.api_client.id)).toBe(old)
  })
})

describe('audit', () => {
  it('every admin write is audited with the admin as actor, never with a key', async () => {
    const c = await createClient({ name: 'Audited' })
    const id = c.api_client.id
    await admin('PATCH', `/${id}`, { name: 'Audited 2', allowlist: { ips: ['10.0.0.0/8'] } })
    const rotated = (await admin('POST', `/${id}/rotate`)).body.api_key
    await admin('POST', `/${id}/disable`)
    await admin('POST', `/${id}/enable`)
    await admin('POST', `/${id}/expire`)
    const rows = await auditRows("target_type = 'api_client' AND target_id = ? AND action LIKE 'admin.%'", id)
    expect(rows.map((r) => r.action)).toEqual(['admin.api_client.create', 'admin.api_client.update', 'admin.api_client.rotate_key', 'admin.api_client.disable', 'admin.api_client.enable', 'admin.api_client.expire'])
    for (const r of rows) {
      expect(r.actor_type).toBe('admin')
      expect(r.actor_id).toBe(c.api_client.created_by)
      expect(r.request_id).toBeTruthy()
      const text = JSON.stringify(r)
      expect(text).not.toContain(c.api_key)
      expect(text).not.toContain(rotated)
    }
    expect(rows[0].details).toMatchObject({ client_key: c.client_key, name: 'Audited', rights: ['users.read'] })
    expect(rows[1].details).toEqual({ name: 'Audited 2', allowlist: { ips: ['10.0.0.0/8'] } })
    expect(rows[3].details).toEqual({ previous_status: 'ACTIVE' })
  })

  it('failed authentications are audited: each reason of a known client, once a minute per network', async () => {
    const c = await createClient({ allowlist: { ips: ['203.0.113.0/24'], origins: ['https://ops.example.com'], paths: [`${WHOAMI}/users`] } })
    const id = c.api_client.id
    const ip = `203.0.113.${1 + Math.floor(Math.random() * 250)}`
    await whoami({ clientKey: c.client_key, apiKey: 'ak_wrong', ip, path: `${WHOAMI}/users` })
    await whoami({ clientKey: c.client_key, apiKey: 'ak_wrong', ip, path: `${WHOAMI}/users` }) // same reason, same network: not again
    await as(c, { ip: '198.51.100.7', path: `${WHOAMI}/users` })
    await as(c, { ip, origin: 'https://evil.example.com', path: `${WHOAMI}/users` })
    await as(c, { ip, path: `${WHOAMI}/groups` })
    await admin('POST', `/${id}/disable`)
    await as(c, { ip, path: `${WHOAMI}/users` })
    await admin('POST', `/${id}/enable`)
    await admin('POST', `/${id}/expire`)
    await as(c, { ip, path: `${WHOAMI}/users` })
    const rows = await auditRows("action = 'api_client.auth_failed' AND target_id = ?", id)
    expect(rows.map((r) => r.details.reason)).toEqual(['wrong_key', 'ip_not_allowed', 'origin_not_allowed', 'path_not_allowed', 'disabled', 'expired'])
    for (const r of rows) {
      expect(r.actor_type).toBe('anonymous')
      expect(r.target_type).toBe('api_client')
      expect(r.details.client_key).toBe(c.client_key)
      expect(r.request_id).toBeTruthy()
    }
    expect(rows[1].ip).toBe('198.51.100.7')
    expect(rows[2].details.origin).toBe('https://evil.example.com')
    expect(rows[3].details.path).toBe(`${WHOAMI}/groups`)
    // another network's wrong key is audited again
    await whoami({ clientKey: c.client_key, apiKey: 'ak_wrong', ip: randomIp() })
    expect((await auditRows("action = 'api_client.auth_failed' AND target_id = ? AND json_extract(details, '$.reason') = 'wrong_key'", id)).length).toBe(2)
  })

  it('unknown client keys are audited once per 10 minutes per network (made-up keys buy no audit rows)', async () => {
    const ip = `198.18.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`
    for (let i = 0; i < 3; i++) {
      const r = await whoami({ clientKey: `ck_${crypto.randomUUID().replace(/-/g, '')}`, apiKey: 'ak_x', ip })
      expect(r.status).toBe(401)
    }
    await whoami({ clientKey: 'bad key!', apiKey: 'ak_x', ip })
    const rows = await auditRows("action = 'api_client.auth_failed' AND ip = ?", ip)
    expect(rows.length).toBe(1)
    expect(rows[0]).toMatchObject({ actor_type: 'anonymous', target_type: 'api_client', target_id: null })
    expect(rows[0].details.reason).toBe('unknown_client')
    expect(rows[0].details.client_key).toMatch(/^ck_[0-9a-f]{32}$/)
    // IPv6 counts by /64: another address of the same /64 is the same network
    const net = `2001:db8:${Math.floor(Math.random() * 65535).toString(16)}:1`
    await whoami({ clientKey: 'ck_unknown', apiKey: 'ak_x', ip: `${net}::1` })
    await whoami({ clientKey: 'ck_unknown', apiKey: 'ak_x', ip: `${net}::2` })
    expect((await auditRows("action = 'api_client.auth_failed' AND ip LIKE ?", `${net}::%`)).length).toBe(1)
  })
})

describe('list', () => {
  it('filters by name and status, pages newest first', async () => {
    const tag = crypto.randomUUID().slice(0, 8)
    const a = await createClient({ name: `List ${tag} a` })
    const b = await createClient({ name: `List ${tag} b` })
    await admin('POST', `/${a.api_client.id}/disable`)
    const all = await admin('GET', `?q=${tag}`)
    expect(all.body.total).toBe(2)
    expect(all.body.items.map((i: any) => i.id)).toEqual([b.api_client.id, a.api_client.id])
    const disabled = await admin('GET', `?q=${tag}&status=DISABLED`)
    expect(disabled.body.items.map((i: any) => i.id)).toEqual([a.api_client.id])
    const page2 = await admin('GET', `?q=${tag}&page=2&page_size=1`)
    expect(page2.body).toMatchObject({ page: 2, page_size: 1, total: 2 })
    expect(page2.body.items.map((i: any) => i.id)).toEqual([a.api_client.id])
    expect((await admin('GET', '?page_size=101')).status).toBe(400)
  })
})
