import { and, eq, gt, isNull, lt } from 'drizzle-orm'
import { getDb, type DB } from '../db'
import { getConfig, masterKeyRing, type Env } from '../env'
import { base64url, decryptSecret, encryptSecret, randomToken, sha256Hex, timingSafeEqual } from '../lib/crypto'
import type { E164 } from '../lib/mobile'
import { FederationErrors } from './errors'
import { federationFlows, type FederationFlow, type IdentityProvider, type UpstreamProfile } from './schema'
import { authorizationUrl } from './upstream'
import { enabledProvider } from './providers'

/*
 * Flow state (federation_flows, owned here). Every single-use step is one conditional
 * UPDATE in D1, so of two concurrent redemptions exactly one matches the row:
 * - the callback redeems `state` once, and only with the secret the flow is bound to
 *   (RFC 9700 §4.7.1: state bound to the user agent, so a code and state injected into
 *   another browser are refused; §2.1.1: PKCE; OIDC Core §3.1.2.1: nonce);
 * - a binding ticket is completed once, and only after an SMS code proved the mobile.
 */

/** From the start to the callback: the time a person has at the provider's sign-in page. */
export const FLOW_TTL_MS = 10 * 60_000
/** From the callback to the end of the binding step (captcha, SMS, maybe a password). */
export const TICKET_TTL_MS = 15 * 60_000
/** Rows stay this long after expiry, so a late replay is still recognised as one in the audit log. */
const KEEP_EXPIRED_MS = 24 * 3600_000

const verifierAad = (flowId: string) => `federation-pkce:${flowId}`

/** A flow's binding secret is stored only as this hash. */
const bindingHash = (secret: string) => sha256Hex(`federation-binding:${secret}`)

export type RefusalReason = 'unknown_state' | 'other_provider' | 'other_browser' | 'replayed' | 'expired'

export class StateRefused extends Error {
  constructor(readonly reason: RefusalReason, readonly flow: FederationFlow | null) {
    super(`state refused: ${reason}`)
  }
}

export interface StartedFlow {
  flowId: string
  state: string
  authorizationUrl: string
  expiresIn: number
}

/** A new flow: state, nonce and PKCE verifier, bound to `secret`; returns where to send the user. */
export async function startFlow(
  env: Env,
  p: IdentityProvider,
  o: { channel: 'page' | 'api'; secret: string; redirectUri: string; returnTo?: string | null; appId?: string | null },
): Promise<StartedFlow> {
  const id = crypto.randomUUID()
  const state = randomToken(32)
  const nonce = randomToken(32)
  // RFC 7636 §4.1: 43 characters of the unreserved set (32 random bytes, base64url)
  const verifier = randomToken(32)
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))))
  const url = await authorizationUrl(env, p, { state, nonce, codeChallenge: challenge, redirectUri: o.redirectUri })
  const now = Date.now()
  await getDb(env.DB)
    .insert(federationFlows)
    .values({
      id,
      providerId: p.id,
      channel: o.channel,
      stateHash: await sha256Hex(state),
      bindingHash: await bindingHash(o.secret),
      codeVerifierEnc: await encryptSecret(getConfig(env).masterKey, verifier, verifierAad(id)),
      nonce,
      redirectUri: o.redirectUri,
      returnTo: o.returnTo ?? null,
      appId: o.appId ?? null,
      createdAt: now,
      expiresAt: now + FLOW_TTL_MS,
    })
  return { flowId: id, state, authorizationUrl: url, expiresIn: FLOW_TTL_MS / 1000 }
}

/**
 * Redeems a callback's `state`: the flow of this provider, bound to this secret, unused and
 * unexpired, marked used in the same statement. Otherwise StateRefused says why (for the
 * audit log; callers answer every reason the same).
 */
