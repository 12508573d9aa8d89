import { createRoute, z } from '@hono/zod-openapi'
import { bearerSecurity, jsonBody, mergeErrors, pick } from '../lib/openapi'
import { errorResponses } from '../lib/errors'
import { typedText } from '../lib/text'
import { router } from '../context'
import { auditActor } from '../audit/service'
import { UserErrors } from '../users/errors'
import { findUserById } from '../users/service'
import { DirectoryErrors } from './errors'
import { PATH_SEPARATOR, groupNode, listGroupTree, listGroupTypes, listMembers, publicGroupType, userMembershipPaths } from './service'
import {
  MEMBERSHIP_MAX_USERS,
  addMembersAsAdmin,
  createGroupAsAdmin,
  createGroupTypeAsAdmin,
  deleteGroupAsAdmin,
  deleteGroupTypeAsAdmin,
  loadGroupType,
  removeMembersAsAdmin,
  renameGroupTypeAsAdmin,
  updateGroupAsAdmin,
} from './admin'
import { needs } from '../delegation/rights'
import { assertInScope, requestReach, visibleAmong, within } from '../delegation/scope'
import { DelegationErrors } from '../delegation/errors'

/*
 * Admin: the directory (docs/permissions.md). Group types at /api/v1/admin/group-types,
 * groups and memberships at /api/v1/admin/groups, a user's groups at
 * /api/v1/admin/users/{id}/groups.
 */
export const adminGroupTypeRoutes = router()
export const adminGroupRoutes = router()
export const adminUserGroupRoutes = router()

const TAG = 'Admin: directory'
const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })
const admin = pick(400, 401, 403)

const TypeId = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{1,31}$/, 'must be 2-32 characters of a-z 0-9 _ -, starting with a letter')
  .openapi({ example: 'project', description: 'Chosen at creation, never changes; prefixes the `groups` claim paths' })
const TypeName = typedText({ min: 1, max: 50 }).openapi({ example: 'Project' })
const GroupName = typedText({ min: 1, max: 100 })
  .refine((v) => !v.includes('/'), 'must not contain "/" (it separates the levels of a group path)')
  .openapi({ example: 'East' })
const Id = (name: string, example: string) => z.object({ [name]: z.string().min(1).max(64).openapi({ param: { name, in: 'path' }, example }) })
const TypeParam = Id('type_id', 'department')
const GroupParam = Id('group_id', '3c1e9f0a-5b7d-4e2f-8a6c-1d2e3f4a5b6c')
const UserIds = z.object({ user_ids: z.array(z.string().min(1).max(64)).min(1).max(MEMBERSHIP_MAX_USERS).openapi({ example: ['0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f'] }) })

const GroupTypeView = z
  .object({
    id: z.string().openapi({ example: 'department' }),
    name: z.string().openapi({ example: 'Department' }),
    built_in: z.boolean().openapi({ description: 'department, role and label: never renamed or deleted' }),
    group_count: z.number().int().optional(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('GroupType')

export const GroupView = z
  .object({
    id: z.string().openapi({ example: '3c1e9f0a-5b7d-4e2f-8a6c-1d2e3f4a5b6c' }),
    type_id: z.string().openapi({ example: 'department' }),
    parent_id: z.string().nullable(),
    name: z.string().openapi({ example: 'East' }),
    path: z.array(z.string()).openapi({ example: ['Sales', 'East'], description: 'Names from the root down to this group' }),
    level: z.number().int().openapi({ example: 2, description: '1 for a root' }),
    child_count: z.number().int(),
    member_count: z.number().int().openapi({ description: 'Users directly in the group' }),
    subtree_member_count: z.number().int().openapi({ description: 'Distinct users in the group and every group below it' }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Group')

// ---------------------------------------------------------------------------------------
// Group types

adminGroupTypeRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: [TAG],
    summary: 'List group types',
    description: 'The built-in types (department, role, label) first, then custom ones by creation; each with its number of groups.',
    security: bearerSecurity,
    ...needs('users.read'),
    responses: { 200: ok('Group types', z.object({ items: z.array(GroupTypeView) })), ...pick(401, 403) },
  }),
  async (c) => c.json({ items: (await listGroupTypes(c.env)).map((r) => publicGroupType(r.type, r.groups)) }, 200),
)

adminGroupTypeRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'Create a group type',
    description: 'A custom kind of group tree next to department, role and label. The id is permanent; the name can be changed later.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { body: jsonBody(z.object({ id: TypeId, name: TypeName })) },
    responses: { 201: ok('Created', GroupTypeView), ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_type_exists')) },
  }),
  async (c) => c.json(publicGroupType(await createGroupTypeAsAdmin(c.env, c.req.valid('json'), auditActor(c))), 201),
)

adminGroupTypeRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{type_id}',
    tags: [TAG],
    summary: 'Get a group type',
    description: 'One group type.',
    security: bearerSecurity,
    ...needs('users.read'),
    request: { params: TypeParam },
    responses: { 200: ok('The group type', GroupTypeView), ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_type_not_found')) },
  }),
  async (c) => c.json(publicGroupType(await loadGroupType(c.env, c.req.valid('param').type_id)), 200),
)

adminGroupTypeRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/{type_id}',
    tags: [TAG],
    summary: 'Rename a group type',
    description: 'Changes the name of a custom group type; the built-in ones answer 409 `group_type_built_in`.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: TypeParam, body: jsonBody(z.object({ name: TypeName })) },
    responses: { 200: ok('Renamed', GroupTypeView), ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_type_not_found', 'group_type_built_in')) },
  }),
  async (c) => c.json(publicGroupType(await renameGroupTypeAsAdmin(c.env, c.req.valid('param').type_id, c.req.valid('json').name, auditActor(c))), 200),
)

adminGroupTypeRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/{type_id}',
    tags: [TAG],
    summary: 'Delete a group type',
    description: 'Deletes a custom group type that has no groups. Built-in types and types with groups answer 409.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: TypeParam },
    responses: { 200: ok('Deleted', z.object({ deleted: z.literal(true), id: z.string() })), ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_type_not_found', 'group_type_built_in', 'group_type_in_use')) },
  }),
  async (c) => {
    const { type_id } = c.req.valid('param')
    await deleteGroupTypeAsAdmin(c.env, type_id, auditActor(c))
    return c.json({ deleted: true as const, id: type_id }, 200)
  },
)

// ---------------------------------------------------------------------------------------
// Groups

adminGroupRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: [TAG],
    summary: 'List groups as trees',
    description:
      'Every group (or those of `type_id`), depth first: each root, then its subgroups by name, and so on. Each carries its path, level, number of subgroups, direct members and distinct members of its whole subtree. Build the tree from `parent_id` or indent by `level`. A sub-admin sees the groups of their scope (with their full paths).',
    security: bearerSecurity,
    ...needs('users.read'),
    request: { query: z.object({ type_id: z.string().min(1).max(32).optional().openapi({ example: 'department' }) }) },
    responses: { 200: ok('The groups, depth first', z.object({ items: z.array(GroupView) })), ...admin },
  }),
  async (c) => c.json({ items: await listGroupTree(c.env, c.req.valid('query').type_id, within(c, 'groups')) }, 200),
)

/** A sub-admin places groups only under a group of their scope (never at a root). */
async function parentInScope(c: Parameters<typeof requestReach>[0], parentId: string | null | undefined) {
  if (!requestReach(c)) return
  if (!parentId) throw DelegationErrors.out_of_scope({ message: 'A sub-admin creates and moves groups only under a group of their scope: give parent_id' })
  await assertInScope(c, { groups: [parentId] })
}

async function shownGroup(env: Parameters<typeof groupNode>[0], id: string) {
  const node = await groupNode(env, id)
  if (!node) throw DirectoryErrors.group_not_found()
  return node
}

adminGroupRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'Create a group',
    description:
      'A root group of `type_id`, or a subgroup of `parent_id` (of the parent\'s type; `type_id`, when given too, must match). Sibling names are unique. A tree has at most 32 levels. A sub-admin creates subgroups of groups in their scope only.',
    security: bearerSecurity,
    ...needs('groups.manage'),
    request: {
      body: jsonBody(
        z
          .object({ type_id: z.string().min(1).max(32).optional().openapi({ example: 'department' }), parent_id: z.string().min(1).max(64).nullable().optional(), name: GroupName })
          .refine((v) => v.type_id !== undefined || !!v.parent_id, { message: 'give type_id for a root group or parent_id for a subgroup', path: ['type_id'] }),
      ),
    },
    responses: { 201: ok('Created', GroupView), ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_type_not_found', 'parent_not_found', 'parent_type_mismatch', 'tree_too_deep', 'group_name_taken')) },
  }),
  async (c) => {
    const b = c.req.valid('json')
    await parentInScope(c, b.parent_id)
    const g = await createGroupAsAdmin(c.env, { typeId: b.type_id, parentId: b.parent_id, name: b.name }, auditActor(c))
    return c.json(await shownGroup(c.env, g.id), 201)
  },
)

adminGroupRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{group_id}',
    tags: [TAG],
    summary: 'Get a group',
    description: 'One group with its path and counts.',
    security: bearerSecurity,
    ...needs('users.read', { group: 'group_id' }),
    request: { params: GroupParam },
    responses: { 200: ok('The group', GroupView), ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_not_found')) },
  }),
  async (c) => c.json(await shownGroup(c.env, c.req.valid('param').group_id), 200),
)

adminGroupRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/{group_id}',
    tags: [TAG],
    summary: 'Rename or move a group',
    description: `\`name\` renames; \`parent_id\` moves the group with its whole subtree under another group of the same type (\`null\`: to the root). A move under the group itself or one of its descendants is refused (409 \`move_into_own_subtree\`), also against concurrent moves. Members stay; what they inherit follows the group at once (paths in sources read "Sales${PATH_SEPARATOR}East").`,
    security: bearerSecurity,
    ...needs('groups.manage', { group: 'group_id' }),
    request: {
      params: GroupParam,
      body: jsonBody(
        z
          .object({ name: GroupName.optional(), parent_id: z.string().min(1).max(64).nullable().optional() })
          .refine((v) => v.name !== undefined || v.parent_id !== undefined, 'give name and/or parent_id'),
      ),
    },
    responses: {
      200: ok('Updated', GroupView),
      ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_not_found', 'parent_not_found', 'parent_type_mismatch', 'tree_too_deep', 'group_name_taken', 'move_into_own_subtree', 'concurrent_modification')),
    },
  }),
  async (c) => {
    const { group_id } = c.req.valid('param')
    const b = c.req.valid('json')
    if (b.parent_id !== undefined) await parentInScope(c, b.parent_id)
    await updateGroupAsAdmin(c.env, group_id, { name: b.name, parentId: b.parent_id }, auditActor(c))
    return c.json(await shownGroup(c.env, group_id), 200)
  },
)

adminGroupRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/{group_id}',
    tags: [TAG],
    summary: 'Delete a group',
    description: 'Deletes a group that has no subgroups and no members (409 otherwise), with its grants in every app.',
    security: bearerSecurity,
    ...needs('groups.manage', { group: 'group_id' }),
    request: { params: GroupParam },
    responses: {
      200: ok('Deleted', z.object({ deleted: z.literal(true), id: z.string() })),
      ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_not_found', 'group_has_children', 'group_has_members', 'concurrent_modification')),
    },
  }),
  async (c) => {
    const { group_id } = c.req.valid('param')
    await deleteGroupAsAdmin(c.env, group_id, auditActor(c))
    return c.json({ deleted: true as const, id: group_id }, 200)
  },
)

const MemberView = z
  .object({
    user_id: z.string(),
    mobile: z.string().openapi({ example: '+8613800138000' }),
    name: z.string().nullable(),
    status: z.enum(['ACTIVE', 'DISABLED']),
    group_ids: z.array(z.string()).openapi({ description: 'The groups of the listed subtree the user is directly in' }),
    member_since: z.string(),
  })
  .openapi('GroupMember')

adminGroupRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{group_id}/members',
    tags: [TAG],
    summary: "List a group's members",
    description: 'The users directly in the group; with `subgroups=true`, every user in the group or any group below it (each once). Newest membership first, paginated.',
    security: bearerSecurity,
    ...needs('users.read', { group: 'group_id' }),
    request: {
      params: GroupParam,
      query: z.object({
        subgroups: z
          .enum(['true', 'false'])
          .default('false')
          .transform((v) => v === 'true'),
        page: z.coerce.number().int().min(1).default(1),
        page_size: z.coerce.number().int().min(1).max(100).default(20),
      }),
    },
    responses: {
      200: ok('A page of members', z.object({ items: z.array(MemberView), page: z.number(), page_size: z.number(), total: z.number() })),
      ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_not_found')),
    },
  }),
  async (c) => {
    const { group_id } = c.req.valid('param')
    await shownGroup(c.env, group_id)
    const q = c.req.valid('query')
    return c.json(await listMembers(c.env, group_id, { subgroups: q.subgroups, page: q.page, pageSize: q.page_size }), 200)
  },
)

adminGroupRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{group_id}/members',
    tags: [TAG],
    summary: 'Add users to a group',
    description: `Adds up to ${MEMBERSHIP_MAX_USERS} users at once. All or nothing: an unknown user id refuses the call (404 \`users_not_found\`, the ids in \`details\`). Users already in the group are listed in \`already_members\` and left as they are. A sub-admin adds only users already in their scope; one outside refuses the whole call (403 \`out_of_scope\`).`,
    security: bearerSecurity,
    ...needs('groups.manage', { group: 'group_id' }),
    request: { params: GroupParam, body: jsonBody(UserIds) },
    responses: {
      200: ok('Added', z.object({ added: z.array(z.string()), already_members: z.array(z.string()) })),
      ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_not_found', 'users_not_found', 'concurrent_modification')),
    },
  }),
  async (c) => {
    // a user outside the scope would be pulled into it: the whole call is refused
    await assertInScope(c, { users: c.req.valid('json').user_ids })
    return c.json(await addMembersAsAdmin(c.env, c.req.valid('param').group_id, c.req.valid('json').user_ids, auditActor(c)), 200)
  },
)

adminGroupRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{group_id}/members/remove',
    tags: [TAG],
    summary: 'Remove users from a group',
    description: `Removes up to ${MEMBERSHIP_MAX_USERS} users at once; ids that are not direct members are listed in \`not_members\`.`,
    security: bearerSecurity,
    ...needs('groups.manage', { group: 'group_id' }),
    request: { params: GroupParam, body: jsonBody(UserIds) },
    responses: { 200: ok('Removed', z.object({ removed: z.array(z.string()), not_members: z.array(z.string()) })), ...mergeErrors(admin, errorResponses(DirectoryErrors, 'group_not_found')) },
  }),
  async (c) => {
    await assertInScope(c, { users: c.req.valid('json').user_ids })
    return c.json(await removeMembersAsAdmin(c.env, c.req.valid('param').group_id, c.req.valid('json').user_ids, auditActor(c)), 200)
  },
)

// ---------------------------------------------------------------------------------------
// A user's groups

adminUserGroupRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{id}/groups',
    tags: [TAG],
    summary: "A user's groups",
    description: 'The groups the user is directly in, each with its path (the `groups` claim form too: `department/Sales/East`). A sub-admin sees those of their scope.',
    security: bearerSecurity,
    ...needs('users.read', { user: 'id' }),
    request: { params: Id('id', '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f') },
    responses: {
      200: ok(
        "The user's groups",
        z.object({
          user_id: z.string(),
          groups: z.array(z.object({ group_id: z.string(), type_id: z.string(), name: z.string(), path: z.array(z.string()), claim: z.string().openapi({ example: 'department/Sales/East' }) })),
        }),
      ),
      ...mergeErrors(admin, errorResponses(UserErrors, 'user_not_found')),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param')
    if (!(await findUserById(c.env, id))) throw UserErrors.user_not_found()
    const paths = await userMembershipPaths(c.env, id)
    const visible = await visibleAmong(c, 'groups', paths.direct().map((g) => g.id))
    const groups = paths
      .direct()
      .filter((g) => visible.has(g.id))
      .map((g) => ({ group_id: g.id, type_id: g.typeId, name: g.name, path: paths.names(g.id), claim: paths.claimPath(g.id) }))
      .sort((a, b) => a.claim.localeCompare(b.claim))
    return c.json({ user_id: id, groups }, 200)
  },
)
