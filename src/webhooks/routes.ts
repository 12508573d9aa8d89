import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi'
import { bearerSecurity, jsonBody, mergeErrors, OPEN, pick } from '../lib/openapi'
import { errorResponses } from '../lib/errors'
import { router } from '../context'
import { targetApp } from '../apps/access'
import { AppErrors } from '../apps/errors'
import { auditActor } from '../audit/service'
import { OUTBOX_EVENT_KINDS, OUTBOX_EVENT_TYPES } from '../mappings/schema'
import { WebhookErrors } from './errors'
import { WebhookPayloadSchema } from './payload'
import { DEFAULT_OVERLAP_S, MAX_OVERLAP_S } from './secrets'
import { DELIVERY_STATUSES, ATTEMPT_ORIGINS } from './schema'
import { RETRY_FAILED_MAX, getWebhookEvent, listWebhookEvents, retryFailedWebhookEvents, retryWebhookEvent, rotateWebhookSecretAsAdmin, sendTestWebhook, webhookSummary } from './service'
import { needs } from '../delegation/rights'

/** Admin: an app's webhook deliveries, retries, test events and secret (docs/webhooks.md). Mounted at /api/v1/admin/apps. */
export const adminWebhookRoutes = router()

const TAG = 'Admin: webhooks'
const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })

const AppIdParam = z.object({ app_id: z.string().min(1).max(64).openapi({ param: { name: 'app_id', in: 'path' }, example: 'app_3f9a1c2d4e5f6a7b' }) })
const EventParams = AppIdParam.extend({ event_id: z.string().min(1).max(64).openapi({ param: { name: 'event_id', in: 'path' }, example: '9a1f7c4e-2b3d-4e5f-8a6b-7c8d9e0f1a2b' }) })

const Attempt = z
  .object({
    attempt: z.number().int().openapi({ example: 1, description: '1, 2, 3 … per event, across automatic and manual retries' }),
    origin: z.enum(ATTEMPT_ORIGINS).openapi({ description: 'commit: scheduled right after the change; sweep: scheduled or re-sent by the cron sweep; retry: an admin retry' }),
    at: z.string().openapi({ example: '2026-11-23T10:00:01.000Z' }),
    duration_ms: z.number().int().openapi({ example: 84 }),
    http_status: z.number().int().nullable().openapi({ example: 500, description: "The receiver's status; null when no answer came (network error, timeout) or nothing was sent" }),
    error: z.string().nullable().openapi({ example: 'HTTP 500' }),
    response_body: z.string().nullable().openapi({ example: 'temporarily unavailable', description: 'The first 1 KiB of the answer' }),
  })
  .openapi('WebhookAttempt')

const EventStatus = z.enum([...DELIVERY_STATUSES, 'unscheduled']).openapi({
  description: 'pending: scheduled, not delivered yet (retrying); delivered: a 2xx came back; failed: retries exhausted or not sendable (see last_error); unscheduled: no delivery was ever scheduled (the app had no notification_url then, or the sweep has not reached it yet)',
})

const EventDelivery = z
  .object({
    event_id: z.string().openapi({ example: '9a1f7c4e-2b3d-4e5f-8a6b-7c8d9e0f1a2b' }),
    seq: z.number().int().openapi({ example: 1042 }),
    type: z.enum(OUTBOX_EVENT_KINDS),
    event_type: z.enum(OUTBOX_EVENT_TYPES),
    occurred_at: z.string(),
    status: EventStatus,
    attempt_count: z.number().int(),
    next_attempt_at: z.string().nullable().openapi({ description: 'pending: when the queue is due to try again' }),
    last_attempt_at: z.string().nullable(),
    last_status: z.number().int().nullable(),
    last_error: z.string().nullable(),
    delivered_at: z.string().nullable(),
    failed_at: z.string().nullable(),
    attempts: z.array(Attempt),
  })
  .openapi('WebhookEventDelivery')

const notFound = mergeErrors(pick(404), errorResponses(WebhookErrors, 'event_not_found'))

adminWebhookRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/webhooks',
    tags: [TAG],
    summary: "The app's webhook setup",
    description: 'Whether deliveries go out (and why not), the secret\'s dates (never the secret), and how many events are pending, delivered and failed.',
    security: bearerSecurity,
    ...needs('webhooks.manage', { app: 'app_id' }),
    request: { params: AppIdParam },
    responses: {
      200: ok(
        'Summary',
        z
          .object({
            app_id: z.string(),
            notification_url: z.string().nullable(),
            delivering: z.boolean(),
            problem: z.string().nullable().openapi({ example: 'no notification_url: events stay in the changes feed only' }),
            secret: z.object({ created_at: z.string().nullable(), rotated_at: z.string().nullable(), previous_expires_at: z.string().nullable() }).nullable(),
            counts: z.object({ pending: z.number().int(), delivered: z.number().int(), failed: z.number().int() }),
          })
          .openapi('WebhookSummary'),
      ),
      ...pick(400, 401, 403, 404),
    },
  }),
  async (c) => c.json(await webhookSummary(c.env, await targetApp(c, c.req.valid('param').app_id)), 200),
)

adminWebhookRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/webhooks/events',
    tags: [TAG],
    summary: "List an app's webhook events",
    description: 'Scheduled deliveries, newest first (by outbox sequence), each with every attempt. Filter by `status`.',
    security: bearerSecurity,
    ...needs('webhooks.manage', { app: 'app_id' }),
    request: {
      params: AppIdParam,
      query: z.object({
        status: z.enum(DELIVERY_STATUSES).optional(),
        page: z.coerce.number().int().min(1).default(1),
        page_size: z.coerce.number().int().min(1).max(100).default(20),
      }),
    },
    responses: { 200: ok('A page of events', z.object({ items: z.array(EventDelivery), page: z.number(), page_size: z.number(), total: z.number() })), ...pick(400, 401, 403, 404) },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const q = c.req.valid('query')
    return c.json(await listWebhookEvents(c.env, app.appId, { status: q.status, page: q.page, pageSize: q.page_size }), 200)
  },
)

adminWebhookRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/webhooks/events/{event_id}',
    tags: [TAG],
    summary: 'One webhook event',
    description: "Any event of the app's outbox (the changes feed's `event_id`), with its delivery, every attempt and the exact payload it is sent with.",
    security: bearerSecurity,
    ...needs('webhooks.manage', { app: 'app_id' }),
    request: { params: EventParams },
    responses: { 200: ok('The event', EventDelivery.extend({ payload: WebhookPayloadSchema }).openapi('WebhookEventDetail')), ...mergeErrors(pick(400, 401, 403), notFound) },
  }),
  async (c) => {
    const { app_id, event_id } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    return c.json(await getWebhookEvent(c.env, app.appId, event_id), 200)
  },
)

const conflicts = mergeErrors(pick(409), errorResponses(WebhookErrors, 'notification_url_missing'))
const forbidden = mergeErrors(pick(403), errorResponses(AppErrors, 'app_disabled'))
const urlNotAllowed = mergeErrors(pick(400), errorResponses(WebhookErrors, 'notification_url_not_allowed'))

adminWebhookRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/webhooks/events/{event_id}/retry',
    tags: [TAG],
    summary: 'Retry one event',
    description:
      'Sends a pending or failed event again, now, in a new message chain (a pending event\'s current chain stops at its next message; attempts keep counting). An event never scheduled (its app had no notification_url when it happened) is scheduled. 202: queued; follow it with GET …/events/{event_id}.',
    security: bearerSecurity,
    ...needs('webhooks.manage', { app: 'app_id' }),
    request: { params: EventParams },
    responses: {
      202: ok('Queued', z.object({ event_id: z.string(), status: z.literal('pending'), previous_status: EventStatus })),
      ...mergeErrors(urlNotAllowed, pick(401), forbidden, notFound, conflicts, errorResponses(WebhookErrors, 'already_delivered')),
    },
  }),
  async (c) => {
    const { app_id, event_id } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    return c.json(await retryWebhookEvent(c.env, app, event_id, auditActor(c)), 202)
  },
)

adminWebhookRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/webhooks/retry-failed',
    tags: [TAG],
    summary: 'Retry every failed event of the app',
    description: `Re-schedules failed events, oldest first, at most ${RETRY_FAILED_MAX} per call (\`remaining\` says how many are left: call again). 202: queued.`,
    security: bearerSecurity,
    ...needs('webhooks.manage', { app: 'app_id' }),
    request: { params: AppIdParam },
    responses: {
      202: ok('Queued', z.object({ retried: z.number().int(), remaining: z.number().int() })),
      ...mergeErrors(urlNotAllowed, pick(401), forbidden, pick(404), conflicts),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    return c.json(await retryFailedWebhookEvents(c.env, app, auditActor(c)), 202)
  },
)

adminWebhookRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/webhooks/test',
    tags: [TAG],
    summary: 'Send a test event',
    description:
      'POSTs a `webhook.test` event (event_type TEST, user_data null, seq 0) to the notification_url once, now, signed like every delivery, and answers what the receiver said. Not queued, not retried, not in the outbox. 200 whether or not the receiver accepted it: see `delivered`.',
    security: bearerSecurity,
    ...needs('webhooks.manage', { app: 'app_id' }),
    request: { params: AppIdParam },
    responses: {
      200: ok(
        'What the receiver answered',
        z
          .object({
            event_id: z.string(),
            delivered: z.boolean(),
            at: z.string(),
            duration_ms: z.number().int(),
            http_status: z.number().int().nullable(),
            error: z.string().nullable(),
            response_body: z.string().nullable(),
            payload: WebhookPayloadSchema,
          })
          .openapi('WebhookTestResult'),
      ),
      ...mergeErrors(urlNotAllowed, pick(401), forbidden, pick(404), conflicts, errorResponses(WebhookErrors, 'webhook_secret_missing')),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    return c.json(await sendTestWebhook(c.env, app, auditActor(c)), 200)
  },
)

adminWebhookRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/webhooks/secret/rotate',
    tags: [TAG],
    summary: 'Rotate the webhook secret',
    description: `Body (JSON, optional): \`{"overlap_seconds": n}\`. Issues a new webhook secret (\`whsec_…\`) and returns it once; an app without one gets its first. For \`overlap_seconds\` (default ${DEFAULT_OVERLAP_S}, at most ${MAX_OVERLAP_S}; 0 ends it at once) every delivery carries a signature under the new and one under the previous secret, so the receiver can switch without missing a call. Rotating again within the overlap drops the oldest secret.`,
    security: bearerSecurity,
    ...needs('webhooks.manage', { app: 'app_id' }),
    request: {
      params: AppIdParam,
      body: jsonBody(z.object({ overlap_seconds: z.number().int().min(0).max(MAX_OVERLAP_S).optional().openapi({ example: DEFAULT_OVERLAP_S }) })),
    },
    responses: {
      200: ok(
        'New secret; store it now',
        z
          .object({
            app_id: z.string(),
            webhook_secret: z.string().openapi({ example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3Zp1cXkH2yE=' }),
            previous_secret_expires_at: z.string().nullable().openapi({ description: 'Until when the previous secret still signs; null when there was none or overlap_seconds was 0' }),
          })
          .openapi('WebhookSecret'),
      ),
      ...pick(400, 401, 403, 404),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const r = await rotateWebhookSecretAsAdmin(c.env, app.appId, c.req.valid('json').overlap_seconds ?? DEFAULT_OVERLAP_S, auditActor(c))
    c.header('Cache-Control', 'no-store')
    return c.json(r, 200)
  },
)

type Registry = OpenAPIHono['openAPIRegistry']

/** The outbound call, as an OpenAPI 3.1 webhook (shown in /docs/open and /docs/admin). */
export function documentWebhooks(registry: Registry) {
  registry.registerWebhook({
    method: 'post',
    path: 'uapEvent',
    ...OPEN,
    tags: ['Webhooks'],
    summary: 'A mapping, user or permission change, POSTed to your notification_url',
    description:
      "UAP Edge POSTs one event per request to the app's `notification_url`, at least once: after the change commits, retried with exponential backoff (10 s, 20 s, 40 s, 80 s, 160 s) until a 2xx, then marked failed (admins can retry). Verify the signature before trusting the body (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`; or `X-UAP-Timestamp` + `X-UAP-Signature`), refuse timestamps more than 5 minutes off, dedupe on `id` and order by `seq`: deliveries can repeat and arrive out of order. Answer 2xx within 10 s; redirects are not followed. Branch on `type` and acknowledge types you do not handle. `permission.changed` (a grant set or revoked, a permission deleted) carries `permission_data` and no `user_data`: one event per change, a group's included (never one per member), saying whose cached permission snapshots to re-read (`refresh`: `user` or `all`) from GET /api/v1/apps/{app_id}/permissions/snapshot; it is not in the changes feed. Details and verification examples: docs/webhooks.md.",
    request: {
      headers: z.object({
        'webhook-id': z.string().openapi({ description: 'The event id (= body `id`)' }),
        'webhook-timestamp': z.string().openapi({ description: 'Unix seconds when this attempt was signed' }),
        'webhook-signature': z.string().openapi({ description: 'Space-separated `v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`, one per webhook secret in use (two during a rotation); key = base64-decoded part after `whsec_`' }),
        'x-uap-timestamp': z.string().openapi({ description: 'Same as webhook-timestamp' }),
        'x-uap-signature': z.string().openapi({ description: 'Space-separated hex HMAC-SHA256 keyed with the whole secret string over `timestamp.body`, one per secret in use' }),
      }),
      body: { content: { 'application/json': { schema: WebhookPayloadSchema } }, required: true },
    },
    responses: {
      200: { description: 'Any 2xx: delivered' },
      default: { description: 'Anything else, a timeout (10 s) or a redirect: retried later' },
    },
  } as Parameters<Registry['registerWebhook']>[0])
}
