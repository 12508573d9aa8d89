import { createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { pick, jsonBody, mergeErrors } from '../lib/openapi'
import { signedErrors, signedRoute } from '../signing/routes'
import { router } from '../context'
import type { AppEnv } from '../context'
import { MobileField, normalizeMobile } from '../lib/mobile'
import { ApiError, CommonErrors, errorResponses } from '../lib/errors'
import { pageRefusalResponse } from '../pages/errors'
import { signedApp } from '../signing/verify'
import { sha256Hex } from '../lib/crypto'
import { TicketErrors } from './errors'
import {
  STATE_RE,
  auditSoon,
  callbackOf,
  decideExchange,
  exchangeReads,
  foreignTicketExists,
  issueTicket,
  recheckRedeemed,
  redemptionReads,
  requestAudit,
  ticketTarget,
  ticketUser,
  type RedemptionReads,
  withTicket,
  type ExchangeReads,
} from './service'
import type { RedeemResult } from './store'
import { simpleSsoRedirect } from './sso'

/** Simple SSO tickets between SIMPLE_API apps (docs/tickets.md). Mounted at /api/v1/simple/ticket. */
export const ticketRoutes = router()

/** The no-interaction ticket hop for browsers. Mounted at /page/sso. */
export const ssoPageRoutes = router()

const TICKET_EXAMPLE = 'tk_YXBwXzliOGM3ZDZlNWY0YTNiMmM.q0Vb3nZ8rT2mYx9LkP4wJ7dA1sF6hG5cE0uI3oQ8wEzR2tN6vB9mK4pL7yX1jH5gD3fS8aQ0e.ZxW1q8N3vR0mT6yK2pL9sD4gH7jB5cF1eA0uI3oQ8wE'

const StateField = z
  .string()
  .regex(STATE_RE, 'must be 1-256 visible ASCII characters')
  .openapi({
    example: 'c2f1b0e9a4d84f6b',
    description: "Optional. Bound to the ticket and returned by verify, so the target can check that the browser bringing the ticket is the one that asked for it (login CSRF; docs/tickets.md). Not added to redirect_url.",
  })

const ExchangeBody = z
  .object({
    target_app_id: z.string().min(1).max(64).openapi({ example: 'app_9b8c7d6e5f4a3b2c', description: "The SIMPLE_API app the user moves to; must be in your app's sso_targets" }),
    user_mobile: MobileField,
    state: StateField.optional(),
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

/**
 * The two fields the reads are keyed on, taken from the signed bytes so the D1 read can start
 * beside the gate call. Not a validation (the route's validator still answers 400 for a bad
 * body, and the route uses the read only when its validated input is the same), so it skips
 * a second zod pass over the body.
 */
function exchangeInput(body: Uint8Array): ExchangeReads['input'] | null {
  try {
    const b = JSON.parse(new TextDecoder().decode(body)) as { target_app_id?: unknown; user_mobile?: unknown }
    if (typeof b?.target_app_id !== 'string' || typeof b.user_mobile !== 'string' || b.user_mobile.length > 32) return null
    const user_mobile = normalizeMobile(b.user_mobile)
    return user_mobile ? { target_app_id: b.target_app_id, user_mobile } : null
  } catch {
    return null
  }
}

const sameInput = (a: ExchangeReads['input'], b: ExchangeReads['input']) => a.target_app_id === b.target_app_id && a.user_mobile === b.user_mobile

ticketRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/exchange',
    tags: ['Simple SSO'],
    summary: 'Exchange a signed-in user for a ticket to another app',
    description: [
      'Called server-to-server by the **source** app (HMAC-signed) when its signed-in user wants to move to the **target** app.',
      "Allowed when the source is an active SIMPLE_API app, the target is in the source's `sso_targets` (set by an admin; else 403 `target_not_allowed`),",
      'the target is an active SIMPLE_API app with a callback, and the user is active and **actively mapped in the source app** (else 404 `user_not_found`, the same answer as for an unknown mobile) and in the target app.',
      'Returns a single-use ticket bound to the target app, the user, their mapped key in the target, the source app and the optional `state`.',
      'Send the user\'s browser to `redirect_url`; the target app redeems the ticket with `POST /api/v1/simple/ticket/verify`.',
      '',
      'Errors past the first two checks are explicit (listed below): the caller is an authenticated partner server that already holds the user; every exchange is rate limited per source app (`ticket_exchange_app`) and every refusal is audited.',
    ].join('\n'),
    ...signedRoute(
      signedApp({
        policies: ['ticket_exchange_app'],
        // the D1 reads the decision needs go out with the gate call (one round trip)
        prepare: async (c, app, body) => {
          const input = exchangeInput(body)
          return input ? { prefetch: () => exchangeReads(c.env, app.appId, input) } : {}
        },
      }),
    ),
    request: { body: jsonBody(ExchangeBody) },
    responses: {
      200: { description: 'Ticket issued', content: { 'application/json': { schema: ExchangeResponse } } },
      ...mergeErrors(
        pick(400),
        signedErrors,
        errorResponses(
          TicketErrors,
          'source_app_not_simple_api',
          'target_not_allowed',
          'target_app_not_found',
          'target_app_disabled',
          'target_app_not_simple_api',
          'target_app_no_callback',
          'user_not_found',
          'user_disabled',
          'user_not_mapped',
          'mapping_disabled',
          'user_no_access',
        ),
        pick(429),
      ),
    },
  }),
  async (c) => {
    const source = c.get('app')!
    const ctx = c as unknown as Context<AppEnv>
    const { target_app_id, user_mobile, state } = c.req.valid('json')
    const input = { target_app_id, user_mobile }
    const pre = (await c.get('signed')?.prefetch) as ExchangeReads | null | undefined
    const reads = pre && sameInput(pre.input, input) ? pre : await exchangeReads(c.env, source.appId, input)
    let decided
    try {
      decided = decideExchange(source, reads)
    } catch (e) {
      if (e instanceof ApiError) {
        auditSoon(ctx, { action: 'ticket.exchange_refused', actorType: 'app', actorId: source.appId, targetType: 'app', targetId: target_app_id, details: { code: e.code, mobile: user_mobile } })
      }
      throw e
    }
    const { target, user, mappedKey } = decided
    const issued = await issueTicket(
      c.env,
      { targetAppId: target.appId, sourceAppId: source.appId, userId: user.id, mappedKey, state: state ?? null },
      requestAudit(ctx, { action: 'ticket.issued', actorType: 'app', actorId: source.appId, targetType: 'user', targetId: user.id, details: { via: 'exchange', target_app_id: target.appId, state: state !== undefined } }),
    )
    c.header('Cache-Control', 'no-store')
    return c.json({ ticket: issued.ticket, expires_in: issued.expiresIn, redirect_url: withTicket(callbackOf(target), issued.ticket) }, 200)
  },
)

