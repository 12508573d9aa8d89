import { createRoute, z } from '@hono/zod-openapi'
import { bearerSecurity, jsonBody, mergeErrors, pick } from '../lib/openapi'
import { errorResponses } from '../lib/errors'
import { typedText } from '../lib/text'
import { router } from '../context'
import { auditActor } from '../audit/service'
import { afterResponse } from '../webhooks/outbox'
import { targetApp } from '../apps/access'
import { AppErrors } from '../apps/errors'
import { UserErrors } from '../users/errors'
import { PermissionErrors } from './errors'
import { ACCESS_PERMISSION, GRANT_EFFECTS, SUBJECT_TYPES } from './schema'
import { ACCESS_VIEW, listAppPermissions, listGrants, listHolders, publicGrant, publicPermission, readUserPermissions, snapshotFrom } from './service'
import { createPermissionAsAdmin, deletePermissionAsAdmin, loadAppPermission, revokeGrantAsAdmin, setGrantAsAdmin, updatePermissionAsAdmin } from './admin'
import { AppIdParam, PermissionKey, ScopeSchema, SnapshotView, SourceView, ok } from './view'
import { needs } from '../delegation/rights'
import { assertInScope, requestReach, visibleAmong } from '../delegation/scope'

/** Admin: an app's permissions and grants (docs/permissions.md). Mounted at /api/v1/admin/apps. */
export const adminPermissionRoutes = router()

const TAG = 'Admin: permissions'
const appErrors = errorResponses(AppErrors, 'target_app_not_found')
const KeyParams = AppIdParam.extend({ key: z.string().min(1).max(100).openapi({ param: { name: 'key', in: 'path' }, example: 'orders:read' }) })

const PermissionView = z
  .object({
    key: z.string().openapi({ example: 'orders:read' }),
    name: z.string().openapi({ example: 'Read orders' }),
    description: z.string().nullable(),
    built_in: z.boolean(),
    created_at: z.string().optional(),
    updated_at: z.string().optional(),
  })
  .openapi('AppPermission')

const GrantView = z
  .object({
    grant_id: z.string(),
    app_id: z.string(),
    permission: z.string().openapi({ example: 'orders:read' }),
    subject: z.object({ type: z.enum(SUBJECT_TYPES), id: z.string() }),
    scope: ScopeSchema.nullable(),
    effect: z.enum(GRANT_EFFECTS),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('PermissionGrant')

const Name = typedText({ min: 1, max: 100 }).openapi({ example: 'Read orders' })
const Description = typedText({ max: 500, multiline: true }).nullable().openapi({ example: 'See every order of the stores one works in' })

adminPermissionRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/permissions',
    tags: [TAG],
    summary: "List an app's permissions",
    description: 'The built-in `access` permission first, then the app\'s own by key.',
    security: bearerSecurity,
    ...needs('permissions.grant', { app: 'app_id' }),
    request: { params: AppIdParam },
    responses: { 200: ok('Permissions', z.object({ items: z.array(PermissionView) })), ...mergeErrors(pick(400, 401, 403), appErrors) },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    return c.json({ items: [ACCESS_VIEW, ...(await listAppPermissions(c.env, app.appId)).map(publicPermission)] }, 200)
  },
)

adminPermissionRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/permissions',
    tags: [TAG],
    summary: 'Define a permission',
    description: 'A permission of the app, with a key the app chooses (`orders:read`). Keys are unique per app and never change; `access` is built in (409 `permission_built_in`).',
    security: bearerSecurity,
    ...needs('apps.manage', { app: 'app_id' }),
    request: { params: AppIdParam, body: jsonBody(z.object({ key: PermissionKey, name: Name, description: Description.optional() })) },
    responses: { 201: ok('Created', PermissionView), ...mergeErrors(pick(400, 401, 403), appErrors, errorResponses(PermissionErrors, 'permission_exists', 'permission_built_in')) },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    return c.json(publicPermission(await createPermissionAsAdmin(c.env, app.appId, c.req.valid('json'), auditActor(c))), 201)
  },
)

adminPermissionRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/permissions/{key}',
    tags: [TAG],
    summary: 'Get a permission',
    description: 'One permission of the app (`access` included).',
    security: bearerSecurity,
    ...needs('permissions.grant', { app: 'app_id' }),
    request: { params: KeyParams },
    responses: { 200: ok('The permission', PermissionView), ...mergeErrors(pick(400, 401, 403), appErrors, errorResponses(PermissionErrors, 'permission_not_found')) },
  }),
  async (c) => {
    const { app_id, key } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    return c.json(key === ACCESS_PERMISSION ? ACCESS_VIEW : publicPermission(await loadAppPermission(c.env, app.appId, key)), 200)
  },
)

adminPermissionRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/{app_id}/permissions/{key}',
    tags: [TAG],
    summary: 'Rename or describe a permission',
    description: 'Changes the name and/or description; the key stays (the app\'s code refers to it).',
    security: bearerSecurity,
    ...needs('apps.manage', { app: 'app_id' }),
    request: {
      params: KeyParams,
      body: jsonBody(z.object({ name: Name.optional(), description: Description.optional() }).refine((v) => Object.keys(v).length > 0, 'give name and/or description')),
    },
    responses: { 200: ok('Updated', PermissionView), ...mergeErrors(pick(400, 401, 403), appErrors, errorResponses(PermissionErrors, 'permission_not_found', 'permission_built_in')) },
  }),
  async (c) => {
    const { app_id, key } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    return c.json(publicPermission(await updatePermissionAsAdmin(c.env, app.appId, key, c.req.valid('json'), auditActor(c))), 200)
  },
)

adminPermissionRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/{app_id}/permissions/{key}',
    tags: [TAG],
    summary: 'Delete a permission',
    description: 'Deletes the permission and every grant of it in one batch; nobody has it any more. Sends the app one `permission.changed` webhook (change `deleted`, docs/webhooks.md), written in the same batch.',
    security: bearerSecurity,
    ...needs('apps.manage', { app: 'app_id' }),
    request: { params: KeyParams },
    responses: { 200: ok('Deleted', z.object({ deleted: z.literal(true), key: z.string() })), ...mergeErrors(pick(400, 401, 403), appErrors, errorResponses(PermissionErrors, 'permission_not_found', 'permission_built_in')) },
  }),
  async (c) => {
    const { app_id, key } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    await deletePermissionAsAdmin(c.env, app.appId, key, auditActor(c), afterResponse(c))
    return c.json({ deleted: true as const, key }, 200)
  },
)

adminPermissionRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/permissions/{key}/holders',
    tags: [TAG],
    summary: 'Who has a permission',
    description:
      'Every user whose answer for the permission is allow (at `scope_type` + `scope_id` when given), with where it comes from: `direct` or `via group Sales ▸ East`. Users denied, or reached by no grant, are not listed. By mobile, paginated.',
    security: bearerSecurity,
    ...needs('permissions.grant', { app: 'app_id' }),
    request: {
      params: KeyParams,
      query: z
        .object({
          scope_type: ScopeSchema.shape.type.optional(),
          scope_id: ScopeSchema.shape.id.optional(),
          page: z.coerce.number().int().min(1).default(1),
          page_size: z.coerce.number().int().min(1).max(500).default(100),
        })
        .refine((v) => (v.scope_type === undefined) === (v.scope_id === undefined), { message: 'give both scope_type and scope_id, or neither', path: ['scope_id'] }),
    },
    responses: {
      200: ok(
        'Holders',
        z.object({
          permission: z.string(),
          scope: ScopeSchema.nullable(),
          items: z.array(z.object({ user_id: z.string(), mobile: z.string(), name: z.string().nullable(), status: z.string(), source: SourceView })),
          page: z.number(),
          page_size: z.number(),
          total: z.number(),
        }),
      ),
      ...mergeErrors(pick(400, 401, 403), appErrors, errorResponses(PermissionErrors, 'permission_not_found', 'access_not_scoped')),
    },
  }),
  async (c) => {
    const { app_id, key } = c.req.valid('param')
    const q = c.req.valid('query')
    const app = await targetApp(c, app_id)
    const scope = q.scope_type !== undefined ? { type: q.scope_type, id: q.scope_id! } : null
    if (key === ACCESS_PERMISSION) {
      if (scope) throw PermissionErrors.access_not_scoped()
    } else await loadAppPermission(c.env, app.appId, key)
    const holders = await listHolders(c.env, app.appId, key, scope)
    const visible = await visibleAmong(c, 'users', holders.map((h) => h.user_id))
    const all = holders.filter((h) => visible.has(h.user_id))
    return c.json({ permission: key, scope, items: all.slice((q.page - 1) * q.page_size, q.page * q.page_size), page: q.page, page_size: q.page_size, total: all.length }, 200)
  },
)

adminPermissionRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/grants',
    tags: [TAG],
    summary: "List an app's grants",
    description: 'Every allow and deny set in the app, by permission; filter by permission or subject. A sub-admin sees the grants whose subject is in their scope.',
    security: bearerSecurity,
    ...needs('permissions.grant', { app: 'app_id' }),
    request: {
      params: AppIdParam,
      query: z.object({
        permission: z.string().min(1).max(100).optional(),
        subject_type: z.enum(SUBJECT_TYPES).optional(),
        subject_id: z.string().min(1).max(64).optional(),
        page: z.coerce.number().int().min(1).default(1),
        page_size: z.coerce.number().int().min(1).max(100).default(50),
      }),
    },
    responses: { 200: ok('A page of grants', z.object({ items: z.array(GrantView), page: z.number(), page_size: z.number(), total: z.number() })), ...mergeErrors(pick(400, 401, 403), appErrors) },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const q = c.req.valid('query')
    const reach = requestReach(c)
    const within = reach ? { users: reach.users, groups: reach.groups } : undefined
    return c.json(await listGrants(c.env, app.appId, { permission: q.permission, subjectType: q.subject_type, subjectId: q.subject_id, page: q.page, pageSize: q.page_size, within }), 200)
  },
)

adminPermissionRoutes.openapi(
  createRoute({
    method: 'put',
    path: '/{app_id}/grants',
    tags: [TAG],
    summary: 'Allow or deny a permission to a user or a group',
    description:
      'Sets the effect for (subject, permission, scope): 201 when the grant is new, 200 when an existing one changed or already had this effect. A group\'s grant reaches its members and every subgroup\'s members; to go back to inheriting, DELETE the grant. `access` takes no scope. A new grant or a changed effect sends the app one `permission.changed` webhook (change `granted`, docs/webhooks.md), written in the same batch; an unchanged one sends nothing.',
    security: bearerSecurity,
    ...needs('permissions.grant', { app: 'app_id' }),
    request: {
      params: AppIdParam,
      body: jsonBody(
        z
          .object({
            permission: PermissionKey,
            subject: z.object({ type: z.enum(SUBJECT_TYPES), id: z.string().min(1).max(64) }),
            scope: ScopeSchema.nullable().optional(),
            effect: z.enum(GRANT_EFFECTS),
          })
          .openapi('SetGrant'),
      ),
    },
    responses: {
      201: ok('Created', GrantView),
      200: ok('Changed or unchanged', GrantView),
      ...mergeErrors(pick(400, 401, 403), appErrors, errorResponses(PermissionErrors, 'permission_not_found', 'subject_not_found', 'access_not_scoped')),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const { subject } = c.req.valid('json')
    await assertInScope(c, subject.type === 'user' ? { users: [subject.id] } : { groups: [subject.id] })
    const { grant, created } = await setGrantAsAdmin(c.env, app.appId, c.req.valid('json'), auditActor(c), afterResponse(c))
    return c.json(publicGrant(grant), created ? 201 : 200)
  },
)

adminPermissionRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/{app_id}/grants/{grant_id}',
    tags: [TAG],
    summary: 'Revoke a grant',
    description: 'Removes the grant: its subject inherits again (from its groups, or nothing). Sends the app one `permission.changed` webhook (change `revoked`, docs/webhooks.md), written in the same batch.',
    security: bearerSecurity,
    ...needs('permissions.grant', { app: 'app_id', grant: 'grant_id' }),
    request: { params: AppIdParam.extend({ grant_id: z.string().min(1).max(64).openapi({ param: { name: 'grant_id', in: 'path' } }) }) },
    responses: { 200: ok('Revoked', GrantView), ...mergeErrors(pick(400, 401, 403), appErrors, errorResponses(PermissionErrors, 'grant_not_found')) },
  }),
  async (c) => {
    const { app_id, grant_id } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    return c.json(publicGrant((await revokeGrantAsAdmin(c.env, app.appId, grant_id, auditActor(c), afterResponse(c))).grant), 200)
  },
)

adminPermissionRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/users/{user_id}/permissions',
    tags: [TAG],
    summary: 'What a user has in an app',
    description: "Every permission of the app with the user's answer and its source, the answer at each scope a grant names, and whether the user is admitted under the app's access policy. The same snapshot the app reads.",
    security: bearerSecurity,
    ...needs('permissions.grant', { app: 'app_id', user: 'user_id' }),
    request: { params: AppIdParam.extend({ user_id: z.string().min(1).max(64).openapi({ param: { name: 'user_id', in: 'path' } }) }) },
    responses: { 200: ok('The snapshot', SnapshotView), ...mergeErrors(pick(400, 401, 403), appErrors, errorResponses(UserErrors, 'user_not_found')) },
  }),
  async (c) => {
    const { app_id, user_id } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    const read = await readUserPermissions(c.env, app.appId, { userId: user_id })
    if (!read?.user) throw UserErrors.user_not_found()
    return c.json(snapshotFrom(read), 200)
  },
)
