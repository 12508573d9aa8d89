import { createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { OPEN, pick, jsonBody, mergeErrors } from '../lib/openapi'
import { signedErrors } from '../signing/routes'
import { router } from '../context'
import { SignedHeaders } from '../signing/headers'
import type { AppEnv } from '../context'
import { MobileField } from '../lib/mobile'
import { ApiError, errorResponses } from '../lib/errors'
import { requireSignedApp } from '../signing/verify'
import { enforceRateLimit } from '../ratelimit'
import { TicketErrors } from './errors'
import { auditSoon, callbackOf, consumeTicket, issueTicket, recheckRedeemed, resolveExchange, withTicket } from './service'
import { simpleSsoRedirect } from './sso'

/** Simple SSO tickets between SIMPLE_API apps (docs/tickets.md). Mounted at /api/v1/simple/ticket. */
export const ticketRoutes = router()

/** The no-interaction ticket hop for browsers. Mounted at /page/sso. */
export const ssoPageRoutes = router()


const TICKET_EXAMPLE = 'tk_k3Vq0bX8y2Qm9Zr4Lw7Tn1Hs6Pd5Jc0Ae3Ug8Yf2Ri4.ZxW1q8N3vR0mT6yK2pL9sD4gH7jB5cF1eA0uI3oQ8wE'

const ExchangeBody = z
  .object({
    target_app_id: z.string().min(1).max(64).openapi({ example: 'app_9b8c7d6e5f4a3b2c', description: 'The SIMPLE_API app the user moves to' }),
    user_mobile: MobileField,
  })
  .openapi('TicketExchangeRequest')

const ExchangeResponse = z
  .object({
    ticket: z.string().openapi({ example: TICKET_EXAMPLE, description: 'Single-use, URL-safe; carries 256 random bits' }),
    expires_in: z.number().int().openapi({ example: 60, description: 'Seconds until the ticket expires' }),
    redirect_url: z.string().openapi({
      example: `https://crm.example.com/sso/callback?from=uap&ticket=${TICKET_EXAMPLE}`,
      description: "The target app's registered callback (its first redirect URI) with `ticket=` appended",
    }),
  })
  .openapi('TicketExchangeResponse')

ticketRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/exchange',
    tags: ['Simple SSO'],
    summary: 'Exchange a signed-in user for a ticket to another app',
    description: [
      'Called server-to-server by the **source** app (HMAC-signed) when its signed-in user wants to move to the **target** app.',
      'Checks that both apps are active, the target is a SIMPLE_API app, the user is active and has an active mapping in the target app,',
      'then returns a single-use ticket bound to the target app, the user, their mapped key and the source app.',
      'Send the user\'s browser to `redirect_url`; the target app redeems the ticket with `POST /api/v1/simple/ticket/verify`.',
      '',
      'Errors are explicit (listed below): the caller is an authenticated partner server, and every exchange is rate limited per source app (`ticket_exchange_app`) and audited.',
    ].join('\n'),
    ...OPEN,
    middleware: [requireSignedApp] as const,
    request: { headers: SignedHeaders, body: jsonBody(ExchangeBody) },
    responses: {
      200: { description: 'Ticket issued', content: { 'application/json': { schema: ExchangeResponse } } },
      ...mergeErrors(
        pick(400),
        signedErrors,
        errorResponses(TicketErrors, 'target_app_not_found', 'target_app_disabled', 'target_app_not_simple_api', 'target_app_no_callback', 'user_not_found', 'user_disabled', 'user_not_mapped', 'mapping_disabled'),
        pick(429),
      ),
    },
  }),
  async (c) => {
    const source = c.get('app')!
    const ctx = c as unknown as Context<AppEnv>
    const { target_app_id, user_mobile } = c.req.valid('json')
    // Rate limit and D1 checks run side by side; a 429 wins over any other outcome.
    const [limit, resolved] = await Promise.allSettled([
      enforceRateLimit(ctx, 'ticket_exchange_app', source.appId),
      resolveExchange(c.env, target_app_id, user_mobile),
    ])
    if (limit.status === 'rejected') throw limit.reason
    if (resolved.status === 'rejected') {
      const e = resolved.reason
      if (e instanceof ApiError) {
        auditSoon(ctx, { action: 'ticket.exchange_refused', actorType: 'app', actorId: source.appId, targetType: 'app', targetId: target_app_id, details: { code: e.code, mobile: user_mobile } })
      }
      throw e
    }
    const { target, user, mappedKey } = resolved.value
    const issued = await issueTicket(c.env, { targetAppId: target.appId, sourceAppId: source.appId, userId: user.id, mappedKey })
    auditSoon(ctx, { action: 'ticket.issued', actorType: 'app', actorId: source.appId, targetType: 'user', targetId: user.id, details: { via: 'exchange', target_app_id: target.appId, expires_in: issued.expiresIn } })
    c.header('Cache-Control', 'no-store')
    return c.json({ ticket: issued.ticket, expires_in: issued.expiresIn, redirect_url: withTicket(callbackOf(target), issued.ticket) }, 200)
  },
)

