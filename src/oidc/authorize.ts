import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { getConfig } from '../env'
import { findApplication } from '../apps/service'
import type { Application } from '../apps/schema'
import { readBrowserSession } from '../auth/browser-session'
import { getDb } from '../db'
import { auditStatement } from '../audit/service'
import { errorPage } from './pages'
import { oauthText } from './oauth'
import { verifyIdTokenHint } from './logout'
import { admitUser } from '../permissions/admission'
import { isLoopbackRedirect, isRegisteredRedirectUri } from '../lib/redirect-uri'
import {
  MAX_LOGIN_REDIRECTS,
  SUPPORTED_SCOPES,
  consentCovers,
  deletePending,
  issueCode,
  loadPending,
  newPending,
  parseScope,
  recordConsent,
  savePending,
  type PendingAuthorization,
} from './service'

/** Authorization request parameters (OIDC Core §3.1.2.1, RFC 7636 §4.3). */
export interface AuthorizeParams {
  request_id?: string
  client_id?: string
  redirect_uri?: string
  response_type?: string
  response_mode?: string
  scope?: string
  state?: string
  nonce?: string
  code_challenge?: string
  code_challenge_method?: string
  prompt?: string
  max_age?: string
  login_hint?: string
  id_token_hint?: string
  request?: string
  request_uri?: string
  registration?: string
}

export const SUPPORTED_PROMPTS = ['none', 'login', 'consent'] as const

export const AUTHORIZE_PATH = '/oauth2/authorize'
export const LOGIN_PAGE = '/page/login'
export const CONSENT_PAGE = '/page/consent'

type Target = { redirectUri: string; state?: string }

/** RFC 6749 §4.1.2.1 error response, with the issuer (RFC 9207 §2). */
export function redirectWithError(c: Context<AppEnv>, to: Target, error: string, description: string) {
  const url = new URL(to.redirectUri)
  url.searchParams.set('error', error)
  url.searchParams.set('error_description', oauthText(description))
  if (to.state !== undefined) url.searchParams.set('state', to.state)
  url.searchParams.set('iss', getConfig(c.env).issuer)
  c.header('Cache-Control', 'no-store')
  return c.redirect(url.toString(), 302)
}

function usableClient(app: Application | undefined): app is Application {
  return !!app && app.protocolType === 'OIDC' && app.status === 'ACTIVE'
}

/**
 * Checks a fresh authorization request. Until client_id and redirect_uri are proven valid,
 * errors are shown on our own page (never redirected: RFC 6749 §4.1.2.1, open redirector);
 * after that they go back to the client.
 */
