import { describe, expect, it } from 'vitest'
import { createExecutionContext, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test'
import { Hono } from 'hono'
import type { AppEnv } from '../src/context'
import { simpleSsoRedirect } from '../src/tickets/sso'
import { env } from 'cloudflare:test'
import { api, createUser, setUserStatus, signedApi } from './support/api'
import { createApp, disableApp, mapUser, setAppColumnsInD1, updateMapping, type TestApp } from './support/apps'
import { Browser, inputValue } from './support/browser'
import { hitRateLimit, policyFor } from '../src/ratelimit'
import { consumeTicket, issueTicket, ticketObjectId, ticketShards, ticketTtlS, withTicket, locationHintFor } from '../src/tickets/service'
import { TICKET_RETAIN_MS } from '../src/tickets/durable-object'
import { sha256Hex } from '../src/lib/crypto'

const EXCHANGE = '/api/v1/simple/ticket/exchange'
const VERIFY = '/api/v1/simple/ticket/verify'
const TICKET_RE = /^tk_[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/

/** Two SIMPLE_API apps and a user mapped in the target. */
async function world(opts: { targetUris?: string[] } = {}) {
  const source = await createApp({ app_name: 'Source' })
  const target = await createApp({ app_name: 'Target', redirect_uris: opts.targetUris ?? ['https://target.example.com/sso/callback'] })
  const user = await createUser({ name: 'Ticket User' })
  const { mappingId, mappedKey } = await mapUser(target.app_id, user)
  return { source, target, user, mappingId, mappedKey }
}

const exchange = (from: TestApp, body: Record<string, unknown>) => signedApi(from, 'POST', EXCHANGE, { json: body })
const verify = (by: TestApp, ticket: string) => signedApi(by, 'POST', VERIFY, { json: { ticket } })

async function issued(w: Awaited<ReturnType<typeof world>>) {
  const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })
  expect(r.status, JSON.stringify(r.body)).toBe(200)
  return r.body.ticket as string
}

/** An app's audit rows as the actor (the audit API filters by action and target, not by actor: read D1). */
async function auditActions(actorId: string) {
  const rows = await env.DB.prepare('SELECT action, details FROM audit_logs WHERE actor_id = ? ORDER BY id').bind(actorId).all<{ action: string; details: string }>()
  return rows.results
}

/** Audit rows are written after the response (waitUntil): wait for them. */
async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 3000): Promise<T> {
  const until = Date.now() + ms
  for (;;) {
    const v = await read()
    if (ok(v) || Date.now() > until) return v
    await new Promise((r) => setTimeout(r, 25))
  }
}

