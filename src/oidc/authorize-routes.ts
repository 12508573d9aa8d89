import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { OPEN } from '../lib/openapi'
import { startAuthorization } from './authorize'
import { TAG, form, html, pageFormOnly, pageHook, redirect } from './http'
import { param } from './oauth'

/** The authorization endpoint (OIDC Core §3.1.2). Mounted at /oauth2/authorize. */
export const authorizeRoutes = router()

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
  id_token_hint: param(4096).openapi({ description: "An ID token this server issued to the client: the user the client expects. Another signed-in user is not answered for that user (prompt=none: login_required; otherwise the sign-in form)." }),
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

authorizeRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
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

authorizeRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
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

