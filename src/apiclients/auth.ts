import type { Context } from 'hono'
import type { AppEnv } from '../context'
import type { Principal } from '../delegation/model'
import { getDb } from '../db'
import { auditStatement } from '../audit/service'
import { timingSafeEqual } from '../lib/crypto'
import { log } from '../lib/logger'
import { firstUse, countHit } from '../ratelimit/counters'
import { applyRateLimit, ipRateKey } from '../ratelimit'
import { API_KEY_HEADER, CLIENT_KEY_HEADER, type ApiClient } from './schema'
import { ApiClientErrors } from './errors'
import { findApiClientByKey, hashApiKey, recordApiClientUse } from './service'
import { ipInAllowlist, originInAllowlist, pathUnder } from './allowlists'

export type ClientPrincipal = Extract<Principal, { kind: 'client' }>

/** The rate-limit policy name in 429 answers; the limit itself is each client's own. */
export const API_CLIENT_RATE_POLICY = 'api_client'

/**
 * Failed authentications with a client key that names no client are audited at most once
 * per this window per network (IPv6 per /64), as for OAuth clients (src/oidc/oauth.ts):
 * made-up keys would otherwise buy an audit row per request. A known client's failures are
 * audited once per minute per (client, reason, network). Every failure is logged.
 */
export const UNKNOWN_CLIENT_AUDIT_WINDOW_S = 600
export const KNOWN_CLIENT_AUDIT_WINDOW_S = 60

const CLIENT_KEY_RE = /^[A-Za-z0-9_-]{1,64}$/
/** Longer than any key we issue (ak_ + 43 characters); a longer header is hashed only up to here, and cannot match. */
const MAX_API_KEY_LENGTH = 256
/** Compared against when the client key names no client, so an unknown client costs what a wrong key costs. */
const NO_CLIENT_HASH = '0'.repeat(64)

type FailureReason = 'unknown_client' | 'wrong_key' | 'disabled' | 'expired' | 'ip_not_allowed' | 'origin_not_allowed' | 'path_not_allowed'

async function auditFailure(c: Context<AppEnv>, reason: FailureReason, presentedKey: string, client: ApiClient | undefined) {
  const ip = c.get('clientIp')
  const net = ipRateKey(ip)
  const audited = client
    ? await firstUse(c.env, `api_client_auth_failed:${client.id}:${reason}:${net}`, KNOWN_CLIENT_AUDIT_WINDOW_S)
    : await firstUse(c.env, `api_client_unknown:${net}`, UNKNOWN_CLIENT_AUDIT_WINDOW_S)
  const clientKey = CLIENT_KEY_RE.test(presentedKey) ? presentedKey : '(malformed)'
  log.warn('api_client.auth_failed', { request_id: c.get('requestId'), reason, client_key: clientKey, path: c.req.path, audited })
  if (!audited) return
  const db = getDb(c.env.DB)
  const origin = c.req.header('Origin')
  await db.batch([
    auditStatement(db, {
      action: 'api_client.auth_failed',
      // a failure proves no identity: the row names the client it was for, not an actor
      actorType: 'anonymous',
      targetType: 'api_client',
      targetId: client?.id ?? null,
      requestId: c.get('requestId'),
      ip,
      details: {
        reason,
        client_key: clientKey,
        method: c.req.method,
        path: c.req.path.slice(0, 200),
        ...(origin !== undefined ? { origin: origin.slice(0, 200) } : {}),
        audited: client ? `the first per ${KNOWN_CLIENT_AUDIT_WINDOW_S} s for this client, reason and network` : `the first per ${UNKNOWN_CLIENT_AUDIT_WINDOW_S} s from this network`,
      },
    }),
  ])
}