describe('ticket exchange and redemption', () => {
  it('happy path: exchange returns a URL-safe ticket and redirect_url; the target app redeems it once', async () => {
    const w = await world()
    const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })
    expect(r.status).toBe(200)
    expect(r.headers.get('Cache-Control')).toBe('no-store')
    expect(r.body.ticket).toMatch(TICKET_RE)
    expect(r.body.expires_in).toBe(60)
    expect(r.body.redirect_url).toBe(`https://target.example.com/sso/callback?ticket=${r.body.ticket}`)

    const v = await verify(w.target, r.body.ticket)
    expect(v.status, JSON.stringify(v.body)).toBe(200)
    expect(v.body).toEqual({
      user: { mobile: w.user.mobile, name: 'Ticket User', mapped_key: w.mappedKey, status: 'ACTIVE' },
      source_app_id: w.source.app_id,
      issued_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    })
    const actions = await eventually(() => auditActions(w.target.app_id), (a) => a.some((x) => x.action === 'ticket.redeemed'))
    expect(actions.map((a) => a.action)).toContain('ticket.redeemed')
    expect((await auditActions(w.source.app_id)).map((a) => a.action)).toContain('ticket.issued')
  })

  it('accepts a national-format mobile and stores only a hash of the ticket', async () => {
    const w = await world()
    const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile.replace('+86', '') })
    expect(r.status).toBe(200)
    const stub = env.TICKET_VAULT.get(ticketObjectId(env, r.body.ticket)!)
    const stored = await runInDurableObject(stub, (_o, state) => state.storage.sql.exec('SELECT * FROM ticket').toArray())
    expect(stored.length).toBe(1)
    expect(JSON.stringify(stored)).not.toContain(r.body.ticket.split('.')[1])
    expect(stored[0].ticket_hash).toMatch(/^[0-9a-f]{64}$/)
    expect(stored[0]).toMatchObject({ target_app_id: w.target.app_id, source_app_id: w.source.app_id, user_id: w.user.id, mapped_key: w.mappedKey, redeemed_at: null })
  })

  it('appends ticket= to a callback that already has a query, before its fragment', async () => {
    const w = await world()
    // the admin API refuses a fragment in a callback; the ticket must still land before one
    await setAppColumnsInD1(w.target.app_id, { redirectUris: ['https://target.example.com/cb?from=uap&x=a%20b#top', 'https://target.example.com/other'] })
    const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })
    expect(r.body.redirect_url).toBe(`https://target.example.com/cb?from=uap&x=a%20b&ticket=${r.body.ticket}#top`)
    expect(withTicket('https://a.example/cb?', 'T')).toBe('https://a.example/cb?ticket=T')
    expect(withTicket('https://a.example/cb?a=1&', 'T')).toBe('https://a.example/cb?a=1&ticket=T')
    expect(withTicket('https://a.example/cb#f', 'T')).toBe('https://a.example/cb?ticket=T#f')
  })

  it('replay: a second redemption gets ticket_already_used', async () => {
    const w = await world()
    const ticket = await issued(w)
    expect((await verify(w.target, ticket)).status).toBe(200)
    const again = await verify(w.target, ticket)
    expect(again.status).toBe(409)
    expect(again.body.error.code).toBe('ticket_already_used')
  })

  it('another app cannot redeem it and does not consume it; the right app still can', async () => {
    const w = await world()
    const other = await createApp({ app_name: 'Other' })
    await mapUser(other.app_id, w.user)
    const ticket = await issued(w)
    for (const app of [other, w.source]) {
      const r = await verify(app, ticket)
      expect(r.status).toBe(403)
      expect(r.body.error.code).toBe('ticket_not_for_app')
    }
    expect((await verify(w.target, ticket)).status).toBe(200)
    // after it is used, a foreign app still learns nothing about its state
    expect((await verify(other, ticket)).body.error.code).toBe('ticket_not_for_app')
    const audit = await eventually(() => auditActions(other.app_id), (a) => a.length >= 2)
    expect(audit.filter((a) => a.action === 'ticket.redeem_refused').length).toBe(2)
  })

  it('expiry: ticket_expired after expires_at; the alarm purges the object later (then ticket_invalid)', async () => {
    const w = await world()
    const ticket = await issued(w)
    const stub = env.TICKET_VAULT.get(ticketObjectId(env, ticket)!)
    await runInDurableObject(stub, (_o, state) => state.storage.sql.exec('UPDATE ticket SET expires_at = ?', Date.now() - 1))
    const r = await verify(w.target, ticket)
    expect(r.status).toBe(410)
    expect(r.body.error.code).toBe('ticket_expired')

    // the alarm keeps the row while it is within the retention window ...
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    expect((await verify(w.target, ticket)).body.error.code).toBe('ticket_expired')
    // ... and deletes everything once it is past it
    await runInDurableObject(stub, (_o, state) => state.storage.sql.exec('UPDATE ticket SET expires_at = ?', Date.now() - TICKET_RETAIN_MS - 1))
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    const tables = await runInDurableObject(stub, (_o, state) => state.storage.sql.exec("SELECT name FROM sqlite_master WHERE name = 'ticket'").toArray())
    expect(tables).toEqual([])
    const gone = await verify(w.target, ticket)
    expect(gone.status).toBe(400)
    expect(gone.body.error.code).toBe('ticket_invalid')
  })

  it('unknown, malformed and forged tickets get ticket_invalid and do not touch the real ticket', async () => {
    const w = await world()
    const ticket = await issued(w)
    const [idPart] = ticket.slice(3).split('.')
    const forgedSecret = `tk_${idPart}.${'A'.repeat(43)}`
    for (const t of ['nope', 'tk_' + 'A'.repeat(43) + '.' + 'B'.repeat(43), forgedSecret, ticket + 'x']) {
      const r = await verify(w.target, t)
      expect(r.status, t).toBe(400)
      expect(r.body.error.code).toBe('ticket_invalid')
    }
    expect((await verify(w.target, ticket)).status).toBe(200)
    const empty = await signedApi(w.target, 'POST', VERIFY, { json: {} })
    expect(empty.status).toBe(400)
    expect(empty.body.error.code).toBe('invalid_request')
  })

  it('concurrent redemption of one ticket: exactly one of 10 succeeds', async () => {
    const w = await world()
    const ticket = await issued(w)
    const results = await Promise.all(Array.from({ length: 10 }, () => verify(w.target, ticket)))
    expect(results.filter((r) => r.status === 200).length).toBe(1)
    const losers = results.filter((r) => r.status !== 200)
    expect(losers.length).toBe(9)
    for (const r of losers) expect(r.body.error.code).toBe('ticket_already_used')
  })

  it('refuses a bad signature on exchange and on verify (and the ticket survives a forged verify)', async () => {
    const w = await world()
    const forged = await signedApi({ ...w.source, app_secret: 'sk_wrong' }, 'POST', EXCHANGE, { json: { target_app_id: w.target.app_id, user_mobile: w.user.mobile } })
    expect(forged.status).toBe(401)
    expect(forged.body.error.code).toBe('signature_invalid')
    const unsigned = await api(EXCHANGE, { method: 'POST', json: { target_app_id: w.target.app_id, user_mobile: w.user.mobile } })
    expect(unsigned.status).toBe(401)
    expect(unsigned.body.error.code).toBe('signature_missing')

    const ticket = await issued(w)
    const bad = await signedApi({ ...w.target, app_secret: 'sk_wrong' }, 'POST', VERIFY, { json: { ticket } })
    expect(bad.status).toBe(401)
    expect((await verify(w.target, ticket)).status).toBe(200)
  })

  it('rate limits exchanges per source app (ticket_exchange_app)', async () => {
    const w = await world()
    const { limit } = policyFor(env, 'ticket_exchange_app')
    await hitRateLimit(env, 'ticket_exchange_app', w.source.app_id, limit)
    const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })
    expect(r.status).toBe(429)
    expect(r.headers.get('Retry-After')).toBeTruthy()
  })
})

