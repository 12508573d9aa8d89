import { HTTPException } from 'hono/http-exception'
import { bodyLimit } from 'hono/body-limit'
import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { router } from './context'
import type { AppEnv } from './context'
import { ApiError, errorResponse } from './lib/errors'
import { requestContext } from './lib/middleware'
import { adminGuard } from './delegation/guard'
import { adminRouteTable } from './delegation/rights'
import { delegationRoutes } from './delegation/routes'
import { log } from './lib/logger'
import { ConfigError, getConfig } from './env'
import { bootstrapAdminEnsured, ensureBootstrapAdmin } from './users/service'
import { healthRoutes } from './health/routes'
import { authRoutes } from './auth/routes'
import { adminKeyRoutes, keyRoutes } from './keys/routes'
import { adminUserRoutes } from './users/admin-routes'
import { auditRoutes } from './audit/routes'
import { ssoPageRoutes, ticketRoutes } from './tickets/routes'
import { mountDocs } from './docs/routes'
import { documentPages } from './pages/openapi'
import { captchaRoutes } from './captcha/routes'
import { smsRoutes } from './sms/routes'
import { passwordResetRoutes, registerRoutes } from './account/routes'
import { pageCsrf, pageErrorResponse, pageRefusalResponse, pageRoutes } from './pages/routes'
import { pageHeaders } from './pages/security'
import { devRoutes } from './dev/routes'
import { isBrowserEndpoint, oauthRoutes } from './oidc/routes'
import { discoveryRoutes } from './oidc/discovery-routes'
import { consentRoutes } from './oidc/consent-routes'
import { adminAppRoutes } from './apps/admin-routes'
import { signingRoutes } from './signing/routes'
import { partnerMappingRoutes } from './mappings/partner-routes'
import { adminMappingRoutes } from './mappings/admin-routes'
import { federationRoutes, identityRoutes } from './federation/routes'
import { adminIdentityProviderRoutes } from './federation/admin-routes'
import { federationPageRoutes } from './federation/pages'
import { documentFederationPages } from './federation/openapi'
import { adminGroupRoutes, adminGroupTypeRoutes, adminUserGroupRoutes } from './directory/admin-routes'
import { adminPermissionRoutes } from './permissions/admin-routes'
import { partnerPermissionRoutes } from './permissions/partner-routes'
import { mePermissionRoutes } from './permissions/me-routes'
import { adminWebhookRoutes, documentWebhooks } from './webhooks/routes'
import { mappingImportRoutes, userImportRoutes } from './importer/routes'
import { MAX_FILE_BYTES } from './importer/parse'
import { portalRoutes } from './portal/routes'
import { documentPortal } from './portal/openapi'
import { adminApiClientRoutes } from './apiclients/routes'

export const MAX_BODY_BYTES = 1024 * 1024
export const MAX_UPLOAD_BYTES = MAX_FILE_BYTES + 64 * 1024
const UPLOAD_PATHS = [/^\/api\/v1\/apps\/[^/]+\/mapping\/preview\/?$/, /^\/api\/v1\/admin\/users\/import\/preview\/?$/]
export const MISCONFIGURED_MESSAGE = 'The service is misconfigured; its operator finds the reason in the logs under this request id'
const PROBES = new Set(['/livez', '/healthz'])

/** The most bytes a request body may have on this path: file uploads (bulk import previews) take 10 MB plus the multipart framing. */
export const bodyLimitOf = (path: string): number => (UPLOAD_PATHS.some((re) => re.test(path)) ? MAX_UPLOAD_BYTES : MAX_BODY_BYTES)

/**
 * The error body a path answers with when the failure happens outside its handler (body
 * limit, a body the parser refuses, an unexpected error): an HTML page where browsers land
 * (the hosted pages and the OIDC endpoints that render pages), the RFC 6749 §5.2 body on
 * the OAuth endpoints that answer JSON, the API's error body everywhere else. The OpenAPI
 * documents describe these responses from the same function (src/docs/routes.ts).
 */
export type ErrorShape = 'html' | 'oauth' | 'json'
export function errorShapeOf(path: string): ErrorShape {
  if (path.startsWith('/page/') || isBrowserEndpoint(path)) return 'html'
  if (path.startsWith('/oauth2/')) return 'oauth'
  return 'json'
}