/**
 * Authenticates a machine on the admin API by X-Client-Key and X-API-Key (docs/api-clients.md)
 * and returns its principal: one grant, the client's rights over its scope. In order:
 * 1. both headers, else 401 api_client_credentials_missing;
 * 2. the key: an unknown client key and a wrong API key get the same 401 invalid_api_client,
 *    after the same work (the presented key is hashed and compared in constant time either
 *    way), so client keys cannot be probed;
 * 3. only then, with the key proved: 401 api_client_disabled, 401 api_client_expired;
 * 4. the allowlists, each unrestricted while empty: 403 api_client_ip_not_allowed,
 *    api_client_origin_not_allowed (only when an Origin header is sent: machines send none;
 *    a browser's cross-origin request always does, Fetch §3.1), api_client_path_not_allowed
 *    (c.req.path under a prefix, at a segment boundary);
 * 5. the client's own per-minute limit, counted exactly in its RateLimiter object: 429
 *    rate_limited with Retry-After.
 * Failures of 2-4 are audited (throttled, see above). Reads the row from D1's primary on
 * every call, so a rotation, a disable or an expiry counts from the next request on.
 * Call it where a route (or the admin guard) has the request context: it reads the
 * headers, c.get('clientIp') and c.req.path, and sets X-RateLimit-* on the answer.
 */
export async function authenticateApiClient(c: Context<AppEnv>): Promise<ClientPrincipal> {
  const clientKey = c.req.header(CLIENT_KEY_HEADER)?.trim() ?? ''
  const apiKey = c.req.header(API_KEY_HEADER)?.trim() ?? ''
  if (!clientKey || !apiKey) throw ApiClientErrors.api_client_credentials_missing()

  const [client, presentedHash] = await Promise.all([
    CLIENT_KEY_RE.test(clientKey) ? findApiClientByKey(c.env, clientKey) : Promise.resolve(undefined),
    hashApiKey(apiKey.slice(0, MAX_API_KEY_LENGTH)),
  ])
  const hashMatches = timingSafeEqual(presentedHash, client?.apiKeyHash ?? NO_CLIENT_HASH)
  if (!client || !hashMatches || apiKey.length > MAX_API_KEY_LENGTH) {
    await auditFailure(c, client ? 'wrong_key' : 'unknown_client', clientKey, client)
    throw ApiClientErrors.invalid_api_client()
  }

  const now = Date.now()
  const refuse = async (reason: FailureReason, error: Error) => {
    await auditFailure(c, reason, clientKey, client)
    return error
  }
  if (client.status !== 'ACTIVE') throw await refuse('disabled', ApiClientErrors.api_client_disabled())
  if (client.expiresAt !== null && client.expiresAt <= now) throw await refuse('expired', ApiClientErrors.api_client_expired())

  if (client.allowedIps.length && !ipInAllowlist(c.get('clientIp'), client.allowedIps)) {
    throw await refuse('ip_not_allowed', ApiClientErrors.api_client_ip_not_allowed({ details: { ip: c.get('clientIp') } }))
  }
  const origin = c.req.header('Origin')
  if (origin !== undefined && client.allowedOrigins.length && !originInAllowlist(origin, client.allowedOrigins)) {
    throw await refuse('origin_not_allowed', ApiClientErrors.api_client_origin_not_allowed({ details: { origin: origin.slice(0, 200) } }))
  }
  const path = c.req.path
  if (client.allowedPaths.length && !client.allowedPaths.some((p) => pathUnder(path, p))) {
    throw await refuse('path_not_allowed', ApiClientErrors.api_client_path_not_allowed({ details: { path: path.slice(0, 200) } }))
  }

  applyRateLimit(c, API_CLIENT_RATE_POLICY, await countHit(c.env, `${API_CLIENT_RATE_POLICY}:${client.id}`, client.rateLimitPerMinute, 60))

  const touch = recordApiClientUse(c.env, client, now).catch((e: Error) => log.warn('api_client.last_used_failed', { request_id: c.get('requestId'), error: e.message }))
  try {
    c.executionCtx.waitUntil(touch)
  } catch {
    // no execution context (called outside a Worker request): write it before answering
    await touch
  }

  return {
    kind: 'client',
    clientId: client.id,
    clientKey: client.clientKey,
    grants: [{ rights: [...client.rights], scope: { groups: [...client.scope.groups], users: [...client.scope.users], apps: [...client.scope.apps] }, source: { type: 'api_client', id: client.id } }],
  }
}
