// A local server speaking the parts of GitHub an OAuth app uses, with the shapes GitHub
// documents (docs.github.com: "Authorizing OAuth apps" for /login/oauth/authorize and
// /login/oauth/access_token, REST "Get the authenticated user" for GET /user and "List email
// addresses for the authenticated user" for GET /user/emails). It is not GitHub: the sign-in
// is a username form, and everything lives in memory. What it checks, GitHub checks too:
// client id and secret, the redirect_uri registered for the app, codes single use and short
// lived, the PKCE verifier when a challenge was sent, a token on the API, a User-Agent.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createHash, randomBytes } from 'node:crypto'

export interface GitHubApp {
  client_id: string
  client_secret: string
  /** GitHub allows one callback URL per OAuth app; sub-paths of it are accepted too. */
  callback_url: string
}

export interface GitHubUser {
  id: number
  login: string
  name: string | null
  /** the public profile email (null when the user keeps it private) */
  email: string | null
  emails: { email: string; primary: boolean; verified: boolean; visibility: 'public' | 'private' | null }[]
}

export interface RunningGitHub {
  url: string
  users: Map<string, GitHubUser>
  stop(): Promise<void>
}

const ERROR_URI = 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors'

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', ...headers })
  res.end(JSON.stringify(body))
}

async function readBody(req: IncomingMessage): Promise<Record<string, string>> {
  let raw = ''
  for await (const chunk of req) raw += chunk
  if ((req.headers['content-type'] ?? '').includes('application/json')) return JSON.parse(raw || '{}')
  return Object.fromEntries(new URLSearchParams(raw))
}

const escape = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)

/** GitHub: "the redirect_uri's host and port must exactly match the callback URL; its path must reference a subdirectory". */
function redirectAllowed(app: GitHubApp, redirectUri: string): boolean {
  try {
    const r = new URL(redirectUri)
    const cb = new URL(app.callback_url)
    return r.origin === cb.origin && (r.pathname === cb.pathname || r.pathname.startsWith(cb.pathname.replace(/\/?$/, '/')))
  } catch {
    return false
  }
}

