/**
 * Token introspection (RFC 7662) of an access token from the code flow, by its client
 * (client_secret_basic), against UAP Edge and the peer.
 */
export default {
  name: 'introspection',
  route: (ctx) => `POST ${ctx.paths.introspection} (access token)`,
  order: 46,
  targets: ['uap', 'peer'],
  async setup(ctx) {
    const op = await ctx.oidc()
    const { access_token } = await op.tokens()
    const body = new URLSearchParams({ token: access_token }).toString()
    const headers = { 'content-type': 'application/x-www-form-urlencoded', authorization: op.basic }
    const res = await fetch(op.base + op.paths.introspection, { method: 'POST', headers, body })
    const answer = await res.json()
    if (res.status !== 200 || answer.active !== true) throw new Error(`${op.label} introspection: ${res.status} ${JSON.stringify(answer)}`)
    return { op, body, headers }
  },
  requests: ({ op, body, headers }) => [{ method: 'POST', path: op.paths.introspection, headers, body }],
}
