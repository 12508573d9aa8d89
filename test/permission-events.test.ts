import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { adminToken, api, createUser } from './support/api'
import { createGroup, definePermission, groupType, revokeGrant, setGrant } from './support/directory'
import { receiver, received, settled, sink, until, verified, webhookApp, webhookEvent } from './support/webhooks'

// permission.changed webhooks (docs/webhooks.md, docs/permissions.md): every grant, revoke
// and permission delete writes one outbox event in its own batch; the real queue consumer
// delivers it, signed, to a real receiver on 127.0.0.1; the changes feed never shows it.

const feed = (app: { appId: string; accessToken: string }, since?: string) =>
  api(`/api/v1/apps/${app.appId}/users/changes${since ? `?since=${since}` : ''}`, { headers: { 'X-App-Access-Token': app.accessToken } })

const permissionRows = async (appId: string) =>
  (await env.DB.prepare("SELECT event_id, user_id, mapping_id, event_type FROM mapping_events WHERE app_id = ? AND type = 'permission.changed' ORDER BY id").bind(appId).all()).results

describe('permission.changed webhooks', () => {
  it('a grant to a user and to a group, a revoke and a permission delete each deliver one signed event; nothing else does', async () => {
    const admin = await adminToken()
    const s = await sink()
    const app = await webhookApp(admin, s.url)
    const [mapped, unmapped] = [await createUser({ name: 'Li Lei' }), await createUser({ name: 'Nobody here' })]
    const sync = await api('/api/v1/apps/mapping/sync', { method: 'POST', headers: { 'X-App-Access-Token': app.accessToken }, json: { items: [{ mobile: mapped.mobile, mapped_key: 'lilei', name: 'Lei L.', action: 'ADD' }] } })
    expect(sync.status).toBe(200)
    const mapping = sync.body.results[0] as { event_id: string; mapping_id: string }
    const group = await createGroup(await groupType(), 'East')
    await definePermission(app.appId, 'orders:read')
    await definePermission(app.appId, 'orders:write')

    const toUser = await setGrant(app.appId, { permission: 'orders:read', subject: { type: 'user', id: mapped.id }, effect: 'allow' })
    const toGroup = await setGrant(app.appId, { permission: 'orders:read', subject: { type: 'group', id: group }, effect: 'deny', scope: { type: 'store', id: '42' } })
    await setGrant(app.appId, { permission: 'orders:read', subject: { type: 'user', id: mapped.id }, effect: 'deny' }) // effect changed: an event
    await setGrant(app.appId, { permission: 'orders:read', subject: { type: 'user', id: mapped.id }, effect: 'deny' }) // unchanged: none
    await setGrant(app.appId, { permission: 'access', subject: { type: 'user', id: unmapped.id }, effect: 'allow' })
    await revokeGrant(app.appId, toGroup.grant_id)
    // refused changes write nothing: unknown permission, unknown subject, a scoped `access`
    const put = (json: unknown) => api(`/api/v1/admin/apps/${app.appId}/grants`, { method: 'PUT', token: admin, json })
    expect((await put({ permission: 'nope', subject: { type: 'user', id: mapped.id }, effect: 'allow' })).status).toBe(404)
    expect((await put({ permission: 'orders:read', subject: { type: 'group', id: 'no-such-group' }, effect: 'allow' })).status).toBe(404)
    expect((await put({ permission: 'access', subject: { type: 'user', id: mapped.id }, effect: 'allow', scope: { type: 'store', id: '1' } })).status).toBe(400)
    expect((await api(`/api/v1/admin/apps/${app.appId}/grants/no-such-grant`, { method: 'DELETE', token: admin })).status).toBe(404)
    expect((await api(`/api/v1/admin/apps/${app.appId}/permissions/orders:write`, { method: 'DELETE', token: admin })).status).toBe(200)

    const calls = await until('seven deliveries', async () => ((await received(s.id)).length >= 7 ? received(s.id) : null))
    expect(calls).toHaveLength(7)
    const bodies = calls.map((c) => verified(app.webhookSecret, c)).sort((a, b) => a.seq - b.seq)
    expect(bodies[0]).toMatchObject({ id: mapping.event_id, type: 'mapping.added' })
    const perm = bodies.slice(1)
    const envelope = (p: any) => ({ id: p.id, type: p.type, event_type: p.event_type, app_id: p.app_id, seq: p.seq, occurred_at: p.occurred_at, user_data: p.user_data })
    for (const p of perm) expect(envelope(p)).toEqual({ id: expect.any(String), type: 'permission.changed', event_type: 'PERMISSION', app_id: app.appId, seq: expect.any(Number), occurred_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), user_data: null })
    const asMapped = { mapping_id: mapping.mapping_id, mapped_key: 'lilei', name: 'Lei L.', status: 'ACTIVE' }
    expect(perm.map((p) => [p.mapping_id, p.user_id, p.permission_data])).toEqual([
      [mapping.mapping_id, mapped.id, { permission: 'orders:read', change: 'granted', subject: { type: 'user', id: mapped.id, mapping: asMapped }, scope: null, effect: 'allow', previous_effect: null, refresh: 'user' }],
      [null, null, { permission: 'orders:read', change: 'granted', subject: { type: 'group', id: group, name: 'East' }, scope: { type: 'store', id: '42' }, effect: 'deny', previous_effect: null, refresh: 'all' }],
      [mapping.mapping_id, mapped.id, { permission: 'orders:read', change: 'granted', subject: { type: 'user', id: mapped.id, mapping: asMapped }, scope: null, effect: 'deny', previous_effect: 'allow', refresh: 'user' }],
      // a user the app does not know: no mapping
      [null, unmapped.id, { permission: 'access', change: 'granted', subject: { type: 'user', id: unmapped.id, mapping: null }, scope: null, effect: 'allow', previous_effect: null, refresh: 'user' }],
      [null, null, { permission: 'orders:read', change: 'revoked', subject: { type: 'group', id: group, name: 'East' }, scope: { type: 'store', id: '42' }, effect: null, previous_effect: 'deny', refresh: 'all' }],
      [null, null, { permission: 'orders:write', change: 'deleted', subject: null, scope: null, effect: null, previous_effect: null, refresh: 'all' }],
    ])

    // one outbox row per change that happened, none for the unchanged or refused ones
    const rows = await permissionRows(app.appId)
    expect(rows).toHaveLength(6)
    expect(rows.map((r) => r.event_id)).toEqual(perm.map((p) => p.id))
    // each was audited with its event, in the same batch
    const audited = (await env.DB.prepare("SELECT details FROM audit_logs WHERE action IN ('admin.grant.set', 'admin.grant.revoke', 'admin.permission.delete') AND details LIKE ?").bind(`%${app.appId}%`).all<{ details: string }>()).results
    expect(audited.map((a) => JSON.parse(a.details).event_id).sort()).toEqual(rows.map((r) => r.event_id).sort())

    // the admin view shows the exact payload sent, delivered in one attempt
    const e = await settled(admin, app.appId, perm[0].id, 'delivered')
    expect(e).toMatchObject({ type: 'permission.changed', event_type: 'PERMISSION', attempt_count: 1, payload: perm[0] })
    expect(await api(`/api/v1/admin/apps/${app.appId}/webhooks/events/${perm[0].id}/retry`, { method: 'POST', token: admin })).toMatchObject({ status: 409, body: { error: { code: 'already_delivered' } } })

    // the changes feed: the mapping change only, its cursor that change's seq
    const page = await feed(app)
    expect(page.status).toBe(200)
    expect(page.body.items.map((i: any) => [i.event_id, i.type])).toEqual([[mapping.event_id, 'mapping.added']])
    expect(page.body).toMatchObject({ next_cursor: String(bodies[0].seq), has_more: false })
    const next = await feed(app, page.body.next_cursor)
    expect(next.body).toEqual({ items: [], next_cursor: page.body.next_cursor, has_more: false })
    // paging by one: still only the mapping change, has_more false after it
    const one = await api(`/api/v1/apps/${app.appId}/users/changes?limit=1`, { headers: { 'X-App-Access-Token': app.accessToken } })
    expect(one.body).toMatchObject({ items: [expect.objectContaining({ event_id: mapping.event_id })], has_more: false })
  })

  it('a receiver that is down: the event fails after the retries, and retry-failed delivers it', async () => {
    const admin = await adminToken()
    const app = await webhookApp(admin, receiver().downUrl)
    const u = await createUser()
    const g = await setGrant(app.appId, { permission: 'access', subject: { type: 'user', id: u.id }, effect: 'allow' })
    const [row] = await permissionRows(app.appId)
    expect(row).toMatchObject({ user_id: u.id, mapping_id: null, event_type: 'PERMISSION' })
    const failed = await settled(admin, app.appId, row.event_id as string, 'failed')
    expect(failed.attempts).toHaveLength(6)
    expect((await api(`/api/v1/admin/apps/${app.appId}/webhooks/events?status=failed`, { token: admin })).body.items.map((i: any) => [i.event_id, i.type, i.event_type])).toEqual([
      [row.event_id, 'permission.changed', 'PERMISSION'],
    ])

    const s = await sink()
    expect((await api(`/api/v1/admin/apps/${app.appId}`, { method: 'PATCH', token: admin, json: { notification_url: s.url } })).status).toBe(200)
    expect(await api(`/api/v1/admin/apps/${app.appId}/webhooks/retry-failed`, { method: 'POST', token: admin })).toMatchObject({ status: 202, body: { retried: 1, remaining: 0 } })
    const done = await settled(admin, app.appId, row.event_id as string, 'delivered')
    expect(done.attempts.at(-1)).toMatchObject({ attempt: 7, origin: 'retry', http_status: 200 })
    const [call] = await received(s.id)
    expect(verified(app.webhookSecret, call)).toMatchObject({ id: row.event_id, permission_data: { change: 'granted', permission: 'access', subject: { type: 'user', id: u.id, mapping: null } } })
    expect(g.grant_id).toEqual(expect.any(String))
  })

  it('the outbox after its rebuild: user_id and mapping_id nullable, every index kept, the feed read still on (app_id, id)', async () => {
    const cols = (await env.DB.prepare('PRAGMA table_info(mapping_events)').all<{ name: string; notnull: number }>()).results
    expect(cols.map((c) => [c.name, c.notnull])).toEqual([
      ['id', 1],
      ['event_id', 1],
      ['app_id', 1],
      ['user_id', 0],
      ['mapping_id', 0],
      ['event_type', 1],
      ['payload', 1],
      ['created_at', 1],
      ['delivered_at', 0],
      ['type', 1],
    ])
    const indexes = (await env.DB.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'mapping_events' AND name NOT LIKE 'sqlite_%' ORDER BY name").all<{ name: string }>()).results
    expect(indexes.map((i) => i.name)).toEqual(['mapping_events_app_seq_idx', 'mapping_events_event_id_unique', 'mapping_events_undelivered_idx'])
    // the feed's query shape (src/mappings/service.ts listChanges): a range on the (app_id, id) index, no sort step
    const plan = (
      await env.DB.prepare(
        "EXPLAIN QUERY PLAN SELECT * FROM mapping_events WHERE app_id = ? AND id > ? AND type IN ('mapping.added', 'mapping.updated', 'mapping.disabled', 'mapping.deleted', 'user.disabled', 'user.enabled', 'user.updated') ORDER BY id LIMIT 101",
      )
        .bind('app_x', 0)
        .all<{ detail: string }>()
    ).results.map((r) => r.detail)
    expect(plan.join('\n')).toMatch(/USING INDEX mapping_events_app_seq_idx \(app_id=\? AND id>\?\)/)
    expect(plan.join('\n')).not.toMatch(/TEMP B-TREE/)
  })
})
