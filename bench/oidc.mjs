// The OIDC side of `npm run bench`: for UAP Edge and for the peer (bench/peer/oidc-provider.mjs),
// a confidential client, a user, and real tokens from the authorization code flow with PKCE,
// driven over HTTP like a browser (cookies, the hosted login and consent pages). Both sides
// are described by one shape, so a scenario runs unchanged against either:
//   { target, base, label, paths: { discovery, jwks, token, userinfo, introspection },
//     client: { id, secret }, basic, tokens() → { access_token, refresh_token } }
import { createHash, randomBytes } from 'node:crypto'

export const REDIRECT = 'https://bench-rp.example.com/cb'
const SCOPE = 'openid email offline_access'

/** A cookie jar that keeps name=value pairs (paths and flags do not matter on one loopback host). */
class Jar {
  cookies = new Map()
  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
  }
  keep(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';')
      const i = pair.indexOf('=')
      const name = pair.slice(0, i).trim()
      const value = pair.slice(i + 1).trim()
      const expired = !value || attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a))
      if (expired) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
  }
  /** One hop, redirects not followed. */
  async go(url, init = {}) {
    const headers = { ...(init.headers ?? {}) }
    if (this.cookies.size) headers.cookie = this.header()
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded'
    const res = await fetch(url, { method: init.form ? 'POST' : 'GET', redirect: 'manual', headers, body: init.form ? new URLSearchParams(init.form).toString() : undefined })
    this.keep(res)
    const body = await res.text()
    return { status: res.status, location: res.headers.get('location'), body }
  }
}

const basicAuth = (id, secret) => 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')
const pkce = () => {
  const verifier = randomBytes(32).toString('base64url')
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') }
}
const hidden = (html, name) => new RegExp(`name="${name}"[^>]*value="([^"]*)"`).exec(html)?.[1]?.replace(/&amp;/g, '&')
const fail = (what, r) => new Error(`${what}: ${r.status} ${r.location ?? ''} ${String(r.body).slice(0, 300)}`)

async function redeem(op, callback, verifier) {
  const code = new URL(callback).searchParams.get('code')
  if (!code) throw new Error(`${op.label}: no code in ${callback}`)
  const res = await fetch(op.base + op.paths.token, {
    method: 'POST',
    headers: { authorization: op.basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }),
  })
  const body = await res.json()
  if (res.status !== 200 || !body.refresh_token || !body.access_token) throw new Error(`${op.label}: code exchange ${res.status} ${JSON.stringify(body)}`)
  return body
}

function authorizeUrl(op, authorizePath, challenge, extra = {}) {
  const q = new URLSearchParams({
    client_id: op.client.id,
    redirect_uri: REDIRECT,
    response_type: 'code',
    scope: SCOPE,
    state: randomBytes(8).toString('hex'),
    nonce: randomBytes(8).toString('hex'),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...extra,
  })
  return `${op.base}${authorizePath}?${q}`
}

// ---------------------------------------------------------------- UAP Edge

/**
 * An OIDC client registered through the admin API, a user created there and mapped into the
 * client with mapping sync (X-App-Access-Token), and one browser session signed in on
 * /page/login. tokens() runs the code flow in that session (consent on the first run, then
 * remembered) and redeems the code at /oauth2/token: a new refresh-token family each time.
 */
