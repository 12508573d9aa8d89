// A real OpenID Provider for the federation tests: panva's oidc-provider (certified, already
// the benchmark's peer) on 127.0.0.1, with its own minimal interaction pages instead of the
// library's devInteractions: a plain HTML sign-in form (a username, no password) that grants
// the requested scopes at once, so a browser or a test's cookie jar can drive it.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import Provider from 'oidc-provider'

export interface OpClient {
  client_id: string
  client_secret: string
  redirect_uris: string[]
  token_endpoint_auth_method?: 'client_secret_basic' | 'client_secret_post'
}

export interface RunningOp {
  issuer: string
  /** The `sub` the OP gives a username (stable, unlike the display name). */
  subjectOf(login: string): string
  stop(): Promise<void>
}

const page = (title: string, body: string) =>
  `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body><main><h1>${title}</h1>${body}</main></body></html>`

const escape = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)

async function formBody(req: IncomingMessage): Promise<URLSearchParams> {
  let raw = ''
  for await (const chunk of req) raw += chunk
  return new URLSearchParams(raw)
}

export async function startOidcOp(opts: { port: number; clients: OpClient[] }): Promise<RunningOp> {
  const issuer = `http://127.0.0.1:${opts.port}`
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const signingKey = { ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: randomBytes(8).toString('hex') }
  const subjectOf = (login: string) => `op-user-${Buffer.from(login).toString('hex')}`

  const provider = new Provider(issuer, {
    clients: opts.clients.map((c) => ({
      ...c,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: c.token_endpoint_auth_method ?? 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    })),
    jwks: { keys: [signingKey] },
    responseTypes: ['code'],
    pkce: { methods: ['S256'], required: () => true },
    scopes: ['openid', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    async findAccount(_ctx: unknown, sub: string) {
      const login = Buffer.from(sub.replace(/^op-user-/, ''), 'hex').toString()
      return {
        accountId: sub,
        claims: async () => ({ sub, email: `${login}@op.example`, email_verified: true, name: `${login[0]?.toUpperCase() ?? ''}${login.slice(1)} Tester`, preferred_username: login }),
      }
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: { devInteractions: { enabled: false } },
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Grant: 3600, Session: 3600, Interaction: 600 },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
  } as never)
  const callback = provider.callback()

  async function interaction(req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined) {
    const details = await provider.interactionDetails(req, res)
    const { prompt, params } = details as unknown as { prompt: { name: string }; params: Record<string, string> }
    if (req.method === 'GET' && !action) {
      if (prompt.name === 'login') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
        res.end(
          page(
            'Sign in to the test OP',
            `<p>Client <code>${escape(params.client_id ?? '')}</code> asks for <code>${escape(params.scope ?? '')}</code>.</p>
<form method="post" action="/interaction/${uid}/login"><label for="login">Username</label> <input id="login" name="login" autocomplete="username" required> <button type="submit">Sign in</button></form>`,
          ),
        )
        return
      }
    }
    let accountId = (details as unknown as { session?: { accountId?: string } }).session?.accountId
    if (req.method === 'POST' && action === 'login') {
      const login = (await formBody(req)).get('login')?.trim()
      if (!login) {
        res.writeHead(400, { 'Content-Type': 'text/plain' })
        res.end('username required')
        return
      }
      accountId = subjectOf(login)
    }
    if (!accountId) {
      res.writeHead(400, { 'Content-Type': 'text/plain' })
      res.end('no session')
      return
    }
    // consent: everything asked for, granted at once
    const grant = new provider.Grant({ accountId, clientId: params.client_id })
    grant.addOIDCScope(params.scope ?? 'openid')
    const grantId = await grant.save()
    await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false })
  }

  const server = createServer((req, res) => {
    const m = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/.exec(new URL(req.url ?? '/', issuer).pathname)
    if (!m) return callback(req, res)
    interaction(req, res, m[1], m[2]).catch((e) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' })
      res.end(String((e as Error).message))
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, '127.0.0.1', () => resolve())
  })
  return {
    issuer,
    subjectOf,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  }
}
