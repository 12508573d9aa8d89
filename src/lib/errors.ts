import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { z } from '@hono/zod-openapi'

/** Configuration that cannot work (a missing secret, an invalid variable): answered 503 misconfigured. */
export class ConfigError extends Error {}

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

export const badRequest = (message: string, details?: unknown) => new ApiError(400, 'invalid_request', message, details)
export const unauthorized = (message = 'Authentication required', code = 'unauthorized') => new ApiError(401, code, message)
export const forbidden = (message = 'Not allowed', code = 'forbidden') => new ApiError(403, code, message)
export const notFound = (message = 'Not found') => new ApiError(404, 'not_found', message)
export const conflict = (message: string, code = 'conflict', details?: unknown) => new ApiError(409, code, message, details)

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
