import { z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { errorPage } from './pages'
import { param } from './oauth'

/** Route-definition helpers shared by the OIDC endpoints (src/oidc/*-routes.ts). */
export const TAG = 'OpenID Connect'
/** HTTP Basic, or nothing in the header (client_secret_post and public clients authenticate in the body). */
export const clientSecurity: Record<string, string[]>[] = [{ clientBasic: [] }, {}]
export const form = <T extends z.ZodType>(schema: T, required = true) => ({ content: { 'application/x-www-form-urlencoded': { schema } }, required })
export const html = (description: string) => ({ description, content: { 'text/html': { schema: z.string() } } })
export const redirect = (description: string) => ({ description, headers: z.object({ Location: z.string().openapi({ example: 'https://app.example.com/callback?code=Qx3...&state=af0ifjsldkj&iss=https%3A%2F%2Fid.example.com' }) }) })

/** Validation hook of the endpoints that answer with HTML pages. */
export const pageHook = (result: { success: true } | { success: false; error: z.ZodError }, c: Context<AppEnv>) => {
  if (!result.success) return errorPage(c, (t) => ({ title: t.invalidRequestTitle, message: t.parameterOnce(result.error.issues[0]?.path.join('.') ?? 'parameter') }))
}

/** The form endpoints that answer with pages take only form-encoded bodies. */
export async function pageFormOnly(c: Context<AppEnv>, next: () => Promise<void>) {
  if (!/^application\/x-www-form-urlencoded(\s*;|$)/i.test(c.req.header('Content-Type') ?? '')) {
    return errorPage(c, (t) => ({ title: t.invalidRequestTitle, message: t.formEncoding }))
  }
  await next()
}

/** Client authentication in the body (RFC 6749 §2.3.1); client_secret_basic uses the Authorization header instead. */
export const clientAuthFields = {
  client_id: param(128).openapi({ example: 'app_3f9a1c2d4e5f6a7b', description: 'Public clients and client_secret_post.' }),
  client_secret: param(256).openapi({ example: 'sk_...', description: 'client_secret_post only. client_secret_basic sends it in the Authorization header instead.' }),
}

/** The `token` parameter of revocation (RFC 7009 §2.1) and introspection (RFC 7662 §2.1). */
export const TokenParam = z
  .object({
    token: param(4096).openapi({ example: 'rt_V0hZ0lq8p3bX3Jm2n8kqQx0Xb5k2c9Yt7r1Zs4Aa6Ew' }),
    token_type_hint: param(32).openapi({ example: 'refresh_token', description: 'access_token or refresh_token; optional, the token type is recognised anyway.' }),
    ...clientAuthFields,
  })
  .openapi('TokenParameter')
