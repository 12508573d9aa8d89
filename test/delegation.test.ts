// Sub-admins (docs/admin-rights.md): scopes through nested groups, filtered lists, batches
// refused whole, apps a sub-admin registers, admin groups closed to sub-admins, grants that
// do not lend rights to each other's scopes, and the audit rows they leave.
import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { adminApi, adminToken, api, createUser, uniqueMobile } from './support/api'
import { createApp } from './support/apps'
import { createAdminGroup, group, subAdmin, subAdminWith, userIn } from './support/delegation'
import { buildApp } from '../src/app'
import { adminRouteTable } from '../src/delegation/rights'
import rightsDoc from '../docs/admin-rights.md?raw'

const U = '/api/v1/admin'
const tag = () => Math.random().toString(36).slice(2, 10)

/** Sales ▸ East ▸ Shanghai with a user at each level, and Marketing beside it. */
async function world() {
  const t = tag()
  const sales = await group(`Sales ${t}`)
  const east = await group('East', sales)
  const shanghai = await group('Shanghai', east)
  const marketing = await group(`Marketing ${t}`)
  const name = (s: string) => `${s} ${t}`
  return {
    t,
    sales,
    east,
    shanghai,
    marketing,
    inSales: await userIn(sales, name('in-sales')),
    inShanghai: await userIn(shanghai, name('in-shanghai')),
    inMarketing: await userIn(marketing, name('in-marketing')),
    loner: await createUser({ name: name('loner') }),
  }
}

describe('scope through nested groups', () => {
  it('a group reaches every user in its subtree, listed users too, and nobody else', async () => {
    const w = await world()
    const sub = await subAdminWith(['users.read', 'users.write'], { groups: [w.sales], users: [w.loner.id] })
    for (const u of [w.inSales, w.inShanghai, w.loner]) {
      expect((await api(`${U}/users/${u.id}`, { token: sub.token })).status).toBe(200)
      expect((await api(`${U}/users/${u.id}`, { method: 'PATCH', token: sub.token, json: { name: `changed ${w.t}` } })).status).toBe(200)
    }
    const out = await api(`${U}/users/${w.inMarketing.id}`, { token: sub.token })
    expect(out.status).toBe(403)
    expect(out.body.error.code).toBe('out_of_scope')
    // an id that names nobody is as out of scope as another's user
    expect((await api(`${U}/users/no-such-user`, { token: sub.token })).body.error.code).toBe('out_of_scope')
    // a user moved into the subtree is reached at once; moved out, no longer
    await adminApi('POST', `${U}/groups/${w.east}/members`, { user_ids: [w.inMarketing.id] })
    expect((await api(`${U}/users/${w.inMarketing.id}`, { token: sub.token })).status).toBe(200)
    await adminApi('POST', `${U}/groups/${w.east}/members/remove`, { user_ids: [w.inMarketing.id] })
    expect((await api(`${U}/users/${w.inMarketing.id}`, { token: sub.token })).status).toBe(403)
  })

  it('a sub-admin of East manages East and Shanghai, not Sales; creates groups and users only inside', async () => {
    const w = await world()
    const sub = await subAdminWith(['users.read', 'users.write', 'groups.manage'], { groups: [w.east] })
    expect((await api(`${U}/groups/${w.shanghai}`, { method: 'PATCH', token: sub.token, json: { name: `Shanghai ${w.t}` } })).status).toBe(200)
    expect((await api(`${U}/groups/${w.sales}`, { method: 'PATCH', token: sub.token, json: { name: 'x' } })).body.error.code).toBe('out_of_scope')
    expect((await api(`${U}/groups`, { method: 'POST', token: sub.token, json: { parent_id: w.shanghai, name: 'Pudong' } })).status).toBe(201)
    expect((await api(`${U}/groups`, { method: 'POST', token: sub.token, json: { parent_id: w.sales, name: 'West' } })).body.error.code).toBe('out_of_scope')
    expect((await api(`${U}/groups`, { method: 'POST', token: sub.token, json: { type_id: 'department', name: `Root ${w.t}` } })).body.error.code).toBe('out_of_scope')
    // moving a group of the scope out of it is refused
    expect((await api(`${U}/groups/${w.shanghai}`, { method: 'PATCH', token: sub.token, json: { parent_id: w.marketing } })).body.error.code).toBe('out_of_scope')
    // new users go into a group of the scope, in the same write
    const mobile = '+86136' + String(Date.now() % 1e8).padStart(8, '0')
    const noGroup = await api(`${U}/users`, { method: 'POST', token: sub.token, json: { mobile, password: 'sub-admin-made-123' } })
    expect(noGroup.body.error.code).toBe('out_of_scope')
    const made = await api(`${U}/users`, { method: 'POST', token: sub.token, json: { mobile, password: 'sub-admin-made-123', group_id: w.shanghai } })
    expect(made.status).toBe(201)
    const groups = await adminApi('GET', `${U}/users/${made.body.id}/groups`)
    expect(groups.groups.map((g: any) => g.group_id)).toEqual([w.shanghai])
  })
})

