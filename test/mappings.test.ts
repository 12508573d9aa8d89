import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { adminToken, api, auditLog, createUser, login, uniqueMobile } from './support/api'
import { createApp, mapUser, type TestApp } from './support/apps'
import { randomIp } from './support/browser'
import { measureStorage } from './support/storage'
import { getDb } from '../src/db'
import { classifyWriteError, updateMappingStatements } from '../src/mappings/service'
import type { AppUserMapping } from '../src/mappings/schema'

type App = TestApp
type Item = { mobile: string; mapped_key?: string; name?: string | null; action: 'ADD' | 'UPDATE' | 'DISABLE' }

const asApp = (a: App) => ({ 'X-App-Access-Token': a.access_token })
const sync = (a: App, items: Item[], extra: Record<string, unknown> = {}) => api('/api/v1/apps/mapping/sync', { method: 'POST', headers: asApp(a), json: { items, ...extra } })
const query = (a: App, mobile: string, appId = a.app_id) => api(`/api/v1/apps/${appId}/users/query?mobile=${encodeURIComponent(mobile)}`, { headers: asApp(a) })
const changes = (a: App, since?: string, limit = 100) => api(`/api/v1/apps/${a.app_id}/users/changes?limit=${limit}${since !== undefined ? `&since=${since}` : ''}`, { headers: asApp(a) })
/** Users straight in D1 (these tests never sign them in), to keep big batches fast. */
async function quickUsers(n: number) {
  const rows = Array.from({ length: n }, () => ({ id: crypto.randomUUID(), mobile: uniqueMobile() }))
  const now = Date.now()
  await env.DB.batch(rows.map((r) => env.DB.prepare("INSERT INTO users (id, mobile, password_hash, status, role, created_at, updated_at) VALUES (?, ?, '!', 'ACTIVE', 'USER', ?, ?)").bind(r.id, r.mobile, now, now)))
  return rows
}
const key = (p: string) => `${p}-${crypto.randomUUID().slice(0, 8)}@example.com`

/** The outbox rows themselves (the changes feed shows them as a partner does, without mapping_id). */
async function events(appId: string) {
  const r = await env.DB.prepare('SELECT * FROM mapping_events WHERE app_id = ? ORDER BY id').bind(appId).all<any>()
  return r.results.map((e) => ({ ...e, payload: JSON.parse(e.payload) }))
}

/** The outbox invariant: every mapping row carries the event id of its latest event, whose payload is the row's state. */
async function expectOutboxConsistent(appId: string) {
  const rows = (await env.DB.prepare('SELECT m.*, u.mobile FROM app_user_mappings m JOIN users u ON u.id = m.user_id WHERE m.app_id = ?').bind(appId).all<any>()).results
  const evs = await events(appId)
  for (const m of rows) {
    const mine = evs.filter((e) => e.mapping_id === m.id)
    expect(mine.length, `events of mapping ${m.id}`).toBeGreaterThan(0)
    const last = mine[mine.length - 1]
    expect(last.event_id).toBe(m.last_event_id)
    expect(last.payload).toMatchObject({ mobile: m.mobile, mapped_key: m.mapped_key, status: m.is_active ? 'ACTIVE' : 'DISABLED' })
  }
}

