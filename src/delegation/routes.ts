import { createRoute, z } from '@hono/zod-openapi'
import { bearerSecurity, jsonBody, mergeErrors, pick } from '../lib/openapi'
import { errorResponses } from '../lib/errors'
import { typedText } from '../lib/text'
import { router } from '../context'
import { auditActor } from '../audit/service'
import { DelegationErrors } from './errors'
import { RIGHTS } from './model'
import { needs } from './rights'
import {
  ADMIN_GROUP_MAX_USERS,
  addAdminGroupMembers,
  createAdminGroup,
  deleteAdminGroup,
  listAdminGroupMembers,
  listAdminGroups,
  loadAdminGroup,
  publicAdminGroup,
  removeAdminGroupMembers,
  updateAdminGroup,
} from './service'

/**
 * Admin: admin groups (sub-admins, docs/admin-rights.md). Mounted at
 * /api/v1/admin/admin-groups. Full admins only: a sub-admin never widens a grant, theirs or
 * anyone's.
 */
export const delegationRoutes = router()

const TAG = 'Admin: admin groups'
const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })
const base = mergeErrors(pick(400, 401, 403), errorResponses(DelegationErrors, 'admin_only'))

const Ids = (example: string, description: string) => z.array(z.string().min(1).max(64)).max(1000).openapi({ example: [example], description })
const ScopeSchema = z
  .object({
    groups: Ids('3c1e9f0a-5b7d-4e2f-8a6c-1d2e3f4a5b6c', 'Directory groups; each reaches its whole subtree and the users directly in any group of it').default([]),
    users: Ids('0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f', 'Users by id').default([]),
    apps: Ids('app_3f9a1c2d4e5f6a7b', 'Applications by app_id (apps a member registers are theirs besides)').default([]),
  })
  .openapi('AdminScope')