describe('lists show the scope only', () => {
  it('users, export, groups, a user’s groups, mappings and grants', async () => {
    const w = await world()
    const app = await createApp({ app_name: `Scoped ${w.t}` })
    for (const u of [w.inSales, w.inShanghai, w.inMarketing]) await adminApi('POST', `${U}/apps/${app.app_id}/mappings`, { mobile: u.mobile, mapped_key: `k-${u.id}` })
    await adminApi('POST', `${U}/apps/${app.app_id}/permissions`, { key: 'p', name: 'P' })
    for (const id of [w.inShanghai.id, w.inMarketing.id]) await adminApi('PUT', `${U}/apps/${app.app_id}/grants`, { permission: 'p', subject: { type: 'user', id }, effect: 'allow' })
    await adminApi('PUT', `${U}/apps/${app.app_id}/grants`, { permission: 'p', subject: { type: 'group', id: w.marketing }, effect: 'allow' })
    // the in-marketing user is also in Shanghai: their groups list shows Shanghai only
    await adminApi('POST', `${U}/groups/${w.shanghai}/members`, { user_ids: [w.loner.id] })
    await adminApi('POST', `${U}/groups/${w.marketing}/members`, { user_ids: [w.loner.id] })
    const sub = await subAdminWith(['users.read', 'permissions.grant'], { groups: [w.sales], apps: [app.app_id] })

    const users = await api(`${U}/users?q=${w.t}&page_size=100`, { token: sub.token })
    expect(users.status).toBe(200)
    expect(users.body.items.map((u: any) => u.id).sort()).toEqual([w.inSales.id, w.inShanghai.id, w.loner.id].sort())
    expect(users.body.total).toBe(3)
    const all = await api(`${U}/users?q=${w.t}&page_size=100`, { token: await adminToken() })
    expect(all.body.total).toBe(4)

    const exported = await api(`${U}/users/export?q=${w.t}`, { token: sub.token })
    expect(exported.status).toBe(200)
    expect(exported.body).toContain(w.inShanghai.mobile)
    expect(exported.body).not.toContain(w.inMarketing.mobile)

    const groups = await api(`${U}/groups`, { token: sub.token })
    const ids = groups.body.items.map((g: any) => g.id)
    expect(ids).toEqual(expect.arrayContaining([w.sales, w.east, w.shanghai]))
    expect(ids).not.toContain(w.marketing)
    expect(groups.body.items.find((g: any) => g.id === w.shanghai).path).toEqual([`Sales ${w.t}`, 'East', 'Shanghai'])

    const lonerGroups = await api(`${U}/users/${w.loner.id}/groups`, { token: sub.token })
    expect(lonerGroups.body.groups.map((g: any) => g.group_id)).toEqual([w.shanghai])

    const mappings = await api(`${U}/apps/${app.app_id}/mappings`, { token: sub.token })
    expect(mappings.body.items.map((m: any) => m.user_id).sort()).toEqual([w.inSales.id, w.inShanghai.id].sort())
    expect(mappings.body.total).toBe(2)

    const grants = await api(`${U}/apps/${app.app_id}/grants`, { token: sub.token })
    expect(grants.body.items.map((g: any) => g.subject.id)).toEqual([w.inShanghai.id])
    const holders = await api(`${U}/apps/${app.app_id}/permissions/p/holders`, { token: sub.token })
    expect(holders.body.items.map((h: any) => h.user_id).sort()).toEqual([w.inShanghai.id, w.loner.id].sort())
    expect((await api(`${U}/apps/${app.app_id}/permissions/p/holders`, { token: await adminToken() })).body.total).toBe(3)
  })
})

