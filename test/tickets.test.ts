import { describe, expect, it } from 'vitest'
import { createExecutionContext, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from 'cloudflare:test'
import { Hono } from 'hono'
import type { AppEnv } from '../src/context'
import { simpleSsoRedirect } from '../src/tickets/sso'
import { SELF, env } from 'cloudflare:test'
import { adminToken, api, createUser, readResponse, setUserStatus, signedApi, uniqueMobile } from './support/api'
import { createApp, disableApp, mapUser, setAppColumnsInD1, updateMapping, type TestApp } from './support/apps'
import { signRequest } from '../src/signing/client'
import { policyFor } from '../src/ratelimit'
import { issueTicket, ticketTarget, ticketTtlS, ticketUser, withTicket } from '../src/tickets/service'
import { TICKET_RETAIN_MS } from '../src/tickets/store'
import { appGate } from '../src/signing/gate'
import { sha256Hex } from '../src/lib/crypto'
import { getDb } from '../src/db'
import { auditStatement } from '../src/audit/service'
import { Browser, inputValue } from './support/browser'

const EXCHANGE = '/api/v1/simple/ticket/exchange'
const VERIFY = '/api/v1/simple/ticket/verify'
const TICKET_RE = /^tk_[A-Za-z0-9_-]{1,86}\.[A-Za-z0-9_-]{38,200}\.[A-Za-z0-9_-]{43}$/

/** Two SIMPLE_API apps, the source allowed to exchange into the target, and a user mapped in both. */
async function world(opts: { targetUris?: string[] } = {}) {
  const target = await createApp({ app_name: 'Target', redirect_uris: opts.targetUris ?? ['https://target.example.com/sso/callback'] })
  const source = await createApp({ app_name: 'Source', sso_targets: [target.app_id] })
  const user = await createUser({ name: 'Ticket User' })
  const { mappingId, mappedKey } = await mapUser(target.app_id, user)
  await mapUser(source.app_id, user)
  return { source, target, user, mappingId, mappedKey }
}

/** The target app's AppGate object, where its tickets live. */
const gateOf = (app: TestApp) => appGate(env, app.app_id)
const ticketRows = (app: TestApp) =>
  runInDurableObject(gateOf(app), (_o, state) =>
    state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'ticket'").toArray().length ? state.storage.sql.exec('SELECT * FROM ticket').toArray() : [],
  )

const exchange = (from: TestApp, body: Record<string, unknown>) => signedApi(from, 'POST', EXCHANGE, { json: body })
const verify = (by: TestApp, ticket: string) => signedApi(by, 'POST', VERIFY, { json: { ticket } })

async function issued(w: Awaited<ReturnType<typeof world>>) {
  const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })
  expect(r.status, JSON.stringify(r.body)).toBe(200)
  return r.body.ticket as string
}

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
      state: null,
      issued_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    })
    const actions = await eventually(() => auditActions(w.target.app_id), (a) => a.some((x) => x.action === 'ticket.redeemed'))
    expect(actions.map((a) => a.action)).toContain('ticket.redeemed')
    expect((await auditActions(w.source.app_id)).map((a) => a.action)).toContain('ticket.issued')
  })

  it('verify answers the name the target synced for its mapping, else the user\'s own (docs/tickets.md)', async () => {
    const w = await world()
    await updateMapping(w.target.app_id, w.mappingId, { name: 'L. Lei (CRM)' })
    const named = await verify(w.target, await issued(w))
    expect(named.body.user.name).toBe('L. Lei (CRM)')
    await updateMapping(w.target.app_id, w.mappingId, { name: null })
    expect((await verify(w.target, await issued(w))).body.user.name).toBe('Ticket User')
  })

  it('a verify body that is not JSON or has no ticket gets malformed_json / invalid_request, as docs/tickets.md lists', async () => {
    const w = await world()
    const raw = await signedApi(w.target, 'POST', VERIFY, { headers: { 'Content-Type': 'application/json' }, rawBody: '{"ticket":' })
    expect(raw.status).toBe(400)
    expect(raw.body.error.code).toBe('malformed_json')
    const none = await signedApi(w.target, 'POST', VERIFY, { json: { nope: 1 } })
    expect(none.status).toBe(400)
    expect(none.body.error.code).toBe('invalid_request')
    const ex = await signedApi(w.source, 'POST', EXCHANGE, { headers: { 'Content-Type': 'application/json' }, rawBody: 'not json' })
    expect(ex.body.error.code).toBe('malformed_json')
  })

  it('a verify whose Content-Type is not JSON is refused with invalid_request and leaves the ticket unspent (docs/tickets.md)', async () => {
    const w = await world()
    const ticket = await issued(w)
    const body = JSON.stringify({ ticket })
    // the last four look like JSON to a split on ';' but not to @hono/zod-openapi's media-type gate
    const refused = ['application/x-www-form-urlencoded', 'text/plain', 'application/json;', 'application/json ;charset=utf-8', 'application/json; charset', 'application/vnd.x_1+json']
    for (const headers of refused.map((ct) => ({ 'Content-Type': ct }))) {
      const r = await signedApi(w.target, 'POST', VERIFY, { headers, rawBody: body })
      expect(r.status, JSON.stringify(headers)).toBe(400)
      expect(r.body.error.code).toBe('invalid_request')
    }
    const ok = await signedApi(w.target, 'POST', VERIFY, { headers: { 'Content-Type': 'application/json; charset=utf-8' }, rawBody: body })
    expect(ok.status, JSON.stringify(ok.body)).toBe(200)
    expect(ok.body.user.mobile).toBe(w.user.mobile)
  })

  it('accepts a national-format mobile and stores only a hash of the ticket', async () => {
    const w = await world()
    const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile.replace('+86', '') })
    expect(r.status).toBe(200)
    expect(ticketTarget(r.body.ticket)).toBe(w.target.app_id)
    const stored = await ticketRows(w.target)
    expect(stored.length).toBe(1)
    expect(JSON.stringify(stored)).not.toContain(r.body.ticket.split('.')[2])
    // the user travels sealed: neither the id nor anything of the user is readable in the ticket
    expect(r.body.ticket).not.toContain(w.user.id)
    expect(atob(r.body.ticket.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).not.toContain(w.user.id)
    expect(await ticketUser(env, r.body.ticket)).toBe(w.user.id)
    expect(stored[0].ticket_hash).toMatch(/^[0-9a-f]{64}$/)
    expect(stored[0]).toMatchObject({ target_app_id: w.target.app_id, source_app_id: w.source.app_id, user_id: w.user.id, mapped_key: w.mappedKey, state: null, redeemed_at: null })
  })

  it('appends ticket= to a callback that already has a query (and before a fragment, which registration refuses anyway)', async () => {
    const w = await world({ targetUris: ['https://target.example.com/cb?from=uap&x=a%20b', 'https://target.example.com/other'] })
    const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })
    expect(r.body.redirect_url).toBe(`https://target.example.com/cb?from=uap&x=a%20b&ticket=${r.body.ticket}`)
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

  it('expiry: ticket_expired after expires_at; the alarm purges the row later (then ticket_invalid)', async () => {
    const w = await world()
    const ticket = await issued(w)
    const stub = gateOf(w.target)
    await runInDurableObject(stub, (_o, state) => state.storage.sql.exec('UPDATE ticket SET expires_at = ?', Date.now() - 1))
    const r = await verify(w.target, ticket)
    expect(r.status).toBe(410)
    expect(r.body.error.code).toBe('ticket_expired')

    // the alarm keeps the row while it is within the retention window ...
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    expect((await verify(w.target, ticket)).body.error.code).toBe('ticket_expired')
    // ... and deletes it once it is past it
    await runInDurableObject(stub, (_o, state) => state.storage.sql.exec('UPDATE ticket SET expires_at = ?', Date.now() - TICKET_RETAIN_MS - 1))
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    expect(await ticketRows(w.target)).toEqual([])
    const gone = await verify(w.target, ticket)
    expect(gone.status).toBe(400)
    expect(gone.body.error.code).toBe('ticket_invalid')
  })

  it('unknown, malformed and forged tickets get ticket_invalid and do not touch the real ticket', async () => {
    const w = await world()
    const ticket = await issued(w)
    const [idPart, userPart] = ticket.slice(3).split('.')
    const forgedSecret = `tk_${idPart}.${userPart}.${'A'.repeat(43)}`
    // the sealed user of another ticket (another user, same target) in this one: the hash no longer matches
    const other = await createUser()
    await mapUser(w.target.app_id, other)
    await mapUser(w.source.app_id, other)
    const otherTicket = (await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: other.mobile })).body.ticket as string
    const swapped = `tk_${idPart}.${otherTicket.split('.')[1]}.${ticket.split('.')[2]}`
    // a user part of 4n + 1 characters is no base64url at all (it used to escape as a 500)
    const unreadable = `tk_${idPart}.${'B'.repeat(25)}.${ticket.split('.')[2]}`
    for (const t of ['nope', 'tk_' + 'A'.repeat(43) + '.' + 'B'.repeat(60) + '.' + 'B'.repeat(43), forgedSecret, swapped, ticket + 'x', unreadable]) {
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
    await issued(w)
    // the window is counted in the source app's AppGate: fill it up
    await runInDurableObject(gateOf(w.source), (_o, state) => state.storage.sql.exec("UPDATE rate_window SET count = ? WHERE policy = 'ticket_exchange_app'", limit))
    const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })
    expect(r.status).toBe(429)
    expect(r.headers.get('Retry-After')).toBeTruthy()
    expect(r.body.error.details).toEqual({ policy: 'ticket_exchange_app', limit })
    // other signed calls of the app are not exchanges
    expect((await signedApi(w.source, 'GET', '/api/v1/open/ping')).status).toBe(200)
  })
})

