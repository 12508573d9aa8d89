import { createRoute, z } from '@hono/zod-openapi'
import { pick, bearerSecurity, jsonBody } from '../lib/openapi'
import { router } from '../context'
import { MobileField } from '../lib/mobile'
import { targetApp } from '../apps/access'
import { auditActor } from '../audit/service'
import { listMappings, publicMapping } from './service'
import { createMappingAsAdmin, deleteMappingAsAdmin, loadMapping, updateMappingAsAdmin } from './admin'
import { afterResponse } from '../webhooks/outbox'
import { AppIdParam, MappedKey, MappingName, MappingParams, MappingView, ok } from './view'
import { needs } from '../delegation/rights'
import { assertInScope, requestReach, within } from '../delegation/scope'
import { findUserByMobile } from '../users/service'

/** Admin: an app's mappings, one by one (docs/mappings.md). Mounted at /api/v1/admin/apps. */
export const adminMappingRoutes = router()

const ADMIN_TAG = 'Admin: mappings'

adminMappingRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/mappings',
    tags: [ADMIN_TAG],
    summary: "List an app's mappings",
    description: 'Newest first, paginated. Filter by status, part of the mobile number, or exact mapped_key. A sub-admin sees the mappings of the users of their scope.',
    security: bearerSecurity,
    ...needs('users.read', { app: 'app_id' }),
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
    return c.json(await listMappings(c.env, app_id, { page: q.page, pageSize: q.page_size, status: q.status, mobile: q.mobile, mappedKey: q.mapped_key, within: within(c, 'users') }), 200)
  },
)

adminMappingRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/mappings',
    tags: [ADMIN_TAG],
    summary: 'Map a user into an app',
    description:
      'Same rules as a sync ADD: 201 when created; 200 when a DISABLED mapping of the user is enabled again or nothing changed. 404 user_not_found, 409 mapping_exists (the user is mapped to another key) or mapped_key_taken. Writes an outbox event and an audit row with the change.',
    security: bearerSecurity,
    ...needs('mappings.write', { app: 'app_id' }),
    request: { params: AppIdParam, body: jsonBody(z.object({ mobile: MobileField, mapped_key: MappedKey, name: MappingName.optional() })) },
    responses: { 201: ok('Created', MappingView), 200: ok('Re-enabled or unchanged', MappingView), ...pick(400, 401, 403, 404, 409) },
  }),
  async (c) => {
    const { app_id } = c.req.valid('param')
    await targetApp(c, app_id)
    if (requestReach(c)) {
      // an unknown number is as out of scope as another's user: the answer does not tell which
      const user = await findUserByMobile(c.env, c.req.valid('json').mobile)
      await assertInScope(c, { users: [user?.id ?? ''] })
    }
    const { mapping, created } = await createMappingAsAdmin(c.env, app_id, c.req.valid('json'), auditActor(c), afterResponse(c))
    return c.json(publicMapping(mapping), created ? 201 : 200)
  },
)

adminMappingRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/mappings/{mapping_id}',
    tags: [ADMIN_TAG],
    summary: 'Get a mapping',
    description: 'One mapping of the app, with the user\'s mobile.',
    security: bearerSecurity,
    ...needs('users.read', { app: 'app_id', mapping: 'mapping_id' }),
    request: { params: MappingParams },
    responses: { 200: ok('The mapping', MappingView), ...pick(400, 401, 403, 404) },
  }),
  async (c) => {
    const { app_id, mapping_id } = c.req.valid('param')
    await targetApp(c, app_id)
    return c.json(publicMapping(await loadMapping(c.env, app_id, mapping_id)), 200)
  },
)

adminMappingRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/{app_id}/mappings/{mapping_id}',
    tags: [ADMIN_TAG],
    summary: 'Update a mapping',
    description:
      'Changes mapped_key, name or is_active. The outbox event is ADD when the mapping is enabled, DISABLE when it is disabled, UPDATE otherwise. 409 mapped_key_taken when the key belongs to another user of the app.',
    security: bearerSecurity,
    ...needs('mappings.write', { app: 'app_id', mapping: 'mapping_id' }),
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
    await targetApp(c, app_id)
    return c.json(publicMapping(await updateMappingAsAdmin(c.env, app_id, mapping_id, c.req.valid('json'), 'admin.mapping.update', auditActor(c), afterResponse(c))), 200)
  },
)

adminMappingRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/mappings/{mapping_id}/disable',
    tags: [ADMIN_TAG],
    summary: 'Disable a mapping',
    description: 'Sets is_active false (DISABLE event). Disabling a disabled mapping changes nothing. Enable again with PATCH `is_active: true` or a sync ADD.',
    security: bearerSecurity,
    ...needs('mappings.write', { app: 'app_id', mapping: 'mapping_id' }),
    request: { params: MappingParams },
    responses: { 200: ok('Disabled', MappingView), ...pick(400, 401, 403, 404, 409) },
  }),
  async (c) => {
    const { app_id, mapping_id } = c.req.valid('param')
    await targetApp(c, app_id)
    return c.json(publicMapping(await updateMappingAsAdmin(c.env, app_id, mapping_id, { is_active: false }, 'admin.mapping.disable', auditActor(c), afterResponse(c))), 200)
  },
)

adminMappingRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/{app_id}/mappings/{mapping_id}',
    tags: [ADMIN_TAG],
    summary: 'Delete a mapping',
    description: 'Removes the mapping row. A DELETE event carrying the last state goes to the outbox in the same batch. The user may be mapped again later (new mapping_id).',
    security: bearerSecurity,
    ...needs('mappings.write', { app: 'app_id', mapping: 'mapping_id' }),
    request: { params: MappingParams },
    responses: { 200: ok('Deleted', z.object({ deleted: z.literal(true), mapping_id: z.string() })), ...pick(400, 401, 403, 404, 409) },
  }),
  async (c) => {
    const { app_id, mapping_id } = c.req.valid('param')
    await targetApp(c, app_id)
    const m = await deleteMappingAsAdmin(c.env, app_id, mapping_id, auditActor(c), afterResponse(c))
    return c.json({ deleted: true as const, mapping_id: m.id }, 200)
  },
)
