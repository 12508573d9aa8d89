import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import { readBrowserSession } from '../auth/browser-session'
import { findApplication } from '../apps/service'
import { consentPage, csrfToken, csrfValid, errorPage } from './pages'
import { clientOfPending, continueAuthorization, redirectWithError } from './authorize'
import { deletePending, loadPending, recordConsentDenied } from './service'
import { form, html, pageFormOnly, pageHook, redirect } from './http'
import { param } from './oauth'

/** The consent page the authorization endpoint sends users to. Mounted at /page/consent. */
export const consentRoutes = router()

consentRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
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
    if (!pending || !pending.consentFor) return errorPage(c, (t) => ({ title: t.requestExpiredTitle, message: t.consentRequestExpired }))
    const current = await readBrowserSession(c)
    if (!current || current.session.id !== pending.consentFor.sessionId) return c.redirect(`/oauth2/authorize?request_id=${pending.id}`, 302)
    const app = await findApplication(c.env, pending.clientId)
    if (!app || app.status !== 'ACTIVE') return errorPage(c, (t) => ({ title: t.unknownAppTitle, message: t.appGone }))
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

consentRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/',
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
    if (!csrfValid(c, body.csrf_token)) return errorPage(c, (t) => ({ title: t.consentNotRecordedTitle, message: t.consentFormExpired }), 403)
    const pending = body.request_id ? await loadPending(c.env, body.request_id) : null
    if (!pending || !pending.consentFor || !body.decision) return errorPage(c, (t) => ({ title: t.requestExpiredTitle, message: t.consentRequestExpired }))
    const current = await readBrowserSession(c)
    if (!current || current.session.id !== pending.consentFor.sessionId) return c.redirect(`/oauth2/authorize?request_id=${pending.id}`, 302)
    if (body.decision === 'deny') {
      const client = await clientOfPending(c, pending)
      if (client instanceof Response) return client
      await recordConsentDenied(c.env, { userId: current.user.id, clientId: pending.clientId, scope: pending.scope, requestId: c.get('requestId'), ip: c.get('clientIp') })
      await deletePending(c.env, pending)
      return redirectWithError(c, { redirectUri: pending.redirectUri, state: pending.state }, 'access_denied', 'The user denied the request')
    }
    // continueAuthorization checks the client and the user's access again, then records the consent
    return continueAuthorization(c, pending, { consented: true })
  },
  pageHook,
)

