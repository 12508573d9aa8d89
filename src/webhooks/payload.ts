import { z } from '@hono/zod-openapi'
import { MAPPING_EVENT_TYPES, OUTBOX_EVENT_KINDS, type MappingEvent } from '../mappings/schema'

/** The body POSTed to an app's notification_url for one outbox event (docs/webhooks.md). */
export interface WebhookPayload {
  id: string
  type: (typeof OUTBOX_EVENT_KINDS)[number] | typeof TEST_TYPE
  event_type: (typeof MAPPING_EVENT_TYPES)[number] | 'TEST'
  app_id: string
  seq: number
  occurred_at: string
  mapping_id: string | null
  user_id: string | null
  user_data: {
    mobile: string | null
    name: string | null
    mapped_key: string
    status: 'ACTIVE' | 'DISABLED'
    user_status: 'ACTIVE' | 'DISABLED' | null
  } | null
}

export const TEST_TYPE = 'webhook.test'

export function eventPayload(e: MappingEvent): WebhookPayload {
  return {
    id: e.eventId,
    type: e.type,
    event_type: e.eventType,
    app_id: e.appId,
    seq: e.id,
    occurred_at: new Date(e.createdAt).toISOString(),
    mapping_id: e.mappingId,
    user_id: e.userId,
    user_data: { mobile: e.payload.mobile, name: e.payload.name, mapped_key: e.payload.mapped_key, status: e.payload.status, user_status: e.payload.user_status },
  }
}

/** A test event: no outbox row, no user, `seq` 0; receivers should answer 2xx and change nothing. */
export function testPayload(appId: string, now = Date.now()): WebhookPayload {
  return { id: crypto.randomUUID(), type: TEST_TYPE, event_type: 'TEST', app_id: appId, seq: 0, occurred_at: new Date(now).toISOString(), mapping_id: null, user_id: null, user_data: null }
}

export const WebhookPayloadSchema = z
  .object({
    id: z.string().openapi({ example: '9a1f7c4e-2b3d-4e5f-8a6b-7c8d9e0f1a2b', description: 'The event id, also in the `webhook-id` header and as `event_id` in the changes feed. The same on every retry: dedupe on it.' }),
    type: z.enum([...OUTBOX_EVENT_KINDS, TEST_TYPE]).openapi({ example: 'mapping.added', description: 'mapping.added (also a re-enabled mapping), mapping.updated, mapping.disabled, mapping.deleted; user.disabled, user.enabled, user.updated (name or mobile) sent once to every app the user is mapped in; webhook.test from the admin test button' }),
    event_type: z.enum([...MAPPING_EVENT_TYPES, 'TEST']).openapi({ example: 'ADD', description: "The source design's action for your copy of the account: ADD (create or enable), UPDATE (change fields), DISABLE, DELETE; TEST for webhook.test" }),
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    seq: z.number().int().openapi({ example: 1042, description: "The event's position in the outbox (the changes feed's `seq`). Deliveries may arrive out of order: apply an event only if its seq is above the last one you applied for that mapping." }),
    occurred_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z', description: 'When the change was made (ISO 8601, UTC)' }),
    mapping_id: z.string().nullable().openapi({ example: '6d0c7f2e-1c1b-4c1e-9a57-2f3b4c5d6e7f' }),
    user_id: z.string().nullable().openapi({ example: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f' }),
    user_data: z
      .object({
        mobile: z.string().nullable().openapi({ example: '+8613800138000' }),
        name: z.string().nullable().openapi({ example: 'Li Lei', description: "The mapping's name, else the user's" }),
        mapped_key: z.string().openapi({ example: 'lilei@hr.example.com' }),
        status: z.enum(['ACTIVE', 'DISABLED']).openapi({ description: "The mapping's status after the change (mapping.deleted: its last status)" }),
        user_status: z.enum(['ACTIVE', 'DISABLED']).nullable().openapi({ description: "The UAP account's status; the person can use your app only when both are ACTIVE" }),
      })
      .nullable()
      .openapi({ description: 'The state after the change; null for webhook.test' }),
  })
  .openapi('WebhookEvent')
