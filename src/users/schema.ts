import { sql } from 'drizzle-orm'
import { index, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core'
import type { E164 } from '../lib/mobile'

export const users = sqliteTable(
  'users',
  {
    id: text('id').primaryKey(),
    /** E.164, normalised by lib/mobile.ts before it is stored or looked up. */
    mobile: text('mobile').$type<E164>().notNull().unique(),
    /** PHC string, see lib/password.ts. */
    passwordHash: text('password_hash').notNull(),
    name: text('name'),
    email: text('email'),
    status: text('status', { enum: ['ACTIVE', 'DISABLED'] }).notNull().default('ACTIVE'),
    role: text('role', { enum: ['USER', 'ADMIN'] }).notNull().default('USER'),
    createdAt: integer('created_at').notNull().default(sql`(unixepoch() * 1000)`),
    updatedAt: integer('updated_at').notNull().default(sql`(unixepoch() * 1000)`),
  },
  (t) => [index('users_name_idx').on(t.name)],
)

export type User = typeof users.$inferSelect
