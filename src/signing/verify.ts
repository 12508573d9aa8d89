import type { Context, MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import type { Application } from '../apps/schema'
import { SigningErrors } from './errors'
import { hmacSha256Hex, sha256Hex, timingSafeEqual } from '../lib/crypto'
import { findApplication, getAppSecret } from '../apps/service'
import { applyRateLimit, policyFor, rateLimitedError, setRateHeaders } from '../ratelimit'
import { countRefused, knownLimited } from '../ratelimit/refused'
import { getDb } from '../db'
import { auditStatement, type AuditEntry } from '../audit/service'
import { canonicalString, SIGNATURE_HEADERS as H } from './canonical'
import { appGate, type AdmitResult, type PolicyHit } from './gate'
import { cacheApp, cachedApp, forgetApp } from './app-cache'
import type { RedeemResult } from '../tickets/store'

/** Allowed clock skew between the partner and UAP Edge, seconds. */
export const MAX_SKEW_S = 300
/**
 * A nonce is remembered for longer than its timestamp could still be accepted. The skew is
 * judged in whole seconds, so a request stamped T is accepted until just before T+301 and its
 * nonce may be stored as early as T-300: 601 s of real time. One second more covers a clock
 * difference between the Worker and the app's AppGate, which stores the expiry.
 */
export const NONCE_TTL_S = 2 * MAX_SKEW_S + 2

const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/
const SIG_RE = /^[0-9a-f]{64}$/

/** What a signed route may ask of the one gate call that admits the request. */
export interface SignedCallOptions {
  /** per-app policies counted with `signed_app` in the same call (e.g. `ticket_exchange_app`) */
  policies?: readonly string[]
  /**
   * Runs once the signature is right (before any storage call: local work only, such as
   * parsing the body and hashing a ticket). Returns what the gate call should also do, and
   * read-only storage work to start at the same moment as the gate call, so it costs no
   * round trip of its own; its promise is `c.var.signed.prefetch`, seen by the route only
   * once the call was admitted.
   */
  prepare?: (c: Context<AppEnv>, app: Application, body: Uint8Array) => Promise<SignedCallPlan>
}

export interface SignedCallPlan {
  /**
   * A ticket issued for the calling app (its SHA-256), redeemed in the gate call once it is
   * admitted, and the audit row the gate records with a successful redemption (the gate
   * fills in the user and the source app).
   */
  redeem?: { ticketHash: string; audit: AuditEntry }
  /** must start its storage calls synchronously (no await before them) */
  prefetch?: () => Promise<unknown>
}

/** What the gate call left for the route (c.var.signed). */
export interface SignedCall {
  prefetch?: Promise<unknown>
  redeemed?: RedeemResult
}

async function auditSecurity(c: Context<AppEnv>, action: string, app: Application, details: Record<string, unknown>) {
  const db = getDb(c.env.DB)
  await db.batch([
    auditStatement(db, { action, actorType: 'app', actorId: app.appId, targetType: 'application', targetId: app.appId, requestId: c.get('requestId'), ip: c.get('clientIp'), details }),
  ])
}

/**
 * Verifies an HMAC-signed partner request (docs/signing.md) and sets `c.var.app` (and
 * `c.var.signed`). Outcomes, in order of precedence: per-IP limit (429) → headers present
 * and well-formed (signature_missing) → timestamp within ±300 s (timestamp_stale) → app
 * known and signature right (signature_invalid, same answer for an unknown app) → app
 * ACTIVE (app_disabled) → partner API on (partner_api_disabled) → nonce unused
 * (nonce_replayed) → per-app limits (429). The nonce and the per-app counts are spent only
 * by correctly signed calls of an active app, so forgeries can neither burn nonces nor
 * spend an app's budget, and a replay spends nothing.
 *
 * `partner_ip` bounds the work of calls that are not admitted: each refused call (bad or
 * missing signature, unknown app, stale timestamp, replay, …) is counted in the IP's
 * limiter object after the fact, and once that object says the IP is over its limit, this
 * isolate refuses the IP's calls before doing any work until the window ends (other
 * isolates learn it at their first refused call from it). An admitted call is counted by
 * its app's gate (`signed_app`) instead, so it costs no limiter call of its own.
 *
 * Round trips: with the app row in this isolate's cache (src/signing/app-cache.ts) the
 * signature is checked first, then the app's AppGate object is called: one stage. The gate
 * answers nonce, per-app limits and whether it still vouches for the cached row's version
 * in that one call; if it does not (first call, a rotation, a disable), the row is read from
 * D1 and the gate is asked again.
 */
export function signedApp(opts: SignedCallOptions = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const ip = c.get('clientIp')
    const known = knownLimited(c.env, 'partner_ip', ip)
    if (known) applyRateLimit(c, 'partner_ip', known)
    let admitted
    try {
      admitted = await admitSignedCall(c, opts)
    } catch (e) {
      // a limited caller gets 429 whatever else was wrong with the call
      applyRateLimit(c, 'partner_ip', await countRefused(c.env, 'partner_ip', ip))
      throw e
    }
    c.set('app', admitted.app)
    c.set('signed', admitted.signed)
    await next()
  }
}

/** The plain signature check, for routes that need nothing else of the gate call. */
export const requireSignedApp: MiddlewareHandler<AppEnv> = signedApp()

async function signatureMatches(c: Context<AppEnv>, app: Application, message: string, signature: string) {
  return timingSafeEqual(await hmacSha256Hex(await getAppSecret(c.env, app), message), signature)
}

