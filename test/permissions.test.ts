import { describe, expect, it } from 'vitest'
import permissionsDoc from '../docs/permissions.md?raw'
import { env } from 'cloudflare:test'
import { api, createUser, login, signedApi } from './support/api'
import { mapUser } from './support/apps'
import { StorageRecorder, measureStorage, wrapEnv } from './support/storage'
import { addMembers, admin, buildPaths, check, createGroup, definePermission, groupType, permissionsApp, removeMembers, revokeGrant, setGrant } from './support/directory'
import { readUserPermissions } from '../src/permissions/service'
import { updateGroupAsAdmin } from '../src/directory/admin'
import { interleaved } from './support/interleave'
import type { Env } from '../src/env'
import type { E164 } from '../src/lib/mobile'

// ---------------------------------------------------------------------------------------
// The resolution table of docs/permissions.md, row by row: the doc is the test data.

interface Row {
  id: string
  memberOf: string[]
  grants: { subject: 'user' | string; effect: 'allow' | 'deny'; scope?: { type: string; id: string } }[]
  asked?: { type: string; id: string }
  answer: 'allowed' | 'denied' | 'not granted'
  source: string
}

const none = (s: string) => s === '—' || s === ''
const scopeOf = (s: string) => {
  const m = /^@([^:]+):(.+)$/.exec(s.trim())
  if (!m) throw new Error(`not a scope: ${s}`)
  return { type: m[1], id: m[2] }
}

function tableRows(md: string): Row[] {
  const section = md.slice(md.indexOf('| # | the user is in |'))
  const lines = section.split('\n').filter((l) => /^\| \d+ \|/.test(l))
  return lines.map((line) => {
    const [id, memberOf, grants, asked, answer, source] = line.split('|').slice(1, -1).map((c) => c.trim())
    return {
      id,
      memberOf: none(memberOf) ? [] : memberOf.split(',').map((p) => p.trim()),
      grants: none(grants)
        ? []
        : grants.split(';').map((g) => {
            const m = /^(.+?): (allow|deny)(?: (@\S+))?$/.exec(g.trim())
            if (!m) throw new Error(`row ${id}: cannot read grant "${g}"`)
            return { subject: m[1], effect: m[2] as 'allow' | 'deny', ...(m[3] ? { scope: scopeOf(m[3]) } : {}) }
          }),
      asked: none(asked) ? undefined : scopeOf(asked),
      answer: answer as Row['answer'],
      source,
    }
  })
}

const ROWS = tableRows(permissionsDoc)

describe('the resolution table (docs/permissions.md), row by row', () => {
  it('the table is there and readable', () => {
    expect(ROWS.length).toBeGreaterThanOrEqual(20)
    expect(ROWS.map((r) => r.id)).toEqual(ROWS.map((_, i) => String(i + 1)))
  })

  for (const row of ROWS) {
    it(`row ${row.id}: ${row.memberOf.join(', ') || 'no groups'} | ${row.grants.map((g) => `${g.subject} ${g.effect}${g.scope ? ` @${g.scope.type}:${g.scope.id}` : ''}`).join('; ') || 'no grants'} → ${row.answer}, ${row.source}`, async () => {
      const type = await groupType()
      const app = await permissionsApp()
      await definePermission(app.app_id, 'orders:read')
      const user = await createUser()
      await mapUser(app.app_id, user)
      const groupPaths = [...row.memberOf, ...row.grants.map((g) => g.subject).filter((s) => s !== 'user')]
      const ids = await buildPaths(type, groupPaths)
      for (const path of row.memberOf) await addMembers(ids.get(path)!, [user.id])
      for (const g of row.grants) {
        await setGrant(app.app_id, { permission: 'orders:read', subject: g.subject === 'user' ? { type: 'user', id: user.id } : { type: 'group', id: ids.get(g.subject)! }, effect: g.effect, scope: g.scope })
      }
      const r = await check(app, { mobile: user.mobile }, 'orders:read', row.asked)
      expect(r.status, JSON.stringify(r.body)).toBe(200)
      expect(r.body.allowed).toBe(row.answer === 'allowed')
      expect(r.body.source.label).toBe(row.source)
      if (row.answer === 'denied') expect(r.body.source.effect).toBe('deny')
      if (row.answer === 'not granted') expect(r.body.source.type).toBe('none')
      expect(r.body.scope).toEqual(row.asked ?? null)
    })
  }
})

// ---------------------------------------------------------------------------------------

const token = admin
const audit = (action: string, targetId: string) =>
  env.DB.prepare('SELECT actor_type, details FROM audit_logs WHERE action = ? AND target_id = ? ORDER BY id')
    .bind(action, targetId)
    .all<{ actor_type: string; details: string }>()
    .then((r) => r.results.map((x) => ({ actor_type: x.actor_type, details: JSON.parse(x.details) })))

