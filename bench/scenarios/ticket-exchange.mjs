import { EXCHANGE_PATH, signHeaders, ticketWorld } from '../lib.mjs'

/**
 * Simple-SSO ticket exchange, signed by the source app: signature check (D1 app lookup,
 * secret decryption, HMAC, KV nonce, two rate-limiter objects), the exchange rate limiter,
 * one D1 batch (target app, user, mapping), then a new TicketVault object with one row and
 * an alarm. Every request is signed afresh (current timestamp, unique nonce).
 */
export default {
  name: 'ticket exchange',
  route: `POST ${EXCHANGE_PATH}`,
  order: 60,
  passes: ['default', 'shards'],
  async setup(ctx) {
    return { world: await ticketWorld(ctx) }
  },
  requests({ world }) {
    const body = JSON.stringify({ target_app_id: world.target.appId, user_mobile: world.user.mobile })
    return [
      {
        method: 'POST',
        path: EXCHANGE_PATH,
        setupRequest: (req) => ({ ...req, body, headers: { 'content-type': 'application/json', ...signHeaders(world.source, 'POST', EXCHANGE_PATH, body) } }),
      },
    ]
  },
}
