/** OpenID Provider metadata, against UAP Edge and the peer: no storage, JSON from configuration. */
export default {
  name: 'discovery',
  route: (ctx) => `GET ${ctx.paths.discovery}`,
  order: 22,
  targets: ['uap', 'peer'],
  requests: (state, ctx) => [{ method: 'GET', path: ctx.paths.discovery }],
}