async function world() {
  const type = await groupType()
  const app = await permissionsApp()
  await definePermission(app.app_id, 'orders:read', 'Read orders')
  const user = await createUser()
  const { mappedKey } = await mapUser(app.app_id, user)
  return { type, app, user, mappedKey }
}

describe('trees', () => {
  it("a moved group changes its members' answers at once", async () => {
    const { type, app, user } = await world()
    const ids = await buildPaths(type, ['Sales ▸ East', 'Ops'])
    await addMembers(ids.get('Sales ▸ East')!, [user.id])
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'group', id: ids.get('Sales')! }, effect: 'allow' })
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'group', id: ids.get('Ops')! }, effect: 'deny' })
    const before = await check(app, { mobile: user.mobile }, 'orders:read')
    expect(before.body).toMatchObject({ allowed: true, source: { type: 'group', label: 'via group Sales', group_path: ['Sales'], distance: 1 } })

    const east = ids.get('Sales ▸ East')!
    const moved = await api(`/api/v1/admin/groups/${east}`, { method: 'PATCH', token: await token(), json: { parent_id: ids.get('Ops') } })
    expect(moved.status).toBe(200)
    expect(moved.body).toMatchObject({ path: ['Ops', 'East'], level: 2, parent_id: ids.get('Ops') })
    expect((await check(app, { mobile: user.mobile }, 'orders:read')).body).toMatchObject({ allowed: false, source: { label: 'via group Ops', effect: 'deny' } })

    const toRoot = await api(`/api/v1/admin/groups/${east}`, { method: 'PATCH', token: await token(), json: { parent_id: null } })
    expect(toRoot.body).toMatchObject({ path: ['East'], level: 1, parent_id: null })
    expect((await check(app, { mobile: user.mobile }, 'orders:read')).body).toMatchObject({ allowed: false, source: { type: 'none', label: 'not granted' } })
    expect((await audit('admin.group.move', east)).map((a) => a.details)).toEqual([
      { parent_id: ids.get('Ops'), previous_parent_id: ids.get('Sales') },
      { parent_id: null, previous_parent_id: ids.get('Ops') },
    ])

    // a rename changes the path in every source
    await api(`/api/v1/admin/groups/${ids.get('Ops')}`, { method: 'PATCH', token: await token(), json: { name: 'Operations' } })
    await api(`/api/v1/admin/groups/${east}`, { method: 'PATCH', token: await token(), json: { parent_id: ids.get('Ops') } })
    expect((await check(app, { mobile: user.mobile }, 'orders:read')).body.source.label).toBe('via group Operations')
  })

  it('a move under the group itself or one of its descendants is refused; so is a parent of another type', async () => {
    const type = await groupType()
    const ids = await buildPaths(type, ['A ▸ B ▸ C'])
    for (const target of ['A', 'A ▸ B', 'A ▸ B ▸ C']) {
      const r = await api(`/api/v1/admin/groups/${ids.get('A')}`, { method: 'PATCH', token: await token(), json: { parent_id: ids.get(target) } })
      expect(r.status, target).toBe(409)
      expect(r.body.error.code).toBe('move_into_own_subtree')
    }
    const other = await createGroup(await groupType(), 'Elsewhere')
    const mismatch = await api(`/api/v1/admin/groups/${ids.get('A ▸ B')}`, { method: 'PATCH', token: await token(), json: { parent_id: other } })
    expect(mismatch.status).toBe(400)
    expect(mismatch.body.error.code).toBe('parent_type_mismatch')
    const tree = await api(`/api/v1/admin/groups?type_id=${type}`, { token: await token() })
    expect(tree.body.items.map((g: any) => g.path.join('/'))).toEqual(['A', 'A/B', 'A/B/C'])
  })

  it('the move guard cannot be outrun by a subtree deeper than its walk: moves that each passed their own depth check make one, and the move that would close a cycle through it is refused', async () => {
    const type = await groupType()
    // five chains of 16 levels; moving C1's root under C5's leaf passes the depth check (16 + 16)
    const chains: { root: string; leaf: string }[] = []
    for (let c = 1; c <= 5; c++) {
      const ids = await buildPaths(type, [Array.from({ length: 16 }, (_, i) => `C${c}L${i + 1}`).join(' ▸ ')])
      const all = [...ids.values()]
      chains.push({ root: all[0], leaf: all[all.length - 1] })
    }
    // ...while four concurrent moves, each also within the limit by its own read, hang C2…C5
    // below C1's leaf: C5's leaf ends up 79 levels under C1's root, past the guard's 64-level walk
    const race = interleaved(/^update "directory_groups" set/i, async () => {
      for (let c = 1; c < 5; c++) await env.DB.prepare('UPDATE directory_groups SET parent_id = ? WHERE id = ?').bind(chains[c - 1].leaf, chains[c].root).run()
    })
    await expect(updateGroupAsAdmin(race.env, chains[0].root, { parentId: chains[4].leaf }, { actorType: 'admin', actorId: 'test' })).rejects.toMatchObject({ status: 409 })
    expect(race.fired()).toBe(true)
    // no cycle: C1's root is still a root
    expect((await env.DB.prepare('SELECT parent_id FROM directory_groups WHERE id = ?').bind(chains[0].root).first<{ parent_id: string | null }>())!.parent_id).toBeNull()
  })

  it('the move guard is in the write itself: a cycle prepared by a concurrent move is refused', async () => {
    const type = await groupType()
    const ids = await buildPaths(type, ['X ▸ Y', 'Z'])
    // Z under Y and X under Z at the same time: whichever lands second would close a cycle
    const [a, b] = await Promise.all([
      api(`/api/v1/admin/groups/${ids.get('Z')}`, { method: 'PATCH', token: await token(), json: { parent_id: ids.get('X ▸ Y') } }),
      api(`/api/v1/admin/groups/${ids.get('X')}`, { method: 'PATCH', token: await token(), json: { parent_id: ids.get('Z') } }),
    ])
    expect([a.status, b.status].sort()).toEqual([200, 409])
    const tree = await api(`/api/v1/admin/groups?type_id=${type}`, { token: await token() })
    expect(tree.body.items).toHaveLength(3)
    expect(tree.body.items.filter((g: any) => g.parent_id === null)).toHaveLength(1)
  })

  it('deleting a group with subgroups or members is refused; an empty one goes with its grants', async () => {
    const { type, app, user } = await world()
    const ids = await buildPaths(type, ['Parent ▸ Child'])
    const parent = ids.get('Parent')!
    const child = ids.get('Parent ▸ Child')!
    await addMembers(child, [user.id])
    const hasChildren = await api(`/api/v1/admin/groups/${parent}`, { method: 'DELETE', token: await token() })
    expect(hasChildren.status).toBe(409)
    expect(hasChildren.body.error.code).toBe('group_has_children')
    const hasMembers = await api(`/api/v1/admin/groups/${child}`, { method: 'DELETE', token: await token() })
    expect(hasMembers.status).toBe(409)
    expect(hasMembers.body.error.code).toBe('group_has_members')

    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'group', id: child }, effect: 'allow' })
    await removeMembers(child, [user.id])
    expect((await api(`/api/v1/admin/groups/${child}`, { method: 'DELETE', token: await token() })).status).toBe(200)
    expect((await api(`/api/v1/admin/groups/${child}`, { token: await token() })).status).toBe(404)
    const grants = await api(`/api/v1/admin/apps/${app.app_id}/grants?subject_id=${child}`, { token: await token() })
    expect(grants.body.total).toBe(0)
    expect(await audit('admin.group.delete', child)).toEqual([expect.objectContaining({ actor_type: 'admin', details: expect.objectContaining({ name: 'Child' }) })])
    expect((await api(`/api/v1/admin/groups/${parent}`, { method: 'DELETE', token: await token() })).status).toBe(200)
  })

  it('names: unique among siblings, no "/"; a tree lists members directly and per subtree', async () => {
    const type = await groupType()
    const ids = await buildPaths(type, ['Root ▸ Left', 'Root ▸ Right'])
    const dup = await api('/api/v1/admin/groups', { method: 'POST', token: await token(), json: { parent_id: ids.get('Root'), name: 'Left' } })
    expect(dup.status).toBe(409)
    expect(dup.body.error.code).toBe('group_name_taken')
    const rename = await api(`/api/v1/admin/groups/${ids.get('Root ▸ Right')}`, { method: 'PATCH', token: await token(), json: { name: 'Left' } })
    expect(rename.body.error.code).toBe('group_name_taken')
    const slash = await api('/api/v1/admin/groups', { method: 'POST', token: await token(), json: { type_id: type, name: 'a/b' } })
    expect(slash.status).toBe(400)
    for (const bad of ['Li\u0000Lei', 'East\ud800']) {
      const r = await api('/api/v1/admin/groups', { method: 'POST', token: await token(), json: { type_id: type, name: bad } })
      expect(r.status).toBe(400)
      expect(r.body.error.details.issues[0].path).toBe('name')
    }
    const noType = await api('/api/v1/admin/groups', { method: 'POST', token: await token(), json: { name: 'lonely' } })
    expect(noType.status).toBe(400)
    const unknownType = await api('/api/v1/admin/groups', { method: 'POST', token: await token(), json: { type_id: 'no-such-type', name: 'x' } })
    expect(unknownType.status).toBe(404)
    expect(unknownType.body.error.code).toBe('group_type_not_found')

    const [u1, u2, u3] = [await createUser(), await createUser(), await createUser()]
    await addMembers(ids.get('Root')!, [u1.id])
    await addMembers(ids.get('Root ▸ Left')!, [u1.id, u2.id])
    await addMembers(ids.get('Root ▸ Right')!, [u3.id])
    const tree = await api(`/api/v1/admin/groups?type_id=${type}`, { token: await token() })
    expect(tree.body.items.map((g: any) => [g.path.join(' ▸ '), g.level, g.child_count, g.member_count, g.subtree_member_count])).toEqual([
      ['Root', 1, 2, 1, 3],
      ['Root ▸ Left', 2, 0, 2, 2],
      ['Root ▸ Right', 2, 0, 1, 1],
    ])
    const direct = await api(`/api/v1/admin/groups/${ids.get('Root')}/members`, { token: await token() })
    expect(direct.body.items.map((m: any) => m.user_id)).toEqual([u1.id])
    const all = await api(`/api/v1/admin/groups/${ids.get('Root')}/members?subgroups=true`, { token: await token() })
    expect(all.body.total).toBe(3)
    expect(new Set(all.body.items.map((m: any) => m.user_id))).toEqual(new Set([u1.id, u2.id, u3.id]))
    expect(all.body.items.find((m: any) => m.user_id === u1.id).group_ids.sort()).toEqual([ids.get('Root'), ids.get('Root ▸ Left')].sort())
    const userGroups = await api(`/api/v1/admin/users/${u1.id}/groups`, { token: await token() })
    expect(userGroups.body.groups.map((g: any) => g.claim)).toEqual([`${type}/Root`, `${type}/Root/Left`])
  })

  it('memberships: many at once, all or nothing on unknown users, audited', async () => {
    const type = await groupType()
    const g = await createGroup(type, 'Crowd')
    const users = await Promise.all([createUser(), createUser(), createUser()])
    const bad = await api(`/api/v1/admin/groups/${g}/members`, { method: 'POST', token: await token(), json: { user_ids: [users[0].id, 'no-such-user'] } })
    expect(bad.status).toBe(404)
    expect(bad.body.error).toMatchObject({ code: 'users_not_found', details: { user_ids: ['no-such-user'] } })
    expect((await api(`/api/v1/admin/groups/${g}/members`, { token: await token() })).body.total).toBe(0)
    const added = await addMembers(g, users.map((u) => u.id))
    expect(added.added).toHaveLength(3)
    const again = await addMembers(g, [users[0].id])
    expect(again).toEqual({ added: [], already_members: [users[0].id] })
    const removed = await removeMembers(g, [users[1].id, 'stranger'])
    expect(removed).toEqual({ removed: [users[1].id], not_members: ['stranger'] })
    expect((await audit('admin.group.members_add', g)).map((a) => a.details.user_ids.length)).toEqual([3])
    expect((await audit('admin.group.members_remove', g)).map((a) => a.details.user_ids)).toEqual([[users[1].id]])
  })

  it('group types: built-in ones stay; custom ones are renamed and deleted once empty', async () => {
    const list = await api('/api/v1/admin/group-types', { token: await token() })
    expect(list.body.items.slice(0, 3).map((t: any) => [t.id, t.built_in])).toEqual([
      ['department', true],
      ['role', true],
      ['label', true],
    ])
    for (const id of ['department', 'role', 'label']) {
      const rename = await api(`/api/v1/admin/group-types/${id}`, { method: 'PATCH', token: await token(), json: { name: 'Other' } })
      expect(rename.status).toBe(409)
      expect(rename.body.error.code).toBe('group_type_built_in')
      expect((await api(`/api/v1/admin/group-types/${id}`, { method: 'DELETE', token: await token() })).status).toBe(409)
    }
    const dup = await api('/api/v1/admin/group-types', { method: 'POST', token: await token(), json: { id: 'role', name: 'Role again' } })
    expect(dup.status).toBe(409)
    const custom = await groupType('Projects')
    const renamed = await api(`/api/v1/admin/group-types/${custom}`, { method: 'PATCH', token: await token(), json: { name: 'Initiatives' } })
    expect(renamed.body).toMatchObject({ id: custom, name: 'Initiatives', built_in: false })
    const g = await createGroup(custom, 'Apollo')
    const inUse = await api(`/api/v1/admin/group-types/${custom}`, { method: 'DELETE', token: await token() })
    expect(inUse.status).toBe(409)
    expect(inUse.body.error.code).toBe('group_type_in_use')
    expect((await api(`/api/v1/admin/groups/${g}`, { method: 'DELETE', token: await token() })).status).toBe(200)
    expect((await api(`/api/v1/admin/group-types/${custom}`, { method: 'DELETE', token: await token() })).status).toBe(200)
    expect((await audit('admin.group_type.update', custom)).map((a) => a.details)).toEqual([{ name: 'Initiatives', previous_name: 'Projects' }])
  })

  it('the built-in department type takes groups like any other', async () => {
    const g = await createGroup('department', `Dept ${crypto.randomUUID().slice(0, 8)}`)
    expect((await api(`/api/v1/admin/groups/${g}`, { token: await token() })).body).toMatchObject({ type_id: 'department', level: 1 })
    expect((await api(`/api/v1/admin/groups/${g}`, { method: 'DELETE', token: await token() })).status).toBe(200)
  })
})

