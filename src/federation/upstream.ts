import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWTPayload } from 'jose'
import type { Env } from '../env'
import { timingSafeEqual } from '../lib/crypto'
import { OutboundError, outboundJson, outboundUrlProblem } from '../lib/outbound'
import { log } from '../lib/logger'
import { FederationErrors } from './errors'
import { effectiveEndpoints, outboundPolicy, providerClientSecret } from './providers'
import type { ClaimMapping, IdentityProvider, UpstreamProfile } from './schema'

/*
 * Talking to the upstream provider: discovery and JWKS (cached per isolate for a few
 * minutes), the authorization URL, the token request, ID token verification (jose), the
 * user-info call and GitHub's user API. Every call goes through lib/outbound.ts (https,
 * no redirects, timeouts, size bounds).
 */

const DISCOVERY_TTL_MS = 5 * 60_000
const JWKS_TTL_MS = 5 * 60_000
/** An unknown `kid` refetches the JWKS (the provider rotated keys), but not more often than this. */
const JWKS_REFETCH_MIN_MS = 30_000
/** ID token algorithms accepted: asymmetric only (no `none`, no HS* keyed by the client secret). */
export const ID_TOKEN_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']
const CLOCK_TOLERANCE_S = 60

interface Discovery {
  issuer: string
  authorization_endpoint: string
  token_endpoint: string
  jwks_uri: string
  userinfo_endpoint?: string
  authorization_response_iss_parameter_supported?: boolean
}

const discoveryCache = new Map<string, { doc: Discovery; exp: number }>()
const jwksCache = new Map<string, { keys: JSONWebKeySet; fetchedAt: number }>()

const unavailable = (message: string) => FederationErrors.upstream_unavailable({ message: `The identity provider could not be used: ${message}` })
const rejected = (message: string) => FederationErrors.upstream_rejected({ message: `The identity provider's answer was refused: ${message}` })

async function getJson<T>(env: Env, url: string, init: Parameters<typeof outboundJson>[1] = {}, maxBytes = 64 * 1024) {
  try {
    return await outboundJson<T>(url, init, { ...outboundPolicy(env), maxBytes })
  } catch (e) {
    if (e instanceof OutboundError) throw unavailable(e.message)
    throw e
  }
}

/** OIDC Discovery 1.0 §4: the provider's metadata, whose `issuer` must be exactly the configured one (§4.3). */
export async function discover(env: Env, issuer: string, now = Date.now()): Promise<Discovery> {
  const hit = discoveryCache.get(issuer)
  if (hit && hit.exp > now) return hit.doc
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
  const { status, body } = await getJson<Partial<Discovery>>(env, url)
  if (status !== 200 || !body || typeof body !== 'object') throw unavailable(`discovery answered ${status}`)
  if (body.issuer !== issuer) throw unavailable(`the discovery document's issuer ${JSON.stringify(body.issuer)} is not ${issuer} (OIDC Discovery §4.3)`)
  const policy = outboundPolicy(env)
  for (const field of ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const) {
    const v = body[field]
    if (typeof v !== 'string') throw unavailable(`the discovery document has no ${field}`)
    const problem = outboundUrlProblem(v, policy)
    if (problem) throw unavailable(`${field} ${problem}`)
  }
  if (body.userinfo_endpoint !== undefined && (typeof body.userinfo_endpoint !== 'string' || outboundUrlProblem(body.userinfo_endpoint, policy))) delete body.userinfo_endpoint
  const doc = body as Discovery
  discoveryCache.set(issuer, { doc, exp: now + DISCOVERY_TTL_MS })
  return doc
}

async function fetchJwks(env: Env, uri: string): Promise<JSONWebKeySet> {
  const { status, body } = await getJson<JSONWebKeySet>(env, uri)
  if (status !== 200 || !body || !Array.isArray(body.keys)) throw unavailable(`the JWKS at ${uri} answered ${status} without a keys array`)
  jwksCache.set(uri, { keys: body, fetchedAt: Date.now() })
  return body
}