const VerifyResponse = z
  .object({
    user: z.object({
      mobile: z.string().openapi({ example: '+8613800138000' }),
      name: z.string().nullable().openapi({ example: 'Li Lei' }),
      mapped_key: z.string().openapi({ example: 'lilei@crm.example.com', description: "The user's account in your app" }),
      status: z.enum(['ACTIVE', 'DISABLED']).openapi({ example: 'ACTIVE' }),
    }),
    source_app_id: z.string().nullable().openapi({ example: 'app_3f9a1c2d4e5f6a7b', description: 'The app the user came from; null when UAP Edge itself issued the ticket (hosted sign-in page)' }),
    issued_at: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
  })
  .openapi('TicketVerifyResponse')

ticketRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/verify',
    tags: ['Simple SSO'],
    summary: 'Redeem a ticket (target app)',
    description: [
      'Called server-to-server by the **target** app (HMAC-signed) with the `ticket` it received on its callback.',
      'A ticket is redeemable exactly once, worldwide, and only by the app it was issued for. Error codes:',
      '`ticket_invalid` (400, unknown or malformed), `ticket_not_for_app` (403, issued for another app; the ticket is **not** consumed),',
      '`ticket_already_used` (409), `ticket_expired` (410), and, when the account changed since the exchange,',
      '`user_disabled` / `mapping_disabled` / `mapping_changed` (403; the ticket is consumed).',
    ].join('\n'),
    ...OPEN,
    middleware: [requireSignedApp] as const,
    request: {
      headers: SignedHeaders,
      body: jsonBody(z.object({ ticket: z.string().min(1).max(256).openapi({ example: TICKET_EXAMPLE }) }).openapi('TicketVerifyRequest')),
    },
    responses: {
      200: { description: 'Ticket redeemed: who the user is in your app', content: { 'application/json': { schema: VerifyResponse } } },
      ...mergeErrors(
        pick(400),
        signedErrors,
        errorResponses(TicketErrors, 'ticket_invalid', 'ticket_not_for_app', 'ticket_already_used', 'ticket_expired', 'redeemed_user_gone', 'redeemed_user_disabled', 'redeemed_mapping_disabled', 'mapping_changed'),
      ),
    },
  }),
  async (c) => {
    const app = c.get('app')!
    const ctx = c as unknown as Context<AppEnv>
    const { ticket } = c.req.valid('json')
    const r = await consumeTicket(c.env, ticket, app.appId)
    if (!r.ok) {
      // Replays and foreign redemptions are security events; plain garbage is not worth a row.
      if (r.reason !== 'ticket_invalid') auditSoon(ctx, { action: 'ticket.redeem_refused', actorType: 'app', actorId: app.appId, details: { code: r.reason } })
      throw TicketErrors[r.reason]()
    }
    let user
    try {
      user = await recheckRedeemed(c.env, r.ticket)
    } catch (e) {
      if (e instanceof ApiError) auditSoon(ctx, { action: 'ticket.redeem_refused', actorType: 'app', actorId: app.appId, targetType: 'user', targetId: r.ticket.userId, details: { code: e.code } })
      throw e
    }
    auditSoon(ctx, { action: 'ticket.redeemed', actorType: 'app', actorId: app.appId, targetType: 'user', targetId: user.id, details: { source_app_id: r.ticket.sourceAppId } })
    c.header('Cache-Control', 'no-store')
    return c.json(
      {
        user: { mobile: user.mobile, name: user.name, mapped_key: user.mappedKey, status: user.status },
        source_app_id: r.ticket.sourceAppId,
        issued_at: new Date(r.ticket.issuedAt).toISOString(),
      },
      200,
    )
  },
)

ssoPageRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/simple',
    tags: ['Pages'],
    summary: 'Sign in to a SIMPLE_API app without interaction',
    description:
      'With a live `AUTH_SESSION_ID` session and an active mapping in the app: 302 to `redirect_uri?ticket=...`. Without a session: 302 to `/page/login` with the same parameters. `redirect_uri` must be registered for the app (exact match), otherwise 400 and no redirect.',
    request: {
      query: z.object({
        app_id: z.string().min(1).max(64).openapi({ example: 'app_9b8c7d6e5f4a3b2c' }),
        redirect_uri: z.string().min(1).max(2048).openapi({ example: 'https://crm.example.com/sso/callback' }),
      }),
    },
    responses: {
      302: { description: 'To the app with a ticket, or to the login page' },
      ...mergeErrors(pick(400), errorResponses(TicketErrors, 'invalid_app', 'redirect_uri_not_registered', 'account_disabled', 'no_access')),
    },
  }),
  async (c) => {
    const { app_id, redirect_uri } = c.req.valid('query')
    const res = await simpleSsoRedirect(c, { appId: app_id, redirectUri: redirect_uri })
    if (res) return res
    const login = `/page/login?${new URLSearchParams({ app_id, redirect_uri })}`
    return new Response(null, { status: 302, headers: { Location: login, 'Cache-Control': 'no-store' } })
  },
)
