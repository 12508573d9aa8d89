import { createRoute, z } from '@hono/zod-openapi'
import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { router } from '../context'
import { OPEN, jsonBody, mergeErrors, pick } from '../lib/openapi'
import { errorResponses } from '../lib/errors'
import { MobileField, type E164 } from '../lib/mobile'
import { APP_TOKEN_HEADER, requireAppOrAdmin, targetApp } from '../apps/access'
import { AppErrors } from '../apps/errors'
import { requireSignedApp } from '../signing/verify'
import { SIGNATURE_HEADERS } from '../signing/canonical'
import { signedErrors } from '../signing/routes'
import { PermissionErrors } from './errors'
import { ACCESS_PERMISSION } from './schema'
import { checkFrom, etagMatches, readUserPermissions, snapshotEtag, snapshotFrom, type UserRef } from './service'
import { MappedKey } from '../mappings/view'
import { AppIdParam, CheckView, PermissionKey, ScopeSchema, SnapshotView, ok } from './view'

/**
 * Permissions for apps (docs/permissions.md): a user's snapshot (with an ETag, for a local
 * cache) and a single check. Mounted at /api/v1/apps.
 */
export const partnerPermissionRoutes = router()

/**
 * The calling app, by any of its credentials: an HMAC signature (docs/signing.md) when the
 * request carries signature headers, else its access token or an admin bearer token.
 */
const requireAppCaller: MiddlewareHandler<AppEnv> = (c, next) =>
  c.req.header(SIGNATURE_HEADERS.signature) !== undefined || c.req.header(SIGNATURE_HEADERS.appId) !== undefined ? requireSignedApp(c, next) : requireAppOrAdmin(c, next)

const security: Record<string, string[]>[] = [{ appAccessToken: [] }, { appSignature: [] }, { bearerAuth: [] }]
const TAG = 'Open: permissions'
const callerErrors = mergeErrors(
  signedErrors,
  errorResponses(AppErrors, 'app_token_missing', 'app_token_invalid', 'app_disabled', 'app_mismatch', 'target_app_not_found'),
  pick(400, 429),
)

const UserRefQuery = z
  .object({
    mobile: MobileField.optional(),
    mapped_key: MappedKey.optional(),
  })
  .refine((v) => (v.mobile === undefined) !== (v.mapped_key === undefined), { message: 'give exactly one of mobile and mapped_key', path: ['mobile'] })

function userRef(v: { mobile?: E164; mapped_key?: string }): UserRef {
  return v.mobile !== undefined ? { mobile: v.mobile } : { mappedKey: v.mapped_key! }
}

partnerPermissionRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/permissions/snapshot',
    tags: [TAG],
    summary: "A user's permissions in your app (cacheable)",
    description: `Everything the user (by \`mobile\` or \`mapped_key\`; any user with a mapping in your app, active or not) has in your app: every permission with its answer and source, the scoped answers, and \`admitted\` (may the user sign in now). Cache it: the response carries a strong \`ETag\`, a hash of the body; send it back as \`If-None-Match\` and get **304** with no body while nothing that alters the answer changed. A grant, a revoke, a membership, a group moved, renamed or deleted, or a permission deleted changes the ETag at once (there is no stale window to wait out). Poll every few minutes, as memberapi's "local cache plus periodic refresh".

Authenticate with \`${APP_TOKEN_HEADER}\`, a request signature (docs/signing.md) or an admin bearer token.`,
    ...OPEN,
    security,
    middleware: [requireAppCaller] as const,
    request: {
      params: AppIdParam,
      query: UserRefQuery,
      headers: z.object({ 'if-none-match': z.string().max(1000).optional().openapi({ example: '"3f9a1c2d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b"' }) }),
    },
    responses: {
      200: { ...ok('The snapshot; ETag in the header', SnapshotView), headers: { ETag: { schema: { type: 'string' }, description: 'Strong validator of this body' } } },
      304: { description: 'Not modified: the If-None-Match tag is still current' },
      ...mergeErrors(callerErrors, errorResponses(PermissionErrors, 'user_not_found')),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const read = await readUserPermissions(c.env, app.appId, userRef(c.req.valid('query')))
    if (!read?.user || !read.mapping) throw PermissionErrors.user_not_found()
    const snapshot = snapshotFrom(read)
    const etag = await snapshotEtag(snapshot)
    c.header('ETag', etag)
    c.header('Cache-Control', 'private, no-cache')
    if (etagMatches(c.req.valid('header')['if-none-match'], etag)) return c.body(null, 304)
    return c.json(snapshot, 200)
  },
)

partnerPermissionRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/permissions/check',
    tags: [TAG],
    summary: 'Check one permission of a user',
    description: `Does the user (by \`mobile\` or \`mapped_key\`) have \`permission\` in your app, at \`scope\` when given? Answers \`allowed\` and the \`source\` that decided: \`direct\` (the user's own grant), \`via group Sales ▸ East\` (the nearest group on the user's membership paths) or \`not granted\`. The rule is in docs/permissions.md. One storage round trip whatever the depth of the user's groups. An unknown permission key is simply not granted.

Authenticate with \`${APP_TOKEN_HEADER}\`, a request signature (docs/signing.md) or an admin bearer token.`,
    ...OPEN,
    security,
    middleware: [requireAppCaller] as const,
    request: {
      params: AppIdParam,
      body: jsonBody(
        z
          .object({
            user: z
              .object({ mobile: MobileField.optional(), mapped_key: MappedKey.optional() })
              .refine((v) => (v.mobile === undefined) !== (v.mapped_key === undefined), 'give exactly one of mobile and mapped_key'),
            permission: PermissionKey,
            scope: ScopeSchema.nullable().optional(),
          })
          .openapi('PermissionCheckRequest'),
      ),
    },
    responses: { 200: ok('The answer', CheckView), ...mergeErrors(callerErrors, errorResponses(PermissionErrors, 'user_not_found', 'access_not_scoped')) },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const b = c.req.valid('json')
    if (b.permission === ACCESS_PERMISSION && b.scope) throw PermissionErrors.access_not_scoped()
    const read = await readUserPermissions(c.env, app.appId, userRef(b.user), { key: b.permission, withPermissions: false })
    if (!read?.user || !read.mapping) throw PermissionErrors.user_not_found()
    c.header('Cache-Control', 'no-store')
    return c.json({ user_id: read.user.id, mapped_key: read.mapping.mappedKey, ...checkFrom(read, b.permission, b.scope ?? null) }, 200)
  },
)
