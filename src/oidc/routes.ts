import { createRoute, z } from '@hono/zod-openapi'
import { cors } from 'hono/cors'
import type { Context } from 'hono'
import { eq } from 'drizzle-orm'
import { OPEN } from '../lib/openapi'
import { router } from '../context'
import type { AppEnv } from '../context'
import { getConfig } from '../env'
import { ApiError } from '../lib/errors'
import { getDb } from '../db'
import { refreshTokens } from '../auth/schema'
import { rotateRefreshToken, verifyAccessToken } from '../auth/tokens'
import { findApplication } from '../apps/service'
import { readBrowserSession } from '../auth/browser-session'
import { auditStatement } from '../audit/service'
import { sha256Hex } from '../lib/crypto'
import { OAuthError, authenticateClient, formBodyOnly, noStore, oauthEndpoint, oauthErrors, oauthHook, param } from './oauth'
import { continueAuthorization, redirectWithError, startAuthorization, SUPPORTED_PROMPTS } from './authorize'
import { consentPage, csrfToken, csrfValid, errorPage } from './pages'
import { endSession } from './logout'
import { pageHeaders } from '../pages/security'
import {
  CLAIMS_SUPPORTED,
  SUPPORTED_SCOPES,
  activeMappedKey,
  deletePending,
  introspect,
  loadPending,
  mintClientToken,
  parseScope,
  recordConsent,
  redeemCode,
  revokeToken,
  userinfoClaims,
} from './service'

export const oidcRoutes = router()
oidcRoutes.openAPIRegistry.registerComponent('securitySchemes', 'clientBasic', {
  type: 'http',
  scheme: 'basic',
  description: 'client_secret_basic: HTTP Basic of the form-urlencoded client_id and client_secret (RFC 6749 §2.3.1)',
})

/** Browser-based public clients (SPAs) call these cross-origin; no cookies are involved. */
for (const path of ['/oauth2/token', '/oauth2/userinfo', '/oauth2/revoke']) {
  oidcRoutes.use(path, cors({ origin: '*', allowMethods: ['GET', 'POST', 'OPTIONS'], allowHeaders: ['Authorization', 'Content-Type'], maxAge: 600 }))
}
// Public metadata, read with a plain GET (the JWKS does the same, src/keys/routes.ts).
oidcRoutes.use('/.well-known/openid-configuration', cors({ origin: '*', allowMethods: ['GET'], maxAge: 600 }))

/**
 * Every HTML answer of the OIDC endpoints (error pages, consent, sign-out confirmation)
 * gets the hosted pages' headers: strict CSP, no framing, nosniff, no-store. /page/consent
 * is also covered by the /page/* middleware; listing it keeps it covered whatever the
 * order in which app.ts mounts the routers.
 */
for (const path of ['/oauth2/authorize', '/oauth2/end_session', '/page/consent']) oidcRoutes.use(path, pageHeaders)

const TAG = 'OpenID Connect'
/** HTTP Basic, or nothing in the header (client_secret_post and public clients authenticate in the body). */
const clientSecurity: Record<string, string[]>[] = [{ clientBasic: [] }, {}]
const form = <T extends z.ZodType>(schema: T, required = true) => ({ content: { 'application/x-www-form-urlencoded': { schema } }, required })
const html = (description: string) => ({ description, content: { 'text/html': { schema: z.string() } } })
const redirect = (description: string) => ({ description, headers: z.object({ Location: z.string().openapi({ example: 'https://app.example.com/callback?code=Qx3...&state=af0ifjsldkj&iss=https%3A%2F%2Fid.example.com' }) }) })

// ---------------------------------------------------------------- discovery

const Discovery = z
  .object({
    issuer: z.string(),
    authorization_endpoint: z.string(),
    token_endpoint: z.string(),
    userinfo_endpoint: z.string(),
    jwks_uri: z.string(),
    revocation_endpoint: z.string(),
    introspection_endpoint: z.string(),
    end_session_endpoint: z.string(),
    scopes_supported: z.array(z.string()),
    response_types_supported: z.array(z.string()),
    response_modes_supported: z.array(z.string()),
    grant_types_supported: z.array(z.string()),
    subject_types_supported: z.array(z.string()),
    id_token_signing_alg_values_supported: z.array(z.string()),
    token_endpoint_auth_methods_supported: z.array(z.string()),
    revocation_endpoint_auth_methods_supported: z.array(z.string()),
    introspection_endpoint_auth_methods_supported: z.array(z.string()),
    claims_supported: z.array(z.string()),
    claim_types_supported: z.array(z.string()),
    code_challenge_methods_supported: z.array(z.string()),
    prompt_values_supported: z.array(z.string()),
    claims_parameter_supported: z.boolean(),
    request_parameter_supported: z.boolean(),
    request_uri_parameter_supported: z.boolean(),
    authorization_response_iss_parameter_supported: z.boolean(),
    backchannel_logout_supported: z.boolean(),
    backchannel_logout_session_supported: z.boolean(),
    service_documentation: z.string(),
  })
  .openapi('OpenIdConfiguration')

