import { signHeaders, ticketWorld } from '../lib.mjs'

/**
 * A signed no-op: the signature check every partner call pays (D1 app lookup, secret
 * decryption, HMAC, two rate-limiter objects, KV nonce read and write) and nothing else.
 * The ticket rows minus this one is what the tickets themselves cost.
 */
export default {
  name: 'signed ping',
  route: 'GET /api/v1/open/ping',
  order: 50,
  async setup(ctx) {
    return { app: (await ticketWorld(ctx)).source }
  },
  requests: ({ app }) => [{ method: 'GET', path: '/api/v1/open/ping', setupRequest: (req) => ({ ...req, headers: signHeaders(app, 'GET', '/api/v1/open/ping') }) }],
}
