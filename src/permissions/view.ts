import { z } from '@hono/zod-openapi'
import { typedText } from '../lib/text'

/** Request and response shapes shared by the admin, partner and self-service permission routes. */
export const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })

export const PermissionKey = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/, 'must be 1-100 characters of A-Z a-z 0-9 _ . : -, starting with a letter or digit')
  .openapi({ example: 'orders:read', description: 'Chosen by the app; `access` is the built-in one' })

export const ScopeSchema = z
  .object({
    type: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,49}$/, 'must be 1-50 characters of A-Z a-z 0-9 _ . : -').openapi({ example: 'store' }),
    id: typedText({ min: 1, max: 100, trim: false }).openapi({ example: '42' }),
  })
  .openapi('PermissionScope', { description: 'memberapi\'s (scope_type, scope_id): where a grant applies. No scope: everywhere.' })

export const SourceView = z
  .object({
    type: z.enum(['none', 'direct', 'group']).openapi({ description: 'none: no grant applies (not granted); direct: the user\'s own grant; group: a group on the user\'s membership paths' }),
    label: z.string().openapi({ example: 'via group Sales ▸ East', description: '"direct", "via group <path>" or "not granted"' }),
    grant_id: z.string().optional(),
    effect: z.enum(['allow', 'deny']).optional(),
    scope: ScopeSchema.nullable().optional(),
    group_id: z.string().optional(),
    group_path: z.array(z.string()).optional().openapi({ example: ['Sales', 'East'] }),
    distance: z.number().int().optional().openapi({ description: '0: a group the user is directly in; 1: its parent; ...' }),
  })
  .openapi('PermissionSource')

export const SnapshotView = z
  .object({
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    user_id: z.string(),
    mapped_key: z.string().nullable().openapi({ example: 'lilei@hr.example.com' }),
    access_policy: z.enum(['mapping', 'permission']),
    admitted: z.boolean().openapi({ description: 'May the user enter the app now: active user, active mapping and, under the `permission` policy, `access` allowed' }),
    permissions: z.array(
      z.object({
        key: z.string().openapi({ example: 'orders:read' }),
        name: z.string().openapi({ example: 'Read orders' }),
        built_in: z.boolean(),
        allowed: z.boolean().openapi({ description: 'The unscoped answer' }),
        source: SourceView,
        scopes: z.array(z.object({ scope: ScopeSchema, allowed: z.boolean(), source: SourceView })).openapi({ description: 'The answer at each scope some grant names; any other scope has the unscoped answer' }),
      }),
    ),
  })
  .openapi('PermissionSnapshot')

export const CheckView = z
  .object({
    user_id: z.string(),
    mapped_key: z.string().nullable(),
    permission: z.string().openapi({ example: 'orders:read' }),
    scope: ScopeSchema.nullable(),
    allowed: z.boolean(),
    source: SourceView,
  })
  .openapi('PermissionCheck')

export const AppIdParam = z.object({ app_id: z.string().min(1).max(64).openapi({ param: { name: 'app_id', in: 'path' }, example: 'app_3f9a1c2d4e5f6a7b' }) })