export function discoveryDocument(issuer: string): z.infer<typeof Discovery> {
  return {
    issuer,
    authorization_endpoint: `${issuer}/oauth2/authorize`,
    token_endpoint: `${issuer}/oauth2/token`,
    userinfo_endpoint: `${issuer}/oauth2/userinfo`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    revocation_endpoint: `${issuer}/oauth2/revoke`,
    introspection_endpoint: `${issuer}/oauth2/introspect`,
    end_session_endpoint: `${issuer}/oauth2/end_session`,
    scopes_supported: [...SUPPORTED_SCOPES],
    response_types_supported: ['code'],
    response_modes_supported: ['query'],
    grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['ES256'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    claims_supported: CLAIMS_SUPPORTED,
    claim_types_supported: ['normal'],
    code_challenge_methods_supported: ['S256'],
    prompt_values_supported: [...SUPPORTED_PROMPTS],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
    authorization_response_iss_parameter_supported: true,
    backchannel_logout_supported: true,
    backchannel_logout_session_supported: true,
    service_documentation: `${issuer}/docs/open`,
  }
}

oidcRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/.well-known/openid-configuration',
    tags: [TAG],
    summary: 'OpenID Provider metadata',
    description:
      'OpenID Connect Discovery 1.0. Lists exactly what UAP Edge supports: authorization code flow with PKCE (S256), refresh tokens, client credentials, ES256 ID tokens, RP-initiated and back-channel logout. Point your OIDC library at the issuer and it reads everything else from here.',
    ...OPEN,
    responses: { 200: { description: 'Provider metadata', content: { 'application/json': { schema: Discovery } } } },
  }),
  (c) => {
    c.header('Cache-Control', 'public, max-age=300')
    return c.json(discoveryDocument(getConfig(c.env).issuer), 200)
  },
)

// ---------------------------------------------------------------- authorization endpoint

const AuthorizeParamsSchema = z.object({
  client_id: param(128).openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
  redirect_uri: param().openapi({ example: 'https://app.example.com/callback' }),
  response_type: param(64).openapi({ example: 'code', description: 'Only `code`.' }),
  scope: param(512).openapi({ example: 'openid profile email offline_access' }),
  state: param(1024).openapi({ example: 'af0ifjsldkj' }),
  nonce: param(512).openapi({ example: 'n-0S6_WzA2Mj' }),
  code_challenge: param(128).openapi({ example: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM' }),
  code_challenge_method: param(16).openapi({ example: 'S256' }),
  prompt: param(64).openapi({ example: 'consent', description: 'Space-separated: none, login, consent.' }),
  max_age: param(10).openapi({ example: '3600' }),
  login_hint: param(256).openapi({ example: '+8613800138000' }),
  response_mode: param(32).openapi({ example: 'query' }),
  request: param(8192).openapi({ description: 'Not supported (request_not_supported).' }),
  request_uri: param().openapi({ description: 'Not supported (request_uri_not_supported).' }),
  registration: param(8192).openapi({ description: 'Not supported (registration_not_supported).' }),
  request_id: param(64).openapi({ description: 'Internal: resumes a pending request after sign-in. Clients never send it.' }),
})

const AUTHORIZE_DESCRIPTION = `OIDC Core §3.1.2. Only \`response_type=code\` (the implicit and hybrid flows are refused with \`unsupported_response_type\`, RFC 9700). PKCE with S256 is required for public clients and accepted for confidential ones; \`plain\` is refused. \`redirect_uri\` must exactly match a registered one.

Errors about the client (unknown or disabled client_id, unregistered redirect_uri) are shown on an HTML error page (400) and never redirected. Every other error is sent back to the redirect_uri as \`error\`, \`error_description\`, \`state\` and \`iss\` (RFC 6749 §4.1.2.1, RFC 9207).

Without a valid \`AUTH_SESSION_ID\` cookie the user is sent to \`/page/login\`, then back here; then to \`/page/consent\` unless the app is first-party or the user already granted these scopes (\`prompt=consent\` forces it). \`prompt=none\` answers \`login_required\` / \`consent_required\` instead of showing a page. A user with no active mapping in the app gets \`access_denied\`. On success the redirect carries \`code\` (single use, 60 s), \`state\` and \`iss\`.`

const authorizeResponses = {
  302: redirect('To the client (code or error), to /page/login, or to /page/consent'),
  400: html('Invalid client_id or redirect_uri: an error page, no redirect'),
}

const pageHook = (result: { success: true } | { success: false; error: z.ZodError }, c: Context<AppEnv>) => {
  if (!result.success) return errorPage(c, 'Invalid request', `${result.error.issues[0]?.path.join('.') ?? 'parameter'}: each parameter must be given once.`)
}

oidcRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/oauth2/authorize',
    tags: [TAG],
    summary: 'Authorization endpoint',
    description: AUTHORIZE_DESCRIPTION,
    ...OPEN,
    request: { query: AuthorizeParamsSchema },
    responses: authorizeResponses,
  }),
  async (c) => startAuthorization(c, c.req.valid('query')),
  pageHook,
)

oidcRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/oauth2/authorize',
    tags: [TAG],
    summary: 'Authorization endpoint (form POST)',
    description: 'The same as GET, with the parameters form-encoded (OIDC Core §3.1.2.1).',
    ...OPEN,
    middleware: [pageFormOnly] as const,
    request: { body: form(AuthorizeParamsSchema) },
    responses: authorizeResponses,
  }),
  async (c) => startAuthorization(c, c.req.valid('form')),
  pageHook,
)

async function pageFormOnly(c: Context<AppEnv>, next: () => Promise<void>) {
  if (!/^application\/x-www-form-urlencoded(\s*;|$)/i.test(c.req.header('Content-Type') ?? '')) {
    return errorPage(c, 'Invalid request', 'The form must be sent as application/x-www-form-urlencoded.')
  }
  await next()
}

// ---------------------------------------------------------------- consent page

oidcRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/page/consent',
    tags: ['Hosted pages'],
    summary: 'Consent page',
    description:
      'Shows the application (name, icon), the scopes it asks for and where the user goes next, with Allow and Deny buttons in a CSRF-protected form. Reached only through the authorization endpoint; needs the same browser session that started the request.',
    request: { query: z.object({ request_id: param(64).openapi({ example: 'kq3V8mCj1n0Fh2qB9Lh7d3v5Zp0sWc4Rj6Tq2Xy8Ab0' }) }) },
    responses: { 200: html('The consent form'), 302: redirect('Back to the authorization endpoint when the session changed'), 400: html('Unknown or expired request') },
  }),
  async (c) => {
    const { request_id } = c.req.valid('query')
    const pending = request_id ? await loadPending(c.env, request_id) : null
    if (!pending || !pending.consentFor) return errorPage(c, 'Sign-in request expired', 'This consent request is unknown or has expired. Go back to the application and try again.')
    const current = await readBrowserSession(c)
    if (!current || current.session.id !== pending.consentFor.sessionId) return c.redirect(`/oauth2/authorize?request_id=${pending.id}`, 302)
    const app = await findApplication(c.env, pending.clientId)
    if (!app || app.status !== 'ACTIVE') return errorPage(c, 'Unknown application', 'The application is no longer registered here, or it is disabled.')
    return consentPage(c, {
      requestId: pending.id,
      csrf: csrfToken(c),
      appName: app.appName,
      iconUrl: app.iconUrl,
      scope: pending.scope,
      redirectHost: new URL(pending.redirectUri).host,
      user: { name: current.user.name, mobile: current.user.mobile },
    })
  },
  pageHook,
)

oidcRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/page/consent',
    tags: ['Hosted pages'],
    summary: 'Answer the consent page',
    description:
      'Allow: the consent (user, app, scopes) is remembered in D1 and the code is issued. Deny: the client receives `access_denied`. The csrf_token field must equal the `__Host-uap_csrf` cookie (double submit, constant-time comparison).',
    middleware: [pageFormOnly] as const,
    request: {
      body: form(
        z.object({
          request_id: param(64),
          csrf_token: param(64),
          decision: z.enum(['allow', 'deny']).optional().openapi({ example: 'allow' }),
        }),
      ),
    },
    responses: { 302: redirect('To the client with a code or access_denied'), 400: html('Unknown or expired request'), 403: html('CSRF check failed') },
  }),
  async (c) => {
    const body = c.req.valid('form')
    if (!csrfValid(c, body.csrf_token)) return errorPage(c, 'Consent not recorded', 'The form expired or did not come from this site. Go back to the application and try again.', 403)
    const pending = body.request_id ? await loadPending(c.env, body.request_id) : null
    if (!pending || !pending.consentFor || !body.decision) return errorPage(c, 'Sign-in request expired', 'This consent request is unknown or has expired. Go back to the application and try again.')
    const current = await readBrowserSession(c)
    if (!current || current.session.id !== pending.consentFor.sessionId) return c.redirect(`/oauth2/authorize?request_id=${pending.id}`, 302)
    if (body.decision === 'deny') {
      const db = getDb(c.env.DB)
      await db.batch([
        auditStatement(db, { action: 'oidc.consent.denied', actorType: 'user', actorId: current.user.id, targetType: 'application', targetId: pending.clientId, requestId: c.get('requestId'), ip: c.get('clientIp'), details: { scope: pending.scope.join(' ') } }),
      ])
      await deletePending(c.env, pending)
      return redirectWithError(c, { redirectUri: pending.redirectUri, state: pending.state }, 'access_denied', 'The user denied the request')
    }
    await recordConsent(c.env, { userId: current.user.id, clientId: pending.clientId, scope: pending.scope, requestId: c.get('requestId'), ip: c.get('clientIp') })
    return continueAuthorization(c, pending, { consented: true })
  },
  pageHook,
)

// ---------------------------------------------------------------- token endpoint

const clientAuthFields = {
  client_id: param(128).openapi({ example: 'app_3f9a1c2d4e5f6a7b', description: 'Public clients and client_secret_post.' }),
  client_secret: param(256).openapi({ example: 'sk_...', description: 'client_secret_post only. client_secret_basic sends it in the Authorization header instead.' }),
}

