/**
 * Refresh-token rotation: every request needs a fresh, never-used token (a reused one
 * revokes its family). A pool holds one live token per connection: a request takes one,
 * its response puts the successor back. The pool is minted by logins during setup.
 */
export default {
  name: 'refresh',
  route: 'POST /api/v1/auth/refresh',
  order: 40,
  async setup(ctx) {
    const state = { user: await ctx.createUser(), pool: [] }
    await this.reset(state, ctx)
    return state
  },
  /** Tops the pool up: responses still in flight when a run stops never return their successor. */
  async reset(state, ctx) {
    while (state.pool.length < ctx.connections + 2) state.pool.push((await ctx.login(state.user.mobile, state.user.password)).refresh_token)
  },
  requests({ pool }) {
    return [
      {
        method: 'POST',
        path: '/api/v1/auth/refresh',
        headers: { 'content-type': 'application/json' },
        setupRequest(req) {
          // an empty pool means refreshes failed: send a dud so it shows up as non-2xx
          const token = pool.shift() ?? 'rt_pool_empty'
          return { ...req, body: JSON.stringify({ refresh_token: token }) }
        },
        onResponse(status, body) {
          if (status === 200) pool.push(JSON.parse(body).refresh_token)
        },
      },
    ]
  },
}
