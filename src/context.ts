import { OpenAPIHono } from '@hono/zod-openapi'
import type { Env } from './env'
import type { Application } from './apps/schema'
import { validationHook } from './lib/errors'
import type { SignedCall } from './signing/verify'

/** What a request knows about its caller once auth middleware has run. */
export interface AuthContext {
  userId: string
  sessionId: string
  role: 'USER' | 'ADMIN'
  audience: string[]
  clientId?: string
  scope?: string
}

export type AppVariables = {
  requestId: string
  clientIp: string
  auth?: AuthContext
  /** The calling application, set by requireSignedApp or requireAppAccess. */
  app?: Application
  /** What the gate call of a signed request left for its route (src/signing/verify.ts). */
  signed?: SignedCall
  /** Extra img-src origins of a hosted page's CSP (src/pages/security.ts allowPageImage). */
  pageImageOrigins?: string[]
}

export type AppEnv = { Bindings: Env; Variables: AppVariables }

/** Every feature router is made here so they share the context type and the validation hook. */
export function router() {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook as never })
}
