import { EXCHANGE_PATH, signHeaders, ticketWorld } from '../lib.mjs'

/**
 * Simple-SSO ticket exchange, signed by the source app: signature check (HMAC against the
 * isolate's copy of the app row, secret decrypted), then together the source's AppGate
 * (nonce, signed_app and ticket_exchange_app, row version) and one D1 statement
 * (target app, user, the user's mappings in both apps); then one call storing the ticket in
 * the target's AppGate. Every request is signed afresh (current timestamp, unique nonce).
 */
export default {
  name: 'ticket exchange',
  route: `POST ${EXCHANGE_PATH}`,
  order: 60,
  passes: ['default', 'api'],
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