const TokenRequest = z
  .object({
    grant_type: param(128).openapi({ example: 'authorization_code', description: 'authorization_code, refresh_token or client_credentials.' }),
    code: param(128).openapi({ example: 'SplxlOBeZQQYbYS6WxSbIA...' }),
    redirect_uri: param().openapi({ example: 'https://app.example.com/callback' }),
    code_verifier: param(128).openapi({ example: 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk' }),
    refresh_token: param(512).openapi({ example: 'rt_V0hZ0lq8p3bX3Jm2n8kqQx0Xb5k2c9Yt7r1Zs4Aa6Ew' }),
    scope: param(512),
    ...clientAuthFields,
  })
  .openapi('TokenRequest')

const OidcTokenResponse = z
  .object({
    access_token: z.string().openapi({ example: 'eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6ImF0K2p3dCJ9...' }),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().openapi({ example: 900 }),
    scope: z.string().optional().openapi({ example: 'openid email offline_access' }),
    id_token: z.string().optional().openapi({ example: 'eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6IkpXVCJ9...' }),
    refresh_token: z.string().optional().openapi({ example: 'rt_V0hZ0lq8p3bX3Jm2n8kqQx0Xb5k2c9Yt7r1Zs4Aa6Ew' }),
  })
  .openapi('OidcTokenResponse')

const SUPPORTED_GRANTS = ['authorization_code', 'refresh_token', 'client_credentials']

oidcRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/oauth2/token',
    tags: [TAG],
    summary: 'Token endpoint',
    description: `RFC 6749 §3.2, form-encoded. Grants:
- \`authorization_code\`: \`code\`, \`redirect_uri\` (must equal the authorization request's), \`code_verifier\` when PKCE was used. A code works once; presenting it again fails and revokes the tokens the first exchange issued. Returns an access token, an ID token (scope openid) and, with scope offline_access, a refresh token.
- \`refresh_token\`: rotates the refresh token (the old one stops working; reusing it revokes the whole family), bound to the client it was issued to.
- \`client_credentials\`: confidential clients only; an access token whose \`sub\` is the client_id, no refresh token, no scope.

Client authentication is the method registered for the app: \`client_secret_basic\` (HTTP Basic of the form-urlencoded client_id and secret, RFC 6749 §2.3.1), \`client_secret_post\`, or \`none\` (public clients, which must use PKCE).

The implicit grant and the resource-owner password grant are refused (\`unsupported_response_type\` / \`unsupported_grant_type\`): RFC 9700 §2.1.2 and §2.4 forbid them. Use the authorization code flow with PKCE instead, also for SPAs and native apps.

Errors use the OAuth format \`{ "error", "error_description" }\` (RFC 6749 §5.2), not the usual UAP Edge error body; \`invalid_client\` is a 401 with \`WWW-Authenticate: Basic\`. Responses carry \`Cache-Control: no-store\`.`,
    ...OPEN,
    security: clientSecurity,
    middleware: [formBodyOnly] as const,
    request: { body: form(TokenRequest) },
    responses: { 200: { description: 'Tokens', content: { 'application/json': { schema: OidcTokenResponse } } }, ...oauthErrors(400, 401) },
  }),
  async (c) =>
    oauthEndpoint(c, async () => {
      const f = c.req.valid('form')
      if (!f.grant_type) throw new OAuthError('invalid_request', 'grant_type is required')
      if (!SUPPORTED_GRANTS.includes(f.grant_type)) {
        const why =
          f.grant_type === 'password'
            ? 'The resource owner password grant is not supported: RFC 9700 §2.4 forbids it. Use the authorization code flow with PKCE.'
            : f.grant_type === 'implicit' || f.grant_type === 'token'
              ? 'The implicit grant is not supported: RFC 9700 §2.1.2 forbids it. Use the authorization code flow with PKCE.'
              : `grant_type ${f.grant_type} is not supported; use authorization_code, refresh_token or client_credentials`
        throw new OAuthError('unsupported_grant_type', why)
      }
      const { app, method } = await authenticateClient(c, f, { allowPublic: true })
      if (!app.grantTypes.includes(f.grant_type)) throw new OAuthError('unauthorized_client', `This client may not use the ${f.grant_type} grant`)
      const ctx = { requestId: c.get('requestId'), ip: c.get('clientIp') }
      let body: z.infer<typeof OidcTokenResponse>
      if (f.grant_type === 'authorization_code') {
        if (!f.code) throw new OAuthError('invalid_request', 'code is required')
        if (!f.redirect_uri) throw new OAuthError('invalid_request', 'redirect_uri is required (RFC 6749 §4.1.3)')
        body = await redeemCode(c.env, app, { code: f.code, redirectUri: f.redirect_uri, codeVerifier: f.code_verifier }, ctx)
      } else if (f.grant_type === 'refresh_token') {
        if (!f.refresh_token) throw new OAuthError('invalid_request', 'refresh_token is required')
        const row = await getDb(c.env.DB)
          .select({ clientId: refreshTokens.clientId, userId: refreshTokens.userId, scope: refreshTokens.scope })
          .from(refreshTokens)
          .where(eq(refreshTokens.tokenHash, await sha256Hex(f.refresh_token)))
          .get()
        if (row && row.clientId === app.appId) {
          if (f.scope !== undefined && parseScope(f.scope).join(' ') !== parseScope(row.scope).join(' ')) {
            throw new OAuthError('invalid_scope', 'A refresh keeps the scope of the original grant; omit scope (narrowing is not supported)')
          }
          if ((await activeMappedKey(c.env, app.appId, row.userId)) === null) throw new OAuthError('invalid_grant', `The user no longer has an active account in ${app.appName}`)
        }
        const { userId: _u, sessionId: _s, ...tokens } = await rotateRefreshToken(c.env, f.refresh_token, { clientId: app.appId, ...ctx })
        body = tokens
      } else {
        if (method === 'none') throw new OAuthError('unauthorized_client', 'Public clients cannot use client_credentials')
        if (f.scope !== undefined) throw new OAuthError('invalid_scope', 'No scopes are defined for client_credentials; omit scope')
        body = await mintClientToken(c.env, app)
      }
      noStore(c)
      return c.json(body, 200)
    }),
  oauthHook,
)

// ---------------------------------------------------------------- userinfo

