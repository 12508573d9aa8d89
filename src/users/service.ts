import { and, asc, count, desc, eq, gt, inArray, or, sql, type SQL } from 'drizzle-orm'
import { containsText } from '../lib/sql'
import { getDb, type DB } from '../db'
import { users, type User } from './schema'
import { getConfig, type Env } from '../env'
import { hashPassword, paramsForProfile } from '../lib/password'
import { normalizeMobile, type E164 } from '../lib/mobile'
import { dbErrorText } from '../lib/errors'
import { publicUser } from './view'
import { auditStatementIf } from '../audit/service'

export function passwordParams(env: Env) {
  return paramsForProfile(getConfig(env).passwordHashProfile)
}

export async function findUserByMobile(env: Env, mobile: E164): Promise<User | undefined> {
  return getDb(env.DB).select().from(users).where(eq(users.mobile, mobile)).get()
}

export async function findUserById(env: Env, id: string): Promise<User | undefined> {
  return getDb(env.DB).select().from(users).where(eq(users.id, id)).get()
}

export function insertUserStatement(db: DB, row: User) {
  return db.insert(users).values(row)
}

/**
 * Many new users in one statement (the bulk user import): the rows travel as one JSON
 * parameter, since D1 binds at most 100 parameters per statement. A mobile taken
 * meanwhile fails the statement, and so the batch it is in, as a whole.
 */
export function insertUsersStatement(db: DB, rows: User[]) {
  const json = JSON.stringify(rows.map((r) => [r.id, r.mobile, r.passwordHash, r.name, r.email, r.status, r.role, r.createdAt, r.updatedAt]))
  // columns in table order, as INSERT … SELECT fills them
  return db.insert(users).select(sql`SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8
    FROM json_each(${json}) ORDER BY key`)
}

/** The users with these mobiles (any number of them: the list travels as JSON), one query. */
export async function usersByMobiles(env: Env, mobiles: E164[]): Promise<User[]> {
  if (!mobiles.length) return []
  return getDb(env.DB).select().from(users).where(inArray(users.mobile, sql`(SELECT value FROM json_each(${JSON.stringify(mobiles)}))`))
}

/**
 * A page of users in id order after `afterId` (keyset paging: each page costs the same
 * however deep it is, unlike OFFSET), for the streamed export.
 */
export async function usersAfter(env: Env, afterId: string, limit: number, filter: { status?: 'ACTIVE' | 'DISABLED'; search?: string; within?: SQL } = {}) {
  const conds = [gt(users.id, afterId)]
  if (filter.within) conds.push(sql`${users.id} IN (${filter.within})`)
  if (filter.status) conds.push(eq(users.status, filter.status))
  if (filter.search) conds.push(or(containsText(users.mobile, filter.search), containsText(users.name, filter.search))!)
  return getDb(env.DB).select().from(users).where(and(...conds)).orderBy(asc(users.id)).limit(limit)
}

/** The full admins (role ADMIN), as a subquery of user ids. */
export function fullAdminIdsSql(): SQL {
  return sql`SELECT id FROM users WHERE role = 'ADMIN'`
}

/** Changes profile fields or status of a user (for a db.batch with its audit row and revocations). */
export function updateUserStatement(db: DB, id: string, set: Partial<Pick<User, 'name' | 'email' | 'status' | 'passwordHash' | 'mobile'>>, now: number) {
  return db.update(users).set({ ...set, updatedAt: now }).where(eq(users.id, id))
}

/**
 * A new password hash written only over `verified`, the hash a password was just checked
 * against (the upgrade at sign-in, needsRehash; the user's own change on the portal), and only
 * if `when` holds: a reset or admin-set password that landed during the check (slow for
 * imported bcrypt hashes) is not overwritten. Returns the id when it was written.
 */
export function replacePasswordHashStatement(db: DB, id: string, o: { verified: string; passwordHash: string; when?: SQL }, now: number) {
  return db
    .update(users)
    .set({ passwordHash: o.passwordHash, updatedAt: now })
    .where(and(eq(users.id, id), eq(users.passwordHash, o.verified), o.when))
    .returning({ id: users.id })
}