async function jwks(env: Env, uri: string, forceFresh = false): Promise<JSONWebKeySet> {
  const hit = jwksCache.get(uri)
  const now = Date.now()
  if (hit && !forceFresh && now - hit.fetchedAt < JWKS_TTL_MS) return hit.keys
  if (hit && forceFresh && now - hit.fetchedAt < JWKS_REFETCH_MIN_MS) return hit.keys
  return fetchJwks(env, uri)
}

/** Where to send the browser: RFC 6749 §4.1.1 plus PKCE (RFC 7636 §4.3) and, for OIDC, the nonce (OIDC Core §3.1.2.1). */
export async function authorizationUrl(env: Env, p: IdentityProvider, a: { state: string; nonce: string; codeChallenge: string; redirectUri: string }): Promise<string> {
  const endpoint = p.type === 'oidc' ? (await discover(env, p.issuer!)).authorization_endpoint : effectiveEndpoints(p).authorizationEndpoint!
  const url = new URL(endpoint)
  const q = url.searchParams
  q.set('response_type', 'code')
  q.set('client_id', p.clientId)
  q.set('redirect_uri', a.redirectUri)
  if (p.scopes.length) q.set('scope', p.scopes.join(' '))
  q.set('state', a.state)
  q.set('code_challenge', a.codeChallenge)
  q.set('code_challenge_method', 'S256')
  if (p.type === 'oidc') q.set('nonce', a.nonce)
  return url.toString()
}

interface TokenAnswer {
  access_token?: unknown
  token_type?: unknown
  id_token?: unknown
  error?: unknown
  error_description?: unknown
}

/** RFC 6749 §4.1.3 (with the PKCE code_verifier, RFC 7636 §4.5); GitHub documents the same form fields. */
async function tokenRequest(env: Env, p: IdentityProvider, tokenEndpoint: string, g: { code: string; codeVerifier: string; redirectUri: string }): Promise<TokenAnswer> {
  const secret = await providerClientSecret(env, p)
  const form = new URLSearchParams({ grant_type: 'authorization_code', code: g.code, redirect_uri: g.redirectUri, code_verifier: g.codeVerifier })
  const headers: Record<string, string> = { 'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': 'uap-edge' }
  if (p.tokenEndpointAuthMethod === 'client_secret_basic') {
    // RFC 6749 §2.3.1: both parts form-urlencoded before base64
    const enc = (s: string) => encodeURIComponent(s).replace(/%20/g, '+')
    headers.Authorization = `Basic ${btoa(`${enc(p.clientId)}:${enc(secret)}`)}`
  } else {
    form.set('client_id', p.clientId)
    form.set('client_secret', secret)
  }
  const { status, body } = await getJson<TokenAnswer>(env, tokenEndpoint, { method: 'POST', headers, body: form.toString() })
  // GitHub answers its errors with 200 and an `error` field; RFC 6749 §5.2 with 400/401
  if (body && typeof body === 'object' && typeof body.error === 'string') {
    const what = `the token endpoint answered ${body.error}${typeof body.error_description === 'string' ? ` (${body.error_description.slice(0, 200)})` : ''}`
    // the code, the verifier or the redirect did not match: a refusal of this answer, not an outage
    if (['invalid_grant', 'bad_verification_code', 'incorrect_client_credentials', 'invalid_client', 'redirect_uri_mismatch'].includes(body.error)) throw rejected(what)
    throw unavailable(what)
  }
  if (status !== 200 || !body || typeof body !== 'object') throw unavailable(`the token endpoint answered ${status}`)
  if (typeof body.access_token !== 'string' || !body.access_token) throw unavailable('the token answer has no access_token')
  // RFC 6749 §5.1: token_type is case-insensitive; only bearer tokens are used here (RFC 6750)
  if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer') throw unavailable(`token_type ${JSON.stringify(body.token_type)} is not bearer`)
  return body
}

