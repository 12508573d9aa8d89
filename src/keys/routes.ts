import { createRoute, z } from '@hono/zod-openapi'
import { OPEN, pick, bearerSecurity, jsonText, type Serialized } from '../lib/openapi'
import { router } from '../context'
import { getJwks, JWKS_MAX_AGE_S, rotateKeysAsAdmin } from './service'
import { auditActor } from '../audit/service'
import { needs } from '../delegation/rights'
import { publicCors } from '../lib/cors'

/** The JWKS (RFC 7517). Mounted at /.well-known. */
export const keyRoutes = router()

// Browser-based relying parties (SPAs) fetch the keys cross-origin to verify ID tokens.
// Public data, no cookies: any origin, GET only.
keyRoutes.use('/jwks.json', publicCors({ allowMethods: ['GET'], maxAge: 600 }))

const Jwk = z.object({ kty: z.string(), crv: z.string(), x: z.string(), y: z.string(), kid: z.string(), alg: z.string(), use: z.string() }).openapi('JWK')

keyRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/jwks.json',
    tags: ['Keys'],
    summary: 'JSON Web Key Set',
    description: `Public keys that verify UAP Edge tokens (ES256). A new key appears here before it signs anything, and a retired key stays until every token it signed has expired, so caching this for up to ${JWKS_MAX_AGE_S} s (Cache-Control) is safe.`,
    ...OPEN,
    responses: {
      200: {
        description: 'Key set',
        content: {
          'application/json': {
            schema: z.object({ keys: z.array(Jwk) }).openapi({ example: { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', kid: 'Q3Vz2Xb0c1d2e3f4', alg: 'ES256', use: 'sig' }] } }),
          },
        },
      },
    },
  }),
  async (c) => {
    c.header('Cache-Control', `public, max-age=${JWKS_MAX_AGE_S}`)
    return jsonText(c, (await getJwks(c.env)) as Serialized<{ keys: z.infer<typeof Jwk>[] }>)
  },
)

/** Admin: signing-key rotation. Mounted at /api/v1/admin/keys. */
export const adminKeyRoutes = router()

adminKeyRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/rotate',
    tags: ['Admin: keys'],
    summary: 'Start a signing-key rotation now',
    description: 'Publishes a new signing key in the JWKS at once; it starts signing after the publish-ahead delay (twice the JWKS cache lifetime). The cron trigger does this every 30 days by itself.',
    security: bearerSecurity,
    ...needs('admin'),
    responses: { 200: { description: 'Rotation scheduled', content: { 'application/json': { schema: z.object({ created: z.array(z.object({ kid: z.string(), activate_at: z.string() })) }) } } }, ...pick(401, 403) },
  }),
  async (c) => {
    const result = await rotateKeysAsAdmin(c.env, auditActor(c))
    return c.json({ created: result.created.map((k) => ({ kid: k.kid, activate_at: new Date(k.activateAt).toISOString() })) }, 200)
  },
)
