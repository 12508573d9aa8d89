/** UserInfo with a Bearer access token from the code flow, against UAP Edge and the peer. */
export default {
  name: 'userinfo',
  route: (ctx) => `GET ${ctx.paths.userinfo}`,
  order: 44,
  targets: ['uap', 'peer'],
  async setup(ctx) {
    const op = await ctx.oidc()
    const { access_token } = await op.tokens()
    const res = await fetch(op.base + op.paths.userinfo, { headers: { authorization: `Bearer ${access_token}` } })
    const body = await res.json()
    if (res.status !== 200 || !body.sub || !body.email) throw new Error(`${op.label} userinfo: ${res.status} ${JSON.stringify(body)}`)
    return { op, access_token }
  },
  requests: ({ op, access_token }) => [{ method: 'GET', path: op.paths.userinfo, headers: { authorization: `Bearer ${access_token}` } }],
}
