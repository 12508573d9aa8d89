import type { Env } from '../env'

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
}

export type AppEnv = { Bindings: Env; Variables: AppVariables }
