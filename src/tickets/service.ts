import { eq, sql } from 'drizzle-orm'
import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { ConfigError, getConfig, masterKeyRing, type Env } from '../env'
import { getDb, preparedOnce } from '../db'
import type { AccessPolicy, Application } from '../apps/schema'
import { applications } from '../apps/schema'
import { activeMappingOn, mappingActiveSql, mappingOn } from '../mappings/service'
import { appUserMappings } from '../mappings/schema'
import { accessGrantsSql, accessHolds } from '../permissions/admission'
import { users, type User } from '../users/schema'
import { TicketErrors } from './errors'
import type { E164 } from '../lib/mobile'
import { base64url, fromBase64url, randomBytes, seal, sha256Hex, unseal } from '../lib/crypto'
import { auditStatement, type AuditEntry } from '../audit/service'
import { log } from '../lib/logger'
import { appGate } from '../signing/gate'
import type { TicketRecord } from './store'

/** Default ticket lifetime, seconds (TICKET_TTL_S overrides, within TTL_RANGE_S). */
export const DEFAULT_TICKET_TTL_S = 60
/**
 * Tickets live in a Durable Object, not KV, so KV's 60 s minimum `expirationTtl` does not
 * bound them; the upper bound keeps a leaked ticket short-lived.
 */
export const TTL_RANGE_S = { min: 10, max: 600 } as const

/**
 * `tk_<target>.<user>.<secret>`, each part base64url: the target app's id; the user's id
 * sealed (AES-256-GCM under a key derived from the master key, the ticket's secret and the
 * target: lib/crypto.ts seal), which reveals nothing of the user but lets a redemption read
 * the user's account from D1 beside the gate call instead of after it; and 32 random bytes. The target part (not secret: the
 * ticket is handed to that app's callback anyway) routes redemption to the one object that
 * holds the ticket, the target app's AppGate, with no lookup table anywhere. The object
 * keys the ticket by the SHA-256 of the whole string, so no part can be swapped.
 */
const TICKET_RE = /^tk_([A-Za-z0-9_-]{1,86})\.([A-Za-z0-9_-]{22,200})\.([A-Za-z0-9_-]{43})$/
const APP_ID_RE = /^[A-Za-z0-9_-]{1,64}$/
/** The seal's key is derived from the master key, the ticket's own secret and its target (lib/crypto.ts seal). */
const userSealInfo = (targetAppId: string) => `uap-edge ticket user v1 ${targetAppId}`

/**
 * `state` an app binds to a ticket (docs/tickets.md, login CSRF): visible ASCII, like an
 * OAuth state, returned unchanged by verify.
 */
export const STATE_RE = /^[\x21-\x7E]{1,256}$/

const ttlCache = new WeakMap<object, number>()
export function ticketTtlS(env: Env): number {
  const hit = ttlCache.get(env)
  if (hit !== undefined) return hit
  const raw = env.TICKET_TTL_S
  const n = raw === undefined || raw === '' ? DEFAULT_TICKET_TTL_S : Number(raw)
  if (!Number.isInteger(n) || n < TTL_RANGE_S.min || n > TTL_RANGE_S.max) {
    throw new ConfigError(`TICKET_TTL_S must be an integer from ${TTL_RANGE_S.min} to ${TTL_RANGE_S.max} seconds`)
  }
  ttlCache.set(env, n)
  return n
}

/** The app a ticket was issued for, read from the ticket itself; null when it is malformed. */
export function ticketTarget(ticket: string): string | null {
  const m = TICKET_RE.exec(ticket)
  if (!m) return null
  try {
    const appId = new TextDecoder('utf-8', { fatal: true }).decode(fromBase64url(m[1]))
    return APP_ID_RE.test(appId) ? appId : null
  } catch {
    return null
  }
}

/** The user a ticket was issued for, unsealed (null when it does not open: forged, or not for this target). */
export async function ticketUser(env: Env, ticket: string): Promise<string | null> {
  const m = TICKET_RE.exec(ticket)
  const target = m && ticketTarget(ticket)
  if (!m || !target) return null
  try {
    return await unseal(masterKeyRing(env), fromBase64url(m[2]), fromBase64url(m[3]), userSealInfo(target))
  } catch {
    return null // not base64url (a length of 4n + 1): no ticket we issued
  }
}

