import { signHeaders, ticketWorld } from '../lib.mjs'

/**
 * A signed no-op: the signature check every partner call pays (HMAC against the isolate's
 * copy of the app row, secret decrypted; the per-IP limiter and the app's AppGate, nonce,
 * per-app limit and row version in one call, both at once) and nothing else. The ticket
 * rows minus this one is what the tickets themselves cost.
 */
export default {
  name: 'signed ping',
  route: 'GET /api/v1/open/ping',
  order: 50,
  passes: ['default', 'api'],
  async setup(ctx) {
    return { app: (await ticketWorld(ctx)).source }
  },
  requests: ({ app }) => [{ method: 'GET', path: '/api/v1/open/ping', setupRequest: (req) => ({ ...req, headers: signHeaders(app, 'GET', '/api/v1/open/ping') }) }],
}