const RightsSchema = z
  .array(z.enum(RIGHTS))
  .min(1)
  .openapi({ example: ['users.read', 'users.write'], description: `Any of ${RIGHTS.map((r) => `\`${r}\``).join(', ')} (docs/admin-rights.md)` })
const Name = typedText({ min: 1, max: 100 }).openapi({ example: 'Sales admins' })
const Description = typedText({ max: 300 }).nullable()

const AdminGroupView = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    rights: z.array(z.enum(RIGHTS)),
    scope: z.object({ groups: z.array(z.string()), users: z.array(z.string()), apps: z.array(z.string()) }),
    member_count: z.number().int().optional(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('AdminGroup')
const Param = z.object({ admin_group_id: z.string().min(1).max(64).openapi({ param: { name: 'admin_group_id', in: 'path' }, example: '7a1c2d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e' }) })
const UserIds = z.object({ user_ids: z.array(z.string().min(1).max(64)).min(1).max(ADMIN_GROUP_MAX_USERS) })
const Members = z.object({ user_ids: z.array(z.string()) })

delegationRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: [TAG],
    summary: 'List admin groups',
    description: 'Every admin group by name, with its rights, scope and number of members.',
    security: bearerSecurity,
    ...needs('admin'),
    responses: { 200: ok('Admin groups', z.object({ items: z.array(AdminGroupView) })), ...base },
  }),
  async (c) => c.json({ items: await listAdminGroups(c.env) }, 200),
)

delegationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'Create an admin group',
    description:
      "A set of rights over a scope. Its members (sub-admins) hold the rights over the scope's groups (with their subgroups and members), users and apps; a person in several admin groups holds each group's rights over that group's scope only. Every id of the scope must exist (400 `scope_not_found`, the unknown ids in details).",
    security: bearerSecurity,
    ...needs('admin'),
    request: { body: jsonBody(z.object({ name: Name, description: Description.optional(), rights: RightsSchema, scope: ScopeSchema.default({ groups: [], users: [], apps: [] }) })) },
    responses: { 201: ok('Created', AdminGroupView), ...mergeErrors(base, errorResponses(DelegationErrors, 'scope_not_found', 'admin_group_name_taken')) },
  }),
  async (c) => c.json(publicAdminGroup(await createAdminGroup(c.env, c.req.valid('json'), auditActor(c))), 201),
)

delegationRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{admin_group_id}',
    tags: [TAG],
    summary: 'Get an admin group',
    description: 'One admin group with its rights and scope.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: Param },
    responses: { 200: ok('The admin group', AdminGroupView), ...mergeErrors(base, errorResponses(DelegationErrors, 'admin_group_not_found')) },
  }),
  async (c) => c.json(publicAdminGroup(await loadAdminGroup(c.env, c.req.valid('param').admin_group_id)), 200),
)

delegationRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/{admin_group_id}',
    tags: [TAG],
    summary: 'Change an admin group',
    description: 'Changes the name, description, rights or scope (each replaced whole). Members hold the new grant from their next request.',
    security: bearerSecurity,
    ...needs('admin'),
    request: {
      params: Param,
      body: jsonBody(
        z
          .object({ name: Name.optional(), description: Description.optional(), rights: RightsSchema.optional(), scope: ScopeSchema.optional() })
          .refine((v) => Object.keys(v).length > 0, 'give at least one of name, description, rights, scope'),
      ),
    },
    responses: { 200: ok('Changed', AdminGroupView), ...mergeErrors(base, errorResponses(DelegationErrors, 'admin_group_not_found', 'scope_not_found', 'admin_group_name_taken')) },
  }),
  async (c) => c.json(publicAdminGroup(await updateAdminGroup(c.env, c.req.valid('param').admin_group_id, c.req.valid('json'), auditActor(c))), 200),
)

delegationRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/{admin_group_id}',
    tags: [TAG],
    summary: 'Delete an admin group',
    description: 'Deletes the group and its memberships; its members lose its grant at once.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: Param },
    responses: { 200: ok('Deleted', z.object({ deleted: z.literal(true), id: z.string() })), ...mergeErrors(base, errorResponses(DelegationErrors, 'admin_group_not_found')) },
  }),
  async (c) => {
    const { admin_group_id } = c.req.valid('param')
    await deleteAdminGroup(c.env, admin_group_id, auditActor(c))
    return c.json({ deleted: true as const, id: admin_group_id }, 200)
  },
)

delegationRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{admin_group_id}/members',
    tags: [TAG],
    summary: "An admin group's members",
    description: 'The sub-admins holding the group\'s grant, newest first.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: Param },
    responses: {
      200: ok('Members', z.object({ items: z.array(z.object({ user_id: z.string(), mobile: z.string(), name: z.string().nullable(), member_since: z.string() })) })),
      ...mergeErrors(base, errorResponses(DelegationErrors, 'admin_group_not_found')),
    },
  }),
  async (c) => c.json({ items: await listAdminGroupMembers(c.env, c.req.valid('param').admin_group_id) }, 200),
)

delegationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{admin_group_id}/members',
    tags: [TAG],
    summary: 'Add sub-admins',
    description: `Adds up to ${ADMIN_GROUP_MAX_USERS} users; all or nothing (404 \`members_not_found\` names unknown ids). Users already in it stay.`,
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: Param, body: jsonBody(UserIds) },
    responses: { 200: ok('Added', Members), ...mergeErrors(base, errorResponses(DelegationErrors, 'admin_group_not_found', 'members_not_found')) },
  }),
  async (c) => c.json(await addAdminGroupMembers(c.env, c.req.valid('param').admin_group_id, c.req.valid('json').user_ids, auditActor(c)), 200),
)

delegationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{admin_group_id}/members/remove',
    tags: [TAG],
    summary: 'Remove sub-admins',
    description: `Removes up to ${ADMIN_GROUP_MAX_USERS} users from the group; ids that are not members change nothing.`,
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: Param, body: jsonBody(UserIds) },
    responses: { 200: ok('Removed', Members), ...mergeErrors(base, errorResponses(DelegationErrors, 'admin_group_not_found')) },
  }),
  async (c) => c.json(await removeAdminGroupMembers(c.env, c.req.valid('param').admin_group_id, c.req.valid('json').user_ids, auditActor(c)), 200),
)
