import { createRoute, z } from '@hono/zod-openapi'
import { OPEN, pick, mergeErrors } from '../lib/openapi'
import { errorResponses } from '../lib/errors'
import { SigningErrors } from './errors'
import type { MiddlewareHandler } from 'hono'
import { router, type AppEnv } from '../context'
import { requireSignedApp, MAX_SKEW_S } from './verify'
import { signedHeaderParams } from './headers'
import { SIGNATURE_HEADERS } from './canonical'
import { sha256Hex } from '../lib/crypto'

/** Signed partner API: the signature check endpoint (docs/signing.md). Mounted at /api/v1/open. */
export const signingRoutes = router()

signingRoutes.openAPIRegistry.registerComponent('securitySchemes', 'appSignature', {
  type: 'apiKey',
  in: 'header',
  name: SIGNATURE_HEADERS.signature,
  description: `HMAC-SHA256 request signature with the app secret, sent with ${SIGNATURE_HEADERS.appId}, ${SIGNATURE_HEADERS.timestamp} (Unix seconds, ±${MAX_SKEW_S} s) and ${SIGNATURE_HEADERS.nonce} (single use). Canonical string and examples: docs/signing.md.`,
})

/** Errors every signed route can answer with, with the codes partners must handle. */
export const signedErrors = mergeErrors(
  errorResponses(SigningErrors, 'signature_missing', 'signature_invalid', 'timestamp_stale', 'nonce_replayed', 'app_disabled', 'partner_api_disabled', 'app_state_changing'),
  pick(429),
)

export const appSignatureSecurity: Record<string, string[]>[] = [{ appSignature: [] }]

/**
 * What every signed partner route spreads into its createRoute: open to partners, the
 * signature scheme, the check itself (requireSignedApp, or a signedApp() with what the route
 * asks of the gate call) and the four headers documented, so no signed route can leave one out.
 */
export function signedRoute<M extends MiddlewareHandler<AppEnv>>(check: M) {
  return { ...OPEN, security: appSignatureSecurity, middleware: [check] as [M], parameters: signedHeaderParams }
}

const Ping = z
  .object({
    ok: z.literal(true),
    app_id: z.string().openapi({ example: 'app_3f9a1c2d4e5f6a7b' }),
    server_time: z.string().openapi({ example: '2026-11-23T10:00:00.000Z' }),
    timestamp: z.number().int().openapi({ example: 1795428000, description: 'server time, Unix seconds (compare with your clock)' }),
  })
  .openapi('Ping')

signingRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/ping',
    tags: ['Open: signing'],
    summary: 'Check your request signing',
    description:
      'A signed no-op: answers 200 with your app_id and the server time when the signature, timestamp and nonce are right, and the exact error code when not. Use it before calling anything else. Query parameters are allowed (and signed) so you can test your query canonicalization.',
    ...signedRoute(requireSignedApp),
    responses: { 200: { description: 'Signature accepted', content: { 'application/json': { schema: Ping } } }, ...signedErrors },
  }),
  async (c) => {
    const now = Date.now()
    return c.json({ ok: true as const, app_id: c.get('app')!.appId, server_time: new Date(now).toISOString(), timestamp: Math.floor(now / 1000) }, 200)
  },
)

signingRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/ping',
    tags: ['Open: signing'],
    summary: 'Check your request signing, body included',
    description:
      'Like GET, for requests with a body: any body (JSON or not) is accepted, and the answer includes the SHA-256 the server computed over the bytes it received, to compare with the hash in your canonical string.',
    ...signedRoute(requireSignedApp),
    responses: {
      200: { description: 'Signature accepted', content: { 'application/json': { schema: Ping.extend({ body_sha256: z.string().openapi({ example: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' }) }) } } },
      ...signedErrors,
    },
  }),
  async (c) => {
    const now = Date.now()
    const bodySha256 = await sha256Hex(new Uint8Array(await c.req.arrayBuffer()))
    return c.json({ ok: true as const, app_id: c.get('app')!.appId, server_time: new Date(now).toISOString(), timestamp: Math.floor(now / 1000), body_sha256: bodySha256 }, 200)
  },
)