describe('exchange refusals', () => {
  const code = async (from: TestApp, body: Record<string, unknown>) => {
    const r = await exchange(from, body)
    return `${r.status} ${r.body.error?.code}`
  }

  it('unknown / disabled / OIDC / callback-less target app', async () => {
    const w = await world()
    expect(await code(w.source, { target_app_id: 'app_does_not_exist', user_mobile: w.user.mobile })).toBe('404 target_app_not_found')
    const oidc = await createApp({ protocol_type: 'OIDC' })
    await mapUser(oidc.app_id, w.user)
    expect(await code(w.source, { target_app_id: oidc.app_id, user_mobile: w.user.mobile })).toBe('400 target_app_not_simple_api')
    const noCallback = await createApp({ redirect_uris: [] })
    await mapUser(noCallback.app_id, w.user)
    expect(await code(w.source, { target_app_id: noCallback.app_id, user_mobile: w.user.mobile })).toBe('409 target_app_no_callback')
    await disableApp(w.target.app_id)
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })).toBe('403 target_app_disabled')
  })

  it('disabled source app', async () => {
    const w = await world()
    await disableApp(w.source.app_id)
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })).toBe('403 app_disabled')
  })

  it('unknown / disabled / unmapped user and disabled mapping, each with its own code, audited', async () => {
    const w = await world()
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: '+8613012345678' })).toBe('404 user_not_found')
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: 'not a phone' })).toBe('400 invalid_request')
    const unmapped = await createUser()
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: unmapped.mobile })).toBe('404 user_not_mapped')
    const inactive = await createUser()
    await mapUser(w.target.app_id, inactive, { isActive: false })
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: inactive.mobile })).toBe('403 mapping_disabled')
    await setUserStatus(w.user.id, 'DISABLED')
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })).toBe('403 user_disabled')
    const audit = await eventually(() => auditActions(w.source.app_id), (a) => a.filter((x) => x.action === 'ticket.exchange_refused').length >= 4)
    expect(audit.filter((a) => a.action === 'ticket.exchange_refused').map((a) => JSON.parse(a.details).code)).toEqual(['user_not_found', 'user_not_mapped', 'mapping_disabled', 'user_disabled'])
  })
})