export async function startAuthorization(c: Context<AppEnv>, p: AuthorizeParams): Promise<Response> {
  if (p.request_id !== undefined) return resumeAuthorization(c, p.request_id)
  if (!p.client_id) return errorPage(c, (t) => ({ title: t.invalidSignInTitle, message: t.noClientId }))
  const app = await findApplication(c.env, p.client_id)
  if (!usableClient(app)) return errorPage(c, (t) => ({ title: t.unknownAppTitle, message: t.unknownClient }))
  if (!p.redirect_uri) return errorPage(c, (t) => ({ title: t.invalidSignInTitle, message: t.noRedirectUri }))
  // Exact string match against the registered list (RFC 9700 §4.1.3).
  if (!isRegisteredRedirectUri(app, p.redirect_uri, { anyLoopbackPort: true })) return errorPage(c, (t) => ({ title: t.invalidSignInTitle, message: t.redirectUriNotRegistered(app.appName) }))

  const to: Target = { redirectUri: p.redirect_uri, state: p.state }
  const fail = (error: string, description: string) => redirectWithError(c, to, error, description)
  // OIDC Core §6: request objects and dynamic registration parameters are not supported.
  if (p.request !== undefined) return fail('request_not_supported', 'The request parameter is not supported')
  if (p.request_uri !== undefined) return fail('request_uri_not_supported', 'The request_uri parameter is not supported')
  if (p.registration !== undefined) return fail('registration_not_supported', 'The registration parameter is not supported')
  if (!p.response_type) return fail('invalid_request', 'response_type is required')
  if (p.response_type !== 'code') {
    return fail('unsupported_response_type', 'Only response_type=code is supported: the implicit and hybrid flows put tokens in the URL and are refused (RFC 9700 §2.1.2). Use the authorization code flow with PKCE.')
  }
  if (!app.responseTypes.includes('code') || !app.grantTypes.includes('authorization_code')) return fail('unauthorized_client', 'This client may not use the authorization code flow')
  if (p.response_mode !== undefined && p.response_mode !== 'query') return fail('invalid_request', 'Only response_mode=query is supported')

  const scope = parseScope(p.scope)
  if (!scope.includes('openid')) return fail('invalid_scope', 'scope must include openid')
  const unknown = scope.filter((s) => !(SUPPORTED_SCOPES as readonly string[]).includes(s))
  if (unknown.length) return fail('invalid_scope', `Unsupported scope: ${unknown.join(' ')}. Supported: ${SUPPORTED_SCOPES.join(' ')}`)
  // OIDC Core §11: offline_access only means something when the client may refresh.
  const granted = app.grantTypes.includes('refresh_token') ? scope : scope.filter((s) => s !== 'offline_access')

  if (p.code_challenge !== undefined) {
    if (p.code_challenge_method === undefined) return fail('invalid_request', 'code_challenge_method is required and must be S256 (plain is not supported)')
    if (p.code_challenge_method !== 'S256') return fail('invalid_request', 'code_challenge_method must be S256; plain is not supported (RFC 9700 §2.1.1)')
    if (!/^[A-Za-z0-9_-]{43}$/.test(p.code_challenge)) return fail('invalid_request', 'code_challenge must be the base64url SHA-256 of the code_verifier (43 characters)')
  } else {
    if (p.code_challenge_method !== undefined) return fail('invalid_request', 'code_challenge_method was given without code_challenge')
    if (app.tokenEndpointAuthMethod === 'none') return fail('invalid_request', 'Public clients must use PKCE: send code_challenge with code_challenge_method=S256 (RFC 9700 §2.1.1)')
    if (app.requirePkce) return fail('invalid_request', 'This client must use PKCE: send code_challenge with code_challenge_method=S256 (RFC 9700 §2.1.1)')
  }

  const prompt = [...new Set((p.prompt ?? '').split(' ').filter(Boolean))]
  const badPrompt = prompt.filter((v) => !(SUPPORTED_PROMPTS as readonly string[]).includes(v))
  if (badPrompt.length) return fail('invalid_request', `Unsupported prompt value: ${badPrompt.join(' ')}. Supported: ${SUPPORTED_PROMPTS.join(' ')}`)
  if (prompt.includes('none') && prompt.length > 1) return fail('invalid_request', 'prompt=none cannot be combined with other values (OIDC Core §3.1.2.1)')
  if (p.max_age !== undefined && !/^\d{1,9}$/.test(p.max_age)) return fail('invalid_request', 'max_age must be a non-negative number of seconds')
  // OIDC Core §3.1.2.1: the user the client expects. A hint signed by a key no longer published
  // vouches for nobody (logout.ts verifyIdTokenHint) and is passed over; a forged one is refused.
  let hintSub: string | undefined
  if (p.id_token_hint !== undefined) {
    const hint = await verifyIdTokenHint(c.env, p.id_token_hint)
    if (!hint || !hint.aud.includes(app.appId)) return fail('invalid_request', 'id_token_hint is not an ID token this server issued to this client')
    if (hint.verified) hintSub = hint.sub
  }

  const now = Date.now()
  // A sign-in older than this does not count: prompt=login means "after this request"; max_age=0 too.
  let minAuthTime: number | undefined
  if (p.max_age !== undefined) minAuthTime = now - Number(p.max_age) * 1000
  if (prompt.includes('login')) minAuthTime = now

  const pending = newPending({
    clientId: app.appId,
    redirectUri: p.redirect_uri,
    scope: granted,
    state: p.state,
    nonce: p.nonce,
    codeChallenge: p.code_challenge,
    prompt,
    minAuthTime,
    loginHint: p.login_hint,
    hintSub,
    createdAt: now,
  })
  return continueAuthorization(c, pending, { consented: false })
}

async function resumeAuthorization(c: Context<AppEnv>, requestId: string) {
  const pending = await loadPending(c.env, requestId)
  if (!pending) return errorPage(c, (t) => ({ title: t.requestExpiredTitle, message: t.signInRequestExpired }))
  return continueAuthorization(c, pending, { consented: false })
}

/**
 * The client of a pending request, checked again: it may have been disabled, or the redirect
 * URI removed, since the request was made. Any redirect, an error included, goes only to a
 * URI still registered for a usable client (RFC 6749 §4.1.2.1, §10.6); otherwise the request
 * ends on an error page.
 */
export async function clientOfPending(c: Context<AppEnv>, pending: PendingAuthorization): Promise<Application | Response> {
  const app = await findApplication(c.env, pending.clientId)
  if (usableClient(app) && isRegisteredRedirectUri(app, pending.redirectUri, { anyLoopbackPort: true })) return app
  await deletePending(c.env, pending)
  return errorPage(c, (t) => ({ title: t.unknownAppTitle, message: t.appGone }))
}

