import { SIGNATURE_HEADERS } from './canonical'

const header = (name: string, description: string, example: string) => ({ in: 'header' as const, name, required: true, description, schema: { type: 'string' as const, example } })

/**
 * Documents the signature headers of a signed route (its `parameters`). They are not a zod
 * `request.headers` schema on purpose: that would parse every request header on every partner
 * call, and requireSignedApp checks these four itself (401 signature_missing when absent,
 * with the header named).
 */
export const signedHeaderParams = [
  header(SIGNATURE_HEADERS.appId, 'Your app_id', 'app_3f9a1c2d4e5f6a7b'),
  header(SIGNATURE_HEADERS.timestamp, 'Unix seconds; within 300 s of server time', '1795000000'),
  header(SIGNATURE_HEADERS.nonce, '16-64 chars of [A-Za-z0-9_-], never reused', '9f86d081884c7d659a2feaa0c55ad015'),
  header(SIGNATURE_HEADERS.signature, 'hex HMAC-SHA256 of the canonical string under your app secret (docs/signing.md)', 'b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c'),
]