const UserInfo = z
  .object({
    sub: z.string().openapi({ example: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f' }),
    email: z.string().optional().openapi({ example: 'lilei@example.com' }),
    preferred_username: z.string().optional().openapi({ example: 'lilei' }),
    name: z.string().optional().openapi({ example: 'Li Lei' }),
    phone_number: z.string().optional().openapi({ example: '+8613800138000' }),
    updated_at: z.number().int().optional().openapi({ example: 1795000000 }),
  })
  .openapi('UserInfo')

const bearerError = (status: 400 | 401 | 403, error: string, description: string, extra = '') =>
  new OAuthError(error, description, status, { 'WWW-Authenticate': `Bearer realm="uap-edge", error="${error}", error_description="${description.replace(/"/g, "'")}"${extra}` })

async function userinfo(c: Context<AppEnv>, bodyToken: string | undefined) {
  return oauthEndpoint(c, async () => {
    const header = c.req.header('Authorization')
    const m = header ? /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(header) : null
    if (header && !m) throw bearerError(401, 'invalid_token', 'The Authorization header must be a Bearer token')
    if (m && bodyToken !== undefined) throw bearerError(400, 'invalid_request', 'Send the access token once (RFC 6750 §2)')
    const token = m?.[1] ?? bodyToken
    if (!token) throw new OAuthError('invalid_token', 'An access token is required', 401, { 'WWW-Authenticate': 'Bearer realm="uap-edge"' })
    let v
    try {
      v = await verifyAccessToken(c.env, token)
    } catch (e) {
      if (e instanceof ApiError) throw bearerError(401, 'invalid_token', e.message)
      throw e
    }
    const scope = parseScope(v.scope)
    if (!v.clientId || !scope.includes('openid')) throw bearerError(403, 'insufficient_scope', 'The access token was not issued with the openid scope', ', scope="openid"')
    const claims = await userinfoClaims(c.env, { userId: v.userId, clientId: v.clientId, scope })
    if (!claims) throw bearerError(401, 'invalid_token', 'The account or application of this access token is gone or disabled')
    noStore(c)
    return c.json(claims, 200)
  })
}

const USERINFO_DESCRIPTION =
  'OIDC Core §5.3. Bearer access token (RFC 6750) in the Authorization header, or for POST as the form field `access_token`. Claims: `sub` and the application\'s chosen claim (`email` or `preferred_username`, the user\'s mapped key in the app) always; `name`, `updated_at` with scope profile; `email` (the account\'s email, when the app\'s claim is not email) with scope email; `phone_number` with scope phone. Errors: 401 `invalid_token`, 403 `insufficient_scope`, with `WWW-Authenticate: Bearer` and the OAuth error body.'

oidcRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/oauth2/userinfo',
    tags: [TAG],
    summary: 'UserInfo',
    description: USERINFO_DESCRIPTION,
    ...OPEN,
    security: [{ bearerAuth: [] }],
    responses: { 200: { description: 'Claims', content: { 'application/json': { schema: UserInfo } } }, ...oauthErrors(400, 401, 403) },
  }),
  (c) => userinfo(c, undefined),
)

oidcRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/oauth2/userinfo',
    tags: [TAG],
    summary: 'UserInfo (POST)',
    description: USERINFO_DESCRIPTION,
    ...OPEN,
    security: [{ bearerAuth: [] }],
    request: { body: form(z.object({ access_token: param(4096) }), false) },
    responses: { 200: { description: 'Claims', content: { 'application/json': { schema: UserInfo } } }, ...oauthErrors(400, 401, 403) },
  }),
  (c) => userinfo(c, (c.req.valid('form')).access_token),
  oauthHook,
)

// ---------------------------------------------------------------- revocation and introspection

const TokenParam = z
  .object({
    token: param(4096).openapi({ example: 'rt_V0hZ0lq8p3bX3Jm2n8kqQx0Xb5k2c9Yt7r1Zs4Aa6Ew' }),
    token_type_hint: param(32).openapi({ example: 'refresh_token', description: 'access_token or refresh_token; optional, the token type is recognised anyway.' }),
    ...clientAuthFields,
  })
  .openapi('TokenParameter')

oidcRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/oauth2/revoke',
    tags: [TAG],
    summary: 'Token revocation',
    description:
      'RFC 7009. Client-authenticated (public clients send their client_id). A refresh token revokes its whole family. An access token is denied by UAP Edge (userinfo, introspection, its own API) until it expires; other services that verify it with the JWKS alone accept it until then (at most the access-token lifetime). Always 200 for tokens that are unknown, already revoked or issued to another client (§2.2), so nothing is learned from the answer.',
    ...OPEN,
    security: clientSecurity,
    middleware: [formBodyOnly] as const,
    request: { body: form(TokenParam) },
    responses: { 200: { description: 'Revoked (or nothing to revoke)' }, ...oauthErrors(400, 401) },
  }),
  async (c) =>
    oauthEndpoint(c, async () => {
      const f = c.req.valid('form')
      const { app } = await authenticateClient(c, f, { allowPublic: true })
      if (!f.token) throw new OAuthError('invalid_request', 'token is required')
      await revokeToken(c.env, app, f.token, { requestId: c.get('requestId'), ip: c.get('clientIp') })
      noStore(c)
      return c.body(null, 200)
    }),
  oauthHook,
)

