import type { Context } from 'hono'
import { z } from '@hono/zod-openapi'
import type { AppEnv } from '../context'
import type { Application } from '../apps/schema'
import { findApplication, getAppSecret } from '../apps/service'
import { ApiError } from '../lib/errors'
import { timingSafeEqual } from '../lib/crypto'
import { getDb } from '../db'
import { auditStatement } from '../audit/service'
import { firstUse } from '../ratelimit/counters'
import { hitRateLimit, ipRateKey, rateLimitedError } from '../ratelimit'
import type { HitResult } from '../ratelimit/durable-object'
import { log } from '../lib/logger'

/**
 * The `oauth_ip` count of each /oauth2 request, started by the router's middleware
 * (src/oidc/routes.ts) without waiting, so it shares a round trip with the endpoint's
 * first read; `oauthRateLimitPassed` waits for it before anything is written.
 */
const pendingLimits = new WeakMap<Request, Promise<HitResult>>()

export function startOauthRateLimit(c: Context<AppEnv>): Promise<HitResult> {
  const p = hitRateLimit(c.env, 'oauth_ip', c.get('clientIp'))
  p.catch(() => {})
  pendingLimits.set(c.req.raw, p)
  return p
}

/**
 * A 200 that still refuses (introspection's `active: false`): counted by `oauth_ip` like an
 * error (src/oidc/routes.ts).
 */
const refusedAnswers = new WeakSet<Request>()
export function markRefusedAnswer(c: Context<AppEnv>) {
  refusedAnswers.add(c.req.raw)
}
export function refusedAnswer(c: Context<AppEnv>): boolean {
  return refusedAnswers.has(c.req.raw)
}

/** Throws the 429 (answered in the OAuth shape by the router) when this request's oauth_ip count was refused. */
export async function oauthRateLimitPassed(c: Context<AppEnv>): Promise<void> {
  const p = pendingLimits.get(c.req.raw)
  if (!p) return
  const r = await p
  if (!r.allowed) throw rateLimitedError('oauth_ip', r)
}

/**
 * Failed client authentication for a client_id that names no application is audited at
 * most once per window per client IP (IPv6 per /64): made-up ids would otherwise buy one
 * audit row per request. Every such failure is still logged and counted by `oauth_ip`.
 */
export const UNKNOWN_CLIENT_AUDIT_WINDOW_S = 600

/**
 * OAuth 2.0 error (RFC 6749 §5.2). The token, revocation, introspection and userinfo
 * endpoints answer `{ "error", "error_description" }` instead of the product's usual
 * `{ "error": { code, message, request_id } }` body, because OAuth clients (openid-client
 * and every other RP library) parse exactly that shape. docs/oidc.md says so.
 */
/**
 * An error_description as RFC 6749 §5.2 and §4.1.2.1 (and RFC 6750 §3) allow it: printable
 * ASCII without `"` and `\`. Descriptions cite RFC sections with "§"; that becomes
 * "section", quotes become apostrophes, anything else outside the set a "?".
 */
export const oauthText = (s: string) =>
  s
    .replace(/§\s*/g, 'section ')
    .replace(/"/g, "'")
    .replace(/\\/g, '/')
    .replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, '?')

export class OAuthError extends Error {
  readonly description: string
  constructor(
    readonly error: string,
    description: string,
    readonly status: 400 | 401 | 403 = 400,
    readonly headers: Record<string, string> = {},
  ) {
    super(description)
    this.description = oauthText(description)
  }
}

export const OAuthErrorBody = z
  .object({
    error: z.string().openapi({ example: 'invalid_grant' }),
    error_description: z.string().optional().openapi({ example: 'The authorization code was already used; the tokens issued with it have been revoked' }),
  })
  .openapi('OAuthError')

export const oauthErrors = (...codes: (400 | 401 | 403)[]) =>
  Object.fromEntries(
    codes.map((code) => [
      code,
      {
        description: { 400: 'OAuth error (RFC 6749 §5.2): invalid_request, invalid_grant, unsupported_grant_type, invalid_scope, unauthorized_client ...', 401: 'invalid_client (client authentication failed) or invalid_token', 403: 'insufficient_scope' }[code],
        content: { 'application/json': { schema: OAuthErrorBody } },
      },
    ]),
  ) as Record<400 | 401 | 403, { description: string; content: { 'application/json': { schema: typeof OAuthErrorBody } } }>

export function noStore(c: Context) {
  // RFC 6749 §5.1: responses carrying tokens or credentials must not be cached.
  c.header('Cache-Control', 'no-store')
  c.header('Pragma', 'no-cache')
}

export function oauthErrorResponse(c: Context, err: OAuthError) {
  noStore(c)
  for (const [k, v] of Object.entries(err.headers)) c.header(k, v)
  return c.json({ error: err.error, error_description: err.description }, err.status)
}

/**
 * Runs an OAuth endpoint; OAuth errors, and `invalid_grant` / `invalid_scope` from refresh
 * rotation (src/auth/tokens.ts), become RFC 6749 §5.2 bodies (invalid_grant is a 400 there, not a 401).
 */
export async function oauthEndpoint<T>(c: Context, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (e) {
    // The error body is the OAuthError response every such route declares (oauthErrors below).
    if (e instanceof OAuthError) return oauthErrorResponse(c, e) as T
    if (e instanceof ApiError && (e.code === 'invalid_grant' || e.code === 'invalid_scope')) return oauthErrorResponse(c, new OAuthError(e.code, e.message)) as T
    throw e
  }
}

