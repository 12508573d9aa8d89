#!/usr/bin/env node
// The benchmark's peer: panva's oidc-provider (certified OpenID Provider for Node.js) on
// 127.0.0.1, in its own Node process so its CPU can be read from /proc. Configured as close
// to UAP Edge's OIDC side as the library allows (docs/benchmarks.md lists what differs):
// in-memory adapter, one ES256 signing key, one confidential client (client_secret_basic,
// code + PKCE S256, refresh tokens rotated on every use, reuse revokes the grant), token
// introspection on, access tokens valid 900 s like UAP Edge's default.
//
// Usage: node bench/peer/oidc-provider.mjs; configuration in BENCH_PEER (JSON):
//   { port, clientId, clientSecret, redirectUri }
// Prints "bench-peer: ready <issuer>" once listening. SIGINT/SIGTERM stop it.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import Provider from 'oidc-provider'

const cfg = JSON.parse(process.env.BENCH_PEER ?? '{}')
const port = Number(cfg.port)
if (!port || !cfg.clientId || !cfg.clientSecret || !cfg.redirectUri) throw new Error('BENCH_PEER needs port, clientId, clientSecret and redirectUri')
const issuer = `http://127.0.0.1:${port}`

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: randomBytes(8).toString('hex') }

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: cfg.clientId,
      client_secret: cfg.clientSecret,
      redirect_uris: [cfg.redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [signingKey] },
  // the hosted login and consent pages: the library's development interactions (any login, a consent button)
  features: { devInteractions: { enabled: true }, introspection: { enabled: true }, revocation: { enabled: true } },
  responseTypes: ['code'],
  pkce: { methods: ['S256'], required: () => true },
  // UAP Edge rotates on every refresh (RFC 9700 §4.14.2); the library's default only rotates near expiry
  rotateRefreshToken: true,
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // an in-memory account per login name; UAP Edge reads the user and the app mapping from D1
  async findAccount(ctx, sub) {
    return { accountId: sub, claims: async () => ({ sub, email: `${sub}@peer.example.com`, email_verified: true }) }
  },
  ttl: { AccessToken: 900, AuthorizationCode: 60, IdToken: 900, RefreshToken: 30 * 86400, Grant: 30 * 86400, Session: 86400, Interaction: 3600 },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
})

const server = provider.listen(port, '127.0.0.1', () => console.log(`bench-peer: ready ${issuer}`))
const stop = () => server.close(() => process.exit(0))
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