export async function redeemState(env: Env, o: { providerId: string; channel: 'page' | 'api'; state: string; secret: string | null }): Promise<FederationFlow & { codeVerifier: string }> {
  const db = getDb(env.DB)
  const now = Date.now()
  const stateHash = await sha256Hex(o.state)
  const secretHash = o.secret ? await bindingHash(o.secret) : null
  if (secretHash) {
    const [row] = await db
      .update(federationFlows)
      .set({ usedAt: now })
      .where(
        and(
          eq(federationFlows.stateHash, stateHash),
          eq(federationFlows.providerId, o.providerId),
          eq(federationFlows.channel, o.channel),
          eq(federationFlows.bindingHash, secretHash),
          isNull(federationFlows.usedAt),
          gt(federationFlows.expiresAt, now),
        ),
      )
      .returning()
    if (row) return { ...row, codeVerifier: await decryptSecret(masterKeyRing(env), row.codeVerifierEnc, verifierAad(row.id)) }
  }
  const seen = (await db.select().from(federationFlows).where(eq(federationFlows.stateHash, stateHash)).get()) ?? null
  const reason: RefusalReason = !seen
    ? 'unknown_state'
    : seen.providerId !== o.providerId || seen.channel !== o.channel
      ? 'other_provider'
      : !secretHash || !timingSafeEqual(seen.bindingHash, secretHash)
        ? 'other_browser'
        : seen.usedAt !== null
          ? 'replayed'
          : 'expired'
  throw new StateRefused(reason, seen)
}

/** After the callback, for an identity no account is linked to: a binding ticket for the next step. */
export async function issueBindingTicket(env: Env, flowId: string, profile: UpstreamProfile): Promise<{ ticket: string; expiresIn: number }> {
  const ticket = randomToken(32, 'fbt_')
  await getDb(env.DB)
    .update(federationFlows)
    .set({ profile, ticketHash: await sha256Hex(ticket), ticketExpiresAt: Date.now() + TICKET_TTL_MS })
    .where(eq(federationFlows.id, flowId))
  return { ticket, expiresIn: TICKET_TTL_MS / 1000 }
}

export type PendingBinding = FederationFlow & { profile: UpstreamProfile }

/**
 * The flow waiting for a mobile behind this ticket, and its provider: not completed, not
 * expired and, on the hosted pages, in the browser that started it (otherwise 400
 * invalid_ticket); its provider still enabled (otherwise 404 unknown_provider: disabling a
 * provider, one found compromised say, stops the bindings it started at once, on both channels).
 */
export async function pendingBinding(env: Env, ticket: string, o: { channel: 'page' | 'api'; secret?: string | null }): Promise<{ pending: PendingBinding; provider: IdentityProvider }> {
  if (!/^fbt_[A-Za-z0-9_-]{43}$/.test(ticket)) throw FederationErrors.invalid_ticket()
  const row = await getDb(env.DB).select().from(federationFlows).where(eq(federationFlows.ticketHash, await sha256Hex(ticket))).get()
  if (!row || !row.profile || row.channel !== o.channel || row.completedAt !== null || (row.ticketExpiresAt ?? 0) <= Date.now()) throw FederationErrors.invalid_ticket()
  if (o.channel === 'page' && (!o.secret || !timingSafeEqual(await bindingHash(o.secret), row.bindingHash))) throw FederationErrors.invalid_ticket()
  return { pending: row as PendingBinding, provider: await enabledProvider(env, row.providerId) }
}

/** An SMS code just proved `mobile`: the ticket may now complete with it. */
export async function recordVerifiedMobile(env: Env, flowId: string, mobile: E164) {
  await getDb(env.DB)
    .update(federationFlows)
    .set({ verifiedMobile: mobile })
    .where(and(eq(federationFlows.id, flowId), isNull(federationFlows.completedAt)))
}

/**
 * Completes a binding exactly once: the ticket's flow, not completed, unexpired, whose
 * verified mobile is `mobile`. False when another request completed it first.
 */
export async function claimBinding(env: Env, flowId: string, mobile: E164, userId: string | null): Promise<boolean> {
  const now = Date.now()
  const rows = await getDb(env.DB)
    .update(federationFlows)
    .set({ completedAt: now, userId })
    .where(and(eq(federationFlows.id, flowId), isNull(federationFlows.completedAt), eq(federationFlows.verifiedMobile, mobile), gt(federationFlows.ticketExpiresAt, now)))
    .returning({ id: federationFlows.id })
  return rows.length === 1
}

/** A known identity signed in: the flow is done (for the sign-in's batch). */
export function completeFlowStatement(db: DB, flowId: string, userId: string, now: number) {
  return db.update(federationFlows).set({ completedAt: now, userId }).where(eq(federationFlows.id, flowId))
}

/** Cron: flows a day past their expiry. */
export async function cleanupFederationFlows(env: Env, now = Date.now()): Promise<number> {
  const r = await getDb(env.DB).delete(federationFlows).where(lt(federationFlows.expiresAt, now - KEEP_EXPIRED_MS))
  return (r as unknown as D1Result).meta?.changes ?? 0
}
