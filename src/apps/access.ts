import type { Context, MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { APP_TOKEN_HEADER, type Application } from './schema'
import { AppErrors } from './errors'
import { sha256Hex, timingSafeEqual } from '../lib/crypto'
import { requireAdmin } from '../auth/guards'
import { enforceRateLimit, ipRateKey } from '../ratelimit'
import { firstUse } from '../ratelimit/counters'
import { getDb } from '../db'
import { auditStatement } from '../audit/service'
import { log } from '../lib/logger'
import { findApplication, findApplicationByAccessToken } from './service'

export { APP_TOKEN_HEADER }

const TOKEN_RE = /^[A-Za-z0-9_-]{16,128}$/

/**
 * A wrong app token names no app, so its failures are audited as an unknown API client's
 * are: at most once per this window per network (IPv6 per /64), or made-up tokens would
 * buy a row per request. Every failure is logged.
 */
export const INVALID_TOKEN_AUDIT_WINDOW_S = 600

async function auditInvalidToken(c: Context<AppEnv>) {
  const ip = c.get('clientIp')
  const audited = await firstUse(c.env, `app_token_invalid:${ipRateKey(ip)}`, INVALID_TOKEN_AUDIT_WINDOW_S)
  log.warn('app_token.invalid', { request_id: c.get('requestId'), path: c.req.path, audited })
  if (!audited) return
  const db = getDb(c.env.DB)
  await db.batch([auditStatement(db, { action: 'app_token.invalid', actorType: 'anonymous', requestId: c.get('requestId'), ip, details: { method: c.req.method, path: c.req.path, window_s: INVALID_TOKEN_AUDIT_WINDOW_S } })])
}

/**
 * `X-App-Access-Token`: the app's long-lived machine credential. Looked up by its SHA-256
 * (the stored form), then compared in constant time; the app must be ACTIVE. Counts one hit
 * on the per-IP limit before the lookup and on the per-app limit after. Sets `c.var.app`.
 */
export const requireAppToken: MiddlewareHandler<AppEnv> = async (c, next) => {
  await enforceRateLimit(c, 'partner_ip', c.get('clientIp'))
  const token = c.req.header(APP_TOKEN_HEADER)
  if (!token) throw AppErrors.app_token_missing({ message: `${APP_TOKEN_HEADER} is required` })
  const app = TOKEN_RE.test(token) ? await findApplicationByAccessToken(c.env, token) : undefined
  // the lookup is an equality on a hash; the explicit compare keeps the check constant-time whatever the index does
  if (!app || !timingSafeEqual(app.accessTokenHash, await sha256Hex(token))) {
    await auditInvalidToken(c)
    throw AppErrors.app_token_invalid()
  }
  if (app.status !== 'ACTIVE') throw AppErrors.app_disabled()
  await enforceRateLimit(c, 'app_token', app.appId)
  c.set('app', app)
  await next()
}

/**
 * Mapping endpoints accept either the app's own access token (that app only) or an admin
 * bearer token (any app). An X-App-Access-Token header, when present, takes precedence.
 */
export const requireAppOrAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.header(APP_TOKEN_HEADER) !== undefined) return requireAppToken(c, next)
  if (c.req.header('Authorization') !== undefined) return requireAdmin(c, next)
  throw AppErrors.app_token_missing({ message: `Send ${APP_TOKEN_HEADER} (or an admin bearer token)`, headers: { 'WWW-Authenticate': 'Bearer realm="uap-edge"' } })
}

/**
 * The application a request acts on. An app token may only name its own app (403
 * app_mismatch otherwise, without saying whether the other app exists); an admin may name
 * any existing app.
 */
export async function targetApp(c: Context<AppEnv>, appId: string | undefined): Promise<Application> {
  const caller = c.get('app')
  if (caller) {
    if (appId !== undefined && appId !== caller.appId) throw AppErrors.app_mismatch()
    return caller
  }
  if (!appId) throw AppErrors.app_id_required()
  const app = await findApplication(c.env, appId)
  if (!app) throw AppErrors.target_app_not_found()
  return app
}