/** OIDC Core §3.1.3.7: signature by a key of the provider's JWKS, iss, aud, exp, azp, nonce. */
export async function verifyIdToken(env: Env, p: IdentityProvider, doc: Discovery, idToken: string, nonce: string): Promise<JWTPayload> {
  const verify = async (keys: JSONWebKeySet) =>
    jwtVerify(idToken, createLocalJWKSet(keys), { issuer: p.issuer!, audience: p.clientId, algorithms: ID_TOKEN_ALGS, clockTolerance: CLOCK_TOLERANCE_S, requiredClaims: ['sub', 'iat', 'exp'] })
  let payload: JWTPayload
  try {
    try {
      ;({ payload } = await verify(await jwks(env, doc.jwks_uri)))
    } catch (e) {
      if (!(e instanceof joseErrors.JWKSNoMatchingKey)) throw e
      ;({ payload } = await verify(await jwks(env, doc.jwks_uri, true)))
    }
  } catch (e) {
    if (e instanceof joseErrors.JOSEError) throw rejected(`ID token: ${e.message}`)
    throw e
  }
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud]
  // rules 4 and 5: with several audiences azp names the client; when present it must be us
  if (aud.length > 1 && payload.azp === undefined) throw rejected('ID token: several audiences and no azp')
  if (payload.azp !== undefined && payload.azp !== p.clientId) throw rejected('ID token: azp is not this client')
  // rule 11: the nonce of this browser's request, so a token from another request cannot be replayed here
  if (typeof payload.nonce !== 'string' || !timingSafeEqual(payload.nonce, nonce)) throw rejected('ID token: nonce does not match this sign-in')
  if (typeof payload.sub !== 'string' || !payload.sub || payload.sub.length > 255) throw rejected('ID token: sub is missing or too long')
  return payload
}

const str = (v: unknown, max = 320): string | null => (typeof v === 'string' && v.trim() ? v.trim().slice(0, max) : null)

/** A dot path into a JSON object ("data.user.id"). */
function at(obj: unknown, path: string | undefined): unknown {
  if (!path) return undefined
  let cur = obj
  for (const part of path.split('.')) {
    if (!cur || typeof cur !== 'object') return undefined
    cur = (cur as Record<string, unknown>)[part]
  }
  return cur
}

/** A stable id as text: a non-empty string, or an integer (GitHub, many OAuth 2.0 APIs). */
function subjectOf(v: unknown): string | null {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v)
  if (typeof v === 'string' && v && v.length <= 255) return v
  return null
}

const bearerHeaders = (token: string, extra: Record<string, string> = {}) => ({ Authorization: `Bearer ${token}`, 'User-Agent': 'uap-edge', ...extra })

async function oidcProfile(env: Env, p: IdentityProvider, g: { code: string; codeVerifier: string; redirectUri: string; nonce: string }): Promise<UpstreamProfile> {
  const doc = await discover(env, p.issuer!)
  const tokens = await tokenRequest(env, p, doc.token_endpoint, g)
  if (typeof tokens.id_token !== 'string') throw unavailable('the token answer has no id_token')
  const claims: Record<string, unknown> = { ...(await verifyIdToken(env, p, doc, tokens.id_token, g.nonce)) }
  // OIDC Core §5.3: the rest of the profile from userinfo, if the ID token lacks it; its sub must be the ID token's (§5.3.4)
  if ((claims.email === undefined || claims.name === undefined) && doc.userinfo_endpoint) {
    try {
      const { status, body } = await getJson<Record<string, unknown>>(env, doc.userinfo_endpoint, { headers: bearerHeaders(tokens.access_token as string) })
      if (status === 200 && body && body.sub === claims.sub) {
        for (const k of ['email', 'email_verified', 'name', 'preferred_username']) if (claims[k] === undefined) claims[k] = body[k]
      }
    } catch (e) {
      log.warn('federation.userinfo_failed', { provider: p.id, error: (e as Error).message })
    }
  }
  const email = str(claims.email)
  return {
    subject: claims.sub as string,
    email,
    emailVerified: !!email && claims.email_verified === true,
    name: str(claims.name, 100),
    display: str(claims.preferred_username, 100) ?? email ?? str(claims.name, 100),
  }
}

