// The admin route matrix (docs/admin-rights.md): every route under /api/v1/admin/ × every kind
// of caller, with the status each must get. The routes come from the app's own route table
// (the `x-uap-right` each route declares), so a new admin route without a declared right, or
// without a fixture here, fails this file.
import { beforeAll, describe, expect, inject, it } from 'vitest'
import { SELF } from 'cloudflare:test'
import { buildApp } from '../src/app'
import { RIGHTS, type Right } from '../src/delegation/model'
import { adminRouteTable, findAdminRoute, type AdminRoute } from '../src/delegation/rights'
import { adminApi, adminToken, api, createUser, login, readResponse, uniqueMobile } from './support/api'
import { createApp } from './support/apps'
import { call, csv, waitForJob } from './support/import'
import { createAdminGroup, group, subAdmin, userIn } from './support/delegation'

const app = buildApp()
const table = adminRouteTable(app.openAPIRegistry)
const keyOf = (r: { method: string; path: string }) => `${r.method} ${r.path}`

/** What one call of a route needs: its path (params filled in), a body, and the status a caller allowed to make it gets. */
interface Req {
  path: string
  json?: unknown
  /** a raw upload instead of JSON */
  upload?: { body: string; type: string }
  ok: number
}
interface Fixture {
  /** does the request name an object (path or body) a sub-admin's scope must reach? */
  scoped: boolean
  /** builds a fresh request; called once per caller, so destructive routes get their own objects */
  make: () => Promise<Req>
  /** why the full admin's success is asserted elsewhere instead (global state shared by concurrent test files) */
  adminElsewhere?: string
}

const rand = () => Math.random().toString(36).slice(2, 10)

// the world the fixtures act in: an "In" tree and app the in-scope sub-admin reaches, an "Out" tree and app it does not
const w = {} as {
  inRoot: string
  inGroup: string
  outRoot: string
  uIn: { id: string; mobile: string }
  uOut: { id: string; mobile: string }
  appIn: string
  appOut: string
  mappingIn: string
  eventIn: string
  previewId: string
  jobId: string
  agIn: { id: string }
  providerId: string
}

const U = '/api/v1/admin'
const mapUser = async (appId: string, mobile: string) => (await adminApi('POST', `${U}/apps/${appId}/mappings`, { mobile, mapped_key: `k-${rand()}` })).mapping_id as string
/** An app the in-scope sub-admin's admin group reaches (its scope is widened to it). */
async function appInScope() {
  const a = await createApp({ app_name: `In ${rand()}` })
  const ag = await adminApi('GET', `${U}/admin-groups/${w.agIn.id}`)
  await adminApi('PATCH', `${U}/admin-groups/${w.agIn.id}`, { scope: { ...ag.scope, apps: [...ag.scope.apps, a.app_id] } })
  // the API client with the right reaches it too
  await adminApi('PATCH', `${U}/api-clients/${clients.withRight.id}`, { scope: { groups: [w.inRoot], users: [], apps: [w.appIn, a.app_id] } })
  return a.app_id
}
const usersPreview = async () => {
  const r = await readResponse(
    await SELF.fetch(`http://localhost${U}/users/import/preview`, { method: 'POST', headers: { Authorization: `Bearer ${await adminToken()}`, 'Content-Type': 'text/csv' }, body: csv([['mobile', 'name'], [uniqueMobile(), 'Imported']]) }),
  )
  if (r.status !== 200) throw new Error(`preview ${r.status} ${JSON.stringify(r.body)}`)
  return r.body.preview_id as string
}
const provider = async () => (await adminApi('POST', `${U}/identity-providers`, { id: `m-${rand()}`, type: 'github', display_name: 'GitHub', client_id: 'Iv1.matrix', client_secret: 'matrix-secret-value' })).id as string

