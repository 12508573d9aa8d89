import { and, asc, eq, sql } from 'drizzle-orm'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { legacyHashFormat } from '../lib/password'
import { dbErrorText } from '../lib/errors'
import { auditStatement, auditStatementIf, type AuditActor } from '../audit/service'
import { users, type User } from '../users/schema'
import { FederationErrors } from './errors'
import { identityProviders, linkedIdentities, type LinkedIdentity, type UpstreamProfile } from './schema'

/*
 * Linked identities (owned here): (provider, subject) → user. A row is only ever written
 * after the person proved the account (an SMS code to its mobile, or an existing sign-in);
 * never because an email address matched (docs/federation.md, "Linking rules").
 */

/** The account an upstream identity signs in to, with the link. */
export async function findLinkedUser(env: Env, providerId: string, subject: string): Promise<{ link: LinkedIdentity; user: User } | null> {
  const row = await getDb(env.DB)
    .select({ link: linkedIdentities, user: users })
    .from(linkedIdentities)
    .innerJoin(users, eq(users.id, linkedIdentities.userId))
    .where(and(eq(linkedIdentities.providerId, providerId), eq(linkedIdentities.subject, subject)))
    .get()
  return row ?? null
}

export function newLinkRow(providerId: string, userId: string, profile: UpstreamProfile, now: number): LinkedIdentity {
  return {
    id: crypto.randomUUID(),
    providerId,
    subject: profile.subject,
    userId,
    display: profile.display,
    email: profile.email,
    emailVerified: profile.emailVerified,
    createdAt: now,
    lastUsedAt: now,
  }
}

export function insertLinkStatement(db: DB, row: LinkedIdentity) {
  return db.insert(linkedIdentities).values(row)
}

/** Marks a link used by a sign-in, refreshing what the provider says the identity is called. */
export function touchLinkStatement(db: DB, linkId: string, profile: UpstreamProfile, now: number) {
  return db.update(linkedIdentities).set({ lastUsedAt: now, display: profile.display, email: profile.email, emailVerified: profile.emailVerified }).where(eq(linkedIdentities.id, linkId))
}

/** A unique-constraint failure on (provider_id, subject): linked meanwhile by a concurrent request. */
export function isIdentityTaken(e: unknown): boolean {
  return /UNIQUE constraint failed: linked_identities\.provider_id, linked_identities\.subject/.test(dbErrorText(e))
}

export async function listIdentities(env: Env, userId: string) {
  const rows = await getDb(env.DB)
    .select({ link: linkedIdentities, providerName: identityProviders.displayName, providerType: identityProviders.type })
    .from(linkedIdentities)
    .innerJoin(identityProviders, eq(identityProviders.id, linkedIdentities.providerId))
    .where(eq(linkedIdentities.userId, userId))
    .orderBy(asc(linkedIdentities.createdAt), asc(linkedIdentities.id))
  return rows.map(({ link, providerName, providerType }) => ({
    id: link.id,
    provider: link.providerId,
    provider_name: providerName,
    provider_type: providerType,
    display: link.display,
    email: link.email,
    email_verified: link.emailVerified,
    linked_at: new Date(link.createdAt).toISOString(),
    last_used_at: link.lastUsedAt === null ? null : new Date(link.lastUsedAt).toISOString(),
  }))
}

/**
 * Whether the account can sign in with its mobile and password. Accounts made here always
 * have a password (binding asks for one); an imported hash this service cannot read is not one.
 */
function hasUsablePassword(user: Pick<User, 'passwordHash'>): boolean {
  return !('error' in legacyHashFormat(user.passwordHash))
}

/**
 * Unlinks one of the user's identities, unless it is the account's last way to sign in (no
 * usable password and no other identity). The delete and its audit row are one batch.
 * Without a usable password the delete itself requires another identity to remain, so two
 * unlinks at once of an account's two identities cannot both pass a check made before either.
 */
export async function unlinkIdentity(env: Env, userId: string, linkId: string, actor: AuditActor) {
  const db = getDb(env.DB)
  const [mine, user] = await db.batch([
    db.select().from(linkedIdentities).where(eq(linkedIdentities.userId, userId)),
    db.select({ passwordHash: users.passwordHash }).from(users).where(eq(users.id, userId)),
  ])
  const link = mine.find((l) => l.id === linkId)
  if (!link || !user[0]) throw FederationErrors.identity_not_found()
  const refuse = async () => {
    await db.batch([auditStatement(db, { ...actor, action: 'federation.unlink_refused', targetType: 'linked_identity', targetId: link.id, details: { provider: link.providerId, reason: 'last_sign_in_method' } })])
    return FederationErrors.last_sign_in_method()
  }
  const guarded = !hasUsablePassword(user[0])
  if (guarded && mine.length === 1) throw await refuse()
  const [deleted] = await db.batch([
    db
      .delete(linkedIdentities)
      .where(and(eq(linkedIdentities.id, linkId), eq(linkedIdentities.userId, userId), guarded ? sql`(SELECT count(*) FROM linked_identities WHERE user_id = ${userId}) > 1` : undefined))
      .returning({ id: linkedIdentities.id }),
    auditStatementIf(
      db,
      { ...actor, action: 'federation.identity_unlinked', targetType: 'user', targetId: userId, details: { identity_id: link.id, provider: link.providerId, subject: link.subject } },
      sql`NOT EXISTS (SELECT 1 FROM linked_identities WHERE id = ${linkId})`,
    ),
  ])
  if (!deleted.length) {
    // unlinked meanwhile by another request, or it became the last way in
    if ((await db.select({ id: linkedIdentities.id }).from(linkedIdentities).where(eq(linkedIdentities.id, linkId)).get()) === undefined) throw FederationErrors.identity_not_found()
    throw await refuse()
  }
  return link
}
