import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { OPEN } from '../lib/openapi'
import { endSession } from './logout'
import { TAG, form, html, pageFormOnly, pageHook, redirect } from './http'
import { param } from './oauth'

/** OpenID Connect RP-Initiated Logout 1.0. Mounted at /oauth2/end_session. */
export const endSessionRoutes = router()

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

endSessionRoutes.openapi(
  createRoute({ method: 'get', path: '/', tags: [TAG], summary: 'End session (RP-initiated logout)', description: END_SESSION_DESCRIPTION, ...OPEN, request: { query: EndSessionSchema }, responses: endSessionResponses }),
  async (c) => endSession(c, c.req.valid('query'), false),
  pageHook,
)

endSessionRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: [TAG],
    summary: 'End session (form POST)',
    description: END_SESSION_DESCRIPTION,
    ...OPEN,
    middleware: [pageFormOnly] as const,
    request: { body: form(EndSessionSchema) },
    responses: { ...endSessionResponses, 403: html('The confirmation form expired or came from another site (CSRF check failed); nothing was signed out') },
  }),
  async (c) => endSession(c, c.req.valid('form'), true),
  pageHook,
)

