import { createRoute, z } from '@hono/zod-openapi'
import { and, desc, eq, lt } from 'drizzle-orm'
import { pick, bearerSecurity } from '../lib/openapi'
import { router } from '../context'
import { getDb } from '../db'
import { auditLogs } from '../audit/schema'
import { auditFrom, auditStatement } from '../audit/service'
import { rotateKeys } from '../keys/service'

/** Admin: audit log reading and signing-key rotation. */
export const adminSystemRoutes = router()

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

adminSystemRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/api/v1/admin/audit',
    tags: ['Admin: audit'],
    summary: 'Read the audit log',
    description: 'Newest first. Page backwards with `before` (the smallest id of the previous page). Filter by `action` or `target_id`.',
    security: bearerSecurity,
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
  async (c) => {
    const q = c.req.valid('query')
    const conds = []
    if (q.before) conds.push(lt(auditLogs.id, q.before))
    if (q.action) conds.push(eq(auditLogs.action, q.action))
    if (q.target_id) conds.push(eq(auditLogs.targetId, q.target_id))
    const rows = await getDb(c.env.DB).select().from(auditLogs).where(conds.length ? and(...conds) : undefined).orderBy(desc(auditLogs.id)).limit(q.limit)
    return c.json(
      {
        items: rows.map((r) => ({
          id: r.id,
          at: new Date(r.at).toISOString(),
          actor_type: r.actorType,
          actor_id: r.actorId,
          action: r.action,
          target_type: r.targetType,
          target_id: r.targetId,
          request_id: r.requestId,
          ip: r.ip,
          details: r.details,
        })),
        next_before: rows.length === q.limit ? rows[rows.length - 1].id : null,
      },
      200,
    )
  },
)

adminSystemRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/api/v1/admin/keys/rotate',
    tags: ['Admin: keys'],
    summary: 'Start a signing-key rotation now',
    description: 'Publishes a new signing key in the JWKS at once; it starts signing after the publish-ahead delay (twice the JWKS cache lifetime). The cron trigger does this every 30 days by itself.',
    security: bearerSecurity,
    responses: { 200: { description: 'Rotation scheduled', content: { 'application/json': { schema: z.object({ created: z.array(z.object({ kid: z.string(), activate_at: z.string() })) }) } } }, ...pick(401, 403) },
  }),
  async (c) => {
    const db = getDb(c.env.DB)
    // the audit row goes in the rotation's own batch: both land or neither
    const result = await rotateKeys(c.env, { force: true, with: (created) => auditStatement(db, auditFrom(c, { action: 'admin.keys.rotate', targetType: 'signing_key', targetId: created[0]?.kid ?? null })) })
    return c.json({ created: result.created.map((k) => ({ kid: k.kid, activate_at: new Date(k.activateAt).toISOString() })) }, 200)
  },
)