describe('redemption re-checks the account', () => {
  it('user disabled after the exchange: refused, and the ticket is spent', async () => {
    const w = await world()
    const ticket = await issued(w)
    await setUserStatus(w.user.id, 'DISABLED')
    const r = await verify(w.target, ticket)
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('user_disabled')
    await setUserStatus(w.user.id, 'ACTIVE')
    expect((await verify(w.target, ticket)).body.error.code).toBe('ticket_already_used')
  })

  it('mapping disabled or re-keyed after the exchange', async () => {
    const w = await world()
    const t1 = await issued(w)
    const t2 = await issued(w)
    await updateMapping(w.target.app_id, w.mappingId, { is_active: false })
    expect((await verify(w.target, t1)).body.error.code).toBe('mapping_disabled')
    await updateMapping(w.target.app_id, w.mappingId, { is_active: true, mapped_key: 'someone-else' })
    expect((await verify(w.target, t2)).body.error.code).toBe('mapping_changed')
  })

  it('target app disabled after the exchange cannot redeem', async () => {
    const w = await world()
    const ticket = await issued(w)
    await disableApp(w.target.app_id)
    const r = await verify(w.target, ticket)
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('app_disabled')
  })
})

describe('no-interaction sign-in (/page/sso/simple, simpleSsoRedirect)', () => {
  /** A browser signed in on the hosted login page, and its session cookie. */
  async function browserSession(user: { mobile: string; password: string }) {
    const b = new Browser()
    await b.loginOnPage(user)
    return { b, cookie: `__Host-AUTH_SESSION_ID=${b.cookies.get('__Host-AUTH_SESSION_ID')}` }
  }
  const page = (appId: string, redirectUri: string, cookie?: string) =>
    api(`/page/sso/simple?${new URLSearchParams({ app_id: appId, redirect_uri: redirectUri })}`, { redirect: 'manual', headers: cookie ? { Cookie: cookie } : {} })

  it('with a session: 302 straight to the callback with a ticket the app can redeem (source UAP Edge)', async () => {
    const w = await world({ targetUris: ['https://target.example.com/a', 'https://target.example.com/b?x=1'] })
    const { cookie } = await browserSession(w.user)
    const r = await page(w.target.app_id, 'https://target.example.com/b?x=1', cookie)
    expect(r.status).toBe(302)
    const location = r.headers.get('Location')!
    expect(location).toMatch(/^https:\/\/target\.example\.com\/b\?x=1&ticket=tk_/)
    const ticket = new URL(location).searchParams.get('ticket')!
    const v = await verify(w.target, ticket)
    expect(v.status).toBe(200)
    expect(v.body.source_app_id).toBeNull()
    expect(v.body.user.mapped_key).toBe(w.mappedKey)
  })

  it('without a session (or with a revoked one): 302 to the login page with the same parameters', async () => {
    const w = await world()
    const uri = 'https://target.example.com/sso/callback'
    for (const cookie of [undefined, '__Host-AUTH_SESSION_ID=not-a-session']) {
      const r = await page(w.target.app_id, uri, cookie)
      expect(r.status).toBe(302)
      expect(r.headers.get('Location')).toBe(`/page/login?${new URLSearchParams({ app_id: w.target.app_id, redirect_uri: uri })}`)
    }
    const s = await browserSession(w.user)
    // signing out revokes the session; its old cookie comes back
    expect((await s.b.post('/page/logout', { csrf_token: s.b.csrf })).status).toBe(303)
    expect((await page(w.target.app_id, uri, s.cookie)).headers.get('Location')).toMatch(/^\/page\/login\?/)
  })

  it('never redirects to an unregistered redirect_uri, even with a session', async () => {
    const w = await world()
    const { cookie } = await browserSession(w.user)
    for (const uri of ['https://evil.example.com/cb', 'https://target.example.com/sso/callback?extra=1', 'https://target.example.com/sso/callback/']) {
      const r = await page(w.target.app_id, uri, cookie)
      expect(r.status, uri).toBe(400)
      expect(r.headers.get('Location')).toBeNull()
      expect(r.body.error.code).toBe('redirect_uri_not_registered')
    }
    const oidc = await createApp({ protocol_type: 'OIDC', redirect_uris: ['https://oidc.example.com/cb'] })
    expect((await page(oidc.app_id, 'https://oidc.example.com/cb', cookie)).body.error.code).toBe('invalid_app')
    expect((await page('app_unknown', 'https://oidc.example.com/cb', cookie)).status).toBe(400)
  })

  it('right after sign-in, the page passes the user (its new cookie is not on the request yet)', async () => {
    const w = await world()
    // simpleSsoRedirect takes the users row (as the sign-in code has it), not an API view
    const user = (await env.DB.prepare('SELECT * FROM users WHERE id = ?').bind(w.user.id).first<Record<string, unknown>>())!
    const page = new Hono<AppEnv>()
    page.get('/after-sign-in', async (c) => (await simpleSsoRedirect(c, { appId: w.target.app_id, redirectUri: 'https://target.example.com/sso/callback', user: { ...user, id: w.user.id, status: 'ACTIVE' } as never })) ?? c.text('form'))
    page.get('/no-user', async (c) => (await simpleSsoRedirect(c, { appId: w.target.app_id, redirectUri: 'https://target.example.com/sso/callback' })) ?? c.text('form'))
    const ctx = createExecutionContext()
    const r = await page.request('/after-sign-in', {}, env, ctx)
    expect(r.status).toBe(302)
    const ticket = new URL(r.headers.get('Location')!).searchParams.get('ticket')!
    expect((await verify(w.target, ticket)).status).toBe(200)
    expect(await (await page.request('/no-user', {}, env, ctx)).text()).toBe('form')
    await waitOnExecutionContext(ctx)
  })

  it('signed in but not mapped in the app: 403, no ticket', async () => {
    const w = await world()
    const stranger = await createUser()
    const { cookie } = await browserSession(stranger)
    const r = await page(w.target.app_id, 'https://target.example.com/sso/callback', cookie)
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('user_not_mapped')
  })
})