export interface IssueInput {
  targetAppId: string
  sourceAppId: string | null
  userId: string
  mappedKey: string
  state?: string | null
}

export interface IssuedTicket {
  ticket: string
  expiresIn: number
  expiresAt: number
}

/**
 * Creates a ticket: the target app's AppGate stores its hash and what it is bound to, and
 * its `ticket.issued` audit row in the same commit (the gate ships it to D1; `expires_in`
 * is added to the row's details).
 */
export async function issueTicket(env: Env, input: IssueInput, audit: AuditEntry, now = Date.now()): Promise<IssuedTicket> {
  const secret = randomBytes(32)
  const user = await seal(getConfig(env).masterKey, input.userId, secret, userSealInfo(input.targetAppId))
  const ticket = `tk_${base64url(new TextEncoder().encode(input.targetAppId))}.${base64url(user)}.${base64url(secret)}`
  const expiresIn = ticketTtlS(env)
  const record: TicketRecord = { ...input, state: input.state ?? null, ticketHash: await sha256Hex(ticket), issuedAt: now, expiresAt: now + expiresIn * 1000 }
  const details = { ...(audit.details as Record<string, unknown> | undefined), expires_in: expiresIn }
  await appGate(env, input.targetAppId).issueTicket(record, { ...audit, details })
  return { ticket, expiresIn, expiresAt: record.expiresAt }
}

/** The request-derived part of an audit row (request id, client IP). */
export function requestAudit(c: Context<AppEnv>, entry: Omit<AuditEntry, 'requestId' | 'ip'>): AuditEntry {
  return { ...entry, requestId: c.get('requestId'), ip: c.get('clientIp') }
}

/** Whether a ticket (by its SHA-256) exists in another app's gate: a foreign redemption is ticket_not_for_app, else ticket_invalid. */
export function foreignTicketExists(env: Env, targetAppId: string, ticketHash: string): Promise<boolean> {
  return appGate(env, targetAppId).hasTicket(ticketHash)
}

/**
 * `redirect_uri` plus `ticket=`: appended to an existing query as-is (no re-encoding of
 * what the app registered), before any fragment. Ticket characters are URL-safe.
 */
export function withTicket(redirectUri: string, ticket: string): string {
  const hash = redirectUri.indexOf('#')
  const base = hash === -1 ? redirectUri : redirectUri.slice(0, hash)
  const fragment = hash === -1 ? '' : redirectUri.slice(hash)
  const q = base.indexOf('?')
  const sep = q === -1 ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&'
  return `${base}${sep}ticket=${ticket}${fragment}`
}

/** The target app's registered callback: its first redirect URI. */
export function callbackOf(app: Pick<Application, 'appId' | 'redirectUris'>): string {
  const uri = app.redirectUris[0]
  if (!uri) throw TicketErrors.target_app_no_callback({ message: `Application ${app.appId} has no registered redirect URI to send the user to` })
  return uri
}

export interface ExchangeInput {
  target_app_id: string
  user_mobile: E164
}

/**
 * The columns of the target app an exchange is decided on and answers with: only these are
 * read (not the row's secret envelope, not the user's password hash), which also keeps the
 * statement's answer small on the hop every cross-app sign-in makes.
 */
const exchangeTargetColumns = {
  appId: applications.appId,
  status: applications.status,
  protocolType: applications.protocolType,
  partnerApiEnabled: applications.partnerApiEnabled,
  redirectUris: applications.redirectUris,
  accessPolicy: applications.accessPolicy,
}
export type ExchangeTarget = Pick<Application, keyof typeof exchangeTargetColumns>

/** What an exchange is decided on, read in one D1 statement. */
export interface ExchangeReads {
  input: ExchangeInput
  target: ExchangeTarget | undefined
  user: Pick<User, 'id' | 'status'> | undefined
  /** the user's mapping (active or not) in the source app and in the target app */
  sourceMapping: { isActive: boolean } | undefined
  targetMapping: { isActive: boolean; mappedKey: string } | undefined
  /** the user's grants of the target's `access` permission (read only under the `permission` policy) */
  targetAccess: string | null | undefined
}