describe('an id in the path that the sub-admin cannot see', () => {
  it('a mapping or grant outside the scope and one that does not exist get the same out_of_scope', async () => {
    const w = await world()
    const app = await createApp({ app_name: `Ids ${w.t}` })
    const theirs = await adminApi('POST', `${U}/apps/${app.app_id}/mappings`, { mobile: w.inMarketing.mobile, mapped_key: `k-${w.inMarketing.id}` })
    const mine = await adminApi('POST', `${U}/apps/${app.app_id}/mappings`, { mobile: w.inSales.mobile, mapped_key: `k-${w.inSales.id}` })
    await adminApi('POST', `${U}/apps/${app.app_id}/permissions`, { key: 'p', name: 'P' })
    const theirGrant = await adminApi('PUT', `${U}/apps/${app.app_id}/grants`, { permission: 'p', subject: { type: 'user', id: w.inMarketing.id }, effect: 'allow' })
    const myGrant = await adminApi('PUT', `${U}/apps/${app.app_id}/grants`, { permission: 'p', subject: { type: 'group', id: w.east }, effect: 'allow' })
    const sub = await subAdminWith(['users.read', 'mappings.write', 'permissions.grant'], { groups: [w.sales], apps: [app.app_id] })
    for (const id of [theirs.mapping_id, mine.mapping_id, theirGrant.grant_id, myGrant.grant_id]) expect(id).toMatch(/^[0-9a-f-]{36}$/)
    const M = `${U}/apps/${app.app_id}/mappings`
    const G = `${U}/apps/${app.app_id}/grants`

    for (const [method, path] of [
      ['GET', `${M}/${theirs.mapping_id}`],
      ['GET', `${M}/${crypto.randomUUID()}`],
      ['PATCH', `${M}/${theirs.mapping_id}`],
      ['PATCH', `${M}/${crypto.randomUUID()}`],
      ['DELETE', `${G}/${theirGrant.grant_id}`],
      ['DELETE', `${G}/${crypto.randomUUID()}`],
    ] as const) {
      const r = await api(path, { method, token: sub.token, json: method === 'PATCH' ? { mapped_key: 'changed' } : undefined })
      expect(r.status, `${method} ${path}`).toBe(403)
      expect(r.body.error.code, `${method} ${path}`).toBe('out_of_scope')
    }
    // inside the scope they still work, a grant through the subject's group too
    expect((await api(`${M}/${mine.mapping_id}`, { token: sub.token })).status).toBe(200)
    expect((await api(`${G}/${myGrant.grant_id}`, { method: 'DELETE', token: sub.token })).status).toBe(200)
    // a full admin is told what does not exist
    expect((await api(`${M}/${crypto.randomUUID()}`, { token: await adminToken() })).status).toBe(404)
  })

  it('a path segment that is not valid percent-encoding is a 400, for a full admin and a sub-admin alike', async () => {
    const w = await world()
    const sub = await subAdminWith(['users.read', 'groups.manage'], { groups: [w.sales] })
    for (const token of [await adminToken(), sub.token]) {
      for (const path of [`${U}/users/%E0%A4%A`, `${U}/users/%ZZ`, `${U}/groups/%C0%AF/members`]) {
        const r = await api(path, { token })
        expect(r.status, path).toBe(400)
        expect(r.body.error.code, path).toBe('invalid_request')
      }
    }
    // and /docs/admin lists it on the routes with an object in the path
    const spec = (await api('/docs/admin/openapi.json')).body
    expect(spec.paths['/api/v1/admin/users/{id}'].get.responses['400'].description).toMatch(/percent-encoding/)
  })
})