describe('permissions and grants (admin)', () => {
  it('access is built in; keys are unique; a grant needs an existing permission and subject; access takes no scope', async () => {
    const { app, user } = await world()
    const list = await api(`/api/v1/admin/apps/${app.app_id}/permissions`, { token: await token() })
    expect(list.body.items.map((p: any) => [p.key, p.built_in])).toEqual([
      ['access', true],
      ['orders:read', false],
    ])
    for (const [method, path, json] of [
      ['POST', `/api/v1/admin/apps/${app.app_id}/permissions`, { key: 'access', name: 'x' }],
      ['PATCH', `/api/v1/admin/apps/${app.app_id}/permissions/access`, { name: 'x' }],
      ['DELETE', `/api/v1/admin/apps/${app.app_id}/permissions/access`, undefined],
    ] as const) {
      const r = await api(path, { method, token: await token(), json })
      expect(r.status, `${method} ${path}`).toBe(409)
      expect(r.body.error.code).toBe('permission_built_in')
    }
    expect((await api(`/api/v1/admin/apps/${app.app_id}/permissions`, { method: 'POST', token: await token(), json: { key: 'orders:read', name: 'again' } })).body.error.code).toBe('permission_exists')
    expect((await api(`/api/v1/admin/apps/${app.app_id}/permissions`, { method: 'POST', token: await token(), json: { key: 'bad key', name: 'x' } })).status).toBe(400)
    expect((await api(`/api/v1/admin/apps/${app.app_id}/permissions`, { method: 'POST', token: await token(), json: { key: 'ok:key', name: 'Bell\u0007' } })).status).toBe(400)

    const grant = async (json: unknown) => api(`/api/v1/admin/apps/${app.app_id}/grants`, { method: "PUT", token: await token(), json })
    expect((await grant({ permission: 'orders:write', subject: { type: 'user', id: user.id }, effect: 'allow' })).body.error.code).toBe('permission_not_found')
    expect((await grant({ permission: 'orders:read', subject: { type: 'group', id: 'no-such-group' }, effect: 'allow' })).body.error.code).toBe('subject_not_found')
    expect((await grant({ permission: 'orders:read', subject: { type: 'user', id: 'no-such-user' }, effect: 'allow' })).status).toBe(404)
    const scopedAccess = await grant({ permission: 'access', subject: { type: 'user', id: user.id }, effect: 'allow', scope: { type: 'store', id: '1' } })
    expect(scopedAccess.status).toBe(400)
    expect((await api(`/api/v1/admin/apps/no-such-app/permissions`, { token: await token() })).status).toBe(404)

    // PUT creates (201), changes (200), repeats (200); DELETE goes back to inherit
    const created = await grant({ permission: 'orders:read', subject: { type: 'user', id: user.id }, effect: 'allow' })
    expect(created.status).toBe(201)
    const changed = await grant({ permission: 'orders:read', subject: { type: 'user', id: user.id }, effect: 'deny' })
    expect(changed.status).toBe(200)
    expect(changed.body).toMatchObject({ grant_id: created.body.grant_id, effect: 'deny' })
    expect((await grant({ permission: 'orders:read', subject: { type: 'user', id: user.id }, effect: 'deny' })).status).toBe(200)
    expect((await check(app, { mobile: user.mobile }, 'orders:read')).body).toMatchObject({ allowed: false, source: { type: 'direct', grant_id: created.body.grant_id } })
    await revokeGrant(app.app_id, created.body.grant_id)
    expect((await check(app, { mobile: user.mobile }, 'orders:read')).body.source.type).toBe('none')
    expect((await api(`/api/v1/admin/apps/${app.app_id}/grants/${created.body.grant_id}`, { method: 'DELETE', token: await token() })).status).toBe(404)

    // every grant change is audited with its previous effect
    expect((await audit('admin.grant.set', created.body.grant_id)).map((a) => [a.actor_type, a.details.effect, a.details.previous_effect])).toEqual([
      ['admin', 'allow', null],
      ['admin', 'deny', 'allow'],
    ])
    expect((await audit('admin.grant.revoke', created.body.grant_id)).map((a) => a.details.previous_effect)).toEqual(['deny'])
  })

  it('deleting a permission takes its grants; renaming keeps the key', async () => {
    const { type, app, user } = await world()
    const g = await createGroup(type, 'Readers')
    await addMembers(g, [user.id])
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'group', id: g }, effect: 'allow' })
    const renamed = await api(`/api/v1/admin/apps/${app.app_id}/permissions/orders:read`, { method: 'PATCH', token: await token(), json: { name: 'See orders', description: 'all of them' } })
    expect(renamed.body).toMatchObject({ key: 'orders:read', name: 'See orders', description: 'all of them' })
    expect((await check(app, { mobile: user.mobile }, 'orders:read')).body.allowed).toBe(true)
    expect((await api(`/api/v1/admin/apps/${app.app_id}/permissions/orders%3Aread`, { method: 'DELETE', token: await token() })).status).toBe(200)
    expect((await check(app, { mobile: user.mobile }, 'orders:read')).body).toMatchObject({ allowed: false, source: { type: 'none' } })
    expect((await api(`/api/v1/admin/apps/${app.app_id}/grants`, { token: await token() })).body.total).toBe(0)
    expect((await api(`/api/v1/admin/apps/${app.app_id}/permissions/orders:read`, { token: await token() })).status).toBe(404)
  })

  it('who has a permission, with the source of each; what a user has, with sources', async () => {
    const { type, app, user } = await world()
    const [viaGroup, denied, direct, outsider] = [user, await createUser(), await createUser(), await createUser()]
    for (const u of [denied, direct, outsider]) await mapUser(app.app_id, u)
    const ids = await buildPaths(type, ['Sales ▸ East'])
    await addMembers(ids.get('Sales ▸ East')!, [viaGroup.id, denied.id])
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'group', id: ids.get('Sales')! }, effect: 'allow' })
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'user', id: denied.id }, effect: 'deny' })
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'user', id: direct.id }, effect: 'allow', scope: { type: 'store', id: '7' } })

    const holders = await api(`/api/v1/admin/apps/${app.app_id}/permissions/orders:read/holders`, { token: await token() })
    expect(holders.status).toBe(200)
    expect(holders.body.items.map((h: any) => [h.user_id, h.source.label])).toEqual([[viaGroup.id, 'via group Sales']])
    const atStore = await api(`/api/v1/admin/apps/${app.app_id}/permissions/orders:read/holders?scope_type=store&scope_id=7`, { token: await token() })
    expect(new Map(atStore.body.items.map((h: any) => [h.user_id, h.source.label]))).toEqual(
      new Map([
        [viaGroup.id, 'via group Sales'],
        [direct.id, 'direct'],
      ]),
    )
    expect((await api(`/api/v1/admin/apps/${app.app_id}/permissions/orders:read/holders?scope_type=store`, { token: await token() })).status).toBe(400)

    const has = await api(`/api/v1/admin/apps/${app.app_id}/users/${direct.id}/permissions`, { token: await token() })
    expect(has.status).toBe(200)
    expect(has.body).toMatchObject({ access_policy: 'mapping', admitted: true })
    expect(has.body.permissions.map((p: any) => [p.key, p.allowed, p.scopes.map((s: any) => [s.scope.id, s.allowed, s.source.label])])).toEqual([
      ['access', false, []],
      ['orders:read', false, [['7', true, 'direct']]],
    ])
    expect((await api(`/api/v1/admin/apps/${app.app_id}/users/no-such-user/permissions`, { token: await token() })).status).toBe(404)
  })

  it('an app is deleted with its permissions and grants', async () => {
    const { app, user } = await world()
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'user', id: user.id }, effect: 'allow' })
    expect((await api(`/api/v1/admin/apps/${app.app_id}`, { method: 'DELETE', token: await token() })).status).toBe(200)
    const left = await env.DB.prepare('SELECT (SELECT count(*) FROM permission_grants WHERE app_id = ?1) + (SELECT count(*) FROM app_permissions WHERE app_id = ?1) AS n').bind(app.app_id).first<{ n: number }>()
    expect(left!.n).toBe(0)
  })
})

