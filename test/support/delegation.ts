// Sub-admins for tests: admin groups through the admin API and their members' tokens.
import { adminApi, createUser, login } from './api'
import type { Right } from '../../src/delegation/model'

export interface ScopeInput {
  groups?: string[]
  users?: string[]
  apps?: string[]
}

let n = 0
/** An admin group (full admin's call) with these rights over this scope. */
export async function createAdminGroup(rights: Right[], scope: ScopeInput = {}, name?: string) {
  n++
  return (await adminApi('POST', '/api/v1/admin/admin-groups', { name: name ?? `ag-${Date.now()}-${n}-${Math.random().toString(36).slice(2, 8)}`, rights, scope })) as {
    id: string
    rights: Right[]
    scope: Required<ScopeInput>
  }
}

/** A new user put in these admin groups, signed in: a sub-admin and their token. */
export async function subAdmin(adminGroupIds: string[]) {
  const user = await createUser()
  for (const id of adminGroupIds) await adminApi('POST', `/api/v1/admin/admin-groups/${id}/members`, { user_ids: [user.id] })
  const t = await login(user.mobile, user.password)
  return { ...user, token: t.access_token }
}

/** A sub-admin holding one admin group with these rights over this scope. */
export async function subAdminWith(rights: Right[], scope: ScopeInput = {}) {
  const group = await createAdminGroup(rights, scope)
  return { ...(await subAdmin([group.id])), adminGroup: group }
}

/** A directory group (root of `type_id`, or under `parent_id`). */
export async function group(name: string, parent?: string): Promise<string> {
  const body = parent ? { parent_id: parent, name } : { type_id: 'department', name }
  return (await adminApi('POST', '/api/v1/admin/groups', body)).id
}

/** A user (created by the full admin) directly in a directory group. */
export async function userIn(groupId: string, name?: string) {
  const u = await createUser({ name })
  await adminApi('POST', `/api/v1/admin/groups/${groupId}/members`, { user_ids: [u.id] })
  return u
}