describe('POST /api/v1/apps/mapping/sync', () => {
  it('applies ADD/UPDATE/DISABLE with a result per item, and rejects unknown mobiles without creating users', async () => {
    const a = await createApp()
    const u1 = await createUser({ name: 'Li Lei' })
    const u2 = await createUser()
    const ghost = uniqueMobile()
    const k1 = key('lilei')
    const r = await sync(a, [
      { mobile: u1.mobile, mapped_key: k1, action: 'ADD' },
      { mobile: u2.mobile.replace('+86', ''), mapped_key: key('u2'), name: 'Han Meimei', action: 'ADD' },
      { mobile: ghost, mapped_key: key('ghost'), action: 'ADD' },
      { mobile: 'not-a-number', mapped_key: key('x'), action: 'ADD' },
      { mobile: u2.mobile, mapped_key: key('u2b'), action: 'UPDATE' },
      { mobile: u1.mobile, action: 'DISABLE' },
    ])
    expect(r.status).toBe(200)
    expect(r.body.app_id).toBe(a.app_id)
    expect(r.body.summary).toEqual({ total: 6, ok: 4, error: 2 })
    expect(r.body.results.map((x: any) => [x.index, x.status, x.code])).toEqual([
      [0, 'ok', 'created'],
      [1, 'ok', 'created'],
      [2, 'error', 'user_not_found'],
      [3, 'error', 'invalid_mobile'],
      [4, 'ok', 'updated'],
      [5, 'ok', 'disabled'],
    ])
    expect(r.body.results[1].mobile).toBe(u2.mobile) // normalised
    expect((await api(`/api/v1/admin/users?q=${encodeURIComponent(ghost)}`, { token: await adminToken() })).body.total).toBe(0)

    const q = await query(a, u2.mobile)
    expect(q.status).toBe(200)
    expect(q.body.user).toMatchObject({ user_id: u2.id, mobile: u2.mobile, status: 'ACTIVE' })
    expect(q.body.mapping).toMatchObject({ mapped_key: expect.stringMatching(/^u2b-/), name: 'Han Meimei', is_active: true })
    const q1 = await query(a, u1.mobile)
    expect(q1.body.mapping).toMatchObject({ mapped_key: k1, is_active: false, status: 'DISABLED', name: 'Li Lei' })
    expect((await events(a.app_id)).map((e) => e.event_type)).toEqual(['ADD', 'ADD', 'UPDATE', 'DISABLE'])
    await expectOutboxConsistent(a.app_id)
  })

  it('gives clear per-item errors for both uniqueness rules and never half-applies', async () => {
    const a = await createApp()
    const [u1, u2] = [await createUser(), await createUser()]
    const k = key('shared')
    expect((await sync(a, [{ mobile: u1.mobile, mapped_key: k, action: 'ADD' }])).body.results[0].code).toBe('created')
    const before = (await events(a.app_id)).length
    const r = await sync(a, [
      { mobile: u2.mobile, mapped_key: k, action: 'ADD' }, // UNIQUE(app_id, mapped_key)
      { mobile: u1.mobile, mapped_key: key('other'), action: 'ADD' }, // UNIQUE(app_id, user_id)
      { mobile: u2.mobile, mapped_key: key('u2'), action: 'UPDATE' }, // nothing to update
      { mobile: u2.mobile, action: 'DISABLE' },
    ])
    expect(r.status).toBe(200)
    expect(r.body.results.map((x: any) => x.code)).toEqual(['mapped_key_taken', 'mapping_exists', 'mapping_not_found', 'mapping_not_found'])
    expect(r.body.results.every((x: any) => x.status === 'error' && x.message.length > 0)).toBe(true)
    expect((await events(a.app_id)).length).toBe(before)
    const rows = await api(`/api/v1/admin/apps/${a.app_id}/mappings`, { token: await adminToken() })
    expect(rows.body.items.map((m: any) => ({ user_id: m.user_id, mapped_key: m.mapped_key }))).toEqual([{ user_id: u1.id, mapped_key: k }])

    // UPDATE onto a key held by someone else
    expect((await sync(a, [{ mobile: u2.mobile, mapped_key: key('u2'), action: 'ADD' }])).body.results[0].code).toBe('created')
    const clash = await sync(a, [{ mobile: u2.mobile, mapped_key: k, action: 'UPDATE' }])
    expect(clash.body.results[0].code).toBe('mapped_key_taken')
    // DISABLE naming the wrong key changes nothing
    expect((await sync(a, [{ mobile: u1.mobile, mapped_key: 'not-mine', action: 'DISABLE' }])).body.results[0].code).toBe('mapped_key_mismatch')
    await expectOutboxConsistent(a.app_id)
  })

  it('the same mapped_key may be used in two different apps', async () => {
    const [a, b] = [await createApp(), await createApp()]
    const u = await createUser()
    const k = key('both')
    expect((await sync(a, [{ mobile: u.mobile, mapped_key: k, action: 'ADD' }])).body.results[0].code).toBe('created')
    expect((await sync(b, [{ mobile: u.mobile, mapped_key: k, action: 'ADD' }])).body.results[0].code).toBe('created')
  })

  it('DISABLE then ADD again reactivates the same mapping (with a new key if given)', async () => {
    const a = await createApp()
    const u = await createUser()
    const k1 = key('v1')
    const k2 = key('v2')
    const add = await sync(a, [{ mobile: u.mobile, mapped_key: k1, action: 'ADD' }])
    const id = add.body.results[0].mapping_id
    expect((await sync(a, [{ mobile: u.mobile, action: 'DISABLE' }])).body.results[0].code).toBe('disabled')
    expect((await sync(a, [{ mobile: u.mobile, action: 'DISABLE' }])).body.results[0].code).toBe('unchanged')
    const again = await sync(a, [{ mobile: u.mobile, mapped_key: k2, action: 'ADD' }])
    expect(again.body.results[0]).toMatchObject({ status: 'ok', code: 'reactivated', mapping_id: id })
    expect((await query(a, u.mobile)).body.mapping).toMatchObject({ mapping_id: id, mapped_key: k2, is_active: true })
    // re-sending is idempotent: no new event
    expect((await sync(a, [{ mobile: u.mobile, mapped_key: k2, action: 'ADD' }])).body.results[0].code).toBe('unchanged')
    expect((await events(a.app_id)).map((e) => [e.event_type, e.payload.status, e.payload.mapped_key])).toEqual([
      ['ADD', 'ACTIVE', k1],
      ['DISABLE', 'DISABLED', k1],
      ['ADD', 'ACTIVE', k2],
    ])
    // the freed key k1 is usable by someone else now
    const other = await createUser()
    expect((await sync(a, [{ mobile: other.mobile, mapped_key: k1, action: 'ADD' }])).body.results[0].code).toBe('created')
  })

  it('applies items in order: a key released by an earlier item can be taken by a later one', async () => {
    const a = await createApp()
    const [u1, u2] = [await createUser(), await createUser()]
    const k = key('swap')
    await sync(a, [{ mobile: u1.mobile, mapped_key: k, action: 'ADD' }])
    const r = await sync(a, [
      { mobile: u1.mobile, mapped_key: key('moved'), action: 'UPDATE' },
      { mobile: u2.mobile, mapped_key: k, action: 'ADD' },
      { mobile: u2.mobile, name: 'Renamed', mapped_key: k, action: 'UPDATE' },
    ])
    expect(r.body.results.map((x: any) => x.code)).toEqual(['updated', 'created', 'updated'])
    expect((await query(a, u2.mobile)).body.mapping).toMatchObject({ mapped_key: k, name: 'Renamed' })
    await expectOutboxConsistent(a.app_id)
  })

  it('handles a large batch (several chunks) and validates the request shape', async () => {
    const a = await createApp()
    const us = await quickUsers(70)
    const items: Item[] = us.map((u, i) => ({ mobile: u.mobile, mapped_key: `bulk-${i}-${a.app_id}`, action: 'ADD' }))
    items.push({ mobile: us[0].mobile, mapped_key: `bulk-1-${a.app_id}`, action: 'UPDATE' }) // taken by us[1]
    const r = await sync(a, items)
    expect(r.body.summary).toEqual({ total: 71, ok: 70, error: 1 })
    expect(r.body.results[70].code).toBe('mapped_key_taken')
    expect((await events(a.app_id)).length).toBe(70)

    expect((await sync(a, [])).status).toBe(400)
    const tooMany = await sync(a, Array.from({ length: 501 }, () => ({ mobile: us[0].mobile, mapped_key: 'k', action: 'ADD' as const })))
    expect(tooMany.status).toBe(400)
    const noKey = await sync(a, [{ mobile: us[0].mobile, action: 'ADD' }])
    expect(noKey.status).toBe(400)
    expect(noKey.body.error.message).toContain('mapped_key')
    const badAction = await api('/api/v1/apps/mapping/sync', { method: 'POST', headers: asApp(a), json: { items: [{ mobile: us[0].mobile, mapped_key: 'k', action: 'DELETE' }] } })
    expect(badAction.status).toBe(400)
  })

  it('concurrent syncs for the same users end with one winner per conflict, no 500, and a consistent outbox', async () => {
    const a = await createApp()
    const us = await quickUsers(12)
    const batchFor = (tag: string) => us.map((u) => ({ mobile: u.mobile, mapped_key: `${tag}-${u.id}`, action: 'ADD' as const }))
    const [r1, r2, r3] = await Promise.all([sync(a, batchFor('x')), sync(a, batchFor('y')), sync(a, batchFor('z'))])
    for (const r of [r1, r2, r3]) expect(r.status).toBe(200)
    for (let i = 0; i < us.length; i++) {
      const codes = [r1, r2, r3].map((r) => r.body.results[i].code)
      expect(codes.filter((c) => c === 'created')).toHaveLength(1)
      for (const c of codes) expect(['created', 'mapping_exists', 'concurrent_modification']).toContain(c)
    }
    expect((await events(a.app_id)).length).toBe(us.length)
    await expectOutboxConsistent(a.app_id)
  })

  it('a write planned against a stale version is refused whole: no change, no event', async () => {
    const a = await createApp()
    const u = await createUser()
    const k = key('cas')
    await sync(a, [{ mobile: u.mobile, mapped_key: k, action: 'ADD' }])
    const row = await getDb(env.DB).query.appUserMappings.findFirst({ where: (m, { eq }) => eq(m.appId, a.app_id) })
    const stale: AppUserMapping = { ...row!, lastEventId: crypto.randomUUID() }
    const db = getDb(env.DB)
    const { statements } = updateMappingStatements(db, stale, { isActive: false }, 'DISABLE')
    const before = (await events(a.app_id)).length
    let err: unknown
    try {
      await db.batch(statements as [any, ...any[]])
    } catch (e) {
      err = e
    }
    expect(classifyWriteError(err)).toBe('concurrent_modification')
    expect((await events(a.app_id)).length).toBe(before)
    expect((await query(a, u.mobile)).body.mapping.is_active).toBe(true)
  })
})