describe('a batch with one object outside the scope is refused whole', () => {
  it('group members, grants, SSO targets', async () => {
    const w = await world()
    const app = await createApp({ app_name: `Batch ${w.t}` })
    const other = await createApp({ app_name: `Other ${w.t}` })
    await adminApi('POST', `${U}/apps/${app.app_id}/permissions`, { key: 'p', name: 'P' })
    const sub = await subAdminWith(['groups.manage', 'permissions.grant', 'apps.manage', 'users.read'], { groups: [w.sales], apps: [app.app_id] })
    const add = await api(`${U}/groups/${w.shanghai}/members`, { method: 'POST', token: sub.token, json: { user_ids: [w.inSales.id, w.inMarketing.id] } })
    expect(add.status).toBe(403)
    expect(add.body.error).toMatchObject({ code: 'out_of_scope', details: { user_ids: [w.inMarketing.id] } })
    const members = await adminApi('GET', `${U}/groups/${w.shanghai}/members`)
    expect(members.items.map((m: any) => m.user_id)).toEqual([w.inShanghai.id])
    const grant = await api(`${U}/apps/${app.app_id}/grants`, { method: 'PUT', token: sub.token, json: { permission: 'p', subject: { type: 'group', id: w.marketing }, effect: 'allow' } })
    expect(grant.body.error.code).toBe('out_of_scope')
    expect((await adminApi('GET', `${U}/apps/${app.app_id}/grants`)).items).toEqual([])
    const targets = await api(`${U}/apps/${app.app_id}`, { method: 'PATCH', token: sub.token, json: { sso_targets: [other.app_id] } })
    expect(targets.body.error).toMatchObject({ code: 'out_of_scope', details: { app_ids: [other.app_id] } })
    // mapping a user by mobile: out of scope, whether the number is someone else's or nobody's
    const sub2 = await subAdminWith(['mappings.write'], { groups: [w.sales], apps: [app.app_id] })
    for (const mobile of [w.inMarketing.mobile, '+8613000000001']) {
      const r = await api(`${U}/apps/${app.app_id}/mappings`, { method: 'POST', token: sub2.token, json: { mobile, mapped_key: `k-${tag()}` } })
      expect(r.body.error.code).toBe('out_of_scope')
    }
    expect((await api(`${U}/apps/${app.app_id}/mappings`, { method: 'POST', token: sub2.token, json: { mobile: w.inSales.mobile, mapped_key: `k-${tag()}` } })).status).toBe(201)
  })
})

describe('apps a sub-admin registers are theirs', () => {
  it('created_by: the creator manages the app; another sub-admin does not', async () => {
    const sub = await subAdminWith(['apps.manage', 'webhooks.manage'])
    const other = await subAdminWith(['apps.manage'])
    const made = await api(`${U}/apps`, { method: 'POST', token: sub.token, json: { app_name: 'Mine', protocol_type: 'SIMPLE_API' } })
    expect(made.status).toBe(201)
    const appId = made.body.app_id
    const row = await env.DB.prepare('SELECT created_by FROM applications WHERE app_id = ?').bind(appId).first<{ created_by: string }>()
    expect(row?.created_by).toBe(sub.id)
    expect((await api(`${U}/apps/${appId}`, { method: 'PATCH', token: sub.token, json: { description: 'mine' } })).status).toBe(200)
    expect((await api(`${U}/apps/${appId}/webhooks`, { token: sub.token })).status).toBe(200)
    expect((await api(`${U}/apps`, { token: sub.token })).body.items.map((a: any) => a.app_id)).toEqual([appId])
    expect((await api(`${U}/apps/${appId}`, { token: other.token })).body.error.code).toBe('out_of_scope')
    expect((await api(`${U}/apps`, { token: other.token })).body.items).toEqual([])
    expect((await api(`${U}/apps/${appId}`, { method: 'DELETE', token: sub.token })).status).toBe(200)
  })
})

