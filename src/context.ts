import { OpenAPIHono } from '@hono/zod-openapi'
import type { Env } from './env'
import type { Application } from './apps/schema'
import type { VerifiedAccess } from './auth/tokens'
import { validationHook } from './lib/errors'
import type { SignedCall } from './signing/verify'
import type { Principal } from './delegation/model'
import type { RouteRight } from './delegation/rights'

export type AppVariables = {
  requestId: string
  clientIp: string
  /** The caller's verified access token, set by requireUser or requireAdmin. */
  auth?: VerifiedAccess
  /** The calling application, set by requireSignedApp or requireAppToken. */
  app?: Application
  /** What the gate call of a signed request left for its route (src/signing/verify.ts). */
  signed?: SignedCall
  /** The caller of an admin route (full admin, sub-admin or API client), set by the admin guard (src/delegation/guard.ts). */
  principal?: Principal
  /** The right the matched admin route declares (src/delegation/rights.ts), set by the admin guard. */
  adminRight?: RouteRight
  /** Extra img-src origins of a hosted page's CSP (src/pages/security.ts allowPageImage). */
  pageImageOrigins?: string[]
  /** The hosted page's language, decided once per request (src/pages/i18n pageLocale). */
  locale?: 'en' | 'zh-CN'
}

export type AppEnv = { Bindings: Env; Variables: AppVariables }

/** Every feature router is made here so they share the context type and the validation hook. */
export function router() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook as never })
}