type VerifyReads = { kind: 'none' } | { kind: 'foreign'; exists: boolean } | { kind: 'own'; reads: RedemptionReads }

/** The ticket of a verify body, parsed from the signed bytes. */
// The route's own media-type rules, both of which run after the gate has redeemed the ticket:
// @hono/zod-openapi's gate on the whole header (415, answered as 400) and Hono's JSON
// validator's on the media type. A body either would refuse would spend the ticket on a 400
// (docs/tickets.md: invalid_request leaves the ticket unspent), so such a body redeems
// nothing. test/tickets.test.ts sends the headers where the two differ from a plain check.
const OPENAPI_JSON_HEADER = /^application\/([a-z-.]+\+)?json(;\s*[a-zA-Z0-9-]+=([^;]+))*$/i
const HONO_JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i
function verifyTicket(contentType: string | undefined, body: Uint8Array): string | null {
  if (!contentType || !OPENAPI_JSON_HEADER.test(contentType) || !HONO_JSON_MEDIA_TYPE.test(contentType.split(';')[0].trim())) return null
  try {
    const t = (JSON.parse(new TextDecoder().decode(body)) as { ticket?: unknown })?.ticket
    return typeof t === 'string' && t.length <= 256 ? t : null
  } catch {
    return null
  }
}

