import { z } from '@hono/zod-openapi'
import { SIGNATURE_HEADERS } from './canonical'

/** Documents the signature headers; requireSignedApp checks them (401 signature_missing when absent). */
export const SignedHeaders = z.object({
  [SIGNATURE_HEADERS.appId]: z.string().optional().openapi({ param: { required: true, description: 'Your app_id' }, example: 'app_3f9a1c2d4e5f6a7b' }),
  [SIGNATURE_HEADERS.timestamp]: z.string().optional().openapi({ param: { required: true, description: 'Unix seconds; within 300 s of server time' }, example: '1795000000' }),
  [SIGNATURE_HEADERS.nonce]: z.string().optional().openapi({ param: { required: true, description: '16-64 chars of [A-Za-z0-9_-], never reused' }, example: '9f86d081884c7d659a2feaa0c55ad015' }),
  [SIGNATURE_HEADERS.signature]: z
    .string()
    .optional()
    .openapi({ param: { required: true, description: 'hex HMAC-SHA256 of the canonical string under your app secret (docs/signing.md)' }, example: 'b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c' }),
})

