import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { TicketErrors } from './errors'
import { isRegisteredRedirectUri } from '../lib/redirect-uri'
import { admitUser } from '../permissions/admission'
import { findApplication } from '../apps/service'
import { readBrowserSession } from '../auth/browser-session'
import type { User } from '../users/schema'
import { CommonErrors } from '../lib/errors'
import { STATE_RE, issueTicket, requestAudit, withTicket } from './service'

/**
 * No-interaction SSO into a SIMPLE_API app (reference: "AUTH_SESSION_ID auto-issue").
 *
 * - app unknown / disabled / not SIMPLE_API / partner API off (it could not redeem), or
 *   redirect_uri not registered for it (exact string match): throws ApiError 400. Never
 *   redirects to an unchecked URI.
 * - no live AUTH_SESSION_ID session: returns null; the login page shows its form and,
 *   after a successful sign-in, calls this again with `user` (the cookie it just set is
 *   on the response, not yet on the request).
 * - signed in but not admitted to the app (no active mapping, or no access under its policy): throws ApiError 403 user_not_mapped.
 * - otherwise: issues a ticket (source app null = UAP Edge itself) bound to `state` when
 *   the app passed one, and returns a 302 to redirect_uri with `ticket=` appended. The state
 *   is not echoed in the URL: the app gets it back from verify, bound to the ticket, which
 *   is the copy an attacker cannot swap (docs/tickets.md, "state").
 */
export async function simpleSsoRedirect(c: Context<AppEnv>, opts: { appId: string; redirectUri: string; state?: string | null; user?: User }): Promise<Response | null> {
  if (opts.state != null && !STATE_RE.test(opts.state)) throw CommonErrors.invalid_request({ message: 'state: must be 1-256 visible ASCII characters' })
  const app = await findApplication(c.env, opts.appId)
  if (!app || app.status !== 'ACTIVE') throw TicketErrors.invalid_app({ message: 'app_id does not name an active application' })
  if (app.protocolType !== 'SIMPLE_API') throw TicketErrors.invalid_app({ message: 'app_id is not a SIMPLE_API application' })
  if (!app.partnerApiEnabled) throw TicketErrors.invalid_app({ message: "app_id names an application whose partner API is switched off: it could not redeem a ticket" })
  if (!isRegisteredRedirectUri(app, opts.redirectUri)) {
    throw TicketErrors.redirect_uri_not_registered({ details: { app_id: app.appId } })
  }

  const current = opts.user ? { user: opts.user, session: null } : await readBrowserSession(c)
  if (!current) return null
  if (current.user.status !== 'ACTIVE') throw TicketErrors.account_disabled()

  const admission = await admitUser(c.env, app.appId, current.user.id)
  if (!admission.ok) throw TicketErrors.no_access({ message: `Your account has no access to ${app.appName}` })

  const issued = await issueTicket(
    c.env,
    { targetAppId: app.appId, sourceAppId: null, userId: current.user.id, mappedKey: admission.mapping.mappedKey, state: opts.state ?? null },
    requestAudit(c, { action: 'ticket.issued', actorType: 'user', actorId: current.user.id, targetType: 'app', targetId: app.appId, details: { via: 'page', session_id: current.session?.id ?? null, state: opts.state != null } }),
  )
  return new Response(null, {
    status: 302,
    headers: { Location: withTicket(opts.redirectUri, issued.ticket), 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' },
  })
}