export function buildApp() {
  const app = router()

  app.use('*', requestContext)
  app.use('*', (c, next) => {
    getConfig(c.env) // refuses to serve with missing or dev-grade secrets in production
    // probes must answer (and /healthz report a D1 outage as 503) without touching users;
    // once the admin exists (every request after an isolate's first) no await is added
    if (PROBES.has(c.req.path) || bootstrapAdminEnsured(c.env)) return next()
    return ensureBootstrapAdmin(c.env).then(next)
  })
  // file uploads (bulk import previews) may be up to 10 MB plus the multipart framing; everything else 1 MiB
  const limit = (maxSize: number) => bodyLimit({ maxSize, onError: (c) => errorInShape(c as Context<AppEnv>, 413, 'payload_too_large', `Request body exceeds ${maxSize} bytes`) })
  // one middleware picking its limiter by path: hono/combine's except() builds a middleware chain on every request, which cost every route about 0.03 ms of CPU
  const uploadLimit = limit(MAX_UPLOAD_BYTES)
  const defaultLimit = limit(MAX_BODY_BYTES)
  // a request without a body (every GET) passes straight on, as hono's bodyLimit would after an async call of its own
  app.use('*', (c, next) => (c.req.raw.body === null ? next() : (bodyLimitOf(c.req.path) === MAX_UPLOAD_BYTES ? uploadLimit : defaultLimit)(c, next)))

  // cross-cutting guards, by URL space
  // a full admin's or a sub-admin's bearer token, or an API client's keys; each route's declared right and scope (src/delegation/)
  app.use('/api/v1/admin/*', adminGuard(() => adminRouteTable(app.openAPIRegistry)))
  app.use('/page/*', pageHeaders) // strict CSP, no framing, no caching on every hosted page
  app.post('/page/*', pageCsrf) // every hosted form is CSRF-checked

  // the URL space
  app.route('/', healthRoutes) // /healthz, /livez
  app.route('/.well-known', keyRoutes) // jwks.json
  app.route('/.well-known', discoveryRoutes) // openid-configuration
  app.route('/oauth2', oauthRoutes) // authorize, token, userinfo, revoke, introspect, end_session

  app.route('/api/v1/auth', authRoutes) // login, refresh, logout, logout-all, me
  app.route('/api/v1/auth', registerRoutes) // register
  app.route('/api/v1/auth/federation', federationRoutes) // providers, {provider}/login, {provider}/callback, bind/*
  app.route('/api/v1/auth/me/identities', identityRoutes) // the user's linked identities
  app.route('/api/v1/auth', mePermissionRoutes) // me/permissions
  app.route('/api/v1/utils', captchaRoutes) // captcha

  app.route('/api/v1/open', signingRoutes) // ping (signed)
  app.route('/api/v1/open/sms', smsRoutes) // send (signed)
  app.route('/api/v1/open/pwd', passwordResetRoutes) // reset (signed)
  app.route('/api/v1/simple/ticket', ticketRoutes) // exchange, verify (signed)
  app.route('/api/v1/apps', partnerMappingRoutes) // mapping/sync, {app_id}/users/query, {app_id}/users/changes
  app.route('/api/v1/apps', partnerPermissionRoutes) // {app_id}/permissions/snapshot, {app_id}/permissions/check (token or signed)
  app.route('/api/v1/apps', mappingImportRoutes) // {app_id}/mapping/preview, /import, /export

  app.route('/api/v1/admin/users', userImportRoutes) // import/preview, import, export (before {id})
  app.route('/api/v1/admin/users', adminUserRoutes)
  app.route('/api/v1/admin/users', adminUserGroupRoutes) // {id}/groups
  app.route('/api/v1/admin/group-types', adminGroupTypeRoutes)
  app.route('/api/v1/admin/groups', adminGroupRoutes) // groups, {group_id}/members
  app.route('/api/v1/admin/apps', adminAppRoutes)
  app.route('/api/v1/admin/apps', adminMappingRoutes) // {app_id}/mappings
  app.route('/api/v1/admin/apps', adminPermissionRoutes) // {app_id}/permissions, {app_id}/grants, {app_id}/users/{user_id}/permissions
  app.route('/api/v1/admin/apps', adminWebhookRoutes) // {app_id}/webhooks, …/events, …/retry-failed, …/test, …/secret/rotate
  app.route('/api/v1/admin/audit', auditRoutes)
  app.route('/api/v1/admin/keys', adminKeyRoutes) // rotate
  app.route('/api/v1/admin/identity-providers', adminIdentityProviderRoutes)
  app.route('/api/v1/admin/admin-groups', delegationRoutes) // sub-admins: rights over a scope, members
  app.route('/api/v1/admin/api-clients', adminApiClientRoutes) // machine credentials for the admin API; rotate, disable, enable, expire

  app.route('/page', pageRoutes) // login, register, pwd/reset, logout, assets
  app.route('/page/consent', consentRoutes) // the OIDC consent page
  app.route('/page/sso', ssoPageRoutes) // simple: the ticket hop into a SIMPLE_API app
  app.route('/page/federation', federationPageRoutes) // start, {provider}/callback, bind, identities
  app.route('/page/home', portalRoutes) // the user's portal: my apps, profile, security, sessions, authorized apps

  app.route('/api/v1/dev', devRoutes) // development and test only
  // /docs/admin and /docs/open (+ openapi.json): generated from every route above
  documentPages(app.openAPIRegistry)
  documentWebhooks(app.openAPIRegistry) // the call UAP Edge makes to notification_url (OpenAPI 3.1 `webhooks`)
  documentFederationPages(app.openAPIRegistry)
  documentPortal(app.openAPIRegistry)
  mountDocs(app, { shapeOf: errorShapeOf, maxBodyBytes: MAX_BODY_BYTES })

  app.notFound((c) => {
    const allowed = allowedMethods(app.routes, c.req.path)
    // a person who mistyped a hosted page's address reads a page, in their language
    const page = c.req.path.startsWith('/page/')
    // a handler that matched this method but found nothing (c.notFound()) is a 404, not a 405
    if (allowed.length && !allowed.includes(c.req.method)) {
      c.header('Allow', allowed.join(', '))
      if (page) return pageErrorResponse(c, 405)
      return errorResponse(c, 405, 'method_not_allowed', `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(', ')}`)
    }
    if (page) return pageErrorResponse(c, 404)
    return errorResponse(c, 404, 'not_found', `No route for ${c.req.method} ${c.req.path}`)
  })
  app.onError((err, c) => handleError(err, c as Context<AppEnv>))
  return app
}