const VerifyResponse = z
  .object({
    user: z.object({
      mobile: z.string().openapi({ example: '+8613800138000' }),
      name: z.string().nullable().openapi({ example: 'Li Lei', description: "The name your app synced for this user's mapping; the user's own name when you synced none" }),
      mapped_key: z.string().openapi({ example: 'lilei@crm.example.com', description: "The user's account in your app" }),
      status: z.enum(['ACTIVE', 'DISABLED']).openapi({ example: 'ACTIVE' }),
    }),
    source_app_id: z.string().nullable().openapi({ example: 'app_3f9a1c2d4e5f6a7b', description: 'The app the user came from; null when UAP Edge itself issued the ticket (hosted sign-in page)' }),
    state: z.string().nullable().openapi({
      example: 'c2f1b0e9a4d84f6b',
      description: 'The `state` bound to the ticket when it was requested (exchange or /page/sso/simple), else null. Compare it with the value you tied to the browser that brought the ticket.',
    }),
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
      'The answer carries the `state` the ticket was requested with (or null): check it against the browser that brought the ticket.',
    ].join('\n'),
    ...signedRoute(
      signedApp({
        // your own ticket is redeemed in the call that admits this request (nonce and rate
        // first) while its account re-check is read beside it (the user is sealed in the
        // ticket); for another app's ticket only whether it exists (ticket_not_for_app)
        prepare: async (c, app, body) => {
          const ticket = verifyTicket(c.req.header('Content-Type'), body)
          const target = ticket && ticketTarget(ticket)
          if (!target) return {}
          if (target !== app.appId) {
            const hash = await sha256Hex(ticket!)
            return { prefetch: async (): Promise<VerifyReads> => ({ kind: 'foreign', exists: await foreignTicketExists(c.env, target, hash) }) }
          }
          const [ticketHash, userId] = await Promise.all([sha256Hex(ticket!), ticketUser(c.env, ticket!)])
          return {
            redeem: { ticketHash, audit: requestAudit(c, { action: 'ticket.redeemed', actorType: 'app', actorId: app.appId, targetType: 'user' }) },
            ...(userId ? { prefetch: async (): Promise<VerifyReads> => ({ kind: 'own', reads: await redemptionReads(c.env, app.appId, userId) }) } : {}),
          }
        },
      }),
    ),
    request: {
      body: jsonBody(z.object({ ticket: z.string().min(1).max(256).openapi({ example: TICKET_EXAMPLE }) }).openapi('TicketVerifyRequest')),
    },
    responses: {
      200: { description: 'Ticket redeemed: who the user is in your app', content: { 'application/json': { schema: VerifyResponse } } },
      ...mergeErrors(
        pick(400),
        signedErrors,
        errorResponses(TicketErrors, 'ticket_invalid', 'ticket_not_for_app', 'ticket_already_used', 'ticket_expired', 'redeemed_user_gone', 'redeemed_user_disabled', 'redeemed_mapping_disabled', 'redeemed_no_access', 'mapping_changed'),
      ),
    },
  }),
  async (c) => {
    const app = c.get('app')!
    const ctx = c as unknown as Context<AppEnv>
    const { ticket } = c.req.valid('json')
    const signed = c.get('signed')
    const target = ticketTarget(ticket)
    const pre = (await signed?.prefetch) as VerifyReads | undefined
    let r: RedeemResult = { ok: false, reason: 'ticket_invalid' }
    if (target === app.appId && signed?.redeemed) r = signed.redeemed
    else if (target !== null && target !== app.appId && pre?.kind === 'foreign' && pre.exists) r = { ok: false, reason: 'ticket_not_for_app' }
    if (!r.ok) {
      // Replays and foreign redemptions are security events; plain garbage is not worth a row.
      if (r.reason !== 'ticket_invalid') auditSoon(ctx, { action: 'ticket.redeem_refused', actorType: 'app', actorId: app.appId, details: { code: r.reason } })
      throw TicketErrors[r.reason]()
    }
    let user
    try {
      const reads = pre?.kind === 'own' && pre.reads.userId === r.ticket.userId ? pre.reads : await redemptionReads(c.env, app.appId, r.ticket.userId)
      user = recheckRedeemed(r.ticket, reads)
    } catch (e) {
      // the gate has recorded the ticket as redeemed (spent by this app); this row says the answer was a refusal
      if (e instanceof ApiError) auditSoon(ctx, { action: 'ticket.redeem_refused', actorType: 'app', actorId: app.appId, targetType: 'user', targetId: r.ticket.userId, details: { code: e.code, ticket_consumed: true } })
      throw e
    }
    c.header('Cache-Control', 'no-store')
    return c.json(
      {
        user: { mobile: user.mobile, name: user.name, mapped_key: user.mappedKey, status: user.status },
        source_app_id: r.ticket.sourceAppId,
        state: r.ticket.state,
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
      'With a live `AUTH_SESSION_ID` session and an active mapping in the app: 302 to `redirect_uri?ticket=...`. Without a session: 302 to `/page/login` with the same parameters. `redirect_uri` must be registered for the app (exact match), otherwise 400 (an HTML error page naming the code) and no redirect. An optional `state` is bound to the ticket and returned by verify (not added to the redirect).',
    request: {
      query: z.object({
        app_id: z.string().min(1).max(64).openapi({ example: 'app_9b8c7d6e5f4a3b2c' }),
        redirect_uri: z.string().min(1).max(2048).openapi({ example: 'https://crm.example.com/sso/callback' }),
        state: StateField.optional(),
      }),
    },
    responses: {
      302: { description: 'To the app with a ticket, or to the login page' },
      ...asPages(mergeErrors(pick(400), errorResponses(TicketErrors, 'invalid_app', 'redirect_uri_not_registered', 'account_disabled', 'no_access'))),
    },
  }),
  async (c) => {
    const { app_id, redirect_uri, state } = c.req.valid('query')
    const res = await simpleSsoRedirect(c, { appId: app_id, redirectUri: redirect_uri, state })
    if (res) return res
    const login = `/page/login?${new URLSearchParams({ app_id, redirect_uri, ...(state ? { state } : {}) })}`
    return new Response(null, { status: 302, headers: { Location: login, 'Cache-Control': 'no-store' } })
  },
  // a browser follows this link: a malformed one gets the refusal page too, not JSON
  (result, c) => {
    if (!result.success) return pageRefusalResponse(c as Context<AppEnv>, CommonErrors.invalid_request({ message: `${result.error.issues[0]?.path.join('.') || 'query'}: ${result.error.issues[0]?.message ?? 'invalid'}` }))
  },
)

/** The hop's refusals are pages a person reads (src/pages/errors.tsx), each naming its error code. */
function asPages(responses: Record<number, { description: string }>) {
  return Object.fromEntries(
    Object.entries(responses).map(([status, r]) => [status, { description: `An HTML error page in the visitor's language showing the error code. ${r.description}`, content: { 'text/html': { schema: z.string() } } }]),
  )
}