/**
 * One statement, driven by the target app's row: the user by mobile (joined), the user's
 * mapping in the target (joined), in the source (a correlated subquery) and the target's
 * access grants. A single statement rather than a batch of five: each statement costs D1
 * work of its own, and the exchange runs on every cross-app hop (docs/benchmarks.md).
 * An unknown target answers no row, which the rules refuse before looking at the user.
 * Other owners' tables are only read here, joined by their own rules (mappingOn,
 * mappingActiveSql, accessGrantsSql), never written.
 */
const exchangeQuery = preparedOnce((db) => {
  const [target, mobile, source] = [sql.placeholder('target'), sql.placeholder('mobile'), sql.placeholder('source')]
  return db
    .select({
      target: exchangeTargetColumns,
      user: { id: users.id, status: users.status },
      sourceActive: mappingActiveSql(sql`${source}`, users.id),
      targetMapping: { isActive: appUserMappings.isActive, mappedKey: appUserMappings.mappedKey },
      // the grants' recursive CTE cannot refer to the joined user: it finds the user again by mobile
      targetAccess: accessGrantsSql(applications.accessPolicy, sql`${target}`, sql`(${db.select({ id: users.id }).from(users).where(eq(users.mobile, mobile))})`),
    })
    .from(applications)
    .leftJoin(users, eq(users.mobile, mobile))
    .leftJoin(appUserMappings, mappingOn(applications.appId, users.id))
    .where(eq(applications.appId, target))
    .prepare()
})

export async function exchangeReads(env: Env, sourceAppId: string, input: ExchangeInput): Promise<ExchangeReads> {
  const row = await exchangeQuery(env.DB).get({ target: input.target_app_id, mobile: input.user_mobile, source: sourceAppId })
  return {
    input,
    target: row?.target,
    user: row?.user ?? undefined,
    sourceMapping: row?.sourceActive == null ? undefined : { isActive: !!row.sourceActive },
    targetMapping: row?.targetMapping ?? undefined,
    targetAccess: row?.targetAccess,
  }
}

/**
 * The exchange rules (docs/tickets.md, "Who may exchange"), in this order: the source is a
 * SIMPLE_API app (it is active and its partner API on, or the signature check had refused
 * it) and lists the target in its admin-set `sso_targets`; the target is an active
 * SIMPLE_API app with a callback; the user has an active mapping in the **source** (a user
 * the source does not hold reads exactly like an unknown mobile) and in the target, and the
 * target admits the user by its access policy (src/permissions/admission.ts).
 * Explicit codes past that point are deliberate: the caller is a signed app server that
 * already holds the user.
 */
export function decideExchange(source: Application, r: ExchangeReads): { target: ExchangeTarget; user: Pick<User, 'id' | 'status'>; mappedKey: string } {
  const targetAppId = r.input.target_app_id
  if (source.protocolType !== 'SIMPLE_API') throw TicketErrors.source_app_not_simple_api()
  if (!source.ssoTargets.includes(targetAppId)) throw TicketErrors.target_not_allowed({ message: `${targetAppId} is not in this application's sso_targets` })
  const target = r.target
  if (!target) throw TicketErrors.target_app_not_found({ message: `No application with app_id ${targetAppId}` })
  if (target.status !== 'ACTIVE') throw TicketErrors.target_app_disabled({ message: `Application ${targetAppId} is disabled` })
  if (target.protocolType !== 'SIMPLE_API') throw TicketErrors.target_app_not_simple_api({ message: `Application ${targetAppId} is an ${target.protocolType} app; tickets are for SIMPLE_API apps` })
  if (!target.partnerApiEnabled) throw TicketErrors.target_app_disabled({ message: `Application ${targetAppId} has its partner API switched off and could not redeem the ticket` })
  callbackOf(target)
  if (!r.user || !r.sourceMapping?.isActive) throw TicketErrors.user_not_found()
  if (r.user.status !== 'ACTIVE') throw TicketErrors.user_disabled()
  if (!r.targetMapping) throw TicketErrors.user_not_mapped({ message: `The user has no account mapping in ${targetAppId}` })
  if (!r.targetMapping.isActive) throw TicketErrors.mapping_disabled({ message: `The user's mapping in ${targetAppId} is disabled` })
  if (!accessHolds(target.accessPolicy, r.targetAccess)) throw TicketErrors.user_no_access({ message: `The user is not allowed to use ${targetAppId} (its access policy needs the access permission)` })
  return { target, user: r.user, mappedKey: r.targetMapping.mappedKey }
}