/** Holds while the user's stored password hash is still `hash`: what a password sign-in's writes are conditioned on. */
export function passwordHashStillSql(userId: string, hash: string): SQL {
  return sql`EXISTS (SELECT 1 FROM users WHERE id = ${userId} AND password_hash = ${hash})`
}

/** A unique-constraint failure on users.mobile, as raised by D1 through drizzle. */
export function isMobileTaken(e: unknown): boolean {
  return /UNIQUE constraint failed: users\.mobile/.test(dbErrorText(e))
}

export async function newUserRow(
  env: Env,
  input: { mobile: E164; password: string; name?: string | null; email?: string | null; role?: 'USER' | 'ADMIN'; status?: 'ACTIVE' | 'DISABLED' },
) {
  const now = Date.now()
  return {
    id: crypto.randomUUID(),
    mobile: input.mobile,
    passwordHash: await hashPassword(input.password, passwordParams(env)),
    name: input.name ?? null,
    email: input.email ?? null,
    status: input.status ?? 'ACTIVE',
    role: input.role ?? 'USER',
    createdAt: now,
    updatedAt: now,
  } satisfies User
}

/** `within`: a subquery of the user ids a delegated admin may see (src/delegation/scope.ts); omitted, every user. */
export async function listUsers(env: Env, q: { page: number; pageSize: number; search?: string; status?: 'ACTIVE' | 'DISABLED'; within?: SQL }) {
  const db = getDb(env.DB)
  const conds = []
  if (q.within) conds.push(sql`${users.id} IN (${q.within})`)
  if (q.search) {
    conds.push(or(containsText(users.mobile, q.search), containsText(users.name, q.search)))
  }
  if (q.status) conds.push(eq(users.status, q.status))
  const where = conds.length ? and(...conds) : undefined
  const [rows, total] = await Promise.all([
    db.select().from(users).where(where).orderBy(desc(users.createdAt), desc(users.id)).limit(q.pageSize).offset((q.page - 1) * q.pageSize),
    db.select({ n: count() }).from(users).where(where).get(),
  ])
  return { items: rows.map(publicUser), page: q.page, page_size: q.pageSize, total: total?.n ?? 0 }
}

const bootstrapped = new WeakSet<D1Database>()
/** Whether this isolate has already made sure of the bootstrap admin (ensureBootstrapAdmin would return at once). */
export function bootstrapAdminEnsured(env: Env): boolean {
  return bootstrapped.has(env.DB)
}
/** Creates the bootstrap admin from secrets if no user with that mobile exists. Idempotent. */
export async function ensureBootstrapAdmin(env: Env) {
  if (bootstrapped.has(env.DB)) return
  const cfg = getConfig(env)
  const mobile = normalizeMobile(cfg.bootstrapAdminMobile)
  if (!mobile) throw new Error('BOOTSTRAP_ADMIN_MOBILE is not a valid mobile number')
  const db = getDb(env.DB)
  const existing = await db.select({ id: users.id }).from(users).where(eq(users.mobile, mobile)).get()
  if (!existing) {
    const row = await newUserRow(env, { mobile, password: cfg.bootstrapAdminPassword, name: 'Bootstrap admin', role: 'ADMIN' })
    // A new admin account is a security event; another isolate may create it first (then
    // this insert does nothing and writes no row). It comes back whenever its number is
    // free again, e.g. after the admin moved to another mobile.
    await db.batch([
      db.insert(users).values(row).onConflictDoNothing(),
      auditStatementIf(db, { action: 'user.bootstrap_admin_created', actorType: 'system', targetType: 'user', targetId: row.id, details: { mobile } }, sql`EXISTS (SELECT 1 FROM ${users} WHERE ${users.id} = ${row.id})`),
    ])
  }
  bootstrapped.add(env.DB)
}
