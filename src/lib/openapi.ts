import { z } from '@hono/zod-openapi'
import type { Context, TypedResponse } from 'hono'
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

/** JSON text known to encode a `T`: made once by `serialized`, answered many times by `jsonText`. */
export type Serialized<T> = string & { readonly __encodes: T }

export function serialized<T>(value: T): Serialized<T> {
  return JSON.stringify(value) as Serialized<T>
}

/**
 * The answer `c.json(value, 200)` would give, from text serialized once: for bodies that
 * change rarely and are read on every request (the JWKS, discovery), where serializing
 * again each time was a measurable part of the route's CPU. Typed as c.json's answer so
 * the OpenAPI route still checks the body against its schema.
 */
export function jsonText<T>(c: Context, text: Serialized<T>): Response & TypedResponse<T, 200, 'json'> {
  const res: Response = c.body(text, 200, { 'Content-Type': 'application/json' })
  return res as Response & TypedResponse<T, 200, 'json'>
}
