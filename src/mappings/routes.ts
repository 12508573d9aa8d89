import { createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { OPEN, pick, bearerSecurity, jsonBody } from '../lib/openapi'
import { router } from '../context'
import type { AppEnv } from '../context'
import { MobileField } from '../lib/mobile'
import { ApiError, notFound } from '../lib/errors'
import { APP_TOKEN_HEADER, requireAppOrAdmin, targetApp } from '../apps/access'
import { getDb } from '../db'
import { auditFrom, auditStatement } from '../audit/service'
import {
  SYNC_MAX_ITEMS,
  commitMappingChange,
  deleteMappingStatements,
  findMapping,
  findMappingByKey,
  listChanges,
  listMappings,
  publicMapping,
  queryUserMapping,
  syncErrorToApiError,
  syncMappings,
  updateMappingStatements,
  type SyncItemResult,
} from './service'

/** Mapping API for apps (X-App-Access-Token or admin bearer) and admin mapping CRUD (docs/mappings.md). */
export const mappingRoutes = router()

mappingRoutes.openAPIRegistry.registerComponent('securitySchemes', 'appAccessToken', {
  type: 'apiKey',
  in: 'header',
  name: APP_TOKEN_HEADER,
  description: 'The app access token issued at app creation (or rotation). An app reaches only its own mappings. Admins may send their bearer token instead.',
})

const appOrAdmin: Record<string, string[]>[] = [{ appAccessToken: [] }, { bearerAuth: [] }]
const OPEN_TAG = 'Open: mappings'
const ADMIN_TAG = 'Admin: mappings'
const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })

const MappedKey = z.string().min(1).max(100).openapi({ example: 'lilei@hr.example.com', description: "The user's account in the app (email, username ...); unique within the app" })
const MappingName = z.string().max(100).nullable().openapi({ example: 'Li Lei', description: "The person's name as the app knows it; null falls back to the UAP user's name" })

