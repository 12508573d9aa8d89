import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { bearerSecurity, mergeErrors, pick } from '../lib/openapi'
import { errorResponses } from '../lib/errors'
import { requireUser } from '../auth/guards'
import { PermissionErrors } from './errors'
import { readUserPermissions, snapshotFrom } from './service'
import { SnapshotView, ok } from './view'

/** The signed-in user's own permissions (docs/permissions.md). Mounted at /api/v1/auth. */
export const mePermissionRoutes = router()

mePermissionRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/me/permissions',
    tags: ['Auth'],
    summary: 'My permissions in an app',
    description: 'What the signed-in user has in the app `app_id`: every permission with its answer and where it comes from, and whether the user may sign in to the app now (`admitted`).',
    security: bearerSecurity,
    middleware: [requireUser] as const,
    request: { query: z.object({ app_id: z.string().min(1).max(64).openapi({ example: 'app_3f9a1c2d4e5f6a7b' }) }) },
    responses: { 200: ok('My snapshot', SnapshotView), ...mergeErrors(pick(400, 401), errorResponses(PermissionErrors, 'app_not_found')) },
  }),
  async (c) => {
    const read = await readUserPermissions(c.env, c.req.valid('query').app_id, { userId: c.get('auth')!.userId })
    if (!read) throw PermissionErrors.app_not_found()
    c.header('Cache-Control', 'no-store')
    return c.json(snapshotFrom(read), 200)
  },
)
