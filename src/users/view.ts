import { z } from '@hono/zod-openapi'
import type { User } from './schema'

export const UserProfile = z
  .object({
    id: z.string().openapi({ example: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f' }),
    mobile: z.string().openapi({ example: '+8613800138000' }),
    name: z.string().nullable().openapi({ example: 'Li Lei' }),
    email: z.string().nullable().openapi({ example: 'lilei@example.com' }),
    status: z.enum(['ACTIVE', 'DISABLED']),
    role: z.enum(['USER', 'ADMIN']),
    created_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
    updated_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
  })
  .openapi('User')

/** The public shape of a user; never includes the password hash. */
export function publicUser(u: User): z.infer<typeof UserProfile> {
  return {
    id: u.id,
    mobile: u.mobile,
    name: u.name,
    email: u.email,
    status: u.status,
    role: u.role,
    created_at: new Date(u.createdAt).toISOString(),
    updated_at: new Date(u.updatedAt).toISOString(),
  }
}