describe('app access token', () => {
  it('an app can only see and change its own mappings', async () => {
    const [a, b] = [await createApp(), await createApp()]
    const u = await createUser()
    await sync(b, [{ mobile: u.mobile, mapped_key: key('b'), action: 'ADD' }])
    const q = await query(a, u.mobile, b.app_id)
    expect(q.status).toBe(403)
    expect(q.body.error.code).toBe('app_mismatch')
    const ch = await api(`/api/v1/apps/${b.app_id}/users/changes`, { headers: asApp(a) })
    expect(ch.status).toBe(403)
    const s = await sync(a, [{ mobile: u.mobile, action: 'DISABLE' }], { app_id: b.app_id })
    expect(s.status).toBe(403)
    expect(s.body.error.code).toBe('app_mismatch')
    // and to a, whose user this is not, the number reads like an unknown one
    const notMine = await query(a, u.mobile)
    const unknown = await query(a, uniqueMobile())
    expect(notMine.status).toBe(404)
    expect({ ...notMine.body.error, request_id: null }).toEqual({ ...unknown.body.error, request_id: null })
    expect((await query(b, u.mobile)).body.mapping.is_active).toBe(true)
  })

  it('refuses a missing, unknown, rotated or disabled-app token', async () => {
    const a = await createApp()
    const u = await createUser()
    // the user is the app's own (query reveals nothing else)
    expect((await sync(a, [{ mobile: u.mobile, mapped_key: key('tok'), action: 'ADD' }])).status).toBe(200)
    const path = `/api/v1/apps/${a.app_id}/users/query?mobile=${encodeURIComponent(u.mobile)}`
    expect((await api(path)).body.error.code).toBe('app_token_missing')
    const ip = randomIp()
    const unknown = await api(path, { headers: { 'X-App-Access-Token': 'at_' + 'x'.repeat(43), 'CF-Connecting-IP': ip } })
    expect(unknown.status).toBe(401)
    expect(unknown.body.error.code).toBe('app_token_invalid')
    // a security event, audited once per network and window however many guesses follow
    await api(path, { headers: { 'X-App-Access-Token': 'at_' + 'y'.repeat(43), 'CF-Connecting-IP': ip } })
    const audited = await env.DB.prepare("SELECT actor_type, details FROM audit_logs WHERE action = 'app_token.invalid' AND ip = ?").bind(ip).all<{ actor_type: string; details: string }>()
    expect(audited.results).toHaveLength(1)
    expect(JSON.parse(audited.results[0].details)).toMatchObject({ method: 'GET', path: `/api/v1/apps/${a.app_id}/users/query` })
    const admin = await adminToken()
    const rot = await api(`/api/v1/admin/apps/${a.app_id}/access-token/rotate`, { method: 'POST', token: admin })
    expect(rot.status).toBe(200)
    expect((await api(path, { headers: asApp(a) })).body.error.code).toBe('app_token_invalid')
    expect((await api(path, { headers: { 'X-App-Access-Token': rot.body.access_token } })).status).toBe(200)
    await api(`/api/v1/admin/apps/${a.app_id}/disable`, { method: 'POST', token: admin })
    const disabled = await api(path, { headers: { 'X-App-Access-Token': rot.body.access_token } })
    expect(disabled.status).toBe(403)
    expect(disabled.body.error.code).toBe('app_disabled')
  })

  it('an admin bearer token works on the mapping endpoints of any app', async () => {
    const a = await createApp()
    const u = await createUser()
    const admin = await adminToken()
    const noApp = await api('/api/v1/apps/mapping/sync', { method: 'POST', token: admin, json: { items: [{ mobile: u.mobile, mapped_key: 'k', action: 'ADD' }] } })
    expect(noApp.status).toBe(400)
    const k = key('adm')
    const s = await api('/api/v1/apps/mapping/sync', { method: 'POST', token: admin, json: { app_id: a.app_id, items: [{ mobile: u.mobile, mapped_key: k, action: 'ADD' }] } })
    expect(s.body.results[0].code).toBe('created')
    const [audit] = await auditLog({ action: 'admin.mapping.sync', target_id: s.body.results[0].mapping_id })
    expect(audit.actor_type).toBe('admin')
    expect((await api(`/api/v1/apps/${a.app_id}/users/query?mobile=${encodeURIComponent(u.mobile)}`, { token: admin })).body.mapping.mapped_key).toBe(k)
    expect((await api(`/api/v1/apps/${a.app_id}/users/changes`, { token: admin })).body.items).toHaveLength(1)
    expect((await api('/api/v1/apps/app_nope/users/changes', { token: admin })).status).toBe(404)
    // a non-admin user token is refused
    const t = await login(u.mobile, u.password)
    expect((await api(`/api/v1/apps/${a.app_id}/users/changes`, { token: t.access_token })).status).toBe(403)
  })

  it('query answers 404 for an unknown mobile and 400 for an invalid one', async () => {
    const a = await createApp()
    const r = await query(a, uniqueMobile())
    expect(r.status).toBe(404)
    expect(r.body.error.code).toBe('user_not_found')
    expect((await query(a, 'abc')).status).toBe(400)
  })

  it('query reveals a user only when mapped in the calling app (a disabled mapping included); any other number gets the same 404', async () => {
    const a = await createApp()
    const [mapped, disabled, stranger] = [await createUser({ name: 'Mapped' }), await createUser(), await createUser()]
    await sync(a, [
      { mobile: mapped.mobile, mapped_key: key('q'), action: 'ADD' },
      { mobile: disabled.mobile, mapped_key: key('q'), action: 'ADD' },
      { mobile: disabled.mobile, action: 'DISABLE' },
    ])
    const ok = await query(a, mapped.mobile)
    expect(ok.status).toBe(200)
    expect(ok.body.user).toMatchObject({ mobile: mapped.mobile, name: 'Mapped', status: 'ACTIVE' })
    expect(ok.body.mapping.is_active).toBe(true)
    expect((await query(a, disabled.mobile)).body.mapping.is_active).toBe(false)
    const answers = [await query(a, stranger.mobile), await query(a, uniqueMobile())]
    for (const r of answers) expect(r.status).toBe(404)
    const [x, y] = answers.map((r) => ({ ...r.body.error, request_id: null }))
    expect(x).toEqual(y)
    expect(x.code).toBe('user_not_found')
    // an admin token follows the same rule
    const admin = await adminToken()
    expect((await api(`/api/v1/apps/${a.app_id}/users/query?mobile=${encodeURIComponent(stranger.mobile)}`, { token: admin })).status).toBe(404)
  })
})

