import { eq } from 'drizzle-orm'
import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { ConfigError, type Env } from '../env'
import { getDb } from '../db'
import { applications, type Application } from '../apps/schema'
import { activeMapping, mappingOfMobileQuery } from '../mappings/service'
import { findUserById } from '../users/service'
import { users, type User } from '../users/schema'
import { TicketErrors } from './errors'
import type { E164 } from '../lib/mobile'
import { base64url, fromBase64url, hex, randomBytes, sha256Hex } from '../lib/crypto'
import { auditStatement, type AuditEntry } from '../audit/service'
import { log } from '../lib/logger'
import type { RedeemResult, TicketRecord } from './durable-object'

/** Default ticket lifetime, seconds (TICKET_TTL_S overrides, within TTL_RANGE_S). */
export const DEFAULT_TICKET_TTL_S = 60
/**
 * Tickets live in a Durable Object, not KV, so KV's 60 s minimum `expirationTtl` does not
 * bound them; the upper bound keeps a leaked ticket short-lived.
 */
export const TTL_RANGE_S = { min: 10, max: 600 } as const

/**
 * `tk_<object id>.<secret>`: both parts base64url of 32 bytes. The secret is 256 random
 * bits; the object id (not secret) routes redemption to the one TicketVault that holds
 * the ticket, with no lookup table anywhere.
 */
const TICKET_RE = /^tk_([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})$/

export const LOCATION_HINTS = ['wnam', 'enam', 'sam', 'weur', 'eeur', 'apac', 'apac-ne', 'apac-se', 'oc', 'afr', 'me'] as const
type LocationHint = (typeof LOCATION_HINTS)[number]

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

const hintCache = new WeakMap<object, Record<string, LocationHint>>()
/**
 * TICKET_LOCATION_HINTS: JSON such as {"app_ab12": "weur", "*": "apac"}, keyed by target
 * app id ("*" for any). A ticket's object is created at the hinted region instead of next
 * to the exchanging app, e.g. near a target app that redeems from one region.
 */
export function locationHintFor(env: Env, targetAppId: string): LocationHint | undefined {
  let hints = hintCache.get(env)
  if (!hints) {
    hints = {}
    if (env.TICKET_LOCATION_HINTS) {
      let parsed: unknown
      try {
        parsed = JSON.parse(env.TICKET_LOCATION_HINTS)
      } catch {
        throw new ConfigError('TICKET_LOCATION_HINTS must be a JSON object')
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError('TICKET_LOCATION_HINTS must be a JSON object')
      for (const [k, v] of Object.entries(parsed)) {
        if (!LOCATION_HINTS.includes(v as LocationHint)) throw new ConfigError(`TICKET_LOCATION_HINTS.${k}: "${v}" is not one of ${LOCATION_HINTS.join(', ')}`)
        hints[k] = v as LocationHint
      }
    }
    hintCache.set(env, hints)
  }
  return hints[targetAppId] ?? hints['*']
}

const shardCache = new WeakMap<object, number>()
/**
 * TICKET_SHARDS: 0 (default) gives every ticket its own object, created next to the
 * exchange; N > 0 spreads tickets over N long-lived objects (`idFromName("shard:<k>")`).
 * Both are strictly once; the trade-off is measured in docs/tickets.md.
 */
export function ticketShards(env: Env): number {
  const hit = shardCache.get(env)
  if (hit !== undefined) return hit
  const raw = env.TICKET_SHARDS
  const n = raw === undefined || raw === '' ? 0 : Number(raw)
  if (!Number.isInteger(n) || n < 0 || n > 4096) throw new ConfigError('TICKET_SHARDS must be an integer from 0 (one object per ticket) to 4096')
  shardCache.set(env, n)
  return n
}

const vault = (env: Env) => env.TICKET_VAULT

/** The object a ticket lives in, or null when the ticket is malformed or names no object of ours. */
export function ticketObjectId(env: Env, ticket: string): DurableObjectId | null {
  const m = TICKET_RE.exec(ticket)
  if (!m) return null
  try {
    return vault(env).idFromString(hex(fromBase64url(m[1])))
  } catch {
    return null // not a valid id of this namespace
  }
}

export interface IssueInput {
  targetAppId: string
  sourceAppId: string | null
  userId: string
  mappedKey: string
}

export interface IssuedTicket {
  ticket: string
  expiresIn: number
  expiresAt: number
}

/** Creates a ticket: its TicketVault object stores the ticket's hash and what it is bound to. */
export async function issueTicket(env: Env, input: IssueInput, now = Date.now()): Promise<IssuedTicket> {
  const ns = vault(env)
  const shards = ticketShards(env)
  const id = shards ? ns.idFromName(`shard:${crypto.getRandomValues(new Uint32Array(1))[0] % shards}`) : ns.newUniqueId()
  const ticket = `tk_${base64url(fromHex(id.toString()))}.${base64url(randomBytes(32))}`
  const expiresIn = ticketTtlS(env)
  const record: TicketRecord = { ticketHash: await sha256Hex(ticket), ...input, issuedAt: now, expiresAt: now + expiresIn * 1000 }
  const hint = locationHintFor(env, input.targetAppId)
  await ns.get(id, hint ? { locationHint: hint } : undefined).issue(record)
  return { ticket, expiresIn, expiresAt: record.expiresAt }
}

function fromHex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(i * 2, i * 2 + 2), 16)
  return out
}