describe('partner API: snapshot (ETag) and check', () => {
  it('the snapshot is cacheable: 304 while nothing changed, a new ETag after a membership change', async () => {
    const { type, app, user, mappedKey } = await world()
    const g = await createGroup(type, 'Readers')
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'group', id: g }, effect: 'allow' })
    const get = (q: string, headers: Record<string, string> = {}) => api(`/api/v1/apps/${app.app_id}/permissions/snapshot?${q}`, { headers: { 'X-App-Access-Token': app.access_token, ...headers } })

    const first = await get(`mobile=${encodeURIComponent(user.mobile)}`)
    expect(first.status).toBe(200)
    const etag = first.headers.get('ETag')!
    expect(etag).toMatch(/^"[0-9a-f]{40}"$/)
    expect(first.headers.get('Cache-Control')).toBe('private, no-cache')
    expect(first.body).toMatchObject({ app_id: app.app_id, user_id: user.id, mapped_key: mappedKey, access_policy: 'mapping', admitted: true })
    expect(first.body.permissions.map((p: any) => [p.key, p.allowed])).toEqual([
      ['access', false],
      ['orders:read', false],
    ])
    const byKey = await get(`mapped_key=${encodeURIComponent(mappedKey)}`)
    expect(byKey.headers.get('ETag')).toBe(etag)

    const same = await get(`mobile=${encodeURIComponent(user.mobile)}`, { 'If-None-Match': etag })
    expect(same.status).toBe(304)
    expect(same.body).toBe('')
    expect(same.headers.get('ETag')).toBe(etag)
    expect((await get(`mobile=${encodeURIComponent(user.mobile)}`, { 'If-None-Match': `W/${etag}, "other"` })).status).toBe(304)

    await addMembers(g, [user.id])
    const changed = await get(`mobile=${encodeURIComponent(user.mobile)}`, { 'If-None-Match': etag })
    expect(changed.status).toBe(200)
    expect(changed.headers.get('ETag')).not.toBe(etag)
    expect(changed.body.permissions[1]).toMatchObject({ key: 'orders:read', allowed: true, source: { label: 'via group Readers' } })
    // a rename of the group changes the body (its source), hence the tag
    await api(`/api/v1/admin/groups/${g}`, { method: 'PATCH', token: await token(), json: { name: 'Order readers' } })
    expect((await get(`mobile=${encodeURIComponent(user.mobile)}`, { 'If-None-Match': changed.headers.get('ETag')! })).status).toBe(200)
  })

  it('an app reads only its own users and its own app; one of mobile and mapped_key', async () => {
    const { app, user } = await world()
    const other = await permissionsApp()
    const stranger = await createUser()
    const snap = (a: { app_id: string; access_token: string }, q: string) => api(`/api/v1/apps/${a.app_id}/permissions/snapshot?${q}`, { headers: { 'X-App-Access-Token': a.access_token } })
    const notMapped = await snap(app, `mobile=${encodeURIComponent(stranger.mobile)}`)
    expect(notMapped.status).toBe(404)
    expect(notMapped.body.error.code).toBe('user_not_found')
    expect((await snap(app, 'mobile=%2B8613911112222')).body.error.code).toBe('user_not_found')
    expect((await snap(app, 'mapped_key=nobody')).status).toBe(404)
    expect((await snap(app, '')).status).toBe(400)
    expect((await snap(app, `mobile=${encodeURIComponent(user.mobile)}&mapped_key=x`)).status).toBe(400)
    const mismatch = await api(`/api/v1/apps/${app.app_id}/permissions/snapshot?mobile=${encodeURIComponent(user.mobile)}`, { headers: { 'X-App-Access-Token': other.access_token } })
    expect(mismatch.status).toBe(403)
    expect(mismatch.body.error.code).toBe('app_mismatch')
    expect((await api(`/api/v1/apps/${app.app_id}/permissions/snapshot?mobile=${encodeURIComponent(user.mobile)}`)).status).toBe(401)
    const otherCheck = await check(other, { mobile: user.mobile }, 'orders:read')
    expect(otherCheck.status).toBe(404)
  })

  it('signed calls and admin tokens are accepted too; unknown keys are not granted; access is not scoped', async () => {
    const { app, user, mappedKey } = await world()
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'user', id: user.id }, effect: 'allow' })
    const signed = await signedApi(app, 'POST', `/api/v1/apps/${app.app_id}/permissions/check`, { json: { user: { mapped_key: mappedKey }, permission: 'orders:read' } })
    expect(signed.status, JSON.stringify(signed.body)).toBe(200)
    expect(signed.body).toMatchObject({ user_id: user.id, mapped_key: mappedKey, permission: 'orders:read', allowed: true, source: { type: 'direct' } })
    const signedSnap = await signedApi(app, 'GET', `/api/v1/apps/${app.app_id}/permissions/snapshot?mapped_key=${encodeURIComponent(mappedKey)}`)
    expect(signedSnap.status).toBe(200)
    const badSig = await api(`/api/v1/apps/${app.app_id}/permissions/check`, { method: 'POST', headers: { 'X-UAP-App-Id': app.app_id }, json: { user: { mapped_key: mappedKey }, permission: 'orders:read' } })
    expect(badSig.status).toBe(401)
    expect(badSig.body.error.code).toBe('signature_missing')

    const byAdmin = await api(`/api/v1/apps/${app.app_id}/permissions/check`, { method: 'POST', token: await token(), json: { user: { mobile: user.mobile }, permission: 'orders:read' } })
    expect(byAdmin.body.allowed).toBe(true)
    expect((await check(app, { mobile: user.mobile }, 'never:defined')).body).toMatchObject({ allowed: false, source: { type: 'none' } })
    expect((await check(app, { mobile: user.mobile }, 'access', { type: 'store', id: '1' })).status).toBe(400)
  })
})

