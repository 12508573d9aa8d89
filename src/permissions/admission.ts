import { eq, sql, type SQL } from 'drizzle-orm'
import { getDb, type DB } from '../db'
import type { Env } from '../env'
import { applications, type AccessPolicy } from '../apps/schema'
import { appUserMappings } from '../mappings/schema'
import { activeMappingOn, type ActiveMapping } from '../mappings/service'
import { ACCESS_PERMISSION } from './schema'
import { decide, parseCandidates } from './resolution'
import { grantsJson } from './service'

/*
 * The one rule for "may this user enter this app", used by every entry point: the OIDC
 * authorization endpoint and code redemption, ticket exchange and redemption, the hosted
 * ticket hop, login with app_id, refresh, userinfo and introspection (docs/permissions.md).
 *
 *   access_policy `mapping` (the default): an active mapping;
 *   access_policy `permission`: an active mapping, and the app's `access` permission
 *   resolves to allow for the user (src/permissions/resolution.ts).
 *
 * Reads that already run at an entry point take the access grants along as one more column
 * (accessGrantsSql), so admission never adds a storage round trip.
 */

export type Admission = { ok: true; mapping: ActiveMapping } | { ok: false; reason: 'not_mapped' | 'no_access' }

/**
 * The user's grants of the app's `access` permission, as a column: JSON for accessHolds(),
 * read only when the policy needs it. `policy` is the column holding the app's policy in
 * the enclosing query; `appId` and `userId` are bound values or uncorrelated subqueries.
 */
export function accessGrantsSql(policy: SQL | typeof applications.accessPolicy, appId: SQL, userId: SQL): SQL<string | null> {
  return sql<string | null>`CASE WHEN ${policy} = 'permission' THEN ${grantsJson(appId, userId, ACCESS_PERMISSION)} END`
}

/** The policy's answer, given the access grants a read returned (ignored under `mapping`). */
export function accessHolds(policy: AccessPolicy | null | undefined, accessGrants: string | null | undefined): boolean {
  if (policy !== 'permission') return true
  return decide(parseCandidates(accessGrants), ACCESS_PERMISSION).allowed
}

/** Admission for a user already known by id: one read (the mapping and, if the policy needs it, the access grants). */
export async function admitUser(env: Env, appId: string, userId: string): Promise<Admission> {
  const row = await getDb(env.DB)
    .select({
      policy: applications.accessPolicy,
      mapping: { id: appUserMappings.id, mappedKey: appUserMappings.mappedKey, name: appUserMappings.name },
      access: accessGrantsSql(applications.accessPolicy, sql`${appId}`, sql`${userId}`),
    })
    .from(applications)
    .leftJoin(appUserMappings, activeMappingOn(applications.appId, sql`${userId}`))
    .where(eq(applications.appId, appId))
    .get()
  return admissionOf(row?.policy, row?.mapping ?? null, row?.access)
}

/** The same decision from parts another read returned. */
export function admissionOf(policy: AccessPolicy | null | undefined, mapping: ActiveMapping | null, accessGrants: string | null | undefined): Admission {
  if (!mapping) return { ok: false, reason: 'not_mapped' }
  if (!accessHolds(policy, accessGrants)) return { ok: false, reason: 'no_access' }
  return { ok: true, mapping }
}
