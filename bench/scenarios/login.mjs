/**
 * Password login with the production hash profile: one argon2id (m=19 MiB, t=2, p=1;
 * docs/passwords.md) per request, then a D1 batch (session + refresh token + audit) and an
 * ES256 signature. CPU-bound on the hash, so it runs with few connections.
 */
export default {
  name: 'login',
  route: 'POST /api/v1/auth/login',
  order: 30,
  connections: 2,
  async setup(ctx) {
    const users = []
    for (let i = 0; i < 4; i++) users.push(await ctx.createUser())
    return { users }
  },
  requests({ users }) {
    let i = 0
    return [
      {
        method: 'POST',
        path: '/api/v1/auth/login',
        headers: { 'content-type': 'application/json' },
        setupRequest(req) {
          const u = users[i++ % users.length]
          return { ...req, body: JSON.stringify({ mobile: u.mobile, password: u.password }) }
        },
      },
    ]
  },
}
