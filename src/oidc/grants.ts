import type { Env } from '../env'
import type { GrantType } from '../apps/schema'
import { readRefreshContext, rotateRefreshToken, type RefreshContext } from '../auth/tokens'
import { OAuthError, type ClientAuthMethod } from './oauth'
import { mintClientToken, redeemCode } from './service'
import type { Application } from '../apps/schema'

export interface TokenRequestForm {
  grant_type?: string
  code?: string
  redirect_uri?: string
  code_verifier?: string
  refresh_token?: string
  scope?: string
  client_id?: string
  client_secret?: string
}

type Client = { app: Application; method: ClientAuthMethod }
type Ctx = { requestId: string; ip: string }
type GrantHandler = (env: Env, client: Client, f: TokenRequestForm, ctx: Ctx & { prefetched?: Promise<unknown> }) => Promise<object>

/**
 * The grants of the token endpoint, one handler per grant type an application can be
 * registered for (apps/schema.ts GRANT_TYPES, also what discovery lists). The resource
 * owner password grant and the implicit grant are absent on purpose (RFC 9700 §2.4, §2.1.2).
 */
/**
 * Reads a grant can start before the client is authenticated, so both share one storage
 * round trip; nothing read is used, or revealed, unless the client authenticates.
 */
interface GrantPrefetch<T> {
  read: (env: Env, f: TokenRequestForm) => Promise<T> | undefined
  /** the app row the read joined to the presented grant: client authentication uses it when it is the authenticating client's */
  app: (read: T) => Application | null | undefined
}

export const GRANT_PREFETCH: Partial<Record<GrantType, GrantPrefetch<any>>> = {
  refresh_token: {
    read: (env, f) => (f.refresh_token ? readRefreshContext(env, f.refresh_token) : undefined),
    app: (rc: RefreshContext | undefined) => rc?.app,
  } satisfies GrantPrefetch<RefreshContext | undefined>,
}

export const GRANTS: Record<GrantType, GrantHandler> = {
  /** RFC 6749 §4.1.3, RFC 7636 §4.5 */
  authorization_code: (env, { app }, f, ctx) => {
    if (!f.code) throw new OAuthError('invalid_request', 'code is required')
    if (!f.redirect_uri) throw new OAuthError('invalid_request', 'redirect_uri is required (RFC 6749 §4.1.3)')
    return redeemCode(env, app, { code: f.code, redirectUri: f.redirect_uri, codeVerifier: f.code_verifier }, ctx)
  },

  /** RFC 6749 §6: rotation, bound to the client it was issued to, scope unchanged. */
  refresh_token: async (env, { app }, f, ctx) => {
    if (!f.refresh_token) throw new OAuthError('invalid_request', 'refresh_token is required')
    const prefetched = ctx.prefetched as Promise<RefreshContext | undefined> | undefined
    const { userId: _u, sessionId: _s, ...tokens } = await rotateRefreshToken(env, f.refresh_token, { ...ctx, clientId: app.appId, scope: f.scope, prefetched })
    return tokens
  },

  /** RFC 6749 §4.4: confidential clients only, no user, no refresh token. */
  client_credentials: async (env, { app, method }, f) => {
    if (method === 'none') throw new OAuthError('unauthorized_client', 'Public clients cannot use client_credentials')
    if (f.scope !== undefined) throw new OAuthError('invalid_scope', 'No scopes are defined for client_credentials; omit scope')
    return mintClientToken(env, app)
  },
}
