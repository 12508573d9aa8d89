// The OAuth / OIDC side of a relying party: PKCE, the code flow through a Browser, token endpoint calls.
import { SELF } from 'cloudflare:test'
import { expect } from 'vitest'
import * as client from 'openid-client'
import { ISSUER, readResponse } from './api'
import { csrfFrom, location, type Browser } from './browser'

export const REDIRECT = 'https://rp.example.com/cb'
export const POST_LOGOUT = 'https://rp.example.com/bye'

/** An app's client credentials (HTTP Basic for the token, introspection and revocation endpoints). */
type Client = { app_id: string; app_secret: string }

/** openid-client configuration talking to the Worker in-process (customFetch → SELF.fetch). */
export async function discover(clientId: string, auth: client.ClientAuth) {
  return client.discovery(new URL(ISSUER), clientId, undefined, auth, {
    execute: [client.allowInsecureRequests],
    [client.customFetch]: (url: string, options: client.CustomFetchOptions) =>
      SELF.fetch(url, { method: options.method, headers: options.headers as HeadersInit, body: options.body as BodyInit | null, redirect: options.redirect }),
  })
}

export async function pkce() {
  const verifier = client.randomPKCECodeVerifier()
  return { verifier, challenge: await client.calculatePKCECodeChallenge(verifier) }
}

/** Runs the browser part of the code flow, through consent (if shown), and returns the callback URL. */
export async function authorizeThrough(b: Browser, start: URL | string): Promise<URL> {
  let next = new URL(String(start), ISSUER)
  for (let hop = 0; hop < 6; hop++) {
    if (next.origin !== ISSUER) return next
    if (next.pathname === '/page/login') throw new Error('not signed in')
    const res =
      next.pathname === '/page/consent'
        ? await b.post('/page/consent', { request_id: next.searchParams.get('request_id')!, csrf_token: csrfFrom((await b.get(next.pathname + next.search)).html), decision: 'allow' })
        : await b.get(next.href)
    if (res.status !== 302) throw new Error(`unexpected ${res.status}: ${res.html}`)
    next = location(res)
  }
  throw new Error('too many redirects')
}

/** Form POST to an OAuth endpoint, with the app's client credentials as HTTP Basic when given. */
export async function oauthPost(path: string, form: Record<string, string>, basic?: Client) {
  const headers: Record<string, string> = { 'Content-Type': 'application/x-www-form-urlencoded' }
  if (basic) headers.Authorization = 'Basic ' + btoa(`${encodeURIComponent(basic.app_id)}:${encodeURIComponent(basic.app_secret)}`)
  const res = await SELF.fetch(`${ISSUER}${path}`, { method: 'POST', headers, body: new URLSearchParams(form).toString() })
  return readResponse(res)
}

/** Signs the browser's user into a confidential client with the code flow + PKCE (scope as given) and returns its tokens. */
export async function codeFlow(b: Browser, app: Client, scope = 'openid offline_access') {
  const { verifier, challenge } = await pkce()
  const q = new URLSearchParams({ client_id: app.app_id, redirect_uri: REDIRECT, response_type: 'code', scope, code_challenge: challenge, code_challenge_method: 'S256' })
  const callback = await authorizeThrough(b, `/oauth2/authorize?${q}`)
  const r = await oauthPost('/oauth2/token', { grant_type: 'authorization_code', code: callback.searchParams.get('code')!, code_verifier: verifier, redirect_uri: REDIRECT }, app)
  expect(r.status).toBe(200)
  return r.body as { access_token: string; refresh_token?: string; id_token: string }
}