describe('exchange refusals', () => {
  const code = async (from: TestApp, body: Record<string, unknown>) => {
    const r = await exchange(from, body)
    return `${r.status} ${r.body.error?.code}`
  }

  it('unknown / disabled / OIDC / callback-less / partner-API-off target app (each listed in sso_targets)', async () => {
    const w = await world()
    const oidc = await createApp({ protocol_type: 'OIDC' })
    await mapUser(oidc.app_id, w.user)
    const noCallback = await createApp({ redirect_uris: [] })
    await mapUser(noCallback.app_id, w.user)
    const closed = await createApp({ partner_api_enabled: false })
    await mapUser(closed.app_id, w.user)
    // written straight to D1 (before the app's first signed call): the admin API refuses unknown
    // and OIDC targets (apps.test.ts), but a listed target can become either later
    const source = await createApp({ app_name: 'Source with odd targets' })
    await setAppColumnsInD1(source.app_id, { ssoTargets: ['app_does_not_exist', oidc.app_id, noCallback.app_id, closed.app_id, w.target.app_id] })
    await mapUser(source.app_id, w.user)
    expect(await code(source, { target_app_id: 'app_does_not_exist', user_mobile: w.user.mobile })).toBe('404 target_app_not_found')
    expect(await code(source, { target_app_id: oidc.app_id, user_mobile: w.user.mobile })).toBe('400 target_app_not_simple_api')
    expect(await code(source, { target_app_id: noCallback.app_id, user_mobile: w.user.mobile })).toBe('409 target_app_no_callback')
    const r = await exchange(source, { target_app_id: closed.app_id, user_mobile: w.user.mobile })
    expect(`${r.status} ${r.body.error.code}`).toBe('403 target_app_disabled')
    expect(r.body.error.message).toMatch(/partner API/)
    await disableApp(w.target.app_id)
    expect(await code(source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })).toBe('403 target_app_disabled')
  })

  it('disabled source app, also right after it exchanged (its cached row is not trusted past the disable)', async () => {
    const w = await world()
    await disableApp(w.source.app_id)
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })).toBe('403 app_disabled')

    const v = await world()
    await issued(v)
    expect((await api(`/api/v1/admin/apps/${v.source.app_id}/disable`, { method: 'POST', token: await adminToken() })).status).toBe(200)
    expect(await code(v.source, { target_app_id: v.target.app_id, user_mobile: v.user.mobile })).toBe('403 app_disabled')
  })

  it('disabled user, unmapped in the target, disabled target mapping: each its own code, audited', async () => {
    const w = await world()
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: 'not a phone' })).toBe('400 invalid_request')
    const unmapped = await createUser()
    await mapUser(w.source.app_id, unmapped)
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: unmapped.mobile })).toBe('404 user_not_mapped')
    const inactive = await createUser()
    await mapUser(w.source.app_id, inactive)
    await mapUser(w.target.app_id, inactive, { isActive: false })
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: inactive.mobile })).toBe('403 mapping_disabled')
    await setUserStatus(w.user.id, 'DISABLED')
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })).toBe('403 user_disabled')
    const audit = await eventually(() => auditActions(w.source.app_id), (a) => a.filter((x) => x.action === 'ticket.exchange_refused').length >= 3)
    expect(audit.filter((a) => a.action === 'ticket.exchange_refused').map((a) => JSON.parse(a.details).code)).toEqual(['user_not_mapped', 'mapping_disabled', 'user_disabled'])
  })
})