async function oauth2Profile(env: Env, p: IdentityProvider, g: { code: string; codeVerifier: string; redirectUri: string }): Promise<UpstreamProfile> {
  const ep = effectiveEndpoints(p)
  const tokens = await tokenRequest(env, p, ep.tokenEndpoint!, g)
  const { status, body } = await getJson<Record<string, unknown>>(env, ep.userinfoEndpoint!, { headers: bearerHeaders(tokens.access_token as string) })
  if (status !== 200 || !body || typeof body !== 'object') throw unavailable(`the user-info endpoint answered ${status}`)
  const m = p.claimMapping as ClaimMapping
  const subject = subjectOf(at(body, m.subject))
  if (!subject) throw unavailable(`the user-info answer has no usable ${m.subject} (claim_mapping.subject)`)
  const email = str(at(body, m.email))
  const verified = at(body, m.email_verified)
  return {
    subject,
    email,
    emailVerified: !!email && (verified === true || verified === 'true'),
    name: str(at(body, m.name), 100),
    display: str(at(body, m.username), 100) ?? email,
  }
}

interface GitHubUser {
  id?: unknown
  login?: unknown
  name?: unknown
}
interface GitHubEmail {
  email?: unknown
  primary?: unknown
  verified?: unknown
}

/**
 * GitHub (docs.github.com REST "Get the authenticated user", "List email addresses for the
 * authenticated user"): the subject is the numeric `id` (a login can be renamed and then
 * taken by someone else), the email the primary one if GitHub verified it.
 */
async function githubProfile(env: Env, p: IdentityProvider, g: { code: string; codeVerifier: string; redirectUri: string }): Promise<UpstreamProfile> {
  const ep = effectiveEndpoints(p)
  const tokens = await tokenRequest(env, p, ep.tokenEndpoint!, g)
  const headers = bearerHeaders(tokens.access_token as string, { Accept: 'application/vnd.github+json', 'X-GitHub-Api-Version': '2022-11-28' })
  const user = await getJson<GitHubUser>(env, ep.userinfoEndpoint!, { headers })
  if (user.status !== 200 || !user.body) throw unavailable(`GET /user answered ${user.status}`)
  const id = user.body.id
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) throw unavailable('GET /user has no numeric id')
  let email: string | null = null
  // without the user:email scope GitHub answers 404/403 here: then there is no verified email, and that is fine
  const emails = await getJson<GitHubEmail[]>(env, `${ep.userinfoEndpoint!.replace(/\/$/, '')}/emails`, { headers }).catch((e) => {
    log.warn('federation.github_emails_failed', { provider: p.id, error: (e as Error).message })
    return null
  })
  if (emails && emails.status === 200 && Array.isArray(emails.body)) {
    const primary = emails.body.find((e) => e && e.primary === true && e.verified === true)
    email = primary ? str(primary.email) : null
  }
  return { subject: String(id), email, emailVerified: email !== null, name: str(user.body.name, 100), display: str(user.body.login, 100) }
}

/**
 * RFC 9207 §2.4: an authorization response's `iss` must be the provider's issuer (mix-up
 * defence); a provider that announces the parameter must send it. Only OIDC providers have
 * an issuer to compare with, so an `iss` on any other provider's response names an issuer
 * that is not this provider's and is refused. Beyond that, the pages' per-provider callback
 * URL and the API flow's `redirect_uri` check (service.ts) do this job.
 */
export async function checkResponseIssuer(env: Env, p: IdentityProvider, iss: string | undefined) {
  if (p.type !== 'oidc') {
    if (iss !== undefined) throw rejected(`the authorization response names the issuer ${JSON.stringify(iss.slice(0, 200))}, but this ${p.type} provider has none (RFC 9207 §2.4); a provider that identifies itself is set up as type oidc`)
    return
  }
  if (iss !== undefined) {
    if (iss !== p.issuer) throw rejected(`the authorization response's iss ${JSON.stringify(iss.slice(0, 200))} is not ${p.issuer} (RFC 9207)`)
    return
  }
  if ((await discover(env, p.issuer!)).authorization_response_iss_parameter_supported === true) throw rejected('the authorization response has no iss although the provider announces it (RFC 9207)')
}

/** The code from the callback → who the provider says signed in. */
export async function redeemCode(env: Env, p: IdentityProvider, g: { code: string; codeVerifier: string; redirectUri: string; nonce: string }): Promise<UpstreamProfile> {
  if (p.type === 'oidc') return oidcProfile(env, p, g)
  if (p.type === 'github') return githubProfile(env, p, g)
  return oauth2Profile(env, p, g)
}