/** An error answered by the app rather than a route, in the shape of the path (errorShapeOf). */
function errorInShape(c: Context<AppEnv>, status: ContentfulStatusCode, code: string, message: string, details?: unknown) {
  const shape = errorShapeOf(c.req.path)
  if (shape === 'html') return pageErrorResponse(c, status)
  if (shape === 'oauth') {
    // RFC 6749 §5.2 has no code for a server failure; server_error is §4.1.2.1's
    c.header('Cache-Control', 'no-store')
    return c.json({ error: status < 500 ? 'invalid_request' : 'server_error', error_description: message }, status)
  }
  return errorResponse(c, status, code, message, details)
}

function handleError(err: Error, c: Context<AppEnv>) {
  // a refusal on a hosted page (the ticket hop, the consent page) is a page a person reads
  if (err instanceof ApiError && c.req.path.startsWith('/page/')) return pageRefusalResponse(c, err)
  if (err instanceof ApiError) return errorResponse(c, err.status, err.code, err.message, err.details, err.headers)
  if (err instanceof HTTPException) {
    const status = err.status
    if (status === 400 && /json/i.test(err.message)) return errorInShape(c, 400, 'malformed_json', 'The request body is not valid JSON')
    if (status === 413) return errorInShape(c, 413, 'payload_too_large', err.message)
    // @hono/zod-openapi answers a body in an undeclared media type with 415; the API's
    // convention is one 400 invalid_request for every malformed request.
    if (status === 415) {
      const ct = c.req.header('Content-Type')
      return errorInShape(c, 400, 'invalid_request', `Content-Type ${ct ? `"${ct}"` : '(missing)'} is not accepted; send application/json`, { content_type: ct ?? null })
    }
    if (status < 500) return errorInShape(c, status as 400, 'invalid_request', err.message || 'Bad request')
  }
  if (err instanceof ConfigError) {
    // what is wrong (a variable's name, a key id) is for the operator's log, not for whoever called
    log.error('config', { request_id: c.get('requestId'), error: err.message })
    return errorResponse(c, 503, 'misconfigured', MISCONFIGURED_MESSAGE)
  }
  log.error('unhandled', { request_id: c.get('requestId'), error: err.message, stack: err.stack })
  return errorInShape(c, 500, 'internal_error', 'Internal error')
}

/** Methods registered for a path, so a wrong method gets 405 instead of 404. */
function allowedMethods(routes: { path: string; method: string }[], path: string): string[] {
  const methods = new Set<string>()
  for (const r of routes) {
    if (r.method === 'ALL' || r.path.includes('*')) continue
    const re = new RegExp('^' + r.path.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z0-9_]+(\{[^}]*\})?/g, '[^/]+') + '/?$')
    if (re.test(path)) methods.add(r.method)
  }
  return [...methods]
}