describe('sharded ticket objects (TICKET_SHARDS)', () => {
  it('many tickets share one object, each still strictly once; the alarm purges only expired rows', async () => {
    const sharded = { ...env, TICKET_SHARDS: '1' } as typeof env
    const base = { targetAppId: 'app_shard_target', sourceAppId: 'app_shard_source', userId: 'u1', mappedKey: 'k1' }
    const tickets = await Promise.all(Array.from({ length: 6 }, () => issueTicket(sharded, base).then((t) => t.ticket)))
    const ids = new Set(tickets.map((t) => ticketObjectId(sharded, t)!.toString()))
    expect(ids.size).toBe(1)
    const first = await Promise.all(tickets.flatMap((t) => Array.from({ length: 3 }, () => consumeTicket(sharded, t, base.targetAppId))))
    expect(first.filter((r) => r.ok).length).toBe(6)
    expect((await consumeTicket(sharded, tickets[0], 'app_other')).ok).toBe(false)

    const fresh = (await issueTicket(sharded, base)).ticket
    const stub = env.TICKET_VAULT.get(ticketObjectId(sharded, fresh)!)
    const count = () => runInDurableObject(stub, (_o, state) => state.storage.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM ticket').one().n)
    // every other ticket in this shard is long past its retention
    const freshHash = await sha256Hex(fresh)
    await runInDurableObject(stub, (_o, state) => state.storage.sql.exec('UPDATE ticket SET expires_at = ? WHERE ticket_hash != ?', Date.now() - TICKET_RETAIN_MS - 1, freshHash))
    expect(await count()).toBeGreaterThan(1)
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    expect(await count()).toBe(1)
    expect((await consumeTicket(sharded, fresh, base.targetAppId)).ok).toBe(true)
  })
})

describe('configuration and docs', () => {
  it('TICKET_TTL_S is validated; location hints parse', () => {
    expect(ticketTtlS({ TICKET_TTL_S: '120' } as never)).toBe(120)
    expect(ticketTtlS({} as never)).toBe(60)
    expect(() => ticketTtlS({ TICKET_TTL_S: '5' } as never)).toThrow(/TICKET_TTL_S/)
    expect(() => ticketTtlS({ TICKET_TTL_S: 'soon' } as never)).toThrow(/TICKET_TTL_S/)
    expect(ticketShards({} as never)).toBe(0)
    expect(ticketShards({ TICKET_SHARDS: '16' } as never)).toBe(16)
    expect(() => ticketShards({ TICKET_SHARDS: '-1' } as never)).toThrow(/TICKET_SHARDS/)
    const hints = { TICKET_LOCATION_HINTS: '{"app_a": "weur", "*": "apac"}' } as never
    expect(locationHintFor(hints, 'app_a')).toBe('weur')
    expect(locationHintFor(hints, 'app_b')).toBe('apac')
    expect(() => locationHintFor({ TICKET_LOCATION_HINTS: '{"x": "mars"}' } as never, 'x')).toThrow(/mars/)
  })

  it('both partner operations are in /docs/open with examples; the page is not', async () => {
    const doc = (await api('/docs/open/openapi.json')).body
    for (const p of [EXCHANGE, VERIFY]) {
      expect(doc.paths[p]?.post, p).toBeDefined()
      const sig = doc.paths[p].post.parameters.find((x: { name: string }) => x.name === 'X-UAP-Signature')
      expect(sig).toMatchObject({ in: 'header', required: true })
    }
    expect(doc.paths['/page/sso/simple']).toBeUndefined()
    expect(JSON.stringify(doc.components.schemas.TicketExchangeResponse)).toContain('example')
  })
})

describe('/page/login?app_id=&redirect_uri= for a SIMPLE_API app', () => {
  const loginUrl = (appId: string, redirectUri: string) => `/page/login?${new URLSearchParams({ app_id: appId, redirect_uri: redirectUri })}`

  it('without a session: the real sign-in form, then straight on to the app with a redeemable ticket', async () => {
    const w = await world()
    const uri = 'https://target.example.com/sso/callback'
    const b = new Browser()
    const form = await b.get(loginUrl(w.target.app_id, uri))
    expect(form.status).toBe(200)
    const returnTo = inputValue(form.html, 'return_to')!
    expect(returnTo).toBe(`/page/sso/simple?${new URLSearchParams({ app_id: w.target.app_id, redirect_uri: uri })}`)
    const signedIn = await b.post('/page/login', { mobile: w.user.mobile, password: w.user.password, csrf_token: inputValue(form.html, 'csrf_token')!, return_to: returnTo })
    expect(signedIn.status).toBe(303)
    expect(signedIn.headers.get('Location')).toBe(returnTo)
    const toApp = await b.get(returnTo)
    expect(toApp.status).toBe(302)
    const ticket = new URL(toApp.headers.get('Location')!).searchParams.get('ticket')!
    const v = await verify(w.target, ticket)
    expect(v.status).toBe(200)
    expect(v.body.user.mobile).toBe(w.user.mobile)
  })

  it('with a session: no form, a 302 to the app with a ticket', async () => {
    const w = await world()
    const uri = 'https://target.example.com/sso/callback'
    const b = new Browser()
    await b.loginOnPage(w.user)
    const r = await b.get(loginUrl(w.target.app_id, uri))
    expect(r.status).toBe(302)
    expect(r.headers.get('Location')).toMatch(/^https:\/\/target\.example\.com\/sso\/callback\?ticket=tk_/)
  })

  it('an unregistered redirect_uri gets an error page, never a redirect', async () => {
    const w = await world()
    const r = await new Browser().get(loginUrl(w.target.app_id, 'https://evil.example.com/cb'))
    expect(r.status).toBe(400)
    expect(r.headers.get('Location')).toBeNull()
    expect(r.html).toContain('redirect_uri is not registered')
  })
})
