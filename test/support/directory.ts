// Directory and permission set-up through the admin API (docs/permissions.md), for tests.
import { adminToken, api } from './api'
import { createApp, type AppSettings, type TestApp } from './apps'

export const admin = adminToken

async function ok<T = any>(r: { status: number; body: any }, expected: number[], what: string): Promise<T> {
  if (!expected.includes(r.status)) throw new Error(`${what}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body as T
}

/** A custom group type with a random id, so each test has its own trees (sibling names are per parent). */
export async function groupType(name = 'Test type') {
  const id = `t-${crypto.randomUUID().slice(0, 12)}`
  await ok(await api('/api/v1/admin/group-types', { method: 'POST', token: await admin(), json: { id, name } }), [201], 'create group type')
  return id
}

export async function createGroup(typeId: string, name: string, parentId?: string) {
  const body = await ok(await api('/api/v1/admin/groups', { method: 'POST', token: await admin(), json: parentId ? { parent_id: parentId, name } : { type_id: typeId, name } }), [201], `create group ${name}`)
  return body.id as string
}

/** Builds every group of the given paths (`Sales ▸ East ▸ Team 1`) in `typeId`, prefixes first; path → group id. */
export async function buildPaths(typeId: string, paths: string[], known = new Map<string, string>()) {
  for (const path of paths) {
    const parts = path.split('▸').map((p) => p.trim())
    for (let i = 1; i <= parts.length; i++) {
      const key = parts.slice(0, i).join(' ▸ ')
      if (known.has(key)) continue
      const parent = i > 1 ? known.get(parts.slice(0, i - 1).join(' ▸ ')) : undefined
      known.set(key, await createGroup(typeId, parts[i - 1], parent))
    }
  }
  return known
}

export async function addMembers(groupId: string, userIds: string[]) {
  return ok(await api(`/api/v1/admin/groups/${groupId}/members`, { method: 'POST', token: await admin(), json: { user_ids: userIds } }), [200], 'add members')
}

export async function removeMembers(groupId: string, userIds: string[]) {
  return ok(await api(`/api/v1/admin/groups/${groupId}/members/remove`, { method: 'POST', token: await admin(), json: { user_ids: userIds } }), [200], 'remove members')
}

export async function definePermission(appId: string, key: string, name = key) {
  return ok(await api(`/api/v1/admin/apps/${appId}/permissions`, { method: 'POST', token: await admin(), json: { key, name } }), [201], `define ${key}`)
}

export interface GrantSpec {
  permission: string
  subject: { type: 'user' | 'group'; id: string }
  effect: 'allow' | 'deny'
  scope?: { type: string; id: string } | null
}

export async function setGrant(appId: string, g: GrantSpec) {
  return ok(await api(`/api/v1/admin/apps/${appId}/grants`, { method: 'PUT', token: await admin(), json: g }), [200, 201], 'set grant')
}

export async function revokeGrant(appId: string, grantId: string) {
  return ok(await api(`/api/v1/admin/apps/${appId}/grants/${grantId}`, { method: 'DELETE', token: await admin() }), [200], 'revoke grant')
}

export async function setAccessPolicy(appId: string, policy: 'mapping' | 'permission') {
  return ok(await api(`/api/v1/admin/apps/${appId}`, { method: 'PATCH', token: await admin(), json: { access_policy: policy } }), [200], 'set access policy')
}

/** A SIMPLE_API app of its own for a test, with its credentials (access token for the partner API). */
export function permissionsApp(settings: AppSettings = {}): Promise<TestApp> {
  return createApp({ app_name: 'Permissions app', ...settings })
}

/** POST /api/v1/apps/{app_id}/permissions/check with the app's access token. */
export async function check(app: Pick<TestApp, 'app_id' | 'access_token'>, user: { mobile?: string; mapped_key?: string }, permission: string, scope?: { type: string; id: string }) {
  return api(`/api/v1/apps/${app.app_id}/permissions/check`, { method: 'POST', headers: { 'X-App-Access-Token': app.access_token }, json: { user, permission, ...(scope ? { scope } : {}) } })
}
