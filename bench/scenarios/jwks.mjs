/**
 * JWKS, against UAP Edge and the peer. UAP Edge: a D1 read at most once a minute per
 * isolate, otherwise served from the isolate cache.
 */
export default {
  name: 'JWKS',
  route: (ctx) => `GET ${ctx.paths.jwks}`,
  order: 20,
  targets: ['uap', 'peer'],
  requests: (state, ctx) => [{ method: 'GET', path: ctx.paths.jwks }],
}