describe('who may exchange (issue 9)', () => {
  const code = async (from: TestApp, body: Record<string, unknown>) => {
    const r = await exchange(from, body)
    return `${r.status} ${r.body.error?.code}`
  }

  it("the target must be in the source's sso_targets: target_not_allowed before anything about the target or the user, audited", async () => {
    const w = await world()
    const elsewhere = await createApp({ app_name: 'Not listed' })
    await mapUser(elsewhere.app_id, w.user)
    expect(await code(w.source, { target_app_id: elsewhere.app_id, user_mobile: w.user.mobile })).toBe('403 target_not_allowed')
    // an unlisted app that does not exist, and an unknown mobile, read the same
    expect(await code(w.source, { target_app_id: 'app_does_not_exist', user_mobile: '+8613012345678' })).toBe('403 target_not_allowed')
    const lonely = await createApp({ app_name: 'No targets' })
    await mapUser(lonely.app_id, w.user)
    expect(await code(lonely, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })).toBe('403 target_not_allowed')
    const audit = await eventually(() => auditActions(w.source.app_id), (a) => a.filter((x) => x.action === 'ticket.exchange_refused').length >= 2)
    expect(audit.filter((a) => a.action === 'ticket.exchange_refused').map((a) => JSON.parse(a.details).code)).toEqual(['target_not_allowed', 'target_not_allowed'])
    expect(await ticketRows(elsewhere)).toEqual([])
  })

  it('an admin changes sso_targets; the next exchange follows at once', async () => {
    const w = await world()
    const admin = await adminToken()
    const patch = (sso_targets: string[]) => api(`/api/v1/admin/apps/${w.source.app_id}`, { method: 'PATCH', token: admin, json: { sso_targets } })
    await issued(w)
    expect((await patch([])).status).toBe(200)
    expect(await code(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })).toBe('403 target_not_allowed')
    expect((await patch([w.target.app_id])).status).toBe(200)
    await issued(w)
  })

  it('the user must be actively mapped in the source app: otherwise the same 404 as an unknown mobile', async () => {
    const w = await world()
    const notInSource = await createUser()
    await mapUser(w.target.app_id, notInSource)
    const disabledInSource = await createUser()
    await mapUser(w.source.app_id, disabledInSource, { isActive: false })
    await mapUser(w.target.app_id, disabledInSource)
    const answers = []
    for (const mobile of [uniqueMobile(), notInSource.mobile, disabledInSource.mobile]) {
      const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: mobile })
      answers.push({ status: r.status, code: r.body.error.code, message: r.body.error.message, details: r.body.error.details })
    }
    expect(answers[0]).toEqual({ status: 404, code: 'user_not_found', message: expect.any(String), details: undefined })
    expect(answers[1]).toEqual(answers[0])
    expect(answers[2]).toEqual(answers[0])
  })

  it("an OIDC client's secret opens nothing: partner API off by default; switched on, it is still not a SIMPLE_API source", async () => {
    const w = await world()
    const oidc = await createApp({ protocol_type: 'OIDC', sso_targets: [w.target.app_id] })
    await mapUser(oidc.app_id, w.user)
    const r = await exchange(oidc, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('partner_api_disabled')
    expect((await api(`/api/v1/admin/apps/${oidc.app_id}`, { method: 'PATCH', token: await adminToken(), json: { partner_api_enabled: true } })).status).toBe(200)
    expect(await code(oidc, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })).toBe('403 source_app_not_simple_api')
    expect(await ticketRows(w.target)).toEqual([])
  })

  it('8 concurrent copies of one signed exchange mint at most one ticket', async () => {
    const w = await world()
    const url = `http://localhost${EXCHANGE}`
    const body = JSON.stringify({ target_app_id: w.target.app_id, user_mobile: w.user.mobile })
    const headers = { ...(await signRequest({ appId: w.source.app_id, appSecret: w.source.app_secret, method: 'POST', url, body })), 'Content-Type': 'application/json' }
    const results = await Promise.all(Array.from({ length: 8 }, () => SELF.fetch(url, { method: 'POST', headers, body }).then(readResponse)))
    expect(results.filter((r) => r.status === 200).length).toBe(1)
    for (const r of results.filter((x) => x.status !== 200)) expect(`${r.status} ${r.body.error.code}`).toBe('401 nonce_replayed')
    expect((await ticketRows(w.target)).length).toBe(1)
  })
})

