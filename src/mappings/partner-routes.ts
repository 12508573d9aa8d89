import { createRoute, z } from '@hono/zod-openapi'
import { sql } from 'drizzle-orm'
import { OPEN, pick, jsonBody } from '../lib/openapi'
import { router } from '../context'
import { MobileField } from '../lib/mobile'
import { MappingErrors } from './errors'
import { accessGrantsSql, accessHolds } from '../permissions/admission'
import { APP_TOKEN_HEADER, requireAppOrAdmin, targetApp } from '../apps/access'
import { auditActor, auditFrom } from '../audit/service'
import { SYNC_MAX_ITEMS, listChanges, publicMapping, queryUserMapping, recordAppSync, syncMappings, type SyncItemResult } from './service'
import { AppIdParam, MappedKey, MappingName, MappingView, ok } from './view'
import { afterResponse, deliverAfterCommit } from '../webhooks/outbox'
import { MAPPING_EVENT_KINDS } from './schema'
import { BOOKMARK_RE, replicaRead } from '../db'

/** Mapping API for apps: X-App-Access-Token, or an admin bearer token (docs/mappings.md). Mounted at /api/v1/apps. */
export const partnerMappingRoutes = router()

partnerMappingRoutes.openAPIRegistry.registerComponent('securitySchemes', 'appAccessToken', {
  type: 'apiKey',
  in: 'header',
  name: APP_TOKEN_HEADER,
  description: 'The app access token issued at app creation (or rotation). An app reaches only its own mappings. Admins may send their bearer token instead.',
})

const appOrAdmin: Record<string, string[]>[] = [{ appAccessToken: [] }, { bearerAuth: [] }]
const OPEN_TAG = 'Open: mappings'

const BOOKMARK_HEADER = 'X-UAP-Bookmark'
/** Reads served by a nearby D1 replica: the answer carries a bookmark; sending it back reads a copy at least that fresh. */
const ReplicaHeaders = z.object({
  [BOOKMARK_HEADER.toLowerCase()]: z
    .string()
    .regex(BOOKMARK_RE, `must be the ${BOOKMARK_HEADER} of an earlier answer`)
    .optional()
    .openapi({
      description: `Optional: the ${BOOKMARK_HEADER} of an earlier answer. This read may come from a D1 read replica near you; with a bookmark it is at least as fresh as that answer.`,
    }),
})
const withBookmark = <T extends object>(response: T) => ({
  ...response,
  headers: { [BOOKMARK_HEADER]: { description: 'D1 bookmark of this read; send it back to read at least this fresh', schema: { type: 'string' as const } } },
})
function replicaFor(c: { env: { DB: D1Database }; req: { header(name: string): string | undefined } }) {
  return replicaRead(c.env.DB, c.req.header(BOOKMARK_HEADER) || undefined)
}

const SyncItemSchema = z
  .object({
    mobile: z.string().min(1).max(32).openapi({ example: '+8613800138000', description: 'E.164 or an 11-digit mainland number; an unparseable number is a per-item `invalid_mobile`' }),
    mapped_key: MappedKey.optional().openapi({ description: 'Required for ADD and UPDATE; for DISABLE, when given it must match the current mapping' }),
    name: MappingName.optional(),
    action: z.enum(['ADD', 'UPDATE', 'DISABLE']),
  })
  .superRefine((v, ctx) => {
    if (v.action !== 'DISABLE' && v.mapped_key === undefined) ctx.addIssue({ code: 'custom', path: ['mapped_key'], message: `is required for ${v.action}` })
  })
  .openapi('MappingSyncItem')

const SyncResult = z
  .object({
    index: z.number().int().openapi({ example: 0 }),
    mobile: z.string().openapi({ example: '+8613800138000' }),
    action: z.enum(['ADD', 'UPDATE', 'DISABLE']),
    status: z.enum(['ok', 'error']),
    code: z.string().openapi({
      example: 'created',
      description:
        'ok: created, reactivated, updated, disabled, unchanged. error: invalid_mobile, user_not_found, mapping_exists, mapped_key_taken, mapping_not_found, mapped_key_mismatch, concurrent_modification',
    }),
    message: z.string().openapi({ example: 'Mapping created' }),
    mapping_id: z.string().optional(),
    event_id: z.string().optional().openapi({ example: '9a1f7c4e-2b3d-4e5f-8a6b-7c8d9e0f1a2b', description: 'The outbox event this item wrote (absent when nothing changed): the `id` of the webhook and of the changes-feed entry it causes' }),
  })
  .openapi('MappingSyncResult')

partnerMappingRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/mapping/sync',
    tags: [OPEN_TAG],
    summary: 'Sync user mappings (add, update, disable)',
    description: `Applies up to ${SYNC_MAX_ITEMS} items in order and answers 200 with one result per item (\`results[i].index = i\`). Each item is all-or-nothing: the mapping change and its outbox event are written together or not at all; a failing item never affects the others.

- **ADD** maps the user (by mobile) to \`mapped_key\`. A DISABLED mapping is enabled again (\`reactivated\`). Re-sending an active mapping is \`unchanged\` (idempotent); an active mapping to another key is \`mapping_exists\` (use UPDATE).
- **UPDATE** changes \`mapped_key\` and/or \`name\` of an existing mapping (active or not).
- **DISABLE** deactivates the mapping.
- Unknown mobile numbers are rejected per item (\`user_not_found\`): sync never creates UAP users.
- \`mapped_key\` is unique per app: a key held by another user is \`mapped_key_taken\`.

Authenticate with \`${APP_TOKEN_HEADER}\` (your app) or an admin bearer token with \`app_id\` in the body.`,
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: {
      body: jsonBody(
        z.object({
          app_id: z.string().min(1).max(64).optional().openapi({ example: 'app_3f9a1c2d4e5f6a7b', description: 'Optional with an app token (must be your own app); required with an admin token' }),
          items: z.array(SyncItemSchema).min(1).max(SYNC_MAX_ITEMS),
        }),
      ),
    },
    responses: {
      200: ok(
        'Per-item results',
        z.object({ app_id: z.string(), summary: z.object({ total: z.number(), ok: z.number(), error: z.number() }), results: z.array(SyncResult) }).openapi('MappingSyncResponse'),
      ),
      ...pick(400, 401, 403, 404, 429),
    },
  }),
  async (c) => {
    const body = c.req.valid('json')
    const app = await targetApp(c, body.app_id)
    const viaAdmin = !c.get('app')
    const results = await syncMappings(c.env, app.appId, body.items, {
      // admin writes are audited per change, in the same batch as the change
      audit: viaAdmin
        ? (r: SyncItemResult, userId: string) => auditFrom(c, { action: `admin.mapping.sync`, targetType: 'mapping', targetId: r.mapping_id, details: { app_id: app.appId, user_id: userId, action: r.action, code: r.code } })
        : undefined,
    })
    await deliverAfterCommit(c.env, results.flatMap((r) => (r.event_id ? [r.event_id] : [])), afterResponse(c))
    const okCount = results.filter((r) => r.status === 'ok').length
    if (!viaAdmin) await recordAppSync(c.env, { ...auditActor(c), actorType: 'app', actorId: app.appId }, app.appId, { total: results.length, ok: okCount, error: results.length - okCount })
    return c.json({ app_id: app.appId, summary: { total: results.length, ok: okCount, error: results.length - okCount }, results }, 200)
  },
)

partnerMappingRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/users/query',
    tags: [OPEN_TAG],
    summary: "Look up a user and the user's mapping in your app",
    description:
      "For legacy sign-in flows: given a mobile number of a user **mapped in this app** (active or disabled mapping), returns the UAP user (mobile, name, status) and that mapping. Under the app's `permission` access policy the user also needs the app's `access` permission (docs/permissions.md). Any other number, registered with UAP Edge or not, gets the same 404 `user_not_found`: an app learns nothing about users it does not hold. An app token may only query its own app (403 `app_mismatch`).",
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: { params: AppIdParam, query: z.object({ mobile: MobileField }), headers: ReplicaHeaders },
    responses: {
      200: withBookmark(ok(
        'The user and their mapping',
        z
          .object({
            user: z.object({ user_id: z.string(), mobile: z.string().openapi({ example: '+8613800138000' }), name: z.string().nullable().openapi({ example: 'Li Lei' }), status: z.enum(['ACTIVE', 'DISABLED']) }),
            mapping: MappingView,
          })
          .openapi('UserQueryResult'),
      )),
      ...pick(400, 401, 403, 404, 429),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    // one query whatever the outcome; unknown, unmapped and not admitted by the app's access
    // policy (docs/permissions.md) read the same (no enumeration)
    const replica = replicaFor(c)
    const row = await queryUserMapping(replica.db, app.appId, c.req.valid('query').mobile, (userId) => accessGrantsSql(sql`${app.accessPolicy}`, sql`${app.appId}`, userId))
    c.header(BOOKMARK_HEADER, replica.bookmark() ?? '')
    if (!row?.mapping || !accessHolds(app.accessPolicy, row.access)) throw MappingErrors.user_not_found({ message: 'No user with this mobile number is mapped in this app' })
    const { user, mapping } = row
    return c.json(
      {
        user: { user_id: user.id, mobile: user.mobile, name: user.name, status: user.status },
        mapping: publicMapping({ ...mapping, mobile: user.mobile, userName: user.name, userStatus: user.status }),
      },
      200,
    )
  },
)

const ChangeView = z
  .object({
    seq: z.number().int().openapi({ example: 1042 }),
    event_id: z.string().openapi({ example: '9a1f7c4e-2b3d-4e5f-8a6b-7c8d9e0f1a2b', description: 'Unique per change; the same id the webhook carries (dedupe on it)' }),
    type: z.enum(MAPPING_EVENT_KINDS).openapi({ example: 'mapping.added', description: 'What happened: a change of the mapping, or of the mapped user (user.* events, one per app the user is mapped in)' }),
    event_type: z.enum(['ADD', 'UPDATE', 'DISABLE', 'DELETE']).openapi({ description: 'The action for your copy of the account (source design): user.disabled is DISABLE, user.enabled is ADD where the mapping is active (UPDATE where it is not), user.updated is UPDATE' }),
    app_id: z.string(),
    mapping_id: z.string(),
    user_id: z.string(),
    mobile: z.string().nullable().openapi({ example: '+8613800138000' }),
    name: z.string().nullable().openapi({ example: 'Li Lei' }),
    mapped_key: z.string().openapi({ example: 'lilei@hr.example.com' }),
    status: z.enum(['ACTIVE', 'DISABLED']).openapi({ description: 'mapping status after the change (DELETE: the last status)' }),
    user_status: z.enum(['ACTIVE', 'DISABLED']).nullable(),
    created_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
  })
  .openapi('MappingChange')

partnerMappingRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/users/changes',
    tags: [OPEN_TAG],
    summary: "Poll changes to your app's mappings",
    description:
      'Every change (ADD, UPDATE, DISABLE, DELETE) to the app\'s mappings, and every change to a mapped user (disabled, enabled, name or mobile changed), oldest first: the same events, with the same `event_id` and `seq`, as the webhooks to your notification_url (docs/webhooks.md). Start without `since` (from the beginning), then pass the `next_cursor` of each page as `since`; keep polling with the last `next_cursor` when `has_more` is false. The cursor is a sequence number, not a time: no change is skipped or repeated, even when many share a millisecond.',
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: {
      params: AppIdParam,
      query: z.object({
        since: z
          .string()
          .regex(/^\d{1,15}$/, 'must be a cursor (the next_cursor of a previous page), not a timestamp')
          .optional()
          .openapi({ example: '1041' }),
        limit: z.coerce.number().int().min(1).max(500).default(100).openapi({ example: 100 }),
      }),
      headers: ReplicaHeaders,
    },
    responses: {
      200: withBookmark(ok('A page of changes', z.object({ items: z.array(ChangeView), next_cursor: z.string().openapi({ example: '1141' }), has_more: z.boolean() }).openapi('MappingChanges'))),
      ...pick(400, 401, 403, 404, 429),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const q = c.req.valid('query')
    // A lagging replica answers a shorter page, never a wrong one: seqs become visible in order,
    // and an empty page hands back the same cursor.
    const replica = replicaFor(c)
    const page = await listChanges(replica.db, app.appId, q.since ? Number(q.since) : 0, q.limit)
    c.header(BOOKMARK_HEADER, replica.bookmark() ?? '')
    return c.json(page, 200)
  },
)

