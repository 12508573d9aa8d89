import { createRoute, z } from '@hono/zod-openapi'
import { pick, bearerSecurity, jsonBody } from '../lib/openapi'
import { router } from '../context'
import { MobileField } from '../lib/mobile'
import { typedText } from '../lib/text'
import { UserErrors } from './errors'
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../lib/password'
import { auditActor } from '../audit/service'
import { findUserById, listUsers } from './service'
import { createUserAsAdmin, setPasswordAsAdmin, updateUserAsAdmin } from './admin'
import { UserProfile, publicUser } from './view'
import { afterResponse } from '../webhooks/outbox'
import { needs } from '../delegation/rights'
import { assertInScope, assertNotAdminTargets, requestReach, within } from '../delegation/scope'
import { DelegationErrors } from '../delegation/errors'
import { errorResponses } from '../lib/errors'
import { mergeErrors } from '../lib/openapi'
import { DirectoryErrors } from '../directory/errors'
import { findGroup } from '../directory/service'

/** Admin: accounts. Mounted at /api/v1/admin/users. */
export const adminUserRoutes = router()

const userResponse = (description: string) => ({ description, content: { 'application/json': { schema: UserProfile } } })
const Password = z.string().min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH).openapi({ example: 'a long passphrase' })
const Name = typedText({ max: 100 }).openapi({ example: 'Li Lei' })
const Email = typedText({ max: 254 }).email().openapi({ example: 'lilei@example.com' })
const UserId = z.object({ id: z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' }, example: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f' }) })

adminUserRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: ['Admin: users'],
    summary: 'Create a user',
    description:
      'Creates an account. The mobile number is normalised to E.164 and must be unique. `group_id` puts the user in that directory group in the same write. A sub-admin must give a `group_id` inside their scope (the account would otherwise be outside it at once) and cannot create admins (403 `admin_only`).',
    security: bearerSecurity,
    ...needs('users.write'),
    request: {
      body: jsonBody(
        z.object({
          mobile: MobileField,
          password: Password,
          name: Name.optional(),
          email: Email.optional(),
          role: z.enum(['USER', 'ADMIN']).default('USER'),
          group_id: z.string().min(1).max(64).optional().openapi({ description: 'A directory group the user joins at once' }),
        }),
      ),
    },
    responses: {
      201: userResponse('Created'),
      ...mergeErrors(pick(400, 401, 403, 404, 409), errorResponses(DelegationErrors, 'admin_only', 'out_of_scope'), errorResponses(DirectoryErrors, 'group_not_found')),
    },
  }),
  async (c) => {
    const { group_id, ...input } = c.req.valid('json')
    if (requestReach(c)) {
      if (input.role === 'ADMIN') throw DelegationErrors.admin_only({ message: 'Only a full admin may create an admin' })
      if (!group_id) throw DelegationErrors.out_of_scope({ message: 'A sub-admin creates users into a group of their scope: give group_id' })
      await assertInScope(c, { groups: [group_id] })
    }
    if (group_id && !(await findGroup(c.env, group_id))) throw DirectoryErrors.group_not_found()
    const row = await createUserAsAdmin(c.env, { ...input, groupId: group_id }, auditActor(c))
    return c.json(publicUser(row), 201)
  },
)

adminUserRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: ['Admin: users'],
    summary: 'List users',
    description: 'Newest first, paginated. `q` matches part of the mobile number or the name. A sub-admin sees the users of their scope only.',
    security: bearerSecurity,
    ...needs('users.read'),
    request: {
      query: z.object({
        page: z.coerce.number().int().min(1).default(1).openapi({ example: 1 }),
        page_size: z.coerce.number().int().min(1).max(100).default(20).openapi({ example: 20 }),
        q: z.string().max(100).optional().openapi({ example: '138' }),
        status: z.enum(['ACTIVE', 'DISABLED']).optional(),
      }),
    },
    responses: {
      200: {
        description: 'A page of users',
        content: { 'application/json': { schema: z.object({ items: z.array(UserProfile), page: z.number(), page_size: z.number(), total: z.number() }) } },
      },
      ...pick(400, 401, 403),
    },
  }),
  async (c) => {
    const q = c.req.valid('query')
    return c.json(await listUsers(c.env, { page: q.page, pageSize: q.page_size, search: q.q, status: q.status, within: within(c, 'users') }), 200)
  },
)

adminUserRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{id}',
    tags: ['Admin: users'],
    summary: 'Get a user',
    description: 'One user by id.',
    security: bearerSecurity,
    ...needs('users.read', { user: 'id' }),
    request: { params: UserId },
    responses: { 200: userResponse('The user'), ...pick(400, 401, 403, 404) },
  }),
  async (c) => {
    const user = await findUserById(c.env, c.req.valid('param').id)
    if (!user) throw UserErrors.user_not_found()
    return c.json(publicUser(user), 200)
  },
)

adminUserRoutes.openapi(
  createRoute({
    method: 'patch',
    path: '/{id}',
    tags: ['Admin: users'],
    summary: 'Update a user',
    description:
      "Changes name, email, mobile or status. Setting status DISABLED ends every session of the user and revokes their refresh tokens at once. A change of status, name or mobile is an event to every app the user is mapped in (user.disabled, user.enabled, user.updated: changes feed and webhooks, docs/webhooks.md), written with the change. 409 mobile_taken when another user has the mobile. (Changing the bootstrap admin's mobile makes the next start create an account for BOOTSTRAP_ADMIN_MOBILE again.)",
    security: bearerSecurity,
    ...needs('users.write', { user: 'id' }),
    request: {
      params: UserId,
      body: jsonBody(
        z
          .object({
            name: Name.nullable().optional(),
            email: Email.nullable().optional(),
            mobile: MobileField.optional(),
            status: z.enum(['ACTIVE', 'DISABLED']).optional(),
          })
          .refine((v) => Object.keys(v).length > 0, 'give at least one of name, email, mobile, status'),
      ),
    },
    responses: { 200: userResponse('Updated'), ...mergeErrors(pick(400, 401, 403, 404, 409), errorResponses(DelegationErrors, 'target_is_admin')) },
  }),
  async (c) => {
    await assertNotAdminTargets(c, [c.req.valid('param').id])
    const updated = await updateUserAsAdmin(c.env, c.req.valid('param').id, c.req.valid('json'), auditActor(c), afterResponse(c))
    return c.json(publicUser(updated), 200)
  },
)

adminUserRoutes.openapi(
  createRoute({
    method: 'put',
    path: '/{id}/password',
    tags: ['Admin: users'],
    summary: "Set a user's password",
    description: 'Replaces the password and ends every session of the user.',
    security: bearerSecurity,
    ...needs('users.write', { user: 'id' }),
    request: { params: UserId, body: jsonBody(z.object({ password: Password })) },
    responses: {
      200: { description: 'Password set', content: { 'application/json': { schema: z.object({ ok: z.literal(true) }) } } },
      ...mergeErrors(pick(400, 401, 403, 404), errorResponses(DelegationErrors, 'target_is_admin')),
    },
  }),
  async (c) => {
    await assertNotAdminTargets(c, [c.req.valid('param').id])
    await setPasswordAsAdmin(c.env, c.req.valid('param').id, c.req.valid('json').password, auditActor(c))
    return c.json({ ok: true as const }, 200)
  },
)
