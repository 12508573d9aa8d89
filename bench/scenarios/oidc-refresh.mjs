/**
 * The refresh_token grant at the OIDC token endpoint, client_secret_basic, against UAP Edge
 * and the peer. Both rotate on every use, so each request spends a never-used refresh token
 * from a pool that its response refills with the successor (like refresh.mjs). The pool is
 * minted by real authorization code flows (bench/oidc.mjs), one per token.
 */
export default {
  name: 'OIDC refresh',
  route: (ctx) => `POST ${ctx.paths.token} (refresh_token)`,
  order: 42,
  targets: ['uap', 'peer'],
  async setup(ctx) {
    const state = { op: await ctx.oidc(), pool: [] }
    await this.reset(state, ctx)
    return state
  },
  /** Tops the pool up: responses still in flight when a run stops never return their successor. */
  async reset(state, ctx) {
    while (state.pool.length < ctx.connections + 2) state.pool.push((await state.op.tokens()).refresh_token)
  },
  requests({ op, pool }) {
    return [
      {
        method: 'POST',
        path: op.paths.token,
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: op.basic },
        setupRequest(req) {
          // an empty pool means refreshes failed: send a dud so it shows up as non-2xx
          const token = pool.shift() ?? 'rt_pool_empty'
          return { ...req, body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }).toString() }
        },
        onResponse(status, body) {
          if (status === 200) pool.push(JSON.parse(body).refresh_token)
        },
      },
    ]
  },
}
