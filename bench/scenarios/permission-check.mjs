import { randomBytes } from 'node:crypto'

/**
 * Permission check (docs/permissions.md) for a user directly in 10 groups, each the bottom
 * of its own 6-level tree, with grants spread over every level: app access token (one D1
 * lookup, two rate-limiter objects), then one D1 statement that walks the user's membership
 * paths and reads the grants that apply. Compare with `GET /healthz` (one `SELECT 1`).
 */
export default {
  name: 'permission check',
  route: 'POST /api/v1/apps/{app_id}/permissions/check (user in 10 groups, 6 levels)',
  order: 70,
  async setup(ctx) {
    ctx.shared.permissionWorld ??= seedPermissionWorld(ctx)
    return ctx.shared.permissionWorld
  },
  requests: ({ app, body }) => [
    { method: 'POST', path: `/api/v1/apps/${app.appId}/permissions/check`, headers: { 'content-type': 'application/json', 'X-App-Access-Token': app.accessToken }, body },
  ],
  async check({ app, body }, ctx) {
    const r = await ctx.api(`/api/v1/apps/${app.appId}/permissions/check`, { method: 'POST', headers: { 'X-App-Access-Token': app.accessToken }, json: JSON.parse(body) })
    const ok = r.status === 200 && r.body.allowed === true && r.body.source?.type === 'group'
    return { name: 'the check still answers from the deep tree', ok, detail: `${r.status} allowed=${r.body?.allowed} ${r.body?.source?.label}` }
  },
}

export async function seedPermissionWorld(ctx) {
  const tag = randomBytes(3).toString('hex')
  const token = await ctx.adminToken()
  const must = async (what, r, ...ok) => {
    if (!ok.includes(r.status)) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body
  }
  const app = await ctx.createApp({ app_name: `bench permissions ${tag}`, protocol_type: 'SIMPLE_API' })
  const user = await ctx.createUser('bench permission user')
  await must('mapping sync', await ctx.api('/api/v1/apps/mapping/sync', { method: 'POST', headers: { 'X-App-Access-Token': app.accessToken }, json: { items: [{ mobile: user.mobile, mapped_key: `perm.${tag}`, action: 'ADD' }] } }), 200)
  await must('permission', await ctx.api(`/api/v1/admin/apps/${app.appId}/permissions`, { method: 'POST', token, json: { key: 'orders:read', name: 'Read orders' } }), 201)
  const type = `bench-${tag}`
  await must('group type', await ctx.api('/api/v1/admin/group-types', { method: 'POST', token, json: { id: type, name: `Bench ${tag}` } }), 201)
  const leaves = []
  for (let t = 0; t < 10; t++) {
    let parent
    for (let level = 1; level <= 6; level++) {
      const g = await must('group', await ctx.api('/api/v1/admin/groups', { method: 'POST', token, json: parent ? { parent_id: parent, name: `T${t} L${level}` } : { type_id: type, name: `T${t} L${level}` } }), 201)
      parent = g.id
      // allows high in every tree, denies lower down in three, one nearer allow in another: the nearest decides
      const effect = level <= 2 || (t === 9 && level === 5) ? 'allow' : t % 4 === 0 && level === 4 ? 'deny' : null
      if (effect) await must('grant', await ctx.api(`/api/v1/admin/apps/${app.appId}/grants`, { method: 'PUT', token, json: { permission: 'orders:read', subject: { type: 'group', id: g.id }, effect } }), 201)
    }
    leaves.push(parent)
  }
  for (const leaf of leaves) await must('members', await ctx.api(`/api/v1/admin/groups/${leaf}/members`, { method: 'POST', token, json: { user_ids: [user.id] } }), 200)
  return { app, user, body: JSON.stringify({ user: { mobile: user.mobile }, permission: 'orders:read' }) }
}