describe('the user\'s own permissions', () => {
  it('GET /api/v1/auth/me/permissions?app_id=', async () => {
    const { app, user } = await world()
    await setGrant(app.app_id, { permission: 'orders:read', subject: { type: 'user', id: user.id }, effect: 'allow' })
    const t = (await login(user.mobile, user.password)).access_token
    const mine = await api(`/api/v1/auth/me/permissions?app_id=${app.app_id}`, { token: t })
    expect(mine.status).toBe(200)
    expect(mine.body).toMatchObject({ user_id: user.id, admitted: true })
    expect(mine.body.permissions.find((p: any) => p.key === 'orders:read')).toMatchObject({ allowed: true, source: { label: 'direct' } })
    expect((await api('/api/v1/auth/me/permissions?app_id=no-such-app', { token: t })).status).toBe(404)
    expect((await api(`/api/v1/auth/me/permissions?app_id=${app.app_id}`)).status).toBe(401)
  })
})

describe('one D1 round trip per check', () => {
  /**
   * A user directly in 10 groups, each at the bottom of its own 6-level tree, grants spread
   * over every level. Seeded straight into D1 in one batch (the admin API that writes these
   * rows is tested above; under a loaded machine 80 admin calls outlast the test timeout).
   */
  let deep: Promise<Awaited<ReturnType<typeof world>>> | undefined
  const deepWorld = () =>
    (deep ??= (async () => {
      const w = await world()
      const now = Date.now()
      const statements: D1PreparedStatement[] = []
      const leaves: string[] = []
      for (let t = 0; t < 10; t++) {
        let parent: string | null = null
        for (let level = 1; level <= 6; level++) {
          const id: string = crypto.randomUUID()
          statements.push(env.DB.prepare('INSERT INTO directory_groups (id, type_id, parent_id, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)').bind(id, w.type, parent, `T${t} L${level}`, now, now))
          if ((t + level) % 3 === 0) {
            statements.push(
              env.DB.prepare("INSERT INTO permission_grants (id, app_id, permission_key, subject_type, subject_id, effect, created_at, updated_at) VALUES (?, ?, 'orders:read', 'group', ?, ?, ?, ?)").bind(
                crypto.randomUUID(),
                w.app.app_id,
                id,
                level % 2 ? 'allow' : 'deny',
                now,
                now,
              ),
            )
          }
          parent = id
        }
        leaves.push(parent!)
      }
      for (const leaf of leaves) statements.push(env.DB.prepare('INSERT INTO group_memberships (user_id, group_id, created_at) VALUES (?, ?, ?)').bind(w.user.id, leaf, now))
      await env.DB.batch(statements)
      return w
    })())

  it('the resolution read is one statement (10 groups, 6 levels deep)', async () => {
    const { app, user } = await deepWorld()
    const rec = new StorageRecorder()
    const wrapped = wrapEnv(env as unknown as Env, rec)
    const read = await readUserPermissions(wrapped, app.app_id, { mobile: user.mobile as E164 }, { key: 'orders:read', withPermissions: false })
    expect(rec.calls.map((c) => `${c.kind} ${c.op}`)).toEqual(['d1 raw'])
    expect(read!.paths.direct()).toHaveLength(10)
    expect(read!.paths.groups.size).toBe(60)
    // every grant on the user's paths came back with its distance
    expect(read!.candidates.length).toBeGreaterThan(10)
    expect(new Set(read!.candidates.map((c) => c.distance))).toEqual(new Set([0, 1, 2, 3, 4, 5]))
  })

  it('the check request takes no more storage stages than a mapping lookup with the same credentials', async () => {
    const { app, user } = await deepWorld()
    const headers = { 'X-App-Access-Token': app.access_token, 'Content-Type': 'application/json' }
    const body = JSON.stringify({ user: { mobile: user.mobile }, permission: 'orders:read' })
    const lookup = () => measureStorage(`/api/v1/apps/${app.app_id}/users/query?mobile=${encodeURIComponent(user.mobile)}`, { headers })
    const checkReq = () => measureStorage(`/api/v1/apps/${app.app_id}/permissions/check`, { method: 'POST', headers, body })
    await lookup()
    await checkReq() // warm-up
    const base = await lookup()
    const m = await checkReq()
    expect(m.response.status).toBe(200)
    const d1 = m.log.filter((c) => c.kind === 'd1')
    const resolution = d1.filter((c) => /group_memberships/.test(c.detail))
    expect(resolution, m.log.map((c) => `${c.stage} ${c.kind} ${c.detail}`).join('\n')).toHaveLength(1)
    expect(m.stages).toBeLessThanOrEqual(base.stages)
    expect(m.calls.d1).toBe(base.calls.d1)
  })
})
