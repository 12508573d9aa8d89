import { createRoute, z } from '@hono/zod-openapi'
import { router } from '../context'
import type { Context } from 'hono'
import type { AppEnv } from '../context'
import type { Env } from '../env'
import { errorResponses, CommonErrors } from '../lib/errors'
import { OPEN, bearerSecurity, jsonBody, mergeErrors, pick } from '../lib/openapi'
import { MobileField } from '../lib/mobile'
import { randomToken } from '../lib/crypto'
import { isRegisteredRedirectUri } from '../lib/redirect-uri'
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../lib/password'
import { enforceRateLimit } from '../ratelimit'
import { auditActor } from '../audit/service'
import { findApplication } from '../apps/service'
import { requireUser } from '../auth/guards'
import { issueSignInTokens } from '../auth/service'
import { AuthErrors } from '../auth/errors'
import { TokenResponse } from '../auth/routes'
import { AccountErrors } from '../account/errors'
import { SmsErrors } from '../sms/errors'
import { CaptchaErrors } from '../captcha/errors'
import { verifyCaptcha } from '../captcha/service'
import { CaptchaFields, SmsLangField, invalidCaptcha, requestedSmsLocale } from '../sms/routes'
import { SMS_CODE_TTL_S, SMS_RESEND_COOLDOWN_S } from '../sms/service'
import { FederationErrors } from './errors'
import { enabledProvider, listEnabledProviders } from './providers'
import { pendingBinding, startFlow } from './flows'
import { createBoundAccount, handleCallback, sendBindingCode, verifyBindingCode, withLinkConflicts, type SignIn } from './service'
import { listIdentities, unlinkIdentity } from './identities'

/** Sign-in with another identity provider for SPAs and mobile apps (docs/federation.md). Mounted at /api/v1/auth/federation. */
export const federationRoutes = router()
/** The signed-in user's linked identities. Mounted at /api/v1/auth/me/identities. */
export const identityRoutes = router()

const TAG = 'Auth: other identity providers'
const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })

const ProviderParam = z.object({ provider: z.string().min(1).max(32).openapi({ param: { name: 'provider', in: 'path' }, example: 'github' }) })
const Ticket = z.string().min(1).max(64).openapi({ example: 'fbt_Jx2s3m0kq9VYbq6o1nZ5W8c4r7tL2pA0dF3gH6jK9mQ', description: 'From the callback answer (202 binding_required)' })
const SmsCode = z.string().regex(/^\d{6}$/, 'must be the six digits from the SMS').openapi({ example: '493817' })

const ProviderButton = z.object({ id: z.string().openapi({ example: 'github' }), type: z.enum(['oidc', 'oauth2', 'github']), display_name: z.string().openapi({ example: 'GitHub' }) }).openapi('IdentityProviderButton')

const BindingRequired = z
  .object({
    binding_required: z.literal(true),
    binding_ticket: Ticket,
    expires_in: z.number().int().openapi({ example: 900 }),
    provider: z.string().openapi({ example: 'github' }),
    identity: z.object({ display: z.string().nullable().openapi({ example: 'octocat' }), name: z.string().nullable().openapi({ example: 'The Octocat' }) }),
  })
  .openapi('FederationBindingRequired')

type C = Context<AppEnv>

const ctxOf = (c: C) => ({ requestId: c.get('requestId'), ip: c.get('clientIp'), userAgent: c.req.header('User-Agent') })

async function tokensFor(c: C, signIn: SignIn, sessionAppId: string | null) {
  const tokens = await withLinkConflicts(() => issueSignInTokens(c.env, signIn.user, { sessionAppId, details: signIn.details, statements: signIn.statements }, ctxOf(c)))
  c.header('Cache-Control', 'no-store')
  return tokens
}

/** A binding ticket of the API flow (its provider still enabled, flows.ts pendingBinding). */
const apiBinding = async (env: Env, ticket: string) => (await pendingBinding(env, ticket, { channel: 'api' })).pending

federationRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/providers',
    tags: [TAG],
    summary: 'Enabled identity providers',
    description: 'What a sign-in screen shows as "Sign in with …" buttons: the id to use in the paths below and the label.',
    ...OPEN,
    responses: { 200: ok('Enabled providers', z.object({ items: z.array(ProviderButton) })) },
  }),
  async (c) => c.json({ items: (await listEnabledProviders(c.env)).map((p) => ({ id: p.id, type: p.type, display_name: p.displayName })) }, 200),
)

federationRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{provider}/login',
    tags: [TAG],
    summary: 'Start a sign-in with another identity provider',
    description: [
      'Returns the provider\'s authorization URL (with `state`, PKCE S256 and, for OIDC, a `nonce`; all kept by UAP Edge) for the app to open.',
      '`redirect_uri` must be one of the redirect URIs registered for `app_id` (exact match), and registered at the provider too: the provider sends the user back there with `code` and `state`, and the app posts both, with `flow_secret`, to the callback below.',
      'Keep `flow_secret` in the app (memory or session storage, never a URL): it binds the sign-in to the client that started it, so a code and state injected into another client are refused. The flow is valid 10 minutes and its state redeems once.',
    ].join(' '),
    ...OPEN,
    request: {
      params: ProviderParam,
      query: z.object({
        app_id: z.string().min(1).max(64).openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
        redirect_uri: z.string().min(1).max(2000).openapi({ example: 'https://spa.example.com/auth/github/callback' }),
      }),
    },
    responses: {
      200: ok(
        'Open authorization_url; keep state and flow_secret',
        z
          .object({
            authorization_url: z.string().openapi({ example: 'https://github.com/login/oauth/authorize?response_type=code&client_id=Iv1.8a61f9b3a7aba766&redirect_uri=...&state=...&code_challenge=...&code_challenge_method=S256' }),
            state: z.string().openapi({ example: 'Yx4v0Hn1c8k2WqkE3r9s5Zb7m1LpQ6tA0dF3gH6jK9m' }),
            flow_secret: z.string().openapi({ example: 'fs_Gq1V7w0Lx3mN8b2Rk5Tz9Yd4Pc6Hs1Ja0Fe3Ui7Oy2W' }),
            expires_in: z.number().int().openapi({ example: 600 }),
          })
          .openapi('FederationLogin'),
      ),
      ...mergeErrors(pick(400), errorResponses(FederationErrors, 'invalid_app', 'redirect_uri_not_registered', 'unknown_provider', 'upstream_unavailable'), errorResponses(CommonErrors, 'rate_limited')),
    },
  }),
  async (c) => {
    await enforceRateLimit(c, 'federation_ip', c.get('clientIp'))
    const { provider } = c.req.valid('param')
    const { app_id, redirect_uri } = c.req.valid('query')
    const p = await enabledProvider(c.env, provider)
    const app = await findApplication(c.env, app_id)
    if (!app || app.status !== 'ACTIVE') throw FederationErrors.invalid_app()
    if (!isRegisteredRedirectUri(app, redirect_uri)) throw FederationErrors.redirect_uri_not_registered({ details: { app_id } })
    const flowSecret = randomToken(32, 'fs_')
    const flow = await startFlow(c.env, p, { channel: 'api', secret: flowSecret, redirectUri: redirect_uri, appId: app_id })
    c.header('Cache-Control', 'no-store')
    return c.json({ authorization_url: flow.authorizationUrl, state: flow.state, flow_secret: flowSecret, expires_in: flow.expiresIn }, 200)
  },
)

federationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{provider}/callback',
    tags: [TAG],
    summary: 'Finish a sign-in with another identity provider',
    description: [
      'The `code` and `state` the provider sent to the app\'s redirect URI (and `iss` if it sent one, RFC 9207), with the `flow_secret` from the login call.',
      'The state redeems once: a replayed, expired, foreign or tampered state is 400 `invalid_state`. UAP Edge exchanges the code (with the PKCE verifier), verifies the ID token (signature by the provider\'s JWKS, issuer, audience, expiry, nonce, azp) or reads the user API, and looks up the identity.',
      'A linked identity: 200 with tokens (the same first-party tokens as `POST /api/v1/auth/login` without app_id). An identity not linked yet: 202 with a `binding_ticket`; bind a mobile with `bind/send-code` and `bind/verify`.',
    ].join(' '),
    ...OPEN,
    request: {
      params: ProviderParam,
      body: jsonBody(
        z.object({
          code: z.string().min(1).max(2048).optional().openapi({ example: 'SplxlOBeZQQYbYS6WxSbIA' }),
          state: z.string().min(1).max(256).openapi({ example: 'Yx4v0Hn1c8k2WqkE3r9s5Zb7m1LpQ6tA0dF3gH6jK9m' }),
          flow_secret: z.string().min(1).max(128).openapi({ example: 'fs_Gq1V7w0Lx3mN8b2Rk5Tz9Yd4Pc6Hs1Ja0Fe3Ui7Oy2W' }),
          iss: z.string().max(2048).optional().openapi({ example: 'https://accounts.example.com' }),
          redirect_uri: z
            .string()
            .max(2000)
            .optional()
            .openapi({
              description:
                'The redirect URI the response arrived at. Send it, and give each provider a redirect URI of its own: a response that arrived elsewhere than where this sign-in sent the user is refused (400 `upstream_rejected`), so a provider cannot make the app hand it another provider\'s code (mix-up, RFC 9700 §4.4.2).',
              example: 'https://spa.example.com/auth/github/callback',
            }),
          error: z.string().max(256).optional().openapi({ description: "The provider's `error` instead of a code (RFC 6749 §4.1.2.1)", example: 'access_denied' }),
        }),
      ),
    },
    responses: {
      200: ok('Signed in', TokenResponse),
      202: ok('Signed in upstream; bind a mobile to finish', BindingRequired),
      ...mergeErrors(
        pick(400),
        errorResponses(FederationErrors, 'invalid_state', 'upstream_denied', 'upstream_rejected', 'unknown_provider', 'account_disabled', 'identity_taken', 'upstream_unavailable'),
        errorResponses(CommonErrors, 'rate_limited'),
      ),
    },
  }),
  async (c) => {
    await enforceRateLimit(c, 'federation_ip', c.get('clientIp'))
    const p = await enabledProvider(c.env, c.req.valid('param').provider)
    const b = c.req.valid('json')
    const out = await handleCallback(c.env, p, { channel: 'api', state: b.state, secret: b.flow_secret, code: b.code, iss: b.iss, error: b.error, redirectUri: b.redirect_uri }, auditActor(c))
    if (out.kind === 'signed_in') return c.json(await tokensFor(c, out.signIn, out.flow.appId), 200)
    c.header('Cache-Control', 'no-store')
    return c.json({ binding_required: true as const, binding_ticket: out.ticket, expires_in: out.expiresIn, provider: p.id, identity: { display: out.profile.display, name: out.profile.name } }, 202)
  },
)

federationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/bind/send-code',
    tags: [TAG],
    summary: 'Binding step 1: send an SMS code',
    description:
      'Needs a captcha (`GET /api/v1/utils/captcha`, spent by this call). Sends a code (purpose `bind`) to the mobile the person entered. The answer never tells whether the number has an account: with registration open a code goes to any number; with registration closed only to numbers that have an account, and the reply is the same either way. Same limits as the other SMS codes (60 s cooldown, 10 a day).',
    ...OPEN,
    request: { body: jsonBody(z.object({ binding_ticket: Ticket, mobile: MobileField, ...CaptchaFields, ...SmsLangField })) },
    responses: {
      200: ok('If the number can be bound, a code is on its way', z.object({ sent: z.literal(true), expires_in: z.number().int().openapi({ example: SMS_CODE_TTL_S }), resend_after: z.number().int().openapi({ example: SMS_RESEND_COOLDOWN_S }) })),
      ...mergeErrors(pick(400), errorResponses(FederationErrors, 'invalid_ticket', 'unknown_provider'), errorResponses(CaptchaErrors, 'invalid_captcha'), errorResponses(SmsErrors, 'sms_cooldown', 'sms_daily_limit'), errorResponses(CommonErrors, 'rate_limited')),
    },
  }),
  async (c) => {
    const b = c.req.valid('json')
    const pending = await apiBinding(c.env, b.binding_ticket)
    if (!(await verifyCaptcha(c.env, b.captcha_id, b.captcha_code))) throw invalidCaptcha()
    await enforceRateLimit(c, 'sms_ip', c.get('clientIp'))
    const r = await sendBindingCode(c.env, pending, b.mobile, { requestId: c.get('requestId'), ip: c.get('clientIp'), waitUntil: (p) => c.executionCtx.waitUntil(p) }, requestedSmsLocale(c, b.lang))
    c.header('Cache-Control', 'no-store')
    return c.json({ sent: true as const, ...r }, 200)
  },
)

federationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/bind/verify',
    tags: [TAG],
    summary: 'Binding step 2: prove the mobile',
    description:
      'The SMS code proves the number. If it has an account, the identity is linked to it and the answer is 200 with tokens. If not and registration is open, 202 `account_required`: finish with `bind/create-account`. If not and registration is closed, 403 `registration_closed`. A wrong code is 400 `invalid_sms_code` (with attempts_left); 5 wrong codes burn the code (429 `too_many_attempts`), 10 wrong codes for the number in 24 h lock it (429 `sms_code_locked`); code checks are limited per client IP (`sms_verify_ip`).',
    ...OPEN,
    request: { body: jsonBody(z.object({ binding_ticket: Ticket, mobile: MobileField, sms_code: SmsCode })) },
    responses: {
      200: ok('Linked to the account with this mobile; signed in', TokenResponse),
      202: ok('No account has this mobile: create one', z.object({ account_required: z.literal(true) }).openapi('FederationAccountRequired')),
      ...mergeErrors(
        pick(400),
        errorResponses(FederationErrors, 'invalid_ticket', 'unknown_provider', 'registration_closed', 'account_disabled', 'identity_taken'),
        errorResponses(SmsErrors, 'invalid_sms_code', 'too_many_attempts', 'sms_code_locked'),
        errorResponses(CommonErrors, 'rate_limited'),
      ),
    },
  }),
  async (c) => {
    const b = c.req.valid('json')
    const pending = await apiBinding(c.env, b.binding_ticket)
    const out = await verifyBindingCode(c.env, pending, b.mobile, b.sms_code, auditActor(c))
    if (out.kind === 'account_required') return c.json({ account_required: true as const }, 202)
    return c.json(await tokensFor(c, out.signIn, pending.appId), 200)
  },
)

federationRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/bind/create-account',
    tags: [TAG],
    summary: 'Binding step 3: create the account',
    description:
      'After `bind/verify` answered 202 `account_required` for this ticket: creates the account with the proven mobile and this password (the account can always sign in with its mobile and password too), links the identity and signs in. The name defaults to the one the provider gave; the email is set only if the provider verified it.',
    ...OPEN,
    request: {
      body: jsonBody(
        z.object({
          binding_ticket: Ticket,
          password: z.string().min(PASSWORD_MIN_LENGTH).max(PASSWORD_MAX_LENGTH).openapi({ example: 'a long new passphrase' }),
          name: z.string().trim().max(100).optional().openapi({ example: 'Li Lei' }),
        }),
      ),
    },
    responses: {
      201: ok('Account created and linked; signed in', TokenResponse),
      ...mergeErrors(pick(400), errorResponses(FederationErrors, 'invalid_ticket', 'unknown_provider', 'mobile_not_verified', 'registration_closed', 'identity_taken'), errorResponses(AccountErrors, 'mobile_taken'), errorResponses(CommonErrors, 'rate_limited')),
    },
  }),
  async (c) => {
    const b = c.req.valid('json')
    const pending = await apiBinding(c.env, b.binding_ticket)
    await enforceRateLimit(c, 'register_ip', c.get('clientIp'))
    const signIn = await createBoundAccount(c.env, pending, { password: b.password, name: b.name }, auditActor(c))
    return c.json(await tokensFor(c, signIn, pending.appId), 201)
  },
)

const IdentityView = z
  .object({
    id: z.string().openapi({ example: '5b8e2f0a-6c1d-4e7b-9a3f-2d4c6e8a0b1c' }),
    provider: z.string().openapi({ example: 'github' }),
    provider_name: z.string().openapi({ example: 'GitHub' }),
    provider_type: z.enum(['oidc', 'oauth2', 'github']),
    display: z.string().nullable().openapi({ example: 'octocat' }),
    email: z.string().nullable().openapi({ example: 'octocat@github.example' }),
    email_verified: z.boolean(),
    linked_at: z.string().openapi({ example: '2026-12-01T10:00:00.000Z' }),
    last_used_at: z.string().nullable().openapi({ example: '2026-12-01T10:00:00.000Z' }),
  })
  .openapi('LinkedIdentity')

const userErrors = mergeErrors(errorResponses(AuthErrors, 'bearer_missing', 'invalid_token'))

identityRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: [TAG],
    summary: 'My linked identities',
    description: 'The identities of other providers that sign in to this account.',
    security: bearerSecurity,
    middleware: [requireUser] as const,
    responses: { 200: ok('Linked identities, oldest first', z.object({ items: z.array(IdentityView) })), ...userErrors },
  }),
  async (c) => c.json({ items: await listIdentities(c.env, c.get('auth')!.userId) }, 200),
)

identityRoutes.openapi(
  createRoute({
    method: 'delete',
    path: '/{id}',
    tags: [TAG],
    summary: 'Unlink an identity',
    description:
      'The identity stops signing in to this account (signing in with it again starts a new binding). Refused with 409 `last_sign_in_method` when it is the only way in (no other identity and no usable password); every account made here has a password, so that only concerns imported accounts whose hash cannot be read.',
    security: bearerSecurity,
    middleware: [requireUser] as const,
    request: { params: z.object({ id: z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' }, example: '5b8e2f0a-6c1d-4e7b-9a3f-2d4c6e8a0b1c' }) }) },
    responses: {
      200: ok('Unlinked', z.object({ unlinked: z.literal(true), id: z.string() })),
      ...mergeErrors(pick(400), userErrors, errorResponses(FederationErrors, 'identity_not_found', 'last_sign_in_method')),
    },
  }),
  async (c) => {
    const { id } = c.req.valid('param')
    await unlinkIdentity(c.env, c.get('auth')!.userId, id, auditActor(c))
    return c.json({ unlinked: true as const, id }, 200)
  },
)