/** Atomic check-and-consume in the ticket's object (see TicketVault.redeem). */
export async function consumeTicket(env: Env, ticket: string, appId: string): Promise<RedeemResult> {
  const id = ticketObjectId(env, ticket)
  if (!id) return { ok: false, reason: 'ticket_invalid' }
  return vault(env).get(id).redeem(await sha256Hex(ticket), appId)
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
export function callbackOf(app: Application): string {
  const uri = app.redirectUris[0]
  if (!uri) throw TicketErrors.target_app_no_callback({ message: `Application ${app.appId} has no registered redirect URI to send the user to` })
  return uri
}

/**
 * Exchange checks, in one D1 round trip. Explicit error codes are deliberate: the caller
 * is a signed, trusted app server (not a browser), rate limited per app and audited, so
 * telling it "user not found" vs "not mapped" is worth more than hiding it (docs/tickets.md).
 */
export async function resolveExchange(env: Env, targetAppId: string, mobile: E164): Promise<{ target: Application; user: User; mappedKey: string }> {
  const db = getDb(env.DB)
  // No joins inside db.batch: drizzle maps D1 batch rows positionally, so duplicate column names would collide.
  const [targetRows, userRows, mappingRows] = await db.batch([
    db.select().from(applications).where(eq(applications.appId, targetAppId)).limit(1),
    db.select().from(users).where(eq(users.mobile, mobile)).limit(1),
    mappingOfMobileQuery(db, targetAppId, mobile),
  ])
  const target = targetRows[0]
  if (!target) throw TicketErrors.target_app_not_found({ message: `No application with app_id ${targetAppId}` })
  if (target.status !== 'ACTIVE') throw TicketErrors.target_app_disabled({ message: `Application ${targetAppId} is disabled` })
  if (target.protocolType !== 'SIMPLE_API') throw TicketErrors.target_app_not_simple_api({ message: `Application ${targetAppId} is an ${target.protocolType} app; tickets are for SIMPLE_API apps` })
  callbackOf(target)
  const user = userRows[0]
  const mapping = mappingRows[0]
  if (!user) throw TicketErrors.user_not_found()
  if (user.status !== 'ACTIVE') throw TicketErrors.user_disabled()
  if (!mapping) throw TicketErrors.user_not_mapped({ message: `The user has no account mapping in ${targetAppId}` })
  if (!mapping.isActive) throw TicketErrors.mapping_disabled({ message: `The user's mapping in ${targetAppId} is disabled` })
  return { target, user, mappedKey: mapping.mappedKey }
}

/** Redemption re-check: the user and their mapping in the redeeming app must still be active. */
export async function recheckRedeemed(env: Env, t: TicketRecord): Promise<User & { mappedKey: string }> {
  const [user, mapping] = await Promise.all([findUserById(env, t.userId), activeMapping(env, t.targetAppId, t.userId)])
  if (!user) throw TicketErrors.redeemed_user_gone()
  if (user.status !== 'ACTIVE') throw TicketErrors.redeemed_user_disabled()
  if (!mapping) throw TicketErrors.redeemed_mapping_disabled()
  if (mapping.mappedKey !== t.mappedKey) throw TicketErrors.mapping_changed()
  return { ...user, mappedKey: mapping.mappedKey }
}

/**
 * Audit rows for the ticket flow are written after the response (waitUntil): the ticket
 * itself is already durable in its object, and this keeps a D1 write off the hot path.
 * A failed write is logged (docs/tickets.md, failure modes).
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