describe('a sub-admin cannot raise their own power', () => {
  it('admin groups are for full admins; no admins created; no admin accounts changed', async () => {
    const w = await world()
    const sub = await subAdminWith(['users.read', 'users.write', 'groups.manage'], { groups: [w.sales] })
    const create = await api(`${U}/admin-groups`, { method: 'POST', token: sub.token, json: { name: `mine ${w.t}`, rights: ['audit.read'], scope: {} } })
    expect(create.status).toBe(403)
    expect(create.body.error.code).toBe('admin_only')
    const widen = await api(`${U}/admin-groups/${sub.adminGroup.id}`, { method: 'PATCH', token: sub.token, json: { rights: [...sub.adminGroup.rights, 'apps.manage'] } })
    expect(widen.body.error.code).toBe('admin_only')
    expect((await api(`${U}/admin-groups/${sub.adminGroup.id}/members`, { method: 'POST', token: sub.token, json: { user_ids: [w.inSales.id] } })).body.error.code).toBe('admin_only')
    expect((await api(`${U}/keys/rotate`, { method: 'POST', token: sub.token })).body.error.code).toBe('admin_only')
    const admin = await api(`${U}/users`, { method: 'POST', token: sub.token, json: { mobile: '+8613600000077', password: 'an-admin-password', role: 'ADMIN', group_id: w.sales } })
    expect(admin.body.error.code).toBe('admin_only')
    // a full admin or another sub-admin inside the scope is still not theirs to change
    const me = await api('/api/v1/auth/me', { token: await adminToken() })
    await adminApi('POST', `${U}/groups/${w.east}/members`, { user_ids: [me.body.id] })
    const peer = await subAdminWith(['audit.read'])
    await adminApi('POST', `${U}/groups/${w.east}/members`, { user_ids: [peer.id] })
    for (const id of [me.body.id, peer.id]) {
      const r = await api(`${U}/users/${id}/password`, { method: 'PUT', token: sub.token, json: { password: 'taken-over-password' } })
      expect(r.status).toBe(403)
      expect(r.body.error.code).toBe('target_is_admin')
      expect((await api(`${U}/users/${id}`, { method: 'PATCH', token: sub.token, json: { status: 'DISABLED' } })).body.error.code).toBe('target_is_admin')
    }
    await adminApi('POST', `${U}/groups/${w.east}/members/remove`, { user_ids: [me.body.id] })
    // removed from every admin group, a sub-admin is a plain user again at the next request
    await adminApi('POST', `${U}/admin-groups/${sub.adminGroup.id}/members/remove`, { user_ids: [sub.id] })
    const after = await api(`${U}/users/${w.inSales.id}`, { token: sub.token })
    expect(after.status).toBe(403)
    expect(after.body.error.code).toBe('forbidden')
  })
})

describe('grants do not lend rights to each other’s scopes', () => {
  it('read over Sales and write over Marketing: no write in Sales, no read in Marketing', async () => {
    const w = await world()
    const readSales = await createAdminGroup(['users.read'], { groups: [w.sales] })
    const writeMarketing = await createAdminGroup(['users.write'], { groups: [w.marketing] })
    const sub = await subAdmin([readSales.id, writeMarketing.id])
    expect((await api(`${U}/users/${w.inShanghai.id}`, { token: sub.token })).status).toBe(200)
    const write = await api(`${U}/users/${w.inShanghai.id}`, { method: 'PATCH', token: sub.token, json: { name: 'no' } })
    expect(write.body.error.code).toBe('out_of_scope')
    expect((await api(`${U}/users/${w.inMarketing.id}`, { method: 'PATCH', token: sub.token, json: { name: `ok ${w.t}` } })).status).toBe(200)
    expect((await api(`${U}/users/${w.inMarketing.id}`, { token: sub.token })).body.error.code).toBe('out_of_scope')
    // the list follows users.read: Sales only
    const list = await api(`${U}/users?q=${w.t}&page_size=100`, { token: sub.token })
    expect(list.body.items.map((u: any) => u.id).sort()).toEqual([w.inSales.id, w.inShanghai.id].sort())
    // a right neither group holds
    const r = await api(`${U}/apps`, { token: sub.token })
    expect(r.status).toBe(403)
    expect(r.body.error.code).toBe('right_missing')
  })
})