export async function startFakeGitHub(opts: { port: number; apps: GitHubApp[]; users?: GitHubUser[] }): Promise<RunningGitHub> {
  const url = `http://127.0.0.1:${opts.port}`
  const users = new Map<string, GitHubUser>((opts.users ?? []).map((u) => [u.login, u]))
  const codes = new Map<string, { clientId: string; redirectUri: string; userId: number; scope: string; challenge: string | null; exp: number }>()
  const tokens = new Map<string, { userId: number; scope: string }>()
  const appOf = (id: string | undefined) => opts.apps.find((a) => a.client_id === id)
  const userById = (id: number) => [...users.values()].find((u) => u.id === id)
  /** A user signing in for the first time gets a fresh numeric id, as a new GitHub account would. */
  const userFor = (login: string) => {
    let u = users.get(login)
    if (!u) {
      u = { id: 9_000_000 + users.size + Math.floor(Math.random() * 1000) * 100, login, name: null, email: null, emails: [{ email: `${login}@users.github.example`, primary: true, verified: true, visibility: 'private' }] }
      users.set(login, u)
    }
    return u
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const u = new URL(req.url ?? '/', url)
    // the authorization page: a sign-in as <username>, then "Authorize"
    if (u.pathname === '/login/oauth/authorize') {
      const q = req.method === 'POST' ? await readBody(req) : Object.fromEntries(u.searchParams)
      const app = appOf(q.client_id)
      if (!app) return send(res, 404, { message: 'Not Found' })
      const redirectUri = q.redirect_uri || app.callback_url
      if (!redirectAllowed(app, redirectUri)) {
        res.writeHead(400, { 'Content-Type': 'text/html' })
        return res.end('<p>The redirect_uri is not associated with this application.</p>')
      }
      if (req.method === 'GET') {
        const hidden = ['client_id', 'redirect_uri', 'scope', 'state', 'code_challenge', 'code_challenge_method']
          .map((k) => (q[k] !== undefined ? `<input type="hidden" name="${k}" value="${escape(q[k])}">` : ''))
          .join('')
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' })
        return res.end(
          `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Authorize application · GitHub (test server)</title></head><body><main><h1>Authorize application</h1><p>Scopes: <code>${escape(q.scope ?? '')}</code></p><form method="post" action="/login/oauth/authorize">${hidden}<label for="login">Username or email address</label> <input id="login" name="login" required> <button type="submit" name="decision" value="allow">Authorize</button> <button type="submit" name="decision" value="deny" formnovalidate>Cancel</button></form></main></body></html>`,
        )
      }
      const back = new URL(redirectUri)
      if (q.decision === 'deny') {
        back.searchParams.set('error', 'access_denied')
        back.searchParams.set('error_description', 'The user has denied your application access.')
        back.searchParams.set('error_uri', 'https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied')
      } else {
        const user = userFor(q.login)
        const code = randomBytes(10).toString('hex')
        codes.set(code, { clientId: app.client_id, redirectUri, userId: user.id, scope: q.scope ?? '', challenge: q.code_challenge_method === 'S256' ? (q.code_challenge ?? null) : null, exp: Date.now() + 10 * 60_000 })
        back.searchParams.set('code', code)
      }
      if (q.state !== undefined) back.searchParams.set('state', q.state)
      res.writeHead(302, { Location: back.toString() })
      return res.end()
    }

    if (u.pathname === '/login/oauth/access_token' && req.method === 'POST') {
      const b = await readBody(req)
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')
      const [basicId, basicSecret] = basic ? Buffer.from(basic[1], 'base64').toString().split(':').map(decodeURIComponent) : []
      const clientId = b.client_id ?? basicId
      const clientSecret = b.client_secret ?? basicSecret
      const json = (req.headers.accept ?? '').includes('json')
      const answer = (body: Record<string, string>) => {
        if (json) return send(res, 200, body)
        res.writeHead(200, { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' })
        res.end(new URLSearchParams(body).toString())
      }
      const fail = (error: string, error_description: string) => answer({ error, error_description, error_uri: `${ERROR_URI}#${error.replace(/_/g, '-')}` })
      const app = appOf(clientId)
      if (!app || app.client_secret !== clientSecret) return fail('incorrect_client_credentials', 'The client_id and/or client_secret passed are incorrect.')
      const grant = codes.get(b.code ?? '')
      // single use, like GitHub's
      codes.delete(b.code ?? '')
      if (!grant || grant.clientId !== clientId || grant.exp < Date.now()) return fail('bad_verification_code', 'The code passed is incorrect or expired.')
      if (b.redirect_uri && b.redirect_uri !== grant.redirectUri) return fail('redirect_uri_mismatch', 'The redirect_uri MUST match the registered callback URL for this application.')
      if (grant.challenge) {
        const ok = typeof b.code_verifier === 'string' && createHash('sha256').update(b.code_verifier).digest('base64url') === grant.challenge
        if (!ok) return fail('bad_verification_code', 'The code_verifier does not match the code_challenge.')
      }
      const token = `gho_${randomBytes(18).toString('base64url')}`
      tokens.set(token, { userId: grant.userId, scope: grant.scope })
      return answer({ access_token: token, scope: grant.scope.split(/[ ,]+/).filter(Boolean).join(','), token_type: 'bearer' })
    }

    if (u.pathname === '/user' || u.pathname === '/user/emails') {
      // GitHub refuses API requests without a User-Agent
      if (!req.headers['user-agent']) return send(res, 403, { message: 'Request forbidden by administrative rules. Please make sure your request has a User-Agent header.' })
      const m = /^(?:Bearer|token) (\S+)$/i.exec(req.headers.authorization ?? '')
      const t = m ? tokens.get(m[1]) : undefined
      const user = t ? userById(t.userId) : undefined
      if (!t || !user) return send(res, 401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest', status: '401' })
      const scopes = t.scope.split(/[ ,]+/)
      const headers = { 'X-OAuth-Scopes': scopes.join(', '), 'X-GitHub-Media-Type': 'github.v3; format=json' }
      if (u.pathname === '/user') {
        return send(
          res,
          200,
          {
            login: user.login,
            id: user.id,
            node_id: Buffer.from(`04:User${user.id}`).toString('base64'),
            avatar_url: `https://avatars.githubusercontent.com/u/${user.id}?v=4`,
            html_url: `https://github.com/${user.login}`,
            type: 'User',
            site_admin: false,
            name: user.name,
            company: null,
            blog: '',
            location: null,
            email: user.email,
            hireable: null,
            bio: null,
            public_repos: 0,
            followers: 0,
            following: 0,
            created_at: '2020-01-01T00:00:00Z',
            updated_at: '2026-01-01T00:00:00Z',
          },
          headers,
        )
      }
      if (!scopes.includes('user:email') && !scopes.includes('user')) return send(res, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user', status: '404' })
      return send(res, 200, user.emails, headers)
    }

    // test control: an answer that redirects, one that is too large
    if (u.pathname === '/_test/redirect') {
      res.writeHead(302, { Location: `${url}/user` })
      return res.end()
    }
    if (u.pathname === '/_test/large') return send(res, 200, { padding: 'x'.repeat(2 * 1024 * 1024) })
    // test control: add or change a user (rename the login, change emails) from another process
    if (u.pathname === '/_test/users' && req.method === 'POST') {
      const b = (await readBody(req)) as unknown as GitHubUser & { previous_login?: string }
      const { previous_login, ...user } = b
      if (previous_login) users.delete(previous_login)
      users.set(user.login, user)
      return send(res, 200, user)
    }
    send(res, 404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' })
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => send(res, 500, { message: String((e as Error).message) }))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port, '127.0.0.1', () => resolve())
  })
  return { url, users, stop: () => new Promise((resolve) => server.close(() => resolve())) }
}