describe('state (login CSRF)', () => {
  it('exchange binds state to the ticket; verify returns it (null without); it is not added to redirect_url', async () => {
    const w = await world()
    const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile, state: 'browser-7f3a.9' })
    expect(r.status).toBe(200)
    expect(r.body.redirect_url).not.toContain('browser-7f3a')
    expect((await ticketRows(w.target))[0].state).toBe('browser-7f3a.9')
    const v = await verify(w.target, r.body.ticket)
    expect(v.status).toBe(200)
    expect(v.body.state).toBe('browser-7f3a.9')
    expect((await verify(w.target, await issued(w))).body.state).toBeNull()
    for (const bad of ['', 'has space', 'x'.repeat(257), 'ünïcode']) {
      const b = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile, state: bad })
      expect(b.status, bad).toBe(400)
      expect(b.body.error.code).toBe('invalid_request')
    }
  })
})

describe('audit rows of issued and redeemed tickets (the AppGate outbox)', () => {
  const outbox = (app: TestApp) =>
    runInDurableObject(gateOf(app), (_o, state) => state.storage.sql.exec<{ entry: string }>('SELECT entry FROM audit_outbox ORDER BY id').toArray().map((r) => JSON.parse(r.entry)))

  it('are committed with the ticket in its gate, then written to D1 by the alarm (and leave the outbox)', async () => {
    const w = await world()
    const r = await exchange(w.source, { target_app_id: w.target.app_id, user_mobile: w.user.mobile })
    // the ticket and its audit row landed together
    expect(await outbox(w.target)).toEqual([
      expect.objectContaining({ action: 'ticket.issued', actorType: 'app', actorId: w.source.app_id, targetType: 'user', targetId: w.user.id, details: { via: 'exchange', target_app_id: w.target.app_id, state: false, expires_in: 60 } }),
    ])
    expect((await verify(w.target, r.body.ticket)).status).toBe(200)
    await runDurableObjectAlarm(gateOf(w.target)) // (or it ran by itself: it is due a second after a row)
    expect(await outbox(w.target)).toEqual([])
    const rows = await env.DB.prepare("SELECT action, actor_id, target_id, request_id, details FROM audit_logs WHERE action IN ('ticket.issued', 'ticket.redeemed') AND target_id = ? ORDER BY id").bind(w.user.id).all<any>()
    expect(rows.results.map((x) => [x.action, x.actor_id])).toEqual([
      ['ticket.issued', w.source.app_id],
      ['ticket.redeemed', w.target.app_id],
    ])
    expect(JSON.parse(rows.results[1].details)).toEqual({ source_app_id: w.source.app_id })
    expect(rows.results.every((x) => x.request_id)).toBe(true)
  })

  it('a redemption refused by the account re-check: the ticket was spent (redeemed), and the refusal says so', async () => {
    const w = await world()
    const ticket = await issued(w)
    await setUserStatus(w.user.id, 'DISABLED')
    expect((await verify(w.target, ticket)).body.error.code).toBe('user_disabled')
    await runDurableObjectAlarm(gateOf(w.target))
    const spent = await env.DB.prepare("SELECT action FROM audit_logs WHERE target_id = ? AND action LIKE 'ticket.%' ORDER BY id").bind(w.user.id).all<{ action: string }>()
    expect(spent.results.map((x) => x.action)).toEqual(expect.arrayContaining(['ticket.issued', 'ticket.redeemed']))
    const refusals = await eventually(() => auditActions(w.target.app_id), (a) => a.some((x) => x.action === 'ticket.redeem_refused'))
    expect(JSON.parse(refusals.find((x) => x.action === 'ticket.redeem_refused')!.details)).toEqual({ code: 'user_disabled', ticket_consumed: true })
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
      // a person's browser landed here: an error page (pages' CSP) naming the code, not JSON
      expect(r.headers.get('Content-Type')).toMatch(/^text\/html/)
      expect(r.headers.get('Content-Security-Policy')).toContain("default-src 'none'")
      expect(r.body).toContain('<code>redirect_uri_not_registered</code>')
      expect(r.body).toContain('The app asked to send you to an address it has not registered.')
    }
    const oidc = await createApp({ protocol_type: 'OIDC', redirect_uris: ['https://oidc.example.com/cb'] })
    expect((await page(oidc.app_id, 'https://oidc.example.com/cb', cookie)).body).toContain('<code>invalid_app</code>')
    expect((await page('app_unknown', 'https://oidc.example.com/cb', cookie)).status).toBe(400)
  })

  it('right after sign-in, the page passes the user (its new cookie is not on the request yet)', async () => {
    const w = await world()
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

  it('state is bound to the ticket (verify returns it, the redirect does not carry it) and kept on the way to the login page', async () => {
    const w = await world()
    const uri = 'https://target.example.com/sso/callback'
    const { cookie } = await browserSession(w.user)
    const withState = (state: string, c?: string) =>
      api(`/page/sso/simple?${new URLSearchParams({ app_id: w.target.app_id, redirect_uri: uri, state })}`, { redirect: 'manual', headers: c ? { Cookie: c } : {} })
    const r = await withState('csrf-8c1e', cookie)
    expect(r.status).toBe(302)
    const location = r.headers.get('Location')!
    expect(location).not.toContain('csrf-8c1e')
    const v = await verify(w.target, new URL(location).searchParams.get('ticket')!)
    expect(v.status).toBe(200)
    expect(v.body.state).toBe('csrf-8c1e')
    const anon = await withState('csrf-8c1e')
    expect(anon.headers.get('Location')).toBe(`/page/login?${new URLSearchParams({ app_id: w.target.app_id, redirect_uri: uri, state: 'csrf-8c1e' })}`)
    expect((await withState('with space', cookie)).status).toBe(400)
  })

  it('signed in but not mapped in the app: 403, no ticket', async () => {
    const w = await world()
    const stranger = await createUser()
    const { cookie } = await browserSession(stranger)
    const r = await page(w.target.app_id, 'https://target.example.com/sso/callback', cookie)
    expect(r.status).toBe(403)
    expect(r.headers.get('Location')).toBeNull()
    expect(r.body).toContain('<code>user_not_mapped</code>')
    expect(r.body).toContain('Your account has no access to this app.')
  })
})

describe("tickets live in the target app's AppGate (no object per ticket)", () => {
  it('many tickets share the one object, each still strictly once; the alarm purges only rows past retention', async () => {
    const w = await world()
    const base = { targetAppId: w.target.app_id, sourceAppId: w.source.app_id, userId: w.user.id, mappedKey: w.mappedKey }
    const audit = { action: 'ticket.issued', actorType: 'system' as const, targetType: 'user', targetId: w.user.id }
    const tickets = await Promise.all(Array.from({ length: 6 }, () => issueTicket(env, base, audit).then((t) => t.ticket)))
    expect(new Set(tickets.map(ticketTarget))).toEqual(new Set([w.target.app_id]))
    expect((await ticketRows(w.target)).length).toBe(6)
    const results = await Promise.all(tickets.flatMap((t) => Array.from({ length: 3 }, () => verify(w.target, t))))
    expect(results.filter((r) => r.status === 200).length).toBe(6)
    expect(results.filter((r) => r.status === 409).length).toBe(12)

    const fresh = (await issueTicket(env, base, audit)).ticket
    const stub = gateOf(w.target)
    const count = () => runInDurableObject(stub, (_o, state) => state.storage.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM ticket').one().n)
    // every other ticket of this app is long past its retention
    const freshHash = await sha256Hex(fresh)
    await runInDurableObject(stub, (_o, state) => state.storage.sql.exec('UPDATE ticket SET expires_at = ? WHERE ticket_hash != ?', Date.now() - TICKET_RETAIN_MS - 1, freshHash))
    expect(await count()).toBe(7)
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    expect(await count()).toBe(1)
    expect((await verify(w.target, fresh)).status).toBe(200)
  })

  it('the alarm ships a large outbox in multi-row statements: every row once, each as written', async () => {
    const w = await world()
    const base = { targetAppId: w.target.app_id, sourceAppId: w.source.app_id, userId: w.user.id, mappedKey: w.mappedKey }
    const n = 61 // more than one D1 batch of the gate (50 rows) and many statements of 9 rows
    for (let i = 0; i < n; i++) await issueTicket(env, base, { action: 'ticket.issued', actorType: 'system', targetType: 'user', targetId: w.user.id, requestId: `req-${i}`, details: { n: i } })
    const stub = gateOf(w.target)
    await runDurableObjectAlarm(stub)
    const rows = await env.DB.prepare("SELECT request_id, details FROM audit_logs WHERE action = 'ticket.issued' AND target_id = ? ORDER BY id").bind(w.user.id).all<{ request_id: string; details: string }>()
    expect(rows.results.map((r) => r.request_id)).toEqual(Array.from({ length: n }, (_, i) => `req-${i}`))
    expect(rows.results.map((r) => JSON.parse(r.details).n)).toEqual(Array.from({ length: n }, (_, i) => i))
    expect(await runInDurableObject(stub, (_o, state) => state.storage.sql.exec<{ c: number }>('SELECT COUNT(*) AS c FROM audit_outbox').one().c)).toBe(0)
  })

  it('a row the outbox ships reads exactly like the same entry written by auditStatement', async () => {
    const w = await world()
    const base = { targetAppId: w.target.app_id, sourceAppId: w.source.app_id, userId: w.user.id, mappedKey: w.mappedKey }
    const at = Date.now() - 5000
    const entry = { at, action: 'ticket.issued', actorType: 'app' as const, actorId: w.source.app_id, targetType: 'user', targetId: w.user.id, ip: '203.0.113.9', authority: { right: 'x', via: ['y'] }, details: { via: 'exchange', nested: { a: [1, 'two'] } } }
    await issueTicket(env, base, { ...entry, requestId: 'req-outbox' }, at)
    await runDurableObjectAlarm(gateOf(w.target))
    const db = getDb(env.DB)
    await db.batch([auditStatement(db, { ...entry, details: { ...entry.details, expires_in: ticketTtlS(env) }, requestId: 'req-direct' })])
    const rows = await env.DB.prepare("SELECT * FROM audit_logs WHERE request_id IN ('req-outbox', 'req-direct') ORDER BY request_id DESC").all<Record<string, unknown>>()
    expect(rows.results).toHaveLength(2)
    const [shipped, direct] = rows.results.map(({ id: _id, request_id: _r, ...rest }) => rest)
    expect(shipped).toEqual(direct)
    expect(JSON.parse(shipped.authority as string)).toEqual(entry.authority)
    // absent fields are NULL on both paths
    await issueTicket(env, base, { action: 'ticket.issued', actorType: 'system', requestId: 'req-bare' })
    await runDurableObjectAlarm(gateOf(w.target))
    const bare = await env.DB.prepare("SELECT actor_id, target_type, target_id, ip, authority FROM audit_logs WHERE request_id = 'req-bare'").first()
    expect(bare).toEqual({ actor_id: null, target_type: null, target_id: null, ip: null, authority: null })
  })

  it("the sealed user opens only for the ticket's own target and only under the master key", async () => {
    const w = await world()
    const ticket = await issued(w)
    const [, userPart, secretPart] = ticket.split('.')
    const other = await createApp({ app_name: 'Other target' })
    const moved = `tk_${btoa(other.app_id).replace(/=+$/, '')}.${userPart}.${secretPart}`
    expect(await ticketUser(env, moved)).toBeNull()
    expect(await ticketUser({ ...env, MASTER_KEY: 'dev-' + 'B'.repeat(43) } as typeof env, ticket)).toBeNull()
    // a previous master key still opens it (rotation)
    expect(await ticketUser({ ...env, MASTER_KEY: 'dev-' + 'B'.repeat(43), MASTER_KEY_PREVIOUS: env.MASTER_KEY } as typeof env, ticket)).toBe(w.user.id)
    expect((await verify(w.target, ticket)).status).toBe(200)
  })

  it('a ticket routed to an app that has no such ticket is ticket_invalid, and probing creates no storage', async () => {
    const w = await world()
    const other = await createApp({ app_name: 'Other' })
    const invented = `tk_${btoa('app_nobody_here_00').replace(/=+$/, '')}.${'E'.repeat(60)}.${'C'.repeat(43)}`
    expect(ticketTarget(invented)).toBe('app_nobody_here_00')
    const r = await verify(other, invented)
    expect(r.status).toBe(400)
    expect(r.body.error.code).toBe('ticket_invalid')
    const tables = await runInDurableObject(appGate(env, 'app_nobody_here_00'), (_o, state) => state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table'").toArray())
    expect(tables).toEqual([])
    // a real ticket of another app: ticket_not_for_app, not consumed (see above); a forged one next to it: invalid
    const ticket = await issued(w)
    const forged = `${ticket.split('.').slice(0, 2).join('.')}.${'D'.repeat(43)}`
    expect((await verify(other, forged)).body.error.code).toBe('ticket_invalid')
    expect((await verify(other, ticket)).body.error.code).toBe('ticket_not_for_app')
    expect((await verify(w.target, ticket)).status).toBe(200)
  })
})

describe('configuration and docs', () => {
  it('TICKET_TTL_S is validated; the ticket names its target app and nothing else parses', () => {
    expect(ticketTtlS({ TICKET_TTL_S: '120' } as never)).toBe(120)
    expect(ticketTtlS({} as never)).toBe(60)
    expect(() => ticketTtlS({ TICKET_TTL_S: '5' } as never)).toThrow(/TICKET_TTL_S/)
    expect(() => ticketTtlS({ TICKET_TTL_S: 'soon' } as never)).toThrow(/TICKET_TTL_S/)
    const secret = 'S'.repeat(43)
    const sealed = 'U'.repeat(60)
    expect(ticketTarget(`tk_YXBwXzEyMzQ.${sealed}.${secret}`)).toBe('app_1234')
    for (const bad of [
      '',
      'tk_',
      `tk_.${sealed}.${secret}`,
      `tk_YXBwXzEyMzQ.${secret}`,
      `tk_YXBwXzEyMzQ.${sealed}.${secret}x`,
      `tk_YXBwXzEyMzQ.${sealed}.${secret.slice(1)}`,
      `tk_YXBwXzEyMzQ.U.${secret}`,
      `tk_${btoa('a b')}.${sealed}.${secret}`,
      `tk_${'QQ'.repeat(44)}.${sealed}.${secret}`,
      `xx_YXBwXzEyMzQ.${sealed}.${secret}`,
    ]) {
      expect(ticketTarget(bad), bad).toBeNull()
    }
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

  it("the app's state rides along the sign-in and is bound to the ticket", async () => {
    const w = await world()
    const uri = 'https://target.example.com/sso/callback'
    const b = new Browser()
    const form = await b.get(`/page/login?${new URLSearchParams({ app_id: w.target.app_id, redirect_uri: uri, state: 'tab-42' })}`)
    const returnTo = inputValue(form.html, 'return_to')!
    expect(returnTo).toBe(`/page/sso/simple?${new URLSearchParams({ app_id: w.target.app_id, redirect_uri: uri, state: 'tab-42' })}`)
    await b.post('/page/login', { mobile: w.user.mobile, password: w.user.password, csrf_token: inputValue(form.html, 'csrf_token')!, return_to: returnTo })
    const toApp = await b.get(returnTo)
    expect(toApp.status).toBe(302)
    const v = await verify(w.target, new URL(toApp.headers.get('Location')!).searchParams.get('ticket')!)
    expect(v.body.state).toBe('tab-42')
  })

  it('with a session: no form, a 302 to the app with a ticket', async () => {
    const w = await world()
    const uri = 'https://target.example.com/sso/callback'
    const b = new Browser()
    const form = await b.get('/page/login')
    await b.post('/page/login', { mobile: w.user.mobile, password: w.user.password, csrf_token: inputValue(form.html, 'csrf_token')! })
    const r = await b.get(loginUrl(w.target.app_id, uri))
    expect(r.status).toBe(302)
    expect(r.headers.get('Location')).toMatch(/^https:\/\/target\.example\.com\/sso\/callback\?ticket=tk_/)
  })

  it('an unregistered redirect_uri gets an error page, never a redirect', async () => {
    const w = await world()
    const r = await new Browser().get(loginUrl(w.target.app_id, 'https://evil.example.com/cb'))
    expect(r.status).toBe(400)
    expect(r.headers.get('Location')).toBeNull()
    expect(r.html).toContain('The app asked to send you to an address it has not registered. You were not sent there.')
    expect(r.html).toContain('<code>redirect_uri_not_registered</code>')
  })
})
