import { z } from '@hono/zod-openapi'
import { ErrorBody } from './errors'

/** Marks an operation as part of the partner-facing spec served at /docs/open. */
export const OPEN = { 'x-uap-open': true } as const

const err = (description: string) => ({ description, content: { 'application/json': { schema: ErrorBody } } })

/** Standard error responses to spread into a route's `responses`. */
export const errors = {
  400: err('Invalid input: the body names the field and the problem'),
  401: err('Missing or invalid credentials'),
  403: err('Authenticated but not allowed'),
  404: err('Not found'),
  409: err('Conflicts with existing data'),
  429: err('Rate limited or locked out; see Retry-After'),
} as const

export const bearerSecurity = [{ bearerAuth: [] }]

export function pick<K extends keyof typeof errors>(...codes: K[]) {
  return Object.fromEntries(codes.map((k) => [k, errors[k]])) as Pick<typeof errors, K>
}

/** A required JSON request body: a missing or non-JSON body is a 400, never silently skipped. */
export const jsonBody = <T extends z.ZodType>(schema: T) => ({ content: { 'application/json': { schema } }, required: true })

type ErrorResponses = Record<number, { description: string; content: { 'application/json': { schema: typeof ErrorBody } } }>

/** Several error-response sets as one: descriptions of the same status are joined. */
export function mergeErrors(...parts: Partial<ErrorResponses>[]): ErrorResponses {
  const out: ErrorResponses = {}
  for (const part of parts) {
    for (const [status, r] of Object.entries(part)) {
      if (!r) continue
      const prev = out[Number(status)]
      out[Number(status)] = prev ? { ...prev, description: `${prev.description}; ${r.description}` } : r
    }
  }
  return out
}