/** The user's columns a redemption re-checks and answers with. */
type RedeemedUser = Pick<User, 'mobile' | 'name' | 'status'>

/**
 * What the redemption re-check is decided on, in one statement: the user, their active
 * mapping in the redeeming app, and the app's access policy with the user's access grants.
 */
export interface RedemptionReads {
  userId: string
  user: RedeemedUser | undefined
  mapping: { mappedKey: string; name: string | null } | undefined
  admission: { policy: AccessPolicy; access: string | null } | undefined
}

/** One statement: the user, their active mapping in the redeeming app (joined) and the app's policy with the user's access grants. */
const redemptionQuery = preparedOnce((db) => {
  const [app, user] = [sql.placeholder('app'), sql.placeholder('user')]
  return db
    .select({
      user: { mobile: users.mobile, name: users.name, status: users.status },
      mapping: { mappedKey: appUserMappings.mappedKey, name: appUserMappings.name },
      policy: applications.accessPolicy,
      access: accessGrantsSql(applications.accessPolicy, sql`${app}`, sql`${user}`),
    })
    .from(users)
    .leftJoin(applications, eq(applications.appId, app))
    .leftJoin(appUserMappings, activeMappingOn(sql`${app}`, users.id))
    .where(eq(users.id, user))
    .prepare()
})

export async function redemptionReads(env: Env, appId: string, userId: string): Promise<RedemptionReads> {
  const row = await redemptionQuery(env.DB).get({ app: appId, user: userId })
  return { userId, user: row?.user, mapping: row?.mapping ?? undefined, admission: row?.policy ? { policy: row.policy, access: row.access } : undefined }
}

/**
 * Redemption re-check: the user and their mapping in the redeeming app must still be active, with the same key,
 * and the app must still admit the user by its access policy.
 * The name answered is the one the target app synced for its mapping, falling back to the user's own:
 * the target shows the person as it knows them (the same rule as the mapping feed).
 */
export function recheckRedeemed(t: TicketRecord, r: RedemptionReads): RedeemedUser & { mappedKey: string } {
  if (!r.user) throw TicketErrors.redeemed_user_gone()
  if (r.user.status !== 'ACTIVE') throw TicketErrors.redeemed_user_disabled()
  if (!r.mapping) throw TicketErrors.redeemed_mapping_disabled()
  if (!accessHolds(r.admission?.policy, r.admission?.access)) throw TicketErrors.redeemed_no_access()
  if (r.mapping.mappedKey !== t.mappedKey) throw TicketErrors.mapping_changed()
  return { ...r.user, name: r.mapping.name ?? r.user.name, mappedKey: r.mapping.mappedKey }
}

/**
 * Audit rows of refusals are written after the response (waitUntil), which keeps a D1 write
 * off the answer's path; a failed write is logged (docs/tickets.md, failure modes). Issued
 * and redeemed tickets are recorded by the AppGate with the ticket itself (issueTicket,
 * the verify route's redeem).
 */
export function auditSoon(c: Context<AppEnv>, entry: Omit<AuditEntry, 'requestId' | 'ip'>) {
  const db = getDb(c.env.DB)
  const p = db
    .batch([auditStatement(db, { ...entry, requestId: c.get('requestId'), ip: c.get('clientIp') })])
    .then(() => undefined)
    .catch((e: Error) => log.error('audit.write_failed', { request_id: c.get('requestId'), action: entry.action, error: e.message }))
  try {
    c.executionCtx.waitUntil(p)
  } catch {
    // no execution context (direct calls): the promise still runs
  }
}