export async function uapOidcWorld(ctx) {
  ctx.shared.uapOidc ??= (async () => {
    const tag = randomBytes(3).toString('hex')
    const app = await ctx.createApp({ app_name: `bench rp ${tag}`, protocol_type: 'OIDC', redirect_uris: [REDIRECT], id_token_claim: 'email' })
    const user = await ctx.createUser('bench oidc user')
    const r = await ctx.api('/api/v1/apps/mapping/sync', {
      method: 'POST',
      headers: { 'X-App-Access-Token': app.accessToken },
      json: { items: [{ mobile: user.mobile, mapped_key: `bench.${tag}@rp.example.com`, action: 'ADD' }] },
    })
    if (r.status !== 200 || r.body.results[0].status !== 'ok') throw new Error(`mapping sync failed: ${r.status} ${JSON.stringify(r.body)}`)
    return { app, user, jar: new Jar() }
  })()
  const { app, user, jar } = await ctx.shared.uapOidc
  const op = {
    target: 'uap',
    label: 'UAP Edge',
    base: ctx.base,
    paths: { discovery: '/.well-known/openid-configuration', jwks: '/.well-known/jwks.json', token: '/oauth2/token', userinfo: '/oauth2/userinfo', introspection: '/oauth2/introspect' },
    client: { id: app.appId, secret: app.secret },
    basic: basicAuth(app.appId, app.secret),
  }
  op.tokens = async () => {
    const { verifier, challenge } = pkce()
    let r = await jar.go(authorizeUrl(op, '/oauth2/authorize', challenge))
    for (let hop = 0; hop < 8; hop++) {
      if (r.status !== 302 && r.status !== 303) throw fail('UAP Edge authorization', r)
      const next = new URL(r.location, op.base)
      if (next.href.startsWith(REDIRECT)) return redeem(op, next.href, verifier)
      if (next.pathname === '/page/login') {
        // the hosted login page: its form sets the CSRF cookie and carries the same value
        const page = await jar.go(next.href)
        const csrf = hidden(page.body, 'csrf_token')
        if (page.status !== 200 || !csrf) throw fail('UAP Edge login page', page)
        const form = { csrf_token: csrf, mobile: user.mobile, password: user.password, step: 'login' }
        const returnTo = hidden(page.body, 'return_to')
        if (returnTo) form.return_to = returnTo
        r = await jar.go(`${op.base}/page/login`, { form })
      } else if (next.pathname === '/page/consent') {
        const page = await jar.go(next.href)
        const csrf = hidden(page.body, 'csrf_token')
        if (page.status !== 200 || !csrf) throw fail('UAP Edge consent page', page)
        r = await jar.go(`${op.base}/page/consent`, { form: { request_id: next.searchParams.get('request_id'), csrf_token: csrf, decision: 'allow' } })
      } else {
        r = await jar.go(next.href)
      }
    }
    throw new Error('UAP Edge authorization: too many redirects')
  }
  return op
}

// ---------------------------------------------------------------- the peer

/**
 * oidc-provider's own flow: its development interactions (a login form that accepts any
 * name, a consent button). offline_access needs prompt=consent there (OIDC Core §11), so
 * every run shows both; a fresh jar per run gives each refresh token its own grant, as
 * each UAP Edge code exchange starts its own family.
 */
export function peerOidcWorld(peer) {
  const op = {
    target: 'peer',
    label: 'oidc-provider',
    base: peer.base,
    paths: { discovery: '/.well-known/openid-configuration', jwks: '/jwks', token: '/token', userinfo: '/me', introspection: '/token/introspection' },
    client: peer.client,
    basic: basicAuth(peer.client.id, peer.client.secret),
  }
  let n = 0
  op.tokens = async () => {
    const jar = new Jar()
    const { verifier, challenge } = pkce()
    let r = await jar.go(authorizeUrl(op, '/auth', challenge, { prompt: 'consent' }))
    for (let hop = 0; hop < 10; hop++) {
      if (r.status !== 302 && r.status !== 303) throw fail('oidc-provider authorization', r)
      const next = new URL(r.location, op.base)
      if (next.href.startsWith(REDIRECT)) return redeem(op, next.href, verifier)
      r = await jar.go(next.href)
      if (r.status === 200) {
        // an interaction page: the form posts back to its own URL with its prompt
        const prompt = hidden(r.body, 'prompt')
        const action = /<form[^>]*action="([^"]+)"/.exec(r.body)?.[1]
        if (!prompt || !action) throw fail('oidc-provider interaction page', r)
        const form = prompt === 'login' ? { prompt, login: `bench-user-${n++}`, password: 'any' } : { prompt }
        r = await jar.go(new URL(action, op.base).href, { form })
      }
    }
    throw new Error('oidc-provider authorization: too many redirects')
  }
  return op
}