/** One entry per admin route: how to call it validly. A route missing here fails the matrix. */
const FIXTURES: Record<string, Fixture> = {
  // users
  [`POST ${U}/users`]: { scoped: true, make: async () => ({ path: `${U}/users`, json: { mobile: uniqueMobile(), password: 'matrix-password-123', group_id: w.inGroup }, ok: 201 }) },
  [`GET ${U}/users`]: { scoped: false, make: async () => ({ path: `${U}/users`, ok: 200 }) },
  [`GET ${U}/users/{id}`]: { scoped: true, make: async () => ({ path: `${U}/users/${w.uIn.id}`, ok: 200 }) },
  [`PATCH ${U}/users/{id}`]: { scoped: true, make: async () => ({ path: `${U}/users/${w.uIn.id}`, json: { name: `N ${rand()}` }, ok: 200 }) },
  [`PUT ${U}/users/{id}/password`]: { scoped: true, make: async () => ({ path: `${U}/users/${w.uIn.id}/password`, json: { password: 'another-password-123' }, ok: 200 }) },
  [`GET ${U}/users/{id}/groups`]: { scoped: true, make: async () => ({ path: `${U}/users/${w.uIn.id}/groups`, ok: 200 }) },
  [`POST ${U}/users/import/preview`]: { scoped: false, make: async () => ({ path: `${U}/users/import/preview`, upload: { body: csv([['mobile'], [uniqueMobile()]]), type: 'text/csv' }, ok: 200 }) },
  [`GET ${U}/users/import/preview/{preview_id}`]: { scoped: false, make: async () => ({ path: `${U}/users/import/preview/${w.previewId}`, ok: 200 }) },
  [`POST ${U}/users/import`]: { scoped: false, make: async () => ({ path: `${U}/users/import`, json: { preview_id: await usersPreview(), strategy: 'SKIP' }, ok: 202 }) },
  [`GET ${U}/users/import/{job_id}`]: { scoped: false, make: async () => ({ path: `${U}/users/import/${w.jobId}`, ok: 200 }) },
  [`GET ${U}/users/import/{job_id}/report`]: { scoped: false, make: async () => ({ path: `${U}/users/import/${w.jobId}/report`, ok: 200 }) },
  [`GET ${U}/users/export`]: { scoped: false, make: async () => ({ path: `${U}/users/export`, ok: 200 }) },
  // directory
  [`GET ${U}/group-types`]: { scoped: false, make: async () => ({ path: `${U}/group-types`, ok: 200 }) },
  [`POST ${U}/group-types`]: { scoped: false, make: async () => ({ path: `${U}/group-types`, json: { id: `t${rand()}`, name: 'Matrix' }, ok: 201 }) },
  [`GET ${U}/group-types/{type_id}`]: { scoped: false, make: async () => ({ path: `${U}/group-types/department`, ok: 200 }) },
  [`PATCH ${U}/group-types/{type_id}`]: {
    scoped: false,
    make: async () => ({ path: `${U}/group-types/${(await adminApi('POST', `${U}/group-types`, { id: `t${rand()}`, name: 'M' })).id}`, json: { name: 'Renamed' }, ok: 200 }),
  },
  [`DELETE ${U}/group-types/{type_id}`]: { scoped: false, make: async () => ({ path: `${U}/group-types/${(await adminApi('POST', `${U}/group-types`, { id: `t${rand()}`, name: 'M' })).id}`, ok: 200 }) },
  [`GET ${U}/groups`]: { scoped: false, make: async () => ({ path: `${U}/groups`, ok: 200 }) },
  [`POST ${U}/groups`]: { scoped: true, make: async () => ({ path: `${U}/groups`, json: { parent_id: w.inRoot, name: `G ${rand()}` }, ok: 201 }) },
  [`GET ${U}/groups/{group_id}`]: { scoped: true, make: async () => ({ path: `${U}/groups/${w.inGroup}`, ok: 200 }) },
  [`PATCH ${U}/groups/{group_id}`]: { scoped: true, make: async () => ({ path: `${U}/groups/${await group(`G ${rand()}`, w.inRoot)}`, json: { name: `R ${rand()}` }, ok: 200 }) },
  [`DELETE ${U}/groups/{group_id}`]: { scoped: true, make: async () => ({ path: `${U}/groups/${await group(`G ${rand()}`, w.inRoot)}`, ok: 200 }) },
  [`GET ${U}/groups/{group_id}/members`]: { scoped: true, make: async () => ({ path: `${U}/groups/${w.inGroup}/members`, ok: 200 }) },
  [`POST ${U}/groups/{group_id}/members`]: { scoped: true, make: async () => ({ path: `${U}/groups/${await group(`G ${rand()}`, w.inRoot)}/members`, json: { user_ids: [w.uIn.id] }, ok: 200 }) },
  [`POST ${U}/groups/{group_id}/members/remove`]: { scoped: true, make: async () => ({ path: `${U}/groups/${w.inGroup}/members/remove`, json: { user_ids: [(await userIn(w.inRoot)).id] }, ok: 200 }) },
  // applications
  [`POST ${U}/apps`]: { scoped: false, make: async () => ({ path: `${U}/apps`, json: { app_name: `M ${rand()}`, protocol_type: 'SIMPLE_API' }, ok: 201 }) },
  [`GET ${U}/apps`]: { scoped: false, make: async () => ({ path: `${U}/apps`, ok: 200 }) },
  [`GET ${U}/apps/{app_id}`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}`, ok: 200 }) },
  [`PATCH ${U}/apps/{app_id}`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}`, json: { description: `d ${rand()}` }, ok: 200 }) },
  [`POST ${U}/apps/{app_id}/secret/rotate`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/secret/rotate`, ok: 200 }) },
  [`POST ${U}/apps/{app_id}/access-token/rotate`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/access-token/rotate`, ok: 200 }) },
  [`POST ${U}/apps/{app_id}/disable`]: { scoped: true, make: async () => ({ path: `${U}/apps/${await appInScope()}/disable`, ok: 200 }) },
  [`DELETE ${U}/apps/{app_id}`]: { scoped: true, make: async () => ({ path: `${U}/apps/${await appInScope()}`, ok: 200 }) },
  // mappings
  [`GET ${U}/apps/{app_id}/mappings`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/mappings`, ok: 200 }) },
  [`POST ${U}/apps/{app_id}/mappings`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/mappings`, json: { mobile: (await userIn(w.inGroup)).mobile, mapped_key: `k-${rand()}` }, ok: 201 }) },
  [`GET ${U}/apps/{app_id}/mappings/{mapping_id}`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/mappings/${w.mappingIn}`, ok: 200 }) },
  [`PATCH ${U}/apps/{app_id}/mappings/{mapping_id}`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/mappings/${w.mappingIn}`, json: { name: `n ${rand()}` }, ok: 200 }) },
  [`POST ${U}/apps/{app_id}/mappings/{mapping_id}/disable`]: {
    scoped: true,
    make: async () => ({ path: `${U}/apps/${w.appIn}/mappings/${await mapUser(w.appIn, (await userIn(w.inGroup)).mobile)}/disable`, ok: 200 }),
  },
  [`DELETE ${U}/apps/{app_id}/mappings/{mapping_id}`]: {
    scoped: true,
    make: async () => ({ path: `${U}/apps/${w.appIn}/mappings/${await mapUser(w.appIn, (await userIn(w.inGroup)).mobile)}`, ok: 200 }),
  },
  // permissions
  [`GET ${U}/apps/{app_id}/permissions`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/permissions`, ok: 200 }) },
  [`POST ${U}/apps/{app_id}/permissions`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/permissions`, json: { key: `p.${rand()}`, name: 'P' }, ok: 201 }) },
  [`GET ${U}/apps/{app_id}/permissions/{key}`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/permissions/orders:read`, ok: 200 }) },
  [`PATCH ${U}/apps/{app_id}/permissions/{key}`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/permissions/orders:read`, json: { name: `Orders ${rand()}` }, ok: 200 }) },
  [`DELETE ${U}/apps/{app_id}/permissions/{key}`]: {
    scoped: true,
    make: async () => ({ path: `${U}/apps/${w.appIn}/permissions/${(await adminApi('POST', `${U}/apps/${w.appIn}/permissions`, { key: `p.${rand()}`, name: 'P' })).key}`, ok: 200 }),
  },
  [`GET ${U}/apps/{app_id}/permissions/{key}/holders`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/permissions/orders:read/holders`, ok: 200 }) },
  [`GET ${U}/apps/{app_id}/grants`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/grants`, ok: 200 }) },
  [`PUT ${U}/apps/{app_id}/grants`]: {
    scoped: true,
    make: async () => ({ path: `${U}/apps/${w.appIn}/grants`, json: { permission: 'orders:read', subject: { type: 'user', id: (await userIn(w.inGroup)).id }, effect: 'allow' }, ok: 201 }),
  },
  [`DELETE ${U}/apps/{app_id}/grants/{grant_id}`]: {
    scoped: true,
    make: async () => {
      const g = await adminApi('PUT', `${U}/apps/${w.appIn}/grants`, { permission: 'orders:read', subject: { type: 'user', id: (await userIn(w.inGroup)).id }, effect: 'deny' })
      return { path: `${U}/apps/${w.appIn}/grants/${g.grant_id}`, ok: 200 }
    },
  },
  [`GET ${U}/apps/{app_id}/users/{user_id}/permissions`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/users/${w.uIn.id}/permissions`, ok: 200 }) },
  // webhooks
  [`GET ${U}/apps/{app_id}/webhooks`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/webhooks`, ok: 200 }) },
  [`GET ${U}/apps/{app_id}/webhooks/events`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/webhooks/events`, ok: 200 }) },
  [`GET ${U}/apps/{app_id}/webhooks/events/{event_id}`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/webhooks/events/${w.eventIn}`, ok: 200 }) },
  [`POST ${U}/apps/{app_id}/webhooks/events/{event_id}/retry`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/webhooks/events/${w.eventIn}/retry`, ok: 202 }) },
  [`POST ${U}/apps/{app_id}/webhooks/retry-failed`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/webhooks/retry-failed`, ok: 202 }) },
  [`POST ${U}/apps/{app_id}/webhooks/test`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/webhooks/test`, ok: 200 }) },
  [`POST ${U}/apps/{app_id}/webhooks/secret/rotate`]: { scoped: true, make: async () => ({ path: `${U}/apps/${w.appIn}/webhooks/secret/rotate`, json: { overlap_seconds: 0 }, ok: 200 }) },
  // audit, keys, identity providers
  [`GET ${U}/audit`]: { scoped: false, make: async () => ({ path: `${U}/audit`, ok: 200 }) },
  [`POST ${U}/keys/rotate`]: { scoped: false, make: async () => ({ path: `${U}/keys/rotate`, ok: 200 }), adminElsewhere: 'test/keys.test.ts rotates on its own database; rotating the shared one would disturb concurrent files' },
  [`POST ${U}/identity-providers`]: {
    scoped: false,
    make: async () => ({ path: `${U}/identity-providers`, json: { id: `m-${rand()}`, type: 'github', display_name: 'GitHub', client_id: 'Iv1.matrix', client_secret: 'matrix-secret-value' }, ok: 201 }),
  },
  [`GET ${U}/identity-providers`]: { scoped: false, make: async () => ({ path: `${U}/identity-providers`, ok: 200 }) },
  [`GET ${U}/identity-providers/{id}`]: { scoped: false, make: async () => ({ path: `${U}/identity-providers/${w.providerId}`, ok: 200 }) },
  [`PATCH ${U}/identity-providers/{id}`]: { scoped: false, make: async () => ({ path: `${U}/identity-providers/${w.providerId}`, json: { display_name: `GH ${rand()}` }, ok: 200 }) },
  [`POST ${U}/identity-providers/{id}/enable`]: { scoped: false, make: async () => ({ path: `${U}/identity-providers/${w.providerId}/enable`, ok: 200 }) },
  [`POST ${U}/identity-providers/{id}/disable`]: { scoped: false, make: async () => ({ path: `${U}/identity-providers/${await provider()}/disable`, ok: 200 }) },
  [`DELETE ${U}/identity-providers/{id}`]: { scoped: false, make: async () => ({ path: `${U}/identity-providers/${await provider()}`, ok: 200 }) },
  // API clients
  [`POST ${U}/api-clients`]: { scoped: false, make: async () => ({ path: `${U}/api-clients`, json: { name: `m ${rand()}`, rights: ['users.read'] }, ok: 201 }) },
  [`GET ${U}/api-clients`]: { scoped: false, make: async () => ({ path: `${U}/api-clients`, ok: 200 }) },
  [`GET ${U}/api-clients/{id}`]: { scoped: false, make: async () => ({ path: `${U}/api-clients/${clients.withRight.id}`, ok: 200 }) },
  [`PATCH ${U}/api-clients/{id}`]: { scoped: false, make: async () => ({ path: `${U}/api-clients/${(await apiClient(['users.read'], {})).id}`, json: { name: `r ${rand()}` }, ok: 200 }) },
  [`POST ${U}/api-clients/{id}/rotate`]: { scoped: false, make: async () => ({ path: `${U}/api-clients/${(await apiClient(['users.read'], {})).id}/rotate`, ok: 200 }) },
  [`POST ${U}/api-clients/{id}/disable`]: { scoped: false, make: async () => ({ path: `${U}/api-clients/${(await apiClient(['users.read'], {})).id}/disable`, ok: 200 }) },
  [`POST ${U}/api-clients/{id}/enable`]: { scoped: false, make: async () => ({ path: `${U}/api-clients/${(await apiClient(['users.read'], {})).id}/enable`, ok: 200 }) },
  [`POST ${U}/api-clients/{id}/expire`]: { scoped: false, make: async () => ({ path: `${U}/api-clients/${(await apiClient(['users.read'], {})).id}/expire`, ok: 200 }) },
  // admin groups
  [`GET ${U}/admin-groups`]: { scoped: false, make: async () => ({ path: `${U}/admin-groups`, ok: 200 }) },
  [`POST ${U}/admin-groups`]: { scoped: false, make: async () => ({ path: `${U}/admin-groups`, json: { name: `ag ${rand()}`, rights: ['users.read'], scope: { groups: [w.inRoot] } }, ok: 201 }) },
  [`GET ${U}/admin-groups/{admin_group_id}`]: { scoped: false, make: async () => ({ path: `${U}/admin-groups/${w.agIn.id}`, ok: 200 }) },
  [`PATCH ${U}/admin-groups/{admin_group_id}`]: { scoped: false, make: async () => ({ path: `${U}/admin-groups/${(await createAdminGroup(['users.read'])).id}`, json: { rights: ['users.read', 'users.write'] }, ok: 200 }) },
  [`DELETE ${U}/admin-groups/{admin_group_id}`]: { scoped: false, make: async () => ({ path: `${U}/admin-groups/${(await createAdminGroup(['users.read'])).id}`, ok: 200 }) },
  [`GET ${U}/admin-groups/{admin_group_id}/members`]: { scoped: false, make: async () => ({ path: `${U}/admin-groups/${w.agIn.id}/members`, ok: 200 }) },
  [`POST ${U}/admin-groups/{admin_group_id}/members`]: { scoped: false, make: async () => ({ path: `${U}/admin-groups/${(await createAdminGroup(['users.read'])).id}/members`, json: { user_ids: [w.uOut.id] }, ok: 200 }) },
  [`POST ${U}/admin-groups/{admin_group_id}/members/remove`]: { scoped: false, make: async () => ({ path: `${U}/admin-groups/${(await createAdminGroup(['users.read'])).id}/members/remove`, json: { user_ids: [w.uOut.id] }, ok: 200 }) },
}

/** The kinds of caller, each with how to authenticate and the status a route gives them. */
type Caller =
  | 'full admin'
  | 'in-scope sub-admin'
  | 'out-of-scope sub-admin'
  | 'sub-admin without the right'
  | 'plain user'
  | 'no token'
  | 'API client with the right'
  | 'API client without the right'
  | 'expired API client'
  | 'API client from a non-allowlisted IP'
const CALLERS: Caller[] = [
  'full admin',
  'in-scope sub-admin',
  'out-of-scope sub-admin',
  'sub-admin without the right',
  'plain user',
  'no token',
  'API client with the right',
  'API client without the right',
  'expired API client',
  'API client from a non-allowlisted IP',
]

function expected(route: AdminRoute, f: Fixture, req: Req, who: Caller): { status: number; code?: string } {
  // an API client's credentials and network are checked before its rights
  if (who === 'expired API client') return { status: 401, code: 'api_client_expired' }
  if (who === 'API client from a non-allowlisted IP') return { status: 403, code: 'api_client_ip_not_allowed' }
  const delegated = who.includes('sub-admin') || who.startsWith('API client')
  if (who === 'no token') return { status: 401, code: 'unauthorized' }
  if (who === 'plain user') return { status: 403, code: 'forbidden' }
  if (who === 'full admin') return { status: req.ok }
  if (delegated && route.right === 'admin') return { status: 403, code: 'admin_only' }
  if (who === 'sub-admin without the right' || who === 'API client without the right') return { status: 403, code: 'right_missing' }
  if (who === 'out-of-scope sub-admin' && f.scoped) return { status: 403, code: 'out_of_scope' }
  return { status: req.ok }
}

type Client = { id: string; client_key: string; api_key: string }
const tokens = {} as Record<'full admin' | 'in-scope sub-admin' | 'out-of-scope sub-admin' | 'plain user', string> & { lacking: Record<Right, string> }
const clients = {} as { withRight: Client; expired: Client; elsewhere: Client; lacking: Record<Right, Client> }
/** An API client (full admin's call) with these rights over this scope. */
async function apiClient(rights: Right[], scope: object, extra: Record<string, unknown> = {}): Promise<Client> {
  const r = await adminApi('POST', `${U}/api-clients`, { name: `matrix ${rand()}`, rights, scope, ...extra })
  return { id: r.api_client.id, client_key: r.client_key, api_key: r.api_key }
}
/** Every client's call comes from here unless its fixture says otherwise. */
const CLIENT_IP = '198.51.100.7'

beforeAll(async () => {
  const tag = rand()
  w.inRoot = await group(`In ${tag}`)
  w.inGroup = await group('East', w.inRoot)
  w.outRoot = await group(`Out ${tag}`)
  w.uIn = await userIn(w.inGroup)
  w.uOut = await userIn(w.outRoot)
  // a receiver that always answers 500: the app's events stay undelivered, so one can be retried
  const rx = inject('webhookReceiver')
  const sink = (await (await fetch(`${rx.url}/sinks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ status: 500 }) })).json()) as { url: string }
  w.appIn = (await createApp({ app_name: `In ${tag}`, notification_url: sink.url })).app_id
  w.appOut = (await createApp({ app_name: `Out ${tag}` })).app_id
  w.mappingIn = await mapUser(w.appIn, w.uIn.mobile)
  await adminApi('POST', `${U}/apps/${w.appIn}/permissions`, { key: 'orders:read', name: 'Orders' })
  const events = await adminApi('GET', `${U}/apps/${w.appIn}/webhooks/events`)
  w.eventIn = events.items[0].event_id ?? events.items[0].id
  w.previewId = await usersPreview()
  w.jobId = (await adminApi('POST', `${U}/users/import`, { preview_id: await usersPreview(), strategy: 'SKIP' })).job_id
  await waitForJob(`${U}/users/import/${w.jobId}`, { token: await adminToken() })
  w.providerId = await provider()

  const all = [...RIGHTS]
  const agIn = await createAdminGroup(all, { groups: [w.inRoot], apps: [w.appIn] })
  w.agIn = agIn
  const agOut = await createAdminGroup(all, { groups: [w.outRoot], apps: [w.appOut] })
  tokens['full admin'] = await adminToken()
  tokens['in-scope sub-admin'] = (await subAdmin([agIn.id])).token
  tokens['out-of-scope sub-admin'] = (await subAdmin([agOut.id])).token
  const plain = await createUser()
  tokens['plain user'] = (await login(plain.mobile, plain.password)).access_token
  tokens.lacking = {} as Record<Right, string>
  for (const right of RIGHTS) {
    const ag = await createAdminGroup(
      all.filter((r) => r !== right),
      { groups: [w.inRoot], apps: [w.appIn] },
    )
    tokens.lacking[right] = (await subAdmin([ag.id])).token
  }
  const inScope = { groups: [w.inRoot], apps: [w.appIn] }
  clients.withRight = await apiClient(all, inScope)
  clients.lacking = {} as Record<Right, Client>
  for (const right of RIGHTS) clients.lacking[right] = await apiClient(all.filter((r) => r !== right), inScope)
  clients.elsewhere = await apiClient(all, inScope, { allowlist: { ips: ['203.0.113.0/24'] } })
  clients.expired = await apiClient(all, inScope, { expires_at: new Date(Date.now() + 3_600_000).toISOString() })
  await adminApi('POST', `${U}/api-clients/${clients.expired.id}/expire`)
}, 180_000)

