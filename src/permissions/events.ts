import { z } from '@hono/zod-openapi'
import type { BatchItem } from 'drizzle-orm/batch'
import type { DB } from '../db'
import { appEventStatement } from '../mappings/service'
import { ScopeSchema } from './view'
import { GRANT_EFFECTS, type GrantEffect } from './schema'
import type { Scope } from './resolution'

/*
 * The `permission.changed` webhook (docs/webhooks.md, docs/permissions.md): its payload
 * and its outbox row, written in the batch of the grant, revoke or permission delete.
 *
 * One event per change, never one per affected user: a group grant changes the answers of
 * every member of the group and of its subgroups (any number: a fan-out would be unbounded
 * in rows, in deliveries and against D1's 1,000 queries per invocation), and those answers
 * also change without any grant (memberships, moves), which sends nothing. So the event
 * says what changed and whose cached snapshots are stale (`refresh`); the app re-reads them
 * from GET /api/v1/apps/{app_id}/permissions/snapshot, whose ETag makes that cheap.
 */

type Stmt = BatchItem<'sqlite'>

export const PERMISSION_CHANGED = 'permission.changed'
export const PERMISSION_CHANGES = ['granted', 'revoked', 'deleted'] as const
export type PermissionChangeKind = (typeof PERMISSION_CHANGES)[number]

/** The user a grant names, as the app knows them (null: not mapped in the app, active or not). */
export interface SubjectMapping {
  mapping_id: string
  mapped_key: string
  name: string | null
  status: 'ACTIVE' | 'DISABLED'
}

export type PermissionEventSubject = { type: 'user'; id: string; mapping: SubjectMapping | null } | { type: 'group'; id: string; name: string | null }

/** `permission_data` of a permission.changed webhook (the outbox row's payload). */
export interface PermissionEventData {
  permission: string
  change: PermissionChangeKind
  /** null for `deleted`: every grant of the permission went */
  subject: PermissionEventSubject | null
  scope: Scope | null
  /** the grant's effect after the change; null: no grant (inherit) */
  effect: GrantEffect | null
  previous_effect: GrantEffect | null
  /** whose cached snapshots are stale: that user's, or every user's of the app */
  refresh: 'user' | 'all'
}

/** Where the user's mapping goes in the payload (set in SQL from the batch's own state). */
const MAPPING_PATH = '$.subject.mapping'

/** The outbox row of one permission change, for the change's own batch. */
export function permissionEventStatement(db: DB, e: { eventId: string; appId: string; data: PermissionEventData; now: number }): Stmt {
  const userId = e.data.subject?.type === 'user' ? e.data.subject.id : null
  return appEventStatement(db, { eventId: e.eventId, appId: e.appId, type: PERMISSION_CHANGED, payload: { ...e.data }, userId, mappingAt: userId ? MAPPING_PATH : undefined, now: e.now })
}

export const PermissionEventDataSchema = z
  .object({
    permission: z.string().openapi({ example: 'orders:read', description: 'The permission key (`access` is the built-in one)' }),
    change: z.enum(PERMISSION_CHANGES).openapi({ description: 'granted: a grant was set (new, or its effect changed: see effect and previous_effect); revoked: a grant was removed (the subject inherits again); deleted: the permission and every grant of it were deleted' }),
    subject: z
      .discriminatedUnion('type', [
        z.object({
          type: z.literal('user'),
          id: z.string().openapi({ description: "The UAP user id (the `user_id` of your mapping events)" }),
          mapping: z
            .object({ mapping_id: z.string(), mapped_key: z.string(), name: z.string().nullable(), status: z.enum(['ACTIVE', 'DISABLED']) })
            .nullable()
            .openapi({ description: 'The user\'s mapping in your app when the change was made (active or not); null when the user is not mapped in your app' }),
        }),
        z.object({ type: z.literal('group'), id: z.string(), name: z.string().nullable().openapi({ example: 'East' }) }),
      ])
      .nullable()
      .openapi({ description: 'Who the grant names; null for deleted' }),
    scope: ScopeSchema.nullable(),
    effect: z.enum(GRANT_EFFECTS).nullable().openapi({ description: 'The effect after the change; null: no grant any more' }),
    previous_effect: z.enum(GRANT_EFFECTS).nullable(),
    refresh: z.enum(['user', 'all']).openapi({
      description:
        "Which cached permission snapshots are stale: `user` (a grant to a user) that user's, `all` (a grant to a group, or a deleted permission) every user's of your app. Re-read them with GET /api/v1/apps/{app_id}/permissions/snapshot (If-None-Match makes unchanged ones a 304).",
    }),
  })
  .openapi('PermissionChangedData')
