import type { Context, MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import type { Application } from '../apps/schema'
import { SigningErrors } from './errors'
import { hmacSha256Hex, sha256Hex, timingSafeEqual } from '../lib/crypto'
import { findApplication, getAppSecret } from '../apps/service'
import { enforceRateLimit } from '../ratelimit'
import { getDb } from '../db'
import { auditStatement } from '../audit/service'
import { canonicalString, SIGNATURE_HEADERS as H } from './canonical'

/** Allowed clock skew between the partner and UAP Edge, seconds. */
export const MAX_SKEW_S = 300
/**
 * A nonce is remembered for longer than its timestamp could still be accepted: a request
 * stamped T is accepted until T+300 and its nonce is stored at the earliest at T-300, so
 * 600 s covers the whole window. KV TTL ≥ 60.
 */
export const NONCE_TTL_S = 2 * MAX_SKEW_S

const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/
const SIG_RE = /^[0-9a-f]{64}$/

async function auditSecurity(c: Context<AppEnv>, action: string, app: Application, details: Record<string, unknown>) {
  const db = getDb(c.env.DB)
  await db.batch([
    auditStatement(db, { action, actorType: 'app', actorId: app.appId, targetType: 'application', targetId: app.appId, requestId: c.get('requestId'), ip: c.get('clientIp'), details }),
  ])
}

/**
 * Verifies an HMAC-signed partner request (docs/signing.md) and sets `c.var.app`.
 * Order: per-IP limit → headers present and well-formed (signature_missing) → timestamp
 * within ±300 s (timestamp_stale) → app known and signature right (signature_invalid, same
 * answer for an unknown app) → app ACTIVE (app_disabled) → per-app limit → nonce unused
 * (nonce_replayed). The nonce is recorded only after the signature checks, so forgeries
 * cannot burn nonces. Nonces live in KV: see docs/rate-limits.md for what that guarantees.
 */
export const requireSignedApp: MiddlewareHandler<AppEnv> = async (c, next) => {
  // Independent lookups run concurrently (this is the hot path of every partner call);
  // the per-IP limit still decides first: a limited caller gets 429 whatever else is wrong.
  const ipLimit = enforceRateLimit(c, 'partner_ip', c.get('clientIp'))
  ipLimit.catch(() => {})
  try {
    await checkSignedRequest(c, ipLimit)
  } catch (e) {
    await ipLimit
    throw e
  }
  await next()
}

async function checkSignedRequest(c: Context<AppEnv>, ipLimit: Promise<unknown>) {
  const appId = c.req.header(H.appId)
  const timestamp = c.req.header(H.timestamp)
  const nonce = c.req.header(H.nonce)
  const signature = c.req.header(H.signature)?.toLowerCase()
  const missing = Object.entries({ [H.appId]: appId, [H.timestamp]: timestamp, [H.nonce]: nonce, [H.signature]: signature })
    .filter(([, v]) => !v)
    .map(([k]) => k)
  if (missing.length) throw SigningErrors.signature_missing({ message: `Missing signature header(s): ${missing.join(', ')}`, details: { missing } })
  if (!/^\d{1,12}$/.test(timestamp!)) throw SigningErrors.signature_missing({ message: `${H.timestamp} must be Unix seconds` })
  if (!NONCE_RE.test(nonce!)) throw SigningErrors.signature_missing({ message: `${H.nonce} must be 16-64 characters of A-Z a-z 0-9 _ -` })
  if (!SIG_RE.test(signature!)) throw SigningErrors.signature_invalid({ message: `${H.signature} must be 64 hex characters` })

  const skew = Math.floor(Date.now() / 1000) - Number(timestamp)
  if (Math.abs(skew) > MAX_SKEW_S) {
    throw SigningErrors.timestamp_stale({
      message: `${H.timestamp} is ${Math.abs(skew)} s ${skew > 0 ? 'behind' : 'ahead of'} server time; allowed skew is ${MAX_SKEW_S} s`,
      details: { server_time: Math.floor(Date.now() / 1000) },
    })
  }

  const [, app, bodyBuffer] = await Promise.all([ipLimit, appId!.length <= 64 ? findApplication(c.env, appId!) : undefined, c.req.arrayBuffer()])
  // Unknown app and wrong secret read the same: no probing for app ids.
  if (!app) throw SigningErrors.signature_invalid()

  const url = new URL(c.req.url)
  const body = new Uint8Array(bodyBuffer)
  const expected = await hmacSha256Hex(
    await getAppSecret(c.env, app),
    canonicalString({ appId: appId!, method: c.req.method, path: url.pathname, query: url.search, timestamp: timestamp!, nonce: nonce!, bodySha256Hex: await sha256Hex(body) }),
  )
  if (!timingSafeEqual(expected, signature!)) {
    await auditSecurity(c, 'signature.invalid', app, { method: c.req.method, path: url.pathname })
    throw SigningErrors.signature_invalid()
  }
  if (app.status !== 'ACTIVE') throw SigningErrors.app_disabled()

  const nonceKey = `nonce:${app.appId}:${nonce}`
  const [, seen] = await Promise.all([enforceRateLimit(c, 'signed_app', app.appId), c.env.KV.get(nonceKey)])
  if (seen) {
    await auditSecurity(c, 'signature.nonce_replayed', app, { method: c.req.method, path: url.pathname, nonce })
    throw SigningErrors.nonce_replayed({ message: `${H.nonce} was already used` })
  }
  await c.env.KV.put(nonceKey, String(timestamp), { expirationTtl: NONCE_TTL_S })

  c.set('app', app)
}