type Credential = { token?: string } | { client: Client }
function credentialOf(route: AdminRoute, who: Caller): Credential {
  const right: Right = route.right === 'admin' || !route.right ? 'users.read' : route.right
  switch (who) {
    case 'no token':
      return {}
    case 'sub-admin without the right':
      return { token: tokens.lacking[right] }
    case 'API client with the right':
      return { client: clients.withRight }
    case 'API client without the right':
      return { client: clients.lacking[right] }
    case 'expired API client':
      return { client: clients.expired }
    case 'API client from a non-allowlisted IP':
      return { client: clients.elsewhere }
    default:
      return { token: tokens[who] }
  }
}

async function send(route: AdminRoute, req: Req, cred: Credential) {
  const headers: Record<string, string> = {}
  if ('client' in cred) Object.assign(headers, { 'X-Client-Key': cred.client.client_key, 'X-API-Key': cred.client.api_key, 'CF-Connecting-IP': CLIENT_IP })
  else if (cred.token) headers.Authorization = `Bearer ${cred.token}`
  if (req.upload) {
    headers['Content-Type'] = req.upload.type
    return readResponse(await SELF.fetch(`http://localhost${req.path}`, { method: route.method, headers, body: req.upload.body }))
  }
  return api(req.path, { method: route.method, json: req.json, headers })
}

