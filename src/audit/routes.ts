import { createRoute, z } from '@hono/zod-openapi'
import { pick, bearerSecurity } from '../lib/openapi'
import { router } from '../context'
import { listAudit } from './service'
import { needs } from '../delegation/rights'

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
  })
  .openapi('AuditLog')

auditRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: ['Admin: audit'],
    summary: 'Read the audit log',
    description: 'Newest first. Page backwards with `before` (the smallest id of the previous page). Filter by `action` or `target_id`.',
    security: bearerSecurity,
    ...needs('audit.read'),
    request: {
      query: z.object({
        limit: z.coerce.number().int().min(1).max(200).default(50),
        before: z.coerce.number().int().positive().optional(),
        action: z.string().max(100).optional().openapi({ example: 'login.failed' }),
        target_id: z.string().max(100).optional(),
      }),
    },
    responses: { 200: { description: 'Audit entries', content: { 'application/json': { schema: z.object({ items: z.array(AuditRow), next_before: z.number().nullable() }) } } }, ...pick(400, 401, 403) },
  }),
  async (c) => c.json(await listAudit(c.env, c.req.valid('query')), 200),
)