async function admitSignedCall(c: Context<AppEnv>, opts: SignedCallOptions): Promise<{ app: Application; signed: SignedCall }> {
  const appId = c.req.header(H.appId)
  const timestamp = c.req.header(H.timestamp)
  const nonce = c.req.header(H.nonce)
  const signature = c.req.header(H.signature)?.toLowerCase()
  const missing = Object.entries({ [H.appId]: appId, [H.timestamp]: timestamp, [H.nonce]: nonce, [H.signature]: signature })
    .filter(([, v]) => !v)
    .map(([k]) => k)
  if (missing.length) throw SigningErrors.signature_missing({ message: `Missing signature header(s): ${missing.join(', ')}`, details: { missing } })
  // Up to 16 digits reach the skew check, so a millisecond timestamp (13 digits, the usual
  // mistake) gets timestamp_stale with the server's clock, which tells the integrator the fix.
  if (!/^\d{1,16}$/.test(timestamp!)) throw SigningErrors.signature_missing({ message: `${H.timestamp} must be Unix seconds (digits only)` })
  if (!NONCE_RE.test(nonce!)) throw SigningErrors.signature_missing({ message: `${H.nonce} must be 16-64 characters of A-Z a-z 0-9 _ -` })
  if (!SIG_RE.test(signature!)) throw SigningErrors.signature_invalid({ message: `${H.signature} must be 64 hex characters` })

  const skew = Math.floor(Date.now() / 1000) - Number(timestamp)
  if (Math.abs(skew) > MAX_SKEW_S) {
    throw SigningErrors.timestamp_stale({
      message:
        timestamp!.length >= 13
          ? `${H.timestamp} looks like milliseconds; send Unix seconds (server time is ${Math.floor(Date.now() / 1000)})`
          : `${H.timestamp} is ${Math.abs(skew)} s ${skew > 0 ? 'behind' : 'ahead of'} server time; allowed skew is ${MAX_SKEW_S} s`,
      details: { server_time: Math.floor(Date.now() / 1000) },
    })
  }
  // Unknown app and wrong secret read the same: no probing for app ids.
  if (appId!.length > 64) throw SigningErrors.signature_invalid()

  const db = c.env.DB
  const url = new URL(c.req.url)
  const body = new Uint8Array(await c.req.arrayBuffer())
  const message = canonicalString({ appId: appId!, method: c.req.method, path: url.pathname, query: url.search, timestamp: timestamp!, nonce: nonce!, bodySha256Hex: await sha256Hex(body) })

  // A cached row whose secret does not match may be stale (a rotation; an envelope the
  // master-key sweep has since re-encrypted and no configured key opens): D1 decides.
  let app = cachedApp(db, appId!)
  if (app && !(await signatureMatches(c, app, message, signature!).catch(() => false))) app = undefined
  let fresh = false
  const policies: PolicyHit[] = ['signed_app', ...(opts.policies ?? [])].map((name) => {
    const p = policyFor(c.env, name)
    return { name, limit: p.limit, windowMs: p.windowS * 1000 }
  })
  let prefetch: Promise<unknown> | undefined
  let result: AdmitResult
  for (let attempt = 0; ; attempt++) {
    if (!app) {
      const row = await findApplication(c.env, appId!)
      if (!row) throw SigningErrors.signature_invalid()
      if (!(await signatureMatches(c, row, message, signature!))) {
        forgetApp(db, appId!)
        await auditSecurity(c, 'signature.invalid', row, { method: c.req.method, path: url.pathname })
        throw SigningErrors.signature_invalid()
      }
      app = row
      fresh = true
    }
    const spend = app.status === 'ACTIVE' && app.partnerApiEnabled
    const plan: SignedCallPlan = spend && opts.prepare ? await opts.prepare(c, app, body) : {}
    // started together: the gate and the route's reads are one stage
    const admit = appGate(c.env, app.appId).admit({
      version: app.version,
      fresh,
      spend,
      nonce: nonce!,
      nonceTtlMs: NONCE_TTL_S * 1000,
      policies,
      ...(plan.redeem ? { redeem: { ...plan.redeem, appId: app.appId } } : {}),
    })
    if (plan.prefetch && !prefetch) {
      prefetch = plan.prefetch()
      prefetch.catch(() => {}) // awaited by the route, if the call is admitted
    }
    result = await admit
    if (result.kind !== 'stale') break
    // the gate does not vouch for this row: read D1 (once more at most; a fresh row is only
    // stale when a change was answered between the read and the gate call)
    forgetApp(db, app.appId)
    if (fresh && attempt > 0) throw SigningErrors.app_state_changing()
    app = undefined
  }
  if (fresh) cacheApp(db, app)

  if (app.status !== 'ACTIVE') throw SigningErrors.app_disabled()
  if (!app.partnerApiEnabled) {
    await auditSecurity(c, 'signature.partner_api_disabled', app, { method: c.req.method, path: url.pathname, protocol_type: app.protocolType })
    throw SigningErrors.partner_api_disabled()
  }
  if (result.kind === 'replayed') {
    await auditSecurity(c, 'signature.nonce_replayed', app, { method: c.req.method, path: url.pathname, nonce })
    throw SigningErrors.nonce_replayed({ message: `${H.nonce} was already used` })
  }
  if (result.kind === 'limited') throw rateLimitedError(result.policy, result.hit)
  if (result.kind !== 'admitted') throw new Error(`gate answered ${result.kind} for a spending call`)
  setRateHeaders(c, result.hits[result.hits.length - 1])
  return { app, signed: { prefetch, redeemed: result.redeemed } }
}