describe('audit: actor, authority and filters', () => {
  it('a sub-admin’s write records them, the right and the admin group; the log filters by actor, action, target and time; audit.read is scoped', async () => {
    const w = await world()
    const sub = await subAdminWith(['users.write', 'audit.read'], { groups: [w.sales] })
    const before = new Date(Date.now() - 1000).toISOString()
    const r = await api(`${U}/users/${w.inShanghai.id}`, { method: 'PATCH', token: sub.token, json: { name: `audited ${w.t}` } })
    expect(r.status).toBe(200)
    await adminApi('PATCH', `${U}/users/${w.inMarketing.id}`, { name: `by admin ${w.t}` })
    const q = (s: string) => adminApi('GET', `${U}/audit?${s}`)
    const mine = await q(`actor_type=subadmin&actor_id=${sub.id}`)
    expect(mine.items).toHaveLength(1)
    expect(mine.items[0]).toMatchObject({
      actor_type: 'subadmin',
      actor_id: sub.id,
      action: 'admin.user.update',
      target_type: 'user',
      target_id: w.inShanghai.id,
      authority: { right: 'users.write', via: [{ type: 'admin_group', id: sub.adminGroup.id }] },
    })
    const byAdmin = await q(`action=admin.user.update&target_type=user&target_id=${w.inMarketing.id}`)
    expect(byAdmin.items[0]).toMatchObject({ actor_type: 'admin', authority: { right: 'users.write', via: 'role:ADMIN' } })
    expect((await q(`actor_id=${sub.id}&action=admin.user.update&from=${encodeURIComponent(before)}&to=${encodeURIComponent(new Date(Date.now() + 1000).toISOString())}`)).items).toHaveLength(1)
    expect((await q(`actor_id=${sub.id}&action=admin.user.update&to=${encodeURIComponent(before)}`)).items).toHaveLength(0)
    expect((await api(`${U}/audit?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z`, { token: await adminToken() })).status).toBe(400)
    // the sub-admin reads rows about their scope only
    const seen = await api(`${U}/audit?action=admin.user.update&limit=200`, { token: sub.token })
    expect(seen.status).toBe(200)
    const targets = new Set(seen.body.items.map((i: any) => i.target_id))
    expect(targets.has(w.inShanghai.id)).toBe(true)
    expect(targets.has(w.inMarketing.id)).toBe(false)
  })
})

describe('scopes of any size', () => {
  it('a scope naming 300 users and 150 groups resolves in single statements (D1 binds at most 100 parameters)', async () => {
    const w = await world()
    const now = Date.now()
    const ids = Array.from({ length: 300 }, (_, i) => `bulk-${w.t}-${i}`)
    const gids = Array.from({ length: 150 }, (_, i) => `bulkg-${w.t}-${i}`)
    // rows written straight to D1: creating 450 objects through the API is not what is tested here
    await env.DB.batch([
      ...ids.map((id) => env.DB.prepare("INSERT INTO users (id, mobile, password_hash, name, status, role, created_at, updated_at) VALUES (?, ?, 'x', ?, 'ACTIVE', 'USER', ?, ?)").bind(id, uniqueMobile(), `bulk ${w.t}`, now, now)),
      ...gids.map((id, i) => env.DB.prepare("INSERT INTO directory_groups (id, type_id, parent_id, name, created_at, updated_at) VALUES (?, 'department', ?, ?, ?, ?)").bind(id, w.marketing, `b${i}`, now, now)),
    ])
    const ag = await createAdminGroup(['users.read'], { users: ids, groups: [...gids, w.sales] })
    const sub = await subAdmin([ag.id])
    const list = await api(`${U}/users?q=${encodeURIComponent(`bulk ${w.t}`)}&page_size=100`, { token: sub.token })
    expect(list.status).toBe(200)
    expect(list.body.total).toBe(300)
    expect((await api(`${U}/users/${ids[299]}`, { token: sub.token })).status).toBe(200)
    expect((await api(`${U}/users/${w.inMarketing.id}`, { token: sub.token })).status).toBe(403)
  })
})