/** RFC 6749 §3.2 / RFC 7009 §2.1 / RFC 7662 §2.1: parameters come form-encoded. */
export async function formBodyOnly(c: Context<AppEnv>, next: () => Promise<void>) {
  const ct = c.req.header('Content-Type') ?? ''
  if (!/^application\/x-www-form-urlencoded(\s*;|$)/i.test(ct)) {
    return oauthErrorResponse(c, new OAuthError('invalid_request', 'The request body must be application/x-www-form-urlencoded (RFC 6749 §3.2)'))
  }
  await next()
}

/** Validation hook for OAuth endpoints: a bad parameter is `invalid_request` in the OAuth shape. */
export function oauthHook(result: { success: true } | { success: false; error: z.ZodError }, c: Context<AppEnv>) {
  if (!result.success) {
    const issue = result.error.issues[0]
    const name = issue?.path.join('.') || 'body'
    const message = issue?.code === 'invalid_type' ? `${name} must be given once, as a string (RFC 6749 §3.1)` : `${name}: ${issue?.message ?? 'invalid'}`
    return oauthErrorResponse(c, new OAuthError('invalid_request', message))
  }
}

/** Optional string parameter with a length cap (OAuth parameters are never repeated). */
export const param = (max = 2048) => z.string().max(max).optional()

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none'

function decodeFormComponent(s: string): string {
  return decodeURIComponent(s.replace(/\+/g, ' '))
}

/**
 * Client authentication (RFC 6749 §2.3). HTTP Basic carries the form-urlencoded client_id
 * and secret (§2.3.1); client_secret_post carries them in the body; public clients (method
 * `none`) only name themselves. The method registered for the app is the only one accepted,
 * one method per request, secrets compared in constant time.
 */
export async function authenticateClient(
  c: Context<AppEnv>,
  form: { client_id?: string; client_secret?: string },
  opts: {
    allowPublic: boolean
    /**
     * The app row the endpoint's own read joined to the presented token: when it is this
     * client's, client authentication needs no read of its own. Otherwise (no token,
     * another client's, a failed read) the row is read by id.
     */
    knownApp?: Promise<Application | null | undefined>
  },
): Promise<{ app: Application; method: ClientAuthMethod }> {
  const header = c.req.header('Authorization')
  const fail = (description: string) =>
    new OAuthError('invalid_client', description, 401, { 'WWW-Authenticate': 'Basic realm="uap-edge", charset="UTF-8"' })

  let basic: { id: string; secret: string } | null = null
  if (header) {
    const m = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header)
    if (!m) throw fail('Unsupported or malformed Authorization header; use HTTP Basic with the client_id and client_secret')
    try {
      const raw = new TextDecoder().decode(Uint8Array.from(atob(m[1]), (ch) => ch.charCodeAt(0)))
      const i = raw.indexOf(':')
      if (i < 0) throw new Error('no colon')
      basic = { id: decodeFormComponent(raw.slice(0, i)), secret: decodeFormComponent(raw.slice(i + 1)) }
    } catch {
      throw fail('Malformed HTTP Basic credentials')
    }
  }
  if (basic && form.client_secret !== undefined) throw new OAuthError('invalid_request', 'Use one client authentication method per request (RFC 6749 §2.3)')
  if (basic && form.client_id !== undefined && form.client_id !== basic.id) throw new OAuthError('invalid_request', 'client_id in the body differs from the HTTP Basic credentials')

  const clientId = basic?.id ?? form.client_id
  if (!clientId) throw fail('Client authentication is required')
  const method: ClientAuthMethod = basic ? 'client_secret_basic' : form.client_secret !== undefined ? 'client_secret_post' : 'none'
  // The client's lookup shares its round trip with the per-IP count; a refused count wins, and nothing is written before it.
  // callers pass it settled to undefined on failure: it may go unawaited when the request is refused earlier
  const joined = await opts.knownApp
  const known = joined?.appId === clientId ? joined : undefined
  const [app] = await Promise.all([known ?? findApplication(c.env, clientId), oauthRateLimitPassed(c)])
  const refuse = async (description: string, reason: string) => {
    const ip = c.get('clientIp')
    // A known client's failures are all audited; an unknown id's once per window and network.
    const audited = app ? true : await firstUse(c.env, `oidc_unknown_client:${ipRateKey(ip)}`, UNKNOWN_CLIENT_AUDIT_WINDOW_S)
    if (!app) log.warn('oidc.client_auth_failed', { request_id: c.get('requestId'), reason, method, audited })
    if (audited) {
      const db = getDb(c.env.DB)
      await db.batch([
        auditStatement(db, {
          action: 'oidc.client_auth_failed',
          actorType: 'app',
          actorId: clientId.slice(0, 64),
          targetType: 'application',
          targetId: app?.appId ?? null,
          requestId: c.get('requestId'),
          ip,
          details: app ? { reason, method } : { reason, method, audited: `the first per ${UNKNOWN_CLIENT_AUDIT_WINDOW_S} s from this network` },
        }),
      ])
    }
    return fail(description)
  }
  // The same answer for an unknown, a disabled and a non-OIDC client (no probing for app ids).
  if (!app) throw await refuse('Unknown or disabled client', 'unknown_client')
  if (app.protocolType !== 'OIDC' || app.status !== 'ACTIVE') throw await refuse('Unknown or disabled client', 'inactive_client')
  if (method !== app.tokenEndpointAuthMethod) {
    throw await refuse(`This client is registered for token_endpoint_auth_method ${app.tokenEndpointAuthMethod}, not ${method}`, 'wrong_method')
  }
  if (method === 'none') {
    if (!opts.allowPublic) throw await refuse('This endpoint requires a confidential client (client_secret_basic or client_secret_post)', 'public_client')
    return { app, method }
  }
  const presented = basic ? basic.secret : form.client_secret!
  if (!timingSafeEqual(await getAppSecret(c.env, app), presented)) throw await refuse('Client authentication failed', 'wrong_secret')
  return { app, method }
}