describe('GET /api/v1/apps/{app_id}/users/changes', () => {
  it('pages through every change in order, with interleaved writers and many changes per millisecond', async () => {
    const [a, b] = [await createApp(), await createApp()]
    const us = await quickUsers(25)
    const adds = (app: App) => us.map((u) => ({ mobile: u.mobile, mapped_key: `${app.app_id}-${u.id}`, action: 'ADD' as const }))
    const disables = us.slice(0, 10).map((u) => ({ mobile: u.mobile, action: 'DISABLE' as const }))
    // both apps write at the same time, twice
    const round1 = await Promise.all([sync(a, adds(a)), sync(b, adds(b))])
    // the re-ADD races the DISABLE of the same users: reactivated or mapping_exists, either is fine
    const round2 = await Promise.all([sync(a, disables), sync(b, disables), sync(a, us.slice(0, 5).map((u) => ({ mobile: u.mobile, mapped_key: `re-${u.id}`, action: 'ADD' as const })))])
    const changed = [round1[0], round2[0], round2[2]].flatMap((r) => r.body.results).filter((x: any) => ['created', 'reactivated', 'updated', 'disabled'].includes(x.code))

    const truth = await events(a.app_id)
    expect(changed.length).toBeGreaterThanOrEqual(35)
    expect(truth.length).toBe(changed.length)
    // many changes share a millisecond (a chunk is written with one timestamp)
    const perMs = new Map<number, number>()
    for (const e of truth) perMs.set(e.created_at, (perMs.get(e.created_at) ?? 0) + 1)
    expect(Math.max(...perMs.values())).toBeGreaterThan(1)

    const seen: any[] = []
    let cursor: string | undefined
    for (let page = 0; page < 20; page++) {
      const r = await changes(a, cursor, 7)
      expect(r.status).toBe(200)
      seen.push(...r.body.items)
      cursor = r.body.next_cursor
      if (!r.body.has_more) break
    }
    expect(seen.map((e) => e.event_id)).toEqual(truth.map((e) => e.event_id))
    expect(seen.every((e) => e.app_id === a.app_id)).toBe(true)
    expect(seen.map((e) => e.seq)).toEqual([...seen.map((e) => e.seq)].sort((x, y) => x - y))
    expect(seen[0]).toMatchObject({ event_type: 'ADD', status: 'ACTIVE', mobile: expect.stringMatching(/^\+86/) })

    // nothing new: same cursor back, empty page
    const idle = await changes(a, cursor)
    expect(idle.body).toEqual({ items: [], next_cursor: cursor, has_more: false })
    // a later change appears after the cursor, and only it
    await sync(a, [{ mobile: us[20].mobile, action: 'DISABLE' }])
    const next = await changes(a, cursor)
    expect(next.body.items.map((e: any) => e.event_type)).toEqual(['DISABLE'])
    expect(Number(next.body.next_cursor)).toBeGreaterThan(Number(cursor))
  })

  it('refuses a timestamp or garbage as cursor', async () => {
    const a = await createApp()
    expect((await changes(a, '2026-01-01T00:00:00Z')).status).toBe(400)
    expect((await changes(a, '-1')).status).toBe(400)
    expect((await changes(a, '0')).status).toBe(200)
  })
})