/**
 * The decision steps, run on the first visit and again after sign-in or consent:
 * signed in recently enough → has an account in the app → consented → code.
 */
export async function continueAuthorization(c: Context<AppEnv>, pending: PendingAuthorization, opts: { consented: boolean }): Promise<Response> {
  const app = await clientOfPending(c, pending)
  if (app instanceof Response) return app
  const to: Target = { redirectUri: pending.redirectUri, state: pending.state }
  const done = async (res: Response) => {
    await deletePending(c.env, pending)
    return res
  }

  const current = await readBrowserSession(c)
  const fresh = !!current && (pending.minAuthTime === undefined || current.session.authTime >= pending.minAuthTime)
  // OIDC Core §3.1.2.1: with id_token_hint, only that user's sign-in answers (no silent code for whoever else is signed in)
  const expected = pending.hintSub === undefined || current?.user.id === pending.hintSub
  if (!current || !fresh || !expected) {
    if (pending.prompt.includes('none')) return done(redirectWithError(c, to, 'login_required', 'The user is not signed in (or not recently enough, or not as the user id_token_hint names) and prompt=none forbids asking'))
    if (pending.loginRedirects >= MAX_LOGIN_REDIRECTS) return done(redirectWithError(c, to, 'login_required', 'The user did not sign in'))
    pending.loginRedirects++
    await savePending(c.env, pending)
    const q = new URLSearchParams({ return_to: `${AUTHORIZE_PATH}?request_id=${pending.id}` })
    // A live but too old session: the login page must show the form instead of passing through.
    if (current) q.set('prompt', 'login')
    if (pending.loginHint) q.set('login_hint', pending.loginHint)
    c.header('Cache-Control', 'no-store')
    return c.redirect(`${LOGIN_PAGE}?${q}`, 302)
  }

  const { session, user } = current
  const admission = await admitUser(c.env, app.appId, user.id)
  if (!admission.ok) {
    const noAccess = admission.reason === 'no_access'
    const db = getDb(c.env.DB)
    await db.batch([
      auditStatement(db, { action: noAccess ? 'oidc.denied_no_access' : 'oidc.denied_no_mapping', actorType: 'user', actorId: user.id, targetType: 'application', targetId: app.appId, requestId: c.get('requestId'), ip: c.get('clientIp') }),
    ])
    // no app name: error_description is ASCII only (RFC 6749 §4.1.2.1), and the app knows its own
    const why = noAccess ? "This account is not allowed to use this application. Ask the application's administrator for access." : "This account has no active user in this application. Ask the application's administrator to map your account."
    return done(redirectWithError(c, to, 'access_denied', why))
  }

  if (opts.consented) {
    // recorded only now that the client and the user's access were checked again: an app
    // disabled or a mapping removed while the consent page was open keeps no consent (and no
    // `oidc.consent.granted`) for later requests to skip the page with (RFC 6749 §10.6)
    await recordConsent(c.env, { userId: user.id, clientId: app.appId, scope: pending.scope, requestId: c.get('requestId'), ip: c.get('clientIp') })
  } else {
    // RFC 8252 §8.6: any program on the device can receive a loopback redirect, so a public
    // client's identity is not assured there: the user always sees what they approve
    const forced = pending.prompt.includes('consent') || (app.tokenEndpointAuthMethod === 'none' && isLoopbackRedirect(pending.redirectUri))
    const needed = forced || (!app.firstParty && !(await consentCovers(c.env, user.id, app.appId, pending.scope)))
    if (needed) {
      if (pending.prompt.includes('none')) return done(redirectWithError(c, to, 'consent_required', 'The user has not consented to this application and prompt=none forbids asking'))
      pending.consentFor = { userId: user.id, sessionId: session.id }
      await savePending(c.env, pending)
      c.header('Cache-Control', 'no-store')
      return c.redirect(`${CONSENT_PAGE}?request_id=${pending.id}`, 302)
    }
  }

  const code = await issueCode(c.env, pending, { userId: user.id, sessionId: session.id, authTime: session.authTime }, { requestId: c.get('requestId'), ip: c.get('clientIp') })
  const url = new URL(pending.redirectUri)
  url.searchParams.set('code', code)
  if (pending.state !== undefined) url.searchParams.set('state', pending.state)
  url.searchParams.set('iss', getConfig(c.env).issuer)
  c.header('Cache-Control', 'no-store')
  return done(c.redirect(url.toString(), 302))
}