describe('the rights are documented', () => {
  it('docs/admin-rights.md lists every admin route with the right it declares', () => {
    const t = adminRouteTable(buildApp().openAPIRegistry)
    const rows = [...rightsDoc.matchAll(/^\| `([A-Z]+) (\/api\/v1\/admin\/[^`]+)` \| ([^|]+) \| ([^|]+) \|$/gm)].map((m) => ({ key: `${m[1]} ${m[2]}`, right: m[3].trim().replace(/`/g, '') }))
    expect(rows.map((r) => r.key).sort()).toEqual(t.map((r) => `${r.method} ${r.path}`).sort())
    for (const r of t) expect(rows.find((x) => x.key === `${r.method} ${r.path}`)?.right, `${r.method} ${r.path}`).toBe(r.right === 'admin' ? 'admin only' : r.right)
  })

  it('/docs/admin: every admin operation carries x-uap-right and says it in its description', async () => {
    const spec = (await api('/docs/admin/openapi.json')).body
    let n = 0
    for (const [path, item] of Object.entries<Record<string, any>>(spec.paths)) {
      if (!path.startsWith('/api/v1/admin/')) continue
      for (const [method, op] of Object.entries<any>(item)) {
        n++
        expect(op['x-uap-right'], `${method} ${path}`).toBeTruthy()
        expect(op.description, `${method} ${path}`).toMatch(/\*\*Right:\*\* Needs (a full admin|the right `[a-z.]+`)/)
        expect(op.responses['403'].description, `${method} ${path}`).toMatch(/admin_only|right_missing/)
        // what an API client can be answered besides, and how it authenticates
        expect(op.responses['401'].description, `${method} ${path}`).toContain('invalid_api_client')
        expect(op.responses['403'].description, `${method} ${path}`).toContain('api_client_ip_not_allowed')
        expect(op.responses['429'].content['application/json'].schema, `${method} ${path}`).toEqual({ $ref: '#/components/schemas/Error' })
        expect(op.responses['429'].headers['Retry-After'], `${method} ${path}`).toBeTruthy()
        if (op.security) expect(op.security, `${method} ${path}`).toContainEqual({ apiClientKey: [], apiClientSecret: [] })
      }
    }
    expect(n).toBeGreaterThanOrEqual(70)
    expect(spec.components.schemas.Error).toBeTruthy()
    expect(spec.components.securitySchemes.apiClientKey).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-Client-Key' })
    expect(spec.components.securitySchemes.apiClientSecret).toMatchObject({ type: 'apiKey', in: 'header', name: 'X-API-Key' })
  })
})

describe('API clients on the admin API', () => {
  it('an API client acts within its grant; the apps it registers are its own; its rows say api_client', async () => {
    const w = await world()
    const made = await adminApi('POST', `${U}/api-clients`, { name: `matrix ${w.t}`, rights: ['users.read', 'apps.manage'], scope: { groups: [w.sales] } })
    const headers = { 'X-Client-Key': made.client_key, 'X-API-Key': made.api_key }
    expect((await api(`${U}/users/${w.inShanghai.id}`, { headers })).status).toBe(200)
    expect((await api(`${U}/users/${w.inMarketing.id}`, { headers })).body.error.code).toBe('out_of_scope')
    expect((await api(`${U}/users/${w.inShanghai.id}`, { method: 'PATCH', headers, json: { name: 'no' } })).body.error.code).toBe('right_missing')
    expect((await api(`${U}/admin-groups`, { headers })).body.error.code).toBe('admin_only')
    const app = await api(`${U}/apps`, { method: 'POST', headers, json: { app_name: `By client ${w.t}`, protocol_type: 'SIMPLE_API' } })
    expect(app.status).toBe(201)
    expect((await api(`${U}/apps/${app.body.app_id}`, { method: 'PATCH', headers, json: { description: 'mine' } })).status).toBe(200)
    const rows = await adminApi('GET', `${U}/audit?actor_type=api_client&actor_id=${made.api_client.id}&target_type=application`)
    expect(rows.items.map((r: any) => r.action).sort()).toEqual(['admin.app.create', 'admin.app.update'])
    expect(rows.items[0].authority).toEqual({ right: 'apps.manage', via: [{ type: 'api_client', id: made.api_client.id }] })
  })
})