describe('reads from D1 read replicas (Sessions API)', () => {
  const BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32}$/
  const d1Ops = (m: Awaited<ReturnType<typeof measureStorage>>) => m.log.filter((c) => c.kind === 'd1').map((c) => c.op)

  it('users/query and users/changes read through a session, answer X-UAP-Bookmark, and read at least that fresh when it is sent back', async () => {
    const a = await createApp()
    const u = await createUser()
    await mapUser(a.app_id, u)
    const headers = asApp(a)
    const q = await measureStorage(`/api/v1/apps/${a.app_id}/users/query?mobile=${encodeURIComponent(u.mobile)}`, { headers })
    expect(q.response.status).toBe(200)
    // the lookup itself is the replica read; the app's token check stays on the primary (a revoked token must not pass)
    expect(d1Ops(q).some((op) => op.startsWith('session(first-unconstrained).'))).toBe(true)
    const bookmark = q.response.headers.get('X-UAP-Bookmark')!
    expect(bookmark).toMatch(BOOKMARK)
    const again = await measureStorage(`/api/v1/apps/${a.app_id}/users/changes`, { headers: { ...headers, 'X-UAP-Bookmark': bookmark } })
    expect(again.response.status).toBe(200)
    expect(d1Ops(again).some((op) => op.startsWith('session(bookmark).'))).toBe(true)
    expect(again.response.headers.get('X-UAP-Bookmark')! >= bookmark).toBe(true)
    expect(((await again.response.json()) as any).items).toHaveLength(1)
  })

  it('a malformed bookmark is a 400 naming the header, never passed to D1', async () => {
    const a = await createApp()
    for (const path of [`/api/v1/apps/${a.app_id}/users/changes`, `/api/v1/apps/${a.app_id}/users/query?mobile=%2B8613800138000`]) {
      const r = await api(path, { headers: { ...asApp(a), 'X-UAP-Bookmark': 'garbage' } })
      expect(r.status, path).toBe(400)
      expect(r.body.error.code).toBe('invalid_request')
      expect(JSON.stringify(r.body.error.details)).toMatch(/x-uap-bookmark/i)
    }
  })
})

