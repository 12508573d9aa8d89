import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { z } from '@hono/zod-openapi'

/** Configuration that cannot work (a missing secret, an invalid variable): answered 503 misconfigured. */
export class ConfigError extends Error {}

/** D1 through drizzle wraps the SQLite message in `cause`, so constraint checks read both. */
export function dbErrorText(e: unknown): string {
  return [e, (e as { cause?: unknown })?.cause].map((x) => String((x as Error)?.message ?? x ?? '')).join(' ')
}

/** The one error body every 4xx/5xx carries. */
export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'invalid_request' }),
      message: z.string().openapi({ example: 'mobile: Required' }),
      request_id: z.string().openapi({ example: '5f0c6f0e-3b7b-4a4e-9a57-6a1c3b7a9d10' }),
      details: z.unknown().optional(),
    }),
  })
  .openapi('Error')

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message)
  }
}

/** One error a feature can answer with. `code` defaults to the catalog key. */
export interface ErrorSpec {
  status: ContentfulStatusCode
  message: string
  code?: string
}

export interface RaiseOptions {
  /** a more specific message than the catalog's (naming the app, the field, the limit ...) */
  message?: string
  details?: unknown
  headers?: Record<string, string>
}

const SPECS = Symbol('error specs')

export type ErrorCatalog<T extends Record<string, ErrorSpec>> = { readonly [K in keyof T]: (o?: RaiseOptions) => ApiError } & { readonly [SPECS]: T }

/**
 * A feature's error codes in one place: services throw from it (`throw Errors.code()`),
 * routes list it in their OpenAPI responses (errorResponses) and docs/errors.md is
 * generated from every catalog (src/errors.ts). ApiError is the domain error: the JSON API
 * answers it as the error body, the OAuth endpoints and the hosted pages map it to theirs.
 */
export function defineErrors<const T extends Record<string, ErrorSpec>>(specs: T): ErrorCatalog<T> {
  const out: Record<string | symbol, unknown> = {}
  for (const [key, spec] of Object.entries(specs)) {
    out[key] = (o: RaiseOptions = {}) => new ApiError(spec.status, spec.code ?? key, o.message ?? spec.message, o.details, o.headers)
  }
  Object.defineProperty(out, SPECS, { value: specs })
  return out as ErrorCatalog<T>
}

/** Every error of a catalog, as `{ code, status, message }` (for docs/errors.md). */
export function catalogEntries(catalog: ErrorCatalog<Record<string, ErrorSpec>>) {
  return Object.entries(catalog[SPECS]).map(([key, s]) => ({ code: s.code ?? key, status: s.status, message: s.message }))
}

/**
 * OpenAPI responses for some errors of a catalog: one entry per status, whose description
 * names each code and what it means. Spread into `responses` next to `pick(...)`.
 */
export function errorResponses<T extends Record<string, ErrorSpec>>(catalog: ErrorCatalog<T>, ...keys: (keyof T & string)[]) {
  const byStatus = new Map<number, string[]>()
  for (const key of keys) {
    const s = catalog[SPECS][key]
    byStatus.set(s.status, [...(byStatus.get(s.status) ?? []), `\`${s.code ?? key}\`: ${s.message}`])
  }
  return Object.fromEntries(
    [...byStatus].map(([status, lines]) => [status, { description: lines.join('; '), content: { 'application/json': { schema: ErrorBody } } }]),
  ) as Record<number, { description: string; content: { 'application/json': { schema: typeof ErrorBody } } }>
}

/** Errors every part of the API shares. */
export const CommonErrors = defineErrors({
  invalid_request: { status: 400, message: 'The request is malformed; the message names the field and the problem' },
  malformed_json: { status: 400, message: 'The request body is not valid JSON' },
  unauthorized: { status: 401, message: 'A bearer access token is required' },
  forbidden: { status: 403, message: 'Not allowed' },
  not_found: { status: 404, message: 'Not found' },
  method_not_allowed: { status: 405, message: 'The method is not allowed on this path; see the Allow header' },
  payload_too_large: { status: 413, message: 'The request body is too large' },
  rate_limited: { status: 429, message: 'Rate limit exceeded; retry after the Retry-After seconds' },
  internal_error: { status: 500, message: 'Internal error' },
  misconfigured: { status: 503, message: 'The service is misconfigured' },
})

export function requestIdOf(c: Context): string {
  return (c.get('requestId' as never) as string | undefined) ?? 'unknown'
}

export function errorResponse(
  c: Context,
  status: ContentfulStatusCode,
  code: string,
  message: string,
  details?: unknown,
  headers?: Record<string, string>,
) {
  const body: { error: Record<string, unknown> } = { error: { code, message, request_id: requestIdOf(c) } }
  if (details !== undefined) body.error.details = details
  for (const [k, v] of Object.entries(headers ?? {})) c.header(k, v)
  return c.json(body, status)
}

/** zod-openapi defaultHook: validation failures become 400 with per-field details. */
export function validationHook(
  result: { success: true } | { success: false; error: z.ZodError; target?: string },
  c: Context,
) {
  if (!result.success) {
    const issues = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }))
    const first = issues[0]
    const message = first ? `${first.path || 'body'}: ${first.message}` : 'Invalid request'
    return errorResponse(c, 400, 'invalid_request', message, { target: result.target, issues })
  }
}