export const MappingView = z
  .object({
    mapping_id: z.string().openapi({ example: '6d0c7f2e-1c1b-4c1e-9a57-2f3b4c5d6e7f' }),
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    user_id: z.string().openapi({ example: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f' }),
    mobile: z.string().openapi({ example: '+8613800138000' }),
    mapped_key: z.string().openapi({ example: 'lilei@hr.example.com' }),
    name: z.string().nullable().openapi({ example: 'Li Lei' }),
    is_active: z.boolean(),
    status: z.enum(['ACTIVE', 'DISABLED']),
    created_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
    updated_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
  })
  .openapi('Mapping')

const AppIdParam = z.object({ app_id: z.string().min(1).max(64).openapi({ param: { name: 'app_id', in: 'path' }, example: 'app_3f9a1c2d4e5f6a7b' }) })
const MappingParams = AppIdParam.extend({ mapping_id: z.string().min(1).max(64).openapi({ param: { name: 'mapping_id', in: 'path' }, example: '6d0c7f2e-1c1b-4c1e-9a57-2f3b4c5d6e7f' }) })

// ---------------------------------------------------------------------------------------
// Partner API

const SyncItemSchema = z
  .object({
    mobile: z.string().min(1).max(32).openapi({ example: '+8613800138000', description: 'E.164 or an 11-digit mainland number; an unparseable number is a per-item `invalid_mobile`' }),
    mapped_key: MappedKey.optional().openapi({ description: 'Required for ADD and UPDATE; for DISABLE, when given it must match the current mapping' }),
    name: MappingName.optional(),
    action: z.enum(['ADD', 'UPDATE', 'DISABLE']),
  })
  .superRefine((v, ctx) => {
    if (v.action !== 'DISABLE' && v.mapped_key === undefined) ctx.addIssue({ code: 'custom', path: ['mapped_key'], message: `is required for ${v.action}` })
  })
  .openapi('MappingSyncItem')

const SyncResult = z
  .object({
    index: z.number().int().openapi({ example: 0 }),
    mobile: z.string().openapi({ example: '+8613800138000' }),
    action: z.enum(['ADD', 'UPDATE', 'DISABLE']),
    status: z.enum(['ok', 'error']),
    code: z.string().openapi({
      example: 'created',
      description:
        'ok: created, reactivated, updated, disabled, unchanged. error: invalid_mobile, user_not_found, mapping_exists, mapped_key_taken, mapping_not_found, mapped_key_mismatch, concurrent_modification',
    }),
    message: z.string().openapi({ example: 'Mapping created' }),
    mapping_id: z.string().optional(),
  })
  .openapi('MappingSyncResult')

mappingRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/api/v1/apps/mapping/sync',
    tags: [OPEN_TAG],
    summary: 'Sync user mappings (add, update, disable)',
    description: `Applies up to ${SYNC_MAX_ITEMS} items in order and answers 200 with one result per item (\`results[i].index = i\`). Each item is all-or-nothing: the mapping change and its outbox event are written together or not at all; a failing item never affects the others.

- **ADD** maps the user (by mobile) to \`mapped_key\`. A DISABLED mapping is enabled again (\`reactivated\`). Re-sending an active mapping is \`unchanged\` (idempotent); an active mapping to another key is \`mapping_exists\` (use UPDATE).
- **UPDATE** changes \`mapped_key\` and/or \`name\` of an existing mapping (active or not).
- **DISABLE** deactivates the mapping.
- Unknown mobile numbers are rejected per item (\`user_not_found\`): sync never creates UAP users.
- \`mapped_key\` is unique per app: a key held by another user is \`mapped_key_taken\`.

Authenticate with \`${APP_TOKEN_HEADER}\` (your app) or an admin bearer token with \`app_id\` in the body.`,
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: {
      body: jsonBody(
        z.object({
          app_id: z.string().min(1).max(64).optional().openapi({ example: 'app_3f9a1c2d4e5f6a7b', description: 'Optional with an app token (must be your own app); required with an admin token' }),
          items: z.array(SyncItemSchema).min(1).max(SYNC_MAX_ITEMS),
        }),
      ),
    },
    responses: {
      200: ok(
        'Per-item results',
        z.object({ app_id: z.string(), summary: z.object({ total: z.number(), ok: z.number(), error: z.number() }), results: z.array(SyncResult) }).openapi('MappingSyncResponse'),
      ),
      ...pick(400, 401, 403, 404, 429),
    },
  }),
  async (c) => {
    const body = c.req.valid('json')
    const app = await targetApp(c, body.app_id)
    const viaAdmin = !c.get('app')
    const results = await syncMappings(c.env, app.appId, body.items, {
      // admin writes are audited per change, in the same batch as the change
      audit: viaAdmin
        ? (r: SyncItemResult, userId: string) => auditFrom(c, { action: `admin.mapping.sync`, targetType: 'mapping', targetId: r.mapping_id, details: { app_id: app.appId, user_id: userId, action: r.action, code: r.code } })
        : undefined,
    })
    const okCount = results.filter((r) => r.status === 'ok').length
    if (!viaAdmin) {
      const db = getDb(c.env.DB)
      await db.batch([
        auditStatement(db, auditFrom(c, { action: 'app.mapping.sync', actorType: 'app', actorId: app.appId, targetType: 'application', targetId: app.appId, details: { total: results.length, ok: okCount, error: results.length - okCount } })),
      ])
    }
    return c.json({ app_id: app.appId, summary: { total: results.length, ok: okCount, error: results.length - okCount }, results }, 200)
  },
)

mappingRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/api/v1/apps/{app_id}/users/query',
    tags: [OPEN_TAG],
    summary: "Look up a user and the user's mapping in your app",
    description:
      'For legacy sign-in flows: given a mobile number, returns the UAP user (mobile, name, status) and their mapping in this app (`null` when the user has none). 404 `user_not_found` when no UAP user has the number. An app token may only query its own app (403 `app_mismatch`).',
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: { params: AppIdParam, query: z.object({ mobile: MobileField }) },
    responses: {
      200: ok(
        'The user and their mapping',
        z
          .object({
            user: z.object({ user_id: z.string(), mobile: z.string().openapi({ example: '+8613800138000' }), name: z.string().nullable().openapi({ example: 'Li Lei' }), status: z.enum(['ACTIVE', 'DISABLED']) }),
            mapping: MappingView.nullable(),
          })
          .openapi('UserQueryResult'),
      ),
      ...pick(400, 401, 403, 404, 429),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const row = await queryUserMapping(c.env, app.appId, c.req.valid('query').mobile)
    if (!row) throw new ApiError(404, 'user_not_found', 'No UAP user has this mobile number')
    const { user, mapping } = row
    return c.json(
      {
        user: { user_id: user.id, mobile: user.mobile, name: user.name, status: user.status },
        mapping: mapping ? publicMapping({ ...mapping, mobile: user.mobile, userName: user.name, userStatus: user.status }) : null,
      },
      200,
    )
  },
)

const ChangeView = z
  .object({
    seq: z.number().int().openapi({ example: 1042 }),
    event_id: z.string().openapi({ example: '9a1f7c4e-2b3d-4e5f-8a6b-7c8d9e0f1a2b', description: 'Unique per change; the same id the webhook carries (dedupe on it)' }),
    event_type: z.enum(['ADD', 'UPDATE', 'DISABLE', 'DELETE']),
    app_id: z.string(),
    mapping_id: z.string(),
    user_id: z.string(),
    mobile: z.string().nullable().openapi({ example: '+8613800138000' }),
    name: z.string().nullable().openapi({ example: 'Li Lei' }),
    mapped_key: z.string().openapi({ example: 'lilei@hr.example.com' }),
    status: z.enum(['ACTIVE', 'DISABLED']).openapi({ description: 'mapping status after the change (DELETE: the last status)' }),
    user_status: z.enum(['ACTIVE', 'DISABLED']).nullable(),
    created_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
  })
  .openapi('MappingChange')

mappingRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/api/v1/apps/{app_id}/users/changes',
    tags: [OPEN_TAG],
    summary: "Poll changes to your app's mappings",
    description:
      'Every change (ADD, UPDATE, DISABLE, DELETE) to the app\'s mappings, oldest first. Start without `since` (from the beginning), then pass the `next_cursor` of each page as `since`; keep polling with the last `next_cursor` when `has_more` is false. The cursor is a sequence number, not a time: no change is skipped or repeated, even when many share a millisecond.',
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: {
      params: AppIdParam,
      query: z.object({
        since: z
          .string()
          .regex(/^\d{1,15}$/, 'must be a cursor (the next_cursor of a previous page), not a timestamp')
          .optional()
          .openapi({ example: '1041' }),
        limit: z.coerce.number().int().min(1).max(500).default(100).openapi({ example: 100 }),
      }),
    },
    responses: {
      200: ok('A page of changes', z.object({ items: z.array(ChangeView), next_cursor: z.string().openapi({ example: '1141' }), has_more: z.boolean() }).openapi('MappingChanges')),
      ...pick(400, 401, 403, 404, 429),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const q = c.req.valid('query')
    return c.json(await listChanges(c.env, app.appId, q.since ? Number(q.since) : 0, q.limit), 200)
  },
)

// ---------------------------------------------------------------------------------------
// Admin CRUD

async function loadMapping(c: Context<AppEnv>, appId: string, mappingId: string) {
  await targetApp(c, appId)
  const m = await findMapping(c.env, appId, mappingId)
  if (!m) throw notFound('Mapping not found')
  return m
}

mappingRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/api/v1/admin/apps/{app_id}/mappings',
    tags: [ADMIN_TAG],
    summary: "List an app's mappings",
    description: 'Newest first, paginated. Filter by status, part of the mobile number, or exact mapped_key.',
    security: bearerSecurity,
    request: {
      params: AppIdParam,
      query: z.object({
        page: z.coerce.number().int().min(1).default(1),
        page_size: z.coerce.number().int().min(1).max(100).default(20),
        status: z.enum(['ACTIVE', 'DISABLED']).optional(),
        mobile: z.string().max(32).optional().openapi({ example: '138001' }),
        mapped_key: z.string().max(100).optional(),
      }),
    },
    responses: { 200: ok('A page of mappings', z.object({ items: z.array(MappingView), page: z.number(), page_size: z.number(), total: z.number() })), ...pick(400, 401, 403, 404) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    await targetApp(c, app_id)
    const q = c.req.valid('query')
    return c.json(await listMappings(c.env, app_id, { page: q.page, pageSize: q.page_size, status: q.status, mobile: q.mobile, mappedKey: q.mapped_key }), 200)
  },
)

mappingRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/api/v1/admin/apps/{app_id}/mappings',
    tags: [ADMIN_TAG],
    summary: 'Map a user into an app',
    description:
      'Same rules as a sync ADD: 201 when created; 200 when a DISABLED mapping of the user is enabled again or nothing changed. 404 user_not_found, 409 mapping_exists (the user is mapped to another key) or mapped_key_taken. Writes an outbox event and an audit row with the change.',
    security: bearerSecurity,
    request: { params: AppIdParam, body: jsonBody(z.object({ mobile: MobileField, mapped_key: MappedKey, name: MappingName.optional() })) },
    responses: { 201: ok('Created', MappingView), 200: ok('Re-enabled or unchanged', MappingView), ...pick(400, 401, 403, 404, 409) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    await targetApp(c, app_id)
    const b = c.req.valid('json')
    const [r] = await syncMappings(c.env, app_id, [{ mobile: b.mobile, mapped_key: b.mapped_key, name: b.name, action: 'ADD' }], {
      audit: (res, userId) => auditFrom(c, { action: 'admin.mapping.create', targetType: 'mapping', targetId: res.mapping_id, details: { app_id, user_id: userId, mapped_key: b.mapped_key, result: res.code } }),
    })
    if (r.status === 'error') throw syncErrorToApiError(r)
    const m = await findMapping(c.env, app_id, r.mapping_id!)
    if (!m) throw new ApiError(409, 'concurrent_modification', 'The mapping was changed concurrently; retry')
    return c.json(publicMapping(m), r.code === 'created' ? 201 : 200)
  },
)

mappingRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/api/v1/admin/apps/{app_id}/mappings/{mapping_id}',
    tags: [ADMIN_TAG],
    summary: 'Get a mapping',
    description: 'One mapping of the app, with the user\'s mobile.',
    security: bearerSecurity,
    request: { params: MappingParams },
    responses: { 200: ok('The mapping', MappingView), ...pick(401, 403, 404) },
  }),
  async (c) => {
    const { app_id, mapping_id } = c.req.valid('param')
    return c.json(publicMapping(await loadMapping(c, app_id, mapping_id)), 200)
  },
)

