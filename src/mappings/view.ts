import { z } from '@hono/zod-openapi'
import { typedText } from '../lib/text'

/** Request and response shapes shared by the partner mapping API and the admin mapping routes. */
export const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })

// keys and names come from the app's own records: kept exactly as sent (not trimmed), so re-sending one matches
export const MappedKey = typedText({ min: 1, max: 100, trim: false }).openapi({ example: 'lilei@hr.example.com', description: "The user's account in the app (email, username ...); unique within the app" })
export const MappingName = typedText({ max: 100, trim: false }).nullable().openapi({ example: 'Li Lei', description: "The person's name as the app knows it; null falls back to the UAP user's name" })

export const MappingView = z
  .object({
    mapping_id: z.string().openapi({ example: '6d0c7f2e-1c1b-4c1e-9a57-2f3b4c5d6e7f' }),
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    user_id: z.string().openapi({ example: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f' }),
    mobile: z.string().openapi({ example: '+8613800138000' }),
    mapped_key: z.string().openapi({ example: 'lilei@hr.example.com' }),
    name: z.string().nullable().openapi({ example: 'Li Lei' }),
    is_active: z.boolean(),
    status: z.enum(['ACTIVE', 'DISABLED']),
    created_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
    updated_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
  })
  .openapi('Mapping')

export const AppIdParam = z.object({ app_id: z.string().min(1).max(64).openapi({ param: { name: 'app_id', in: 'path' }, example: 'app_3f9a1c2d4e5f6a7b' }) })
export const MappingParams = AppIdParam.extend({ mapping_id: z.string().min(1).max(64).openapi({ param: { name: 'mapping_id', in: 'path' }, example: '6d0c7f2e-1c1b-4c1e-9a57-2f3b4c5d6e7f' }) })