describe('admin mapping CRUD', () => {
  it('creates, reads, lists, updates, disables and deletes, each with its event and audit row', async () => {
    const a = await createApp()
    const admin = await adminToken()
    const [u, v] = [await createUser({ name: 'Wang Wu' }), await createUser()]
    const base = `/api/v1/admin/apps/${a.app_id}/mappings`
    const k = key('crud')

    const created = await api(base, { method: 'POST', token: admin, json: { mobile: u.mobile, mapped_key: k } })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ app_id: a.app_id, user_id: u.id, mobile: u.mobile, mapped_key: k, name: 'Wang Wu', is_active: true })
    const id = created.body.mapping_id
    expect((await api(base, { method: 'POST', token: admin, json: { mobile: u.mobile, mapped_key: k } })).status).toBe(200)
    expect((await api(base, { method: 'POST', token: admin, json: { mobile: v.mobile, mapped_key: k } })).body.error.code).toBe('mapped_key_taken')
    expect((await api(base, { method: 'POST', token: admin, json: { mobile: uniqueMobile(), mapped_key: key('n') } })).status).toBe(404)
    const vk = key('v')
    expect((await api(base, { method: 'POST', token: admin, json: { mobile: v.mobile, mapped_key: vk } })).status).toBe(201)

    expect((await api(`${base}/${id}`, { token: admin })).body.mapped_key).toBe(k)
    const list = await api(`${base}?page_size=1`, { token: admin })
    expect(list.body).toMatchObject({ total: 2, page: 1, page_size: 1 })
    expect(list.body.items).toHaveLength(1)
    expect((await api(`${base}?mapped_key=${encodeURIComponent(vk)}`, { token: admin })).body.items[0].user_id).toBe(v.id)

    const k2 = key('crud2')
    expect((await api(`${base}/${id}`, { method: 'PATCH', token: admin, json: { mapped_key: k2, name: 'W. Wu' } })).body).toMatchObject({ mapped_key: k2, name: 'W. Wu' })
    const taken = await api(`${base}/${id}`, { method: 'PATCH', token: admin, json: { mapped_key: vk } })
    expect(taken.status).toBe(409)
    expect(taken.body.error.code).toBe('mapped_key_taken')
    expect((await api(`${base}/${id}/disable`, { method: 'POST', token: admin })).body.is_active).toBe(false)
    expect((await api(`${base}?status=DISABLED`, { token: admin })).body.items.map((m: any) => m.mapping_id)).toEqual([id])
    expect((await api(`${base}/${id}`, { method: 'PATCH', token: admin, json: { is_active: true } })).body.is_active).toBe(true)
    expect((await api(`${base}/${id}`, { method: 'DELETE', token: admin })).body).toEqual({ deleted: true, mapping_id: id })
    expect((await api(`${base}/${id}`, { token: admin })).status).toBe(404)
    expect((await api(`${base}/${id}`, { method: 'DELETE', token: admin })).status).toBe(404)

    const evs = (await events(a.app_id)).filter((e) => e.mapping_id === id)
    expect(evs.map((e) => e.event_type)).toEqual(['ADD', 'UPDATE', 'DISABLE', 'ADD', 'DELETE'])
    expect(evs[4].payload).toMatchObject({ mobile: u.mobile, mapped_key: k2, status: 'ACTIVE', name: 'W. Wu' })
    const audits = (await auditLog({ target_id: id })).reverse().filter((r) => r.action.startsWith('admin.mapping.'))
    expect(audits.map((r) => r.action)).toEqual(['admin.mapping.create', 'admin.mapping.update', 'admin.mapping.disable', 'admin.mapping.update', 'admin.mapping.delete'])
    // the user can be mapped again after a delete
    expect((await api(base, { method: 'POST', token: admin, json: { mobile: u.mobile, mapped_key: k } })).status).toBe(201)
    await expectOutboxConsistent(a.app_id)
  })

  it('needs an admin token, and a known app', async () => {
    const a = await createApp()
    expect((await api(`/api/v1/admin/apps/${a.app_id}/mappings`, { headers: asApp(a) })).status).toBe(401)
    expect((await api('/api/v1/admin/apps/app_nope/mappings', { token: await adminToken() })).status).toBe(404)
  })
})

describe('API documents', () => {
  it('the partner spec lists the mapping endpoints and no admin route; the admin spec lists both', async () => {
    const open = (await api('/docs/open/openapi.json')).body
    for (const p of ['/api/v1/apps/mapping/sync', '/api/v1/apps/{app_id}/users/query', '/api/v1/apps/{app_id}/users/changes']) expect(open.paths[p], p).toBeDefined()
    expect(Object.keys(open.paths).filter((p) => p.startsWith('/api/v1/admin'))).toEqual([])
    expect(open.components.securitySchemes.appAccessToken).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-App-Access-Token' })
    const admin = (await api('/docs/admin/openapi.json')).body
    for (const p of ['/api/v1/admin/apps', '/api/v1/admin/apps/{app_id}', '/api/v1/admin/apps/{app_id}/mappings/{mapping_id}', '/api/v1/apps/mapping/sync']) expect(admin.paths[p], p).toBeDefined()
  })
})
