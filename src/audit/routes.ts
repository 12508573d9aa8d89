import { createRoute, z } from '@hono/zod-openapi'
import { pick, bearerSecurity } from '../lib/openapi'
import { router } from '../context'
import { listAudit } from './service'
import { ACTOR_TYPES } from './schema'
import { needs } from '../delegation/rights'
import { requestReach } from '../delegation/scope'

/** Admin: reading the audit log. Mounted at /api/v1/admin/audit. */
export const auditRoutes = router()

const AuditRow = z
  .object({
    id: z.number(),
    at: z.string(),
    actor_type: z.string(),
    actor_id: z.string().nullable(),
    action: z.string().openapi({ example: 'admin.user.create' }),
    target_type: z.string().nullable(),
    target_id: z.string().nullable(),
    request_id: z.string().nullable(),
    ip: z.string().nullable(),
    details: z.unknown(),
    authority: z.unknown().openapi({
      description: 'On admin API rows: the right the route needed and where the actor holds it, `{"right":"users.write","via":[{"type":"admin_group","id":"…"}]}` or `{"right":…,"via":"role:ADMIN"}`; null elsewhere',
    }),
  })
  .openapi('AuditLog')

const Time = z.string().datetime({ offset: true }).openapi({ example: '2026-12-01T00:00:00Z' })

auditRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: ['Admin: audit'],
    summary: 'Read the audit log',
    description:
      'Newest first. Page backwards with `before` (the smallest id of the previous page). Filter by `actor_type` and `actor_id` (a user id or an API client id), `action`, `target_type` and `target_id`, and a time range `from` … `to` (inclusive, ISO 8601). A sub-admin (or API client) reads the rows whose target is a user, group or application inside the scope of their `audit.read` grants.',
    security: bearerSecurity,
    ...needs('audit.read'),
    request: {
      query: z
        .object({
          limit: z.coerce.number().int().min(1).max(200).default(50),
          before: z.coerce.number().int().positive().optional(),
          action: z.string().max(100).optional().openapi({ example: 'login.failed' }),
          actor_type: z.enum(ACTOR_TYPES).optional(),
          actor_id: z.string().max(100).optional(),
          target_type: z.string().max(50).optional().openapi({ example: 'user' }),
          target_id: z.string().max(100).optional(),
          from: Time.optional(),
          to: Time.optional(),
        })
        .refine((q) => !q.from || !q.to || Date.parse(q.from) <= Date.parse(q.to), { message: 'from must not be after to', path: ['from'] }),
    },
    responses: { 200: { description: 'Audit entries', content: { 'application/json': { schema: z.object({ items: z.array(AuditRow), next_before: z.number().nullable() }) } } }, ...pick(400, 401, 403) },
  }),
  async (c) => {
    const { from, to, ...q } = c.req.valid('query')
    const reach = requestReach(c)
    return c.json(await listAudit(c.env, { ...q, from: from ? Date.parse(from) : undefined, to: to ? Date.parse(to) : undefined }, reach ?? undefined), 200)
  },
)