const Introspection = z
  .object({
    active: z.boolean(),
    client_id: z.string().optional(),
    sub: z.string().optional(),
    scope: z.string().optional(),
    exp: z.number().int().optional(),
    iat: z.number().int().optional(),
    iss: z.string().optional(),
    aud: z.union([z.string(), z.array(z.string())]).optional(),
    jti: z.string().optional(),
    token_type: z.string().optional(),
  })
  .openapi('Introspection', { example: { active: true, client_id: 'app_3f9a1c2d4e5f6a7b', sub: '0b8d5f7e-8a51-4b59-9c3e-3f7a1c2d4e5f', scope: 'openid email', exp: 1795000900, iat: 1795000000, iss: 'https://id.example.com', token_type: 'Bearer' } })

oidcRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/oauth2/introspect',
    tags: [TAG],
    summary: 'Token introspection',
    description:
      'RFC 7662. Confidential clients only (client_secret_basic or client_secret_post). Answers `{ "active": false }` for anything that is not a valid, unexpired, unrevoked token of a live session issued to the calling client; otherwise `active: true` with client_id, sub, scope, exp, iat, iss (and aud, jti, token_type for access tokens).',
    ...OPEN,
    security: clientSecurity,
    middleware: [formBodyOnly] as const,
    request: { body: form(TokenParam) },
    responses: { 200: { description: 'Token state', content: { 'application/json': { schema: Introspection } } }, ...oauthErrors(400, 401) },
  }),
  async (c) =>
    oauthEndpoint(c, async () => {
      const f = c.req.valid('form')
      const { app } = await authenticateClient(c, f, { allowPublic: false })
      if (!f.token) throw new OAuthError('invalid_request', 'token is required')
      noStore(c)
      return c.json(await introspect(c.env, app, f.token), 200)
    }),
  oauthHook,
)

// ---------------------------------------------------------------- RP-initiated logout

const EndSessionSchema = z.object({
  id_token_hint: param(4096).openapi({ example: 'eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6IkpXVCJ9...' }),
  client_id: param(128).openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
  post_logout_redirect_uri: param().openapi({ example: 'https://app.example.com/signed-out' }),
  state: param(1024).openapi({ example: 'xyz' }),
  csrf_token: param(64).openapi({ description: 'Internal: the confirmation form.' }),
  confirm: param(8).openapi({ description: 'Internal: the confirmation form (yes/no).' }),
})

const END_SESSION_DESCRIPTION =
  'OpenID Connect RP-Initiated Logout 1.0. Signs the browser out of UAP Edge (its session and every refresh token issued under it) and tells the apps it signed into via back-channel logout. With an `id_token_hint` for the signed-in user the logout happens at once; without one the user confirms on a page first (so other sites cannot sign users out). `post_logout_redirect_uri` must be registered for the app named by `client_id` or the hint; `state` is passed back. Without a redirect URI a "signed out" page is shown. Invalid hints, clients or redirect URIs get an HTML error page (400).'

const endSessionResponses = { 200: html('Signed-out page or confirmation page'), 302: redirect('To the registered post_logout_redirect_uri, with state'), 400: html('Invalid request') }

oidcRoutes.openapi(
  createRoute({ method: 'get', path: '/oauth2/end_session', tags: [TAG], summary: 'End session (RP-initiated logout)', description: END_SESSION_DESCRIPTION, ...OPEN, request: { query: EndSessionSchema }, responses: endSessionResponses }),
  async (c) => endSession(c, c.req.valid('query'), false),
  pageHook,
)

oidcRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/oauth2/end_session',
    tags: [TAG],
    summary: 'End session (form POST)',
    description: END_SESSION_DESCRIPTION,
    ...OPEN,
    middleware: [pageFormOnly] as const,
    request: { body: form(EndSessionSchema) },
    responses: endSessionResponses,
  }),
  async (c) => endSession(c, c.req.valid('form'), true),
  pageHook,
)