describe('the admin route table', () => {
  it('every admin route of the app declares a right and has a fixture here', () => {
    const undeclared = table.filter((r) => !r.right).map(keyOf)
    expect(undeclared, 'admin routes without x-uap-right').toEqual([])
    const missing = table.map(keyOf).filter((k) => !FIXTURES[k])
    expect(missing, 'admin routes without a fixture in FIXTURES').toEqual([])
    const stale = Object.keys(FIXTURES).filter((k) => !table.some((r) => keyOf(r) === k))
    expect(stale, 'fixtures for routes that no longer exist').toEqual([])
    expect(table.length).toBeGreaterThanOrEqual(70)
  })

  it('every route the app serves under /api/v1/admin/ is in the table (none registered outside the OpenAPI registry)', () => {
    const served = app.routes.filter((r) => r.path.startsWith('/api/v1/admin/') && !r.path.includes('*') && r.method !== 'ALL')
    for (const r of served) {
      const concrete = r.path.replace(/:[A-Za-z0-9_]+/g, 'x')
      expect(findAdminRoute(table, r.method, concrete), `${r.method} ${r.path}`).not.toBeNull()
    }
  })
})

describe('the matrix: every admin route × every caller', () => {
  for (const route of table) {
    const key = keyOf(route)
    it(`${key} (${route.right ?? 'no right'})`, async () => {
      const f = FIXTURES[key]
      expect(f, `fixture for ${key}`).toBeDefined()
      // a caller refused before the handler changes nothing: those calls share one request,
      // and every caller the route lets through gets its own fresh objects
      const shared = await f.make()
      for (const who of CALLERS) {
        if (who === 'full admin' && f.adminElsewhere) continue
        const refused = expected(route, f, shared, who).status !== shared.ok
        const req = refused ? shared : await f.make()
        const r = await send(route, req, credentialOf(route, who))
        const want = expected(route, f, req, who)
        expect(r.status, `${key} as ${who}: ${JSON.stringify(r.body).slice(0, 300)}`).toBe(want.status)
        if (want.code) expect(r.body.error.code, `${key} as ${who}`).toBe(want.code)
      }
    }, 60_000)
  }
})
