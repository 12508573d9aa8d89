import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { ErrorBody } from '../lib/errors'

/** Probes. Mounted at the root. */
export const healthRoutes = router()

const Health = z.object({ status: z.enum(['ok', 'degraded']), d1: z.enum(['ok', 'unreachable']), time: z.string() }).openapi('Health')

healthRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/healthz',
    tags: ['Ops'],
    summary: 'Liveness and D1 reachability',
    description: 'Runs `SELECT 1` against D1. 200 when it answers, 503 when it does not.',
    responses: {
      200: { description: 'Healthy', content: { 'application/json': { schema: Health } } },
      503: { description: 'D1 unreachable (the Health body), or the Worker misconfigured (`misconfigured`, the error body)', content: { 'application/json': { schema: z.union([Health, ErrorBody]) } } },
    },
  }),
  async (c) => {
    let d1: 'ok' | 'unreachable' = 'ok'
    try {
      await c.env.DB.prepare('SELECT 1').first()
    } catch {
      d1 = 'unreachable'
    }
    const body = { status: d1 === 'ok' ? ('ok' as const) : ('degraded' as const), d1, time: new Date().toISOString() }
    return c.json(body, d1 === 'ok' ? 200 : 503)
  },
)

healthRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/livez',
    tags: ['Ops'],
    summary: 'Liveness only',
    description:
      'Answers without touching any binding: the isolate is up and routing works. The benchmark uses it as the floor (the cost of the Worker and its middleware alone). Use `/healthz` to check D1.',
    responses: { 200: { description: 'Alive', content: { 'application/json': { schema: z.object({ status: z.literal('ok') }).openapi('Live', { example: { status: 'ok' } }) } } } },
  }),
  (c) => c.json({ status: 'ok' as const }, 200),
)