async function changeMapping(c: Context<AppEnv>, appId: string, mappingId: string, patch: { mapped_key?: string; name?: string | null; is_active?: boolean }, action: string) {
  const m = await loadMapping(c, appId, mappingId)
  const next = {
    mappedKey: patch.mapped_key ?? m.mappedKey,
    name: patch.name === undefined ? m.name : patch.name,
    isActive: patch.is_active ?? m.isActive,
  }
  if (next.mappedKey === m.mappedKey && next.name === m.name && next.isActive === m.isActive) return m
  if (next.mappedKey !== m.mappedKey) {
    const owner = await findMappingByKey(c.env, appId, next.mappedKey)
    if (owner && owner.id !== m.id) throw new ApiError(409, 'mapped_key_taken', 'This mapped_key is already used by another user of this app')
  }
  // an activation change is what receivers care about most; key/name travel in the payload either way
  const type = next.isActive !== m.isActive ? (next.isActive ? 'ADD' : 'DISABLE') : 'UPDATE'
  const db = getDb(c.env.DB)
  const { mobile: _mobile, userName: _userName, userStatus: _userStatus, ...row } = m
  const u = updateMappingStatements(db, row, next, type)
  await commitMappingChange(c.env, [
    ...u.statements,
    auditStatement(db, auditFrom(c, { action, targetType: 'mapping', targetId: m.id, details: { app_id: appId, user_id: m.userId, event_type: type, ...patch } })),
  ])
  return { ...m, ...u.row }
}

mappingRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/api/v1/admin/apps/{app_id}/mappings/{mapping_id}',
    tags: [ADMIN_TAG],
    summary: 'Update a mapping',
    description:
      'Changes mapped_key, name or is_active. The outbox event is ADD when the mapping is enabled, DISABLE when it is disabled, UPDATE otherwise. 409 mapped_key_taken when the key belongs to another user of the app.',
    security: bearerSecurity,
    request: {
      params: MappingParams,
      body: jsonBody(
        z
          .object({ mapped_key: MappedKey.optional(), name: MappingName.optional(), is_active: z.boolean().optional() })
          .refine((v) => Object.keys(v).length > 0, 'give at least one of mapped_key, name, is_active'),
      ),
    },
    responses: { 200: ok('Updated', MappingView), ...pick(400, 401, 403, 404, 409) },
  }),
  async (c) => {
    const { app_id, mapping_id } = c.req.valid('param')
    return c.json(publicMapping(await changeMapping(c, app_id, mapping_id, c.req.valid('json'), 'admin.mapping.update')), 200)
  },
)

mappingRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/api/v1/admin/apps/{app_id}/mappings/{mapping_id}/disable',
    tags: [ADMIN_TAG],
    summary: 'Disable a mapping',
    description: 'Sets is_active false (DISABLE event). Disabling a disabled mapping changes nothing. Enable again with PATCH `is_active: true` or a sync ADD.',
    security: bearerSecurity,
    request: { params: MappingParams },
    responses: { 200: ok('Disabled', MappingView), ...pick(401, 403, 404, 409) },
  }),
  async (c) => {
    const { app_id, mapping_id } = c.req.valid('param')
    return c.json(publicMapping(await changeMapping(c, app_id, mapping_id, { is_active: false }, 'admin.mapping.disable')), 200)
  },
)

mappingRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/api/v1/admin/apps/{app_id}/mappings/{mapping_id}',
    tags: [ADMIN_TAG],
    summary: 'Delete a mapping',
    description: 'Removes the mapping row. A DELETE event carrying the last state goes to the outbox in the same batch. The user may be mapped again later (new mapping_id).',
    security: bearerSecurity,
    request: { params: MappingParams },
    responses: { 200: ok('Deleted', z.object({ deleted: z.literal(true), mapping_id: z.string() })), ...pick(401, 403, 404, 409) },
  }),
  async (c) => {
    const { app_id, mapping_id } = c.req.valid('param')
    const m = await loadMapping(c, app_id, mapping_id)
    const db = getDb(c.env.DB)
    const { mobile: _mobile, userName: _userName, userStatus: _userStatus, ...row } = m
    await commitMappingChange(c.env, [
      ...deleteMappingStatements(db, row),
      auditStatement(db, auditFrom(c, { action: 'admin.mapping.delete', targetType: 'mapping', targetId: m.id, details: { app_id, user_id: m.userId, mapped_key: m.mappedKey } })),
    ])
    return c.json({ deleted: true as const, mapping_id: m.id }, 200)
  },
)
