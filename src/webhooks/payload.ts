import { z } from '@hono/zod-openapi'
import { OUTBOX_EVENT_KINDS, OUTBOX_EVENT_TYPES, isMappingEvent, type OutboxEvent } from '../mappings/schema'
import { PermissionEventDataSchema, type PermissionEventData } from '../permissions/events'

/** The body POSTed to an app's notification_url for one outbox event (docs/webhooks.md). */
export interface WebhookPayload {
  id: string
  type: (typeof OUTBOX_EVENT_KINDS)[number] | typeof TEST_TYPE
  event_type: (typeof OUTBOX_EVENT_TYPES)[number] | 'TEST'
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
  /** permission.changed only */
  permission_data?: PermissionEventData
}

export const TEST_TYPE = 'webhook.test'

/**
 * The body of any outbox event. An app event (permission.changed) has the same envelope,
 * `user_data` null and its payload under its own key, so receivers branch on `type` and
 * one written for mapping events alone sees an unknown type it can acknowledge and skip.
 */
export function eventPayload(e: OutboxEvent): WebhookPayload {
  const envelope = { id: e.eventId, type: e.type, event_type: e.eventType, app_id: e.appId, seq: e.id, occurred_at: new Date(e.createdAt).toISOString(), mapping_id: e.mappingId, user_id: e.userId }
  if (!isMappingEvent(e)) return { ...envelope, user_data: null, permission_data: e.payload as unknown as PermissionEventData }
  const p = e.payload
  return { ...envelope, user_data: { mobile: p.mobile, name: p.name, mapped_key: p.mapped_key, status: p.status, user_status: p.user_status } }
}

/** A test event: no outbox row, no user, `seq` 0; receivers should answer 2xx and change nothing. */
export function testPayload(appId: string, now = Date.now()): WebhookPayload {
  return { id: crypto.randomUUID(), type: TEST_TYPE, event_type: 'TEST', app_id: appId, seq: 0, occurred_at: new Date(now).toISOString(), mapping_id: null, user_id: null, user_data: null }
}

export const WebhookPayloadSchema = z
  .object({
    id: z.string().openapi({ example: '9a1f7c4e-2b3d-4e5f-8a6b-7c8d9e0f1a2b', description: 'The event id, also in the `webhook-id` header and as `event_id` in the changes feed. The same on every retry: dedupe on it.' }),
    type: z.enum([...OUTBOX_EVENT_KINDS, TEST_TYPE]).openapi({
      example: 'mapping.added',
      description:
        'mapping.added (also a re-enabled mapping), mapping.updated, mapping.disabled, mapping.deleted; user.disabled, user.enabled, user.updated (name or mobile) sent once to every app the user is mapped in; permission.changed (a grant set or revoked, a permission deleted: see permission_data); webhook.test from the admin test button. Acknowledge (2xx) types you do not handle.',
    }),
    event_type: z.enum([...OUTBOX_EVENT_TYPES, 'TEST']).openapi({ example: 'ADD', description: "The source design's action for your copy of the account: ADD (create or enable), UPDATE (change fields), DISABLE, DELETE; PERMISSION for permission.changed (nothing to do with the account itself); TEST for webhook.test" }),
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    seq: z.number().int().openapi({ example: 1042, description: "The event's position in the outbox (the changes feed's `seq`). Deliveries may arrive out of order: apply an event only if its seq is above the last one you applied for that mapping." }),
    occurred_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z', description: 'When the change was made (ISO 8601, UTC)' }),
    mapping_id: z.string().nullable().openapi({ example: '6d0c7f2e-1c1b-4c1e-9a57-2f3b4c5d6e7f', description: 'permission.changed: the mapping of the user the grant names, null for a group, a deleted permission or an unmapped user' }),
    user_id: z.string().nullable().openapi({ example: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f', description: 'permission.changed: the user the grant names, null for a group or a deleted permission' }),
    user_data: z
      .object({
        mobile: z.string().nullable().openapi({ example: '+8613800138000' }),
        name: z.string().nullable().openapi({ example: 'Li Lei', description: "The mapping's name, else the user's" }),
        mapped_key: z.string().openapi({ example: 'lilei@hr.example.com' }),
        status: z.enum(['ACTIVE', 'DISABLED']).openapi({ description: "The mapping's status after the change (mapping.deleted: its last status)" }),
        user_status: z.enum(['ACTIVE', 'DISABLED']).nullable().openapi({ description: "The UAP account's status; the person can use your app only when both are ACTIVE" }),
      })
      .nullable()
      .openapi({ description: 'The state after the change; null for permission.changed and webhook.test' }),
    permission_data: PermissionEventDataSchema.optional().openapi({ description: 'permission.changed only: what changed and whose cached permission snapshots to re-read' }),
  })
  .openapi('WebhookEvent')
