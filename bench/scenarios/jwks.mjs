/** JWKS: a D1 read at most once a minute per isolate, otherwise served from the isolate cache. */
export default {
  name: 'JWKS',
  route: 'GET /.well-known/jwks.json',
  order: 20,
  requests: () => [{ method: 'GET', path: '/.well-known/jwks.json' }],
}
