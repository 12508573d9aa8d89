import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { API_AUDIENCE } from '../auth/tokens'
import { AuthErrors } from '../auth/errors'
import { firstPartyToken } from '../auth/guards'
import { authenticateApiClient } from '../apiclients/auth'
import { API_KEY_HEADER, CLIENT_KEY_HEADER } from '../apiclients/schema'
import { DelegationErrors } from './errors'
import type { Principal } from './model'
import { findAdminRoute, type AdminRoute } from './rights'
import { assertParamsInScope } from './scope'
import { grantsOfUser } from './service'


/**
 * The admin API's guard (/api/v1/admin/*). Resolves who calls: an API client (X-Client-Key,
 * authenticated by src/apiclients/auth.ts), a full admin (role ADMIN) or a sub-admin (a
 * user in at least one admin group, holding that group's grant); anyone else is refused as
 * before. Then the right the matched route declares (src/delegation/rights.ts) must be held
 * by some grant, and every object the path names must lie in the scope of the grants that
 * hold it, before the handler runs. Objects named in bodies and lists are checked by the
 * handlers with src/delegation/scope.ts against the same right.
 */
export function adminGuard(routes: () => AdminRoute[]): MiddlewareHandler<AppEnv> {
  let table: AdminRoute[] | undefined
  return async (c, next) => {
    const principal = await resolvePrincipal(c)
    c.set('principal', principal)
    const found = findAdminRoute((table ??= routes()), c.req.method, c.req.path)
    const right = found?.route.right
    if (principal.kind === 'admin') {
      if (right) c.set('adminRight', right)
      return next()
    }
    // a path no route declares a right for is closed to everyone but full admins
    if (!found || !right) throw DelegationErrors.right_missing({ message: 'This route declares no right, so only full admins may use it' })
    if (right === 'admin') throw DelegationErrors.admin_only()
    if (!principal.grants.some((g) => g.rights.includes(right))) throw DelegationErrors.right_missing({ message: `None of your admin grants holds the right ${right}`, details: { right } })
    c.set('adminRight', right)
    await assertParamsInScope(c, found.route.params, found.params)
    await next()
  }
}

async function resolvePrincipal(c: Parameters<MiddlewareHandler<AppEnv>>[0]): Promise<Principal> {
  // either API-client header makes it an API client's call, refused as such when the other is missing (docs/api-clients.md)
  if (c.req.header(CLIENT_KEY_HEADER) !== undefined || c.req.header(API_KEY_HEADER) !== undefined) return authenticateApiClient(c)
  const v = await firstPartyToken(c)
  if (!v.audience.includes(API_AUDIENCE)) throw AuthErrors.not_admin_audience()
  c.set('auth', v)
  if (v.role === 'ADMIN') return { kind: 'admin', userId: v.userId }
  const grants = await grantsOfUser(c.env, v.userId)
  if (!grants.length) throw AuthErrors.not_admin()
  // admin power, admin lifetimes: a sub-admin's session is held to ADMIN_SESSION_TTL and
  // ADMIN_SESSION_IDLE_TIMEOUT here, though it lives on for the rest of the product
  if (!v.adminGradeLive) throw AuthErrors.admin_session_expired()
  return { kind: 'subadmin', userId: v.userId, grants }
}
