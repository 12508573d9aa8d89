import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { api, createUser, login } from './support/api'
import { Browser, inputValue, randomIp } from './support/browser'
import { solvedCaptcha } from './support/captcha'
import { lastCode, outbox } from './support/sms'
import { createApp, mapUser } from './support/apps'
import {
  EnvBrowser,
  admin,
  fetchWithEnv,
  bindMobile,
  createProvider,
  githubProvider,
  local,
  oidcProvider,
  signInAtGitHub,
  signInAtOp,
  startAtLoginPage,
  upstreams,
} from './federation-helpers'
import { decryptSecret, sha256Hex } from '../src/lib/crypto'
import { cleanupFederationFlows } from '../src/federation/flows'
import { unlinkIdentity } from '../src/federation/identities'
import { interleaved } from './support/interleave'
import { cronTasks } from '../src/wiring'

// Sign-in with another identity provider against real local upstreams (test-upstream/):
// oidc-provider as the OpenID Provider and a server speaking GitHub's documented OAuth and
// user API. The state / PKCE / nonce rules, the binding of a mobile, the API flow, and the
// user's list of identities. Provider ids wk-1 … wk-12 have their callbacks registered at
// the upstreams (test-upstream/fixtures.ts); each test uses its own.

const sessionCookie = (b: Browser) => b.cookies.get('__Host-AUTH_SESSION_ID')
const audits = async (action: string, targetId?: string) =>
  (
    await env.DB.prepare(`SELECT action, actor_type, actor_id, target_id, details FROM audit_logs WHERE action = ?${targetId ? ' AND target_id = ?' : ''} ORDER BY id`)
      .bind(...(targetId ? [action, targetId] : [action]))
      .all<{ action: string; actor_type: string; actor_id: string | null; target_id: string; details: string }>()
  ).results.map((r) => ({ ...r, details: r.details ? JSON.parse(r.details) : null }))
const stateOf = (url: string) => new URL(url).searchParams.get('state')!

/** Start at /page/login, sign in at the OP as `login`, come back: the callback's answer. */
async function viaOp(b: Browser, providerId: string, loginName: string, returnTo?: string) {
  const auth = await startAtLoginPage(b, providerId, returnTo)
  const back = await signInAtOp(auth, loginName)
  return { auth, back, callback: await b.get(local(back)) }
}

describe('hosted pages: sign in with an OpenID provider', () => {
  it('first time: bind the mobile of an existing account (SMS code), land signed in at return_to; second time: no binding step', async () => {
    await oidcProvider('wk-1')
    const user = await createUser({ name: 'Wang Fang' })
    const b = new Browser()
    const { auth, callback } = await viaOp(b, 'wk-1', 'wangfang', '/page/login?after=fed')

    // the authorization request carries state, PKCE S256 and a nonce; the flow cookie binds it to this browser
    const q = new URL(auth).searchParams
    expect(q.get('code_challenge_method')).toBe('S256')
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(q.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(q.get('redirect_uri')).toBe('http://localhost/page/federation/wk-1/callback')
    expect(b.cookies.get('__Host-uap_federation')).toMatch(/^[A-Za-z0-9_-]{43}$/)

    expect(callback.status).toBe(303)
    expect(callback.headers.get('Location')).toMatch(/^\/page\/federation\/bind\?ticket=fbt_/)
    expect(sessionCookie(b)).toBeUndefined()
    const { verify, sent } = await bindMobile(b, callback.headers.get('Location')!, user.mobile)
    expect(sent.html).toContain('Enter the code')
    expect(sent.html).toContain('You signed in with Test OP wk-1 as wangfang.')
    expect(verify.status).toBe(303)
    expect(verify.headers.get('Location')).toBe('/page/login?after=fed')
    expect(sessionCookie(b)).toBeTruthy()
    expect((await b.get('/page/login')).html).toContain('Signed in as <strong>Wang Fang</strong>')

    const link = await env.DB.prepare("SELECT * FROM linked_identities WHERE provider_id = 'wk-1' AND user_id = ?").bind(user.id).first<Record<string, unknown>>()
    expect(link).toMatchObject({ subject: `op-user-${[...new TextEncoder().encode('wangfang')].map((x) => x.toString(16).padStart(2, '0')).join('')}`, display: 'wangfang', email: 'wangfang@op.example', email_verified: 1 })
    const linked = await audits('federation.identity_linked', user.id)
    expect(linked).toHaveLength(1)
    expect(linked[0].details).toMatchObject({ provider: 'wk-1', account: 'existing', proof: 'sms_code', channel: 'page' })
    const logins = (await audits('login.succeeded')).filter((a) => a.actor_id === user.id)
    expect(logins.at(-1)!.details).toMatchObject({ via: 'federation', provider: 'wk-1', linked: 'existing' })

    // second time, a new browser: straight in
    const b2 = new Browser()
    const again = await viaOp(b2, 'wk-1', 'wangfang', '/page/login?again=1')
    expect(again.callback.status).toBe(303)
    expect(again.callback.headers.get('Location')).toBe('/page/login?again=1')
    expect(sessionCookie(b2)).toBeTruthy()
    expect((await audits('login.succeeded')).filter((a) => a.actor_id === user.id).at(-1)!.details).toMatchObject({ via: 'federation', provider: 'wk-1', identity_id: link!.id })
    const flowRow = await env.DB.prepare('SELECT used_at, completed_at, user_id FROM federation_flows WHERE state_hash = ?').bind(await sha256Hex(stateOf(again.auth))).first<Record<string, unknown>>()
    expect(flowRow).toMatchObject({ user_id: user.id })
    expect(flowRow!.used_at).not.toBeNull()
    expect(flowRow!.completed_at).not.toBeNull()
  })

  it('the flow cookie is __Host-, HttpOnly, Secure and SameSite=Lax; the PKCE verifier is kept encrypted and matches the challenge', async () => {
    await oidcProvider('wk-2')
    const b = new Browser()
    await b.get('/page/login')
    const res = await b.post('/page/federation/start', { csrf_token: b.csrf, provider: 'wk-2' })
    expect(res.status).toBe(303)
    const cookie = res.headers.getSetCookie().find((c: string) => c.startsWith('__Host-uap_federation='))!
    expect(cookie).toMatch(/HttpOnly/i)
    expect(cookie).toMatch(/Secure/i)
    expect(cookie).toMatch(/SameSite=Lax/i)
    expect(cookie).toMatch(/Path=\//)
    expect(cookie).not.toMatch(/Domain=/i)
    expect(cookie).toMatch(/Max-Age=3600/i)
    // a second start in the same browser keeps the value and sets it again with a fresh Max-Age,
    // so a flow started just before the first cookie's hour ends still has it at its binding step
    const again = await b.post('/page/federation/start', { csrf_token: b.csrf, provider: 'wk-2' })
    const renewed = again.headers.getSetCookie().find((c: string) => c.startsWith('__Host-uap_federation='))
    expect(renewed).toMatch(/Max-Age=3600/i)
    expect(renewed!.split(';')[0]).toBe(cookie.split(';')[0])
    const auth = res.headers.get('Location')!
    const row = await env.DB.prepare('SELECT * FROM federation_flows WHERE state_hash = ?').bind(await sha256Hex(stateOf(auth))).first<Record<string, string>>()
    expect(row!.binding_hash).not.toContain(b.cookies.get('__Host-uap_federation'))
    const verifier = await decryptSecret(env.MASTER_KEY!, row!.code_verifier_enc, `federation-pkce:${row!.id}`)
    const challenge = btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
    expect(new URL(auth).searchParams.get('code_challenge')).toBe(challenge)
    expect(row!.nonce).toBe(new URL(auth).searchParams.get('nonce'))
    // the start itself is a CSRF-checked form post
    const forged = await new Browser().post('/page/federation/start', { csrf_token: 'x'.repeat(43), provider: 'wk-2' })
    expect(forged.status).toBe(403)
  })

  it('an unknown number with registration open: the code proves it, then a password creates the account', async () => {
    await oidcProvider('wk-3')
    const b = new Browser()
    const { callback } = await viaOp(b, 'wk-3', 'newcomer')
    const mobile = `+86135${String(Date.now()).slice(-8)}`
    const { ticket, verify } = await bindMobile(b, callback.headers.get('Location')!, mobile)
    expect(verify.status).toBe(200)
    expect(verify.html).toContain('Create your account')
    expect(verify.html).toContain(`No account has ${mobile} yet`)
    expect(inputValue(verify.html, 'name')).toBe('Newcomer Tester')
    expect(sessionCookie(b)).toBeUndefined()
    const short = await b.post('/page/federation/bind', { csrf_token: b.csrf, ticket, step: 'create', name: 'Newcomer', password: 'short', password_confirm: 'short' })
    expect(short.status).toBe(400)
    const created = await b.post('/page/federation/bind', { csrf_token: b.csrf, ticket, step: 'create', name: 'Newcomer', password: 'newcomer-password-1', password_confirm: 'newcomer-password-1' })
    expect(created.status).toBe(303)
    expect(created.headers.get('Location')).toBe('/page/home') // no return_to: the portal (docs/portal.md)
    expect(sessionCookie(b)).toBeTruthy()
    const user = await env.DB.prepare('SELECT id, name, email FROM users WHERE mobile = ?').bind(mobile).first<{ id: string; name: string; email: string }>()
    // the provider verified this address, so it becomes the profile email (never a sign-in key)
    expect(user).toMatchObject({ name: 'Newcomer', email: 'newcomer@op.example' })
    // the account has a mobile and a password, like every account
    expect((await login(mobile, 'newcomer-password-1')).access_token).toBeTruthy()
    expect((await audits('user.registered', user!.id))[0].details).toMatchObject({ via: 'federation', provider: 'wk-3' })
    expect((await audits('federation.identity_linked', user!.id))[0].details).toMatchObject({ account: 'created' })
    // the ticket is spent
    const replay = await b.post('/page/federation/bind', { csrf_token: b.csrf, ticket, step: 'create', password: 'newcomer-password-1', password_confirm: 'newcomer-password-1' })
    expect(replay.status).toBe(400)
  })

  it('with registration closed: an unknown number gets the same answer as a known one, no SMS, and cannot be bound', async () => {
    await oidcProvider('wk-4')
    const closed = { REGISTRATION_OPEN: 'false' }
    const known = await createUser()
    const unknown = `+86134${String(Date.now()).slice(-8)}`
    const sendFor = async (mobile: string) => {
      const b = new EnvBrowser(closed)
      const { callback } = await viaOp(b, 'wk-4', 'closed-user')
      const page = await b.get(callback.headers.get('Location')!)
      const ticket = inputValue(page.html, 'ticket')!
      const captchaId = inputValue(page.html, 'captcha_id')!
      const sent = await b.post('/page/federation/bind', { csrf_token: b.csrf, ticket, step: 'send', mobile, captcha_id: captchaId, captcha_code: (await env.KV.get(`captcha:${captchaId}`))! })
      return { b, ticket, sent }
    }
    const k = await sendFor(known.mobile)
    const u = await sendFor(unknown)
    expect(k.sent.status).toBe(200)
    expect(u.sent.status).toBe(200)
    const text = (html: string, mobile: string) => html.replace(mobile, '<mobile>').replace(/value="[^"]*"/g, '').replace(/fbt_[A-Za-z0-9_-]+/g, '<ticket>')
    expect(text(u.sent.html, unknown)).toBe(text(k.sent.html, known.mobile))
    expect(u.sent.html).toContain(`If ${unknown} belongs to an account`)
    expect(await outbox(unknown)).toEqual([])
    expect((await outbox(known.mobile))[0].purpose).toBe('bind')
    const guess = await u.b.post('/page/federation/bind', { csrf_token: u.b.csrf, ticket: u.ticket, step: 'verify', mobile: unknown, sms_code: '123456' })
    expect(guess.status).toBe(400)
    expect(guess.html).toContain('wrong or has expired')
    // the known number binds
    const ok = await k.b.post('/page/federation/bind', { csrf_token: k.b.csrf, ticket: k.ticket, step: 'verify', mobile: known.mobile, sms_code: await lastCode(known.mobile) })
    expect(ok.status).toBe(303)
  })
})

describe('the state, the nonce and PKCE', () => {
  it('a replayed callback is refused and audited; the first one counted', async () => {
    await oidcProvider('wk-5')
    const b = new Browser()
    const { back, callback } = await viaOp(b, 'wk-5', 'replayer')
    expect(callback.status).toBe(303)
    const replay = await b.get(local(back))
    expect(replay.status).toBe(400)
    expect(replay.html).toContain('already used')
    const refused = (await audits('federation.refused', 'wk-5')).at(-1)!
    expect(refused.details).toMatchObject({ reason: 'replayed', channel: 'page' })
  })

  it("a callback in another browser is refused and does not spend the owner's state", async () => {
    await oidcProvider('wk-5')
    const owner = new Browser()
    const auth = await startAtLoginPage(owner, 'wk-5')
    const back = await signInAtOp(auth, 'victim')
    // an attacker's browser (its own flow cookie, or none) presents the same code and state
    const attacker = new Browser()
    await startAtLoginPage(attacker, 'wk-5')
    for (const other of [attacker, new Browser()]) {
      const r = await other.get(local(back))
      expect(r.status).toBe(400)
      expect(sessionCookie(other)).toBeUndefined()
    }
    const reasons = (await audits('federation.refused', 'wk-5')).slice(-2).map((a) => a.details.reason)
    expect(reasons).toEqual(['other_browser', 'other_browser'])
    const mine = await owner.get(local(back))
    expect(mine.status).toBe(303)
  })

  it('a tampered, an expired and another provider\'s state are refused', async () => {
    await oidcProvider('wk-6')
    await oidcProvider('wk-7')
    const b = new Browser()
    const auth = await startAtLoginPage(b, 'wk-6')
    const back = new URL(await signInAtOp(auth, 'tamper'))

    const tampered = new URL(back)
    tampered.searchParams.set('state', stateOf(auth).slice(0, -2) + 'xy')
    expect((await b.get(local(tampered.toString()))).status).toBe(400)
    const other = new URL(back)
    other.pathname = '/page/federation/wk-7/callback'
    expect((await b.get(local(other.toString()))).status).toBe(400)
    await env.DB.prepare('UPDATE federation_flows SET expires_at = 1 WHERE state_hash = ?').bind(await sha256Hex(stateOf(auth))).run()
    expect((await b.get(local(back.toString()))).status).toBe(400)
    const missing = new URL(back)
    missing.searchParams.delete('state')
    expect((await b.get(local(missing.toString()))).status).toBe(400)
    expect((await audits('federation.refused', 'wk-6')).slice(-3).map((a) => a.details.reason)).toEqual(['unknown_state', 'expired', 'unknown_state'])
    expect((await audits('federation.refused', 'wk-7')).at(-1)!.details.reason).toBe('other_provider')
  })

  it('two concurrent callbacks with one state: exactly one is redeemed', async () => {
    await oidcProvider('wk-6')
    const b = new Browser()
    const auth = await startAtLoginPage(b, 'wk-6')
    const back = local(await signInAtOp(auth, 'racer'))
    const results = await Promise.all([b.get(back), b.get(back), b.get(back)])
    expect(results.map((r) => r.status).sort()).toEqual([303, 400, 400])
  })

  it('an ID token whose nonce is not this sign-in\'s is refused', async () => {
    await oidcProvider('wk-8')
    const b = new Browser()
    const auth = new URL(await startAtLoginPage(b, 'wk-8'))
    // the OP signs whatever nonce it was sent: one other than the flow's
    auth.searchParams.set('nonce', 'a-nonce-from-another-request-0123456789abcd')
    const back = await signInAtOp(auth.toString(), 'nonce-victim')
    const r = await b.get(local(back))
    expect(r.status).toBe(400)
    expect(r.html).toContain('could not be verified')
    expect(sessionCookie(b)).toBeUndefined()
    const refused = (await audits('federation.refused', 'wk-8')).at(-1)!
    expect(refused.details.reason).toBe('upstream_rejected')
    expect(refused.details.message).toMatch(/nonce/)
  })

  it('a code bound to another PKCE challenge is refused by the token endpoint', async () => {
    await oidcProvider('wk-8')
    const b = new Browser()
    const auth = new URL(await startAtLoginPage(b, 'wk-8'))
    auth.searchParams.set('code_challenge', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM')
    const back = await signInAtOp(auth.toString(), 'pkce-victim')
    const r = await b.get(local(back))
    expect(r.status).toBe(400)
    const refused = (await audits('federation.refused', 'wk-8')).at(-1)!
    expect(refused.details).toMatchObject({ reason: 'upstream_rejected' })
    expect(refused.details.message).toMatch(/invalid_grant/)
  })

  it("the authorization response's iss must be the provider's (RFC 9207 mix-up defence)", async () => {
    await oidcProvider('wk-9')
    for (const iss of ['https://evil.example', null]) {
      const b = new Browser()
      const back = new URL(await signInAtOp(await startAtLoginPage(b, 'wk-9'), `iss-${iss ? 'other' : 'none'}`))
      expect(back.searchParams.get('iss')).toBe(upstreams().oidcIssuer)
      if (iss) back.searchParams.set('iss', iss)
      else back.searchParams.delete('iss')
      const r = await b.get(local(back.toString()))
      expect(r.status).toBe(400)
      expect((await audits('federation.refused', 'wk-9')).at(-1)!.details.message).toMatch(/RFC 9207/)
    }
  })

  it('a discovery document whose issuer differs from the configured one is refused', async () => {
    await oidcProvider('wk-10', { issuer: `${upstreams().oidcIssuer}/` })
    const b = new Browser()
    await b.get('/page/login')
    const r = await b.post('/page/federation/start', { csrf_token: b.csrf, provider: 'wk-10' })
    expect(r.status).toBe(502)
    expect(r.html).toContain('could not be reached')
  })

  it('client_secret_post works against the OP too', async () => {
    const c = upstreams().opClients[1]
    await oidcProvider('wk-11', { client_id: c.client_id, client_secret: c.client_secret, token_endpoint_auth_method: 'client_secret_post' })
    const b = new Browser()
    const { callback } = await viaOp(b, 'wk-11', 'poster')
    expect(callback.status).toBe(303)
    expect(callback.headers.get('Location')).toMatch(/^\/page\/federation\/bind\?ticket=/)
  })

  it('a binding ticket works only in the browser that started the flow, and only once', async () => {
    await oidcProvider('wk-5')
    const b = new Browser()
    const { callback } = await viaOp(b, 'wk-5', 'ticket-owner')
    const bindUrl = callback.headers.get('Location')!
    const thief = new Browser()
    const stolen = await thief.get(bindUrl)
    expect(stolen.status).toBe(400)
    expect(stolen.html).toContain('expired or was already finished')
    expect((await b.get(bindUrl)).status).toBe(200)
  })
})

describe('continuing where the user was', () => {
  it('inside an OIDC authorization request: the code reaches the client after the upstream sign-in', async () => {
    await oidcProvider('wk-12')
    const user = await createUser()
    const client = await createApp({ app_name: 'Fed RP', protocol_type: 'OIDC', redirect_uris: ['https://rp.example.com/cb'], first_party: true })
    await mapUser(client.app_id, user)
    // link the identity first
    const first = new Browser()
    const c1 = await viaOp(first, 'wk-12', 'oidc-rp-user')
    expect((await bindMobile(first, c1.callback.headers.get('Location')!, user.mobile)).verify.status).toBe(303)

    const b = new Browser()
    const verifier = 'v'.repeat(50)
    const challenge = btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
    const q = new URLSearchParams({ client_id: client.app_id, redirect_uri: 'https://rp.example.com/cb', response_type: 'code', scope: 'openid', state: 'rp-state', nonce: 'rp-nonce', code_challenge: challenge, code_challenge_method: 'S256' })
    const authz = await b.get(`/oauth2/authorize?${q}`)
    expect(authz.status).toBe(302)
    const loginUrl = new URL(authz.headers.get('Location')!, 'http://localhost')
    expect(loginUrl.pathname).toBe('/page/login')
    const returnTo = loginUrl.searchParams.get('return_to')!
    expect(returnTo).toMatch(/^\/oauth2\/authorize\?request_id=/)
    const { callback } = await viaOp(b, 'wk-12', 'oidc-rp-user', returnTo)
    expect(callback.status).toBe(303)
    expect(callback.headers.get('Location')).toBe(returnTo)
    const resumed = await b.get(returnTo)
    expect(resumed.status).toBe(302)
    const rp = new URL(resumed.headers.get('Location')!)
    expect(rp.origin + rp.pathname).toBe('https://rp.example.com/cb')
    expect(rp.searchParams.get('state')).toBe('rp-state')
    expect(rp.searchParams.get('code')).toBeTruthy()
  })

  it('inside a simple-SSO hop: the ticket reaches the SIMPLE_API app after the upstream sign-in', async () => {
    await githubProvider('gh-sso')
    const user = await createUser()
    const app = await createApp({ app_name: 'Legacy CRM', protocol_type: 'SIMPLE_API', redirect_uris: ['https://crm.example.com/sso'] })
    await mapUser(app.app_id, user, { mappedKey: 'crm-user-1' })
    const b = new Browser()
    const loginPage = await b.get(`/page/login?${new URLSearchParams({ app_id: app.app_id, redirect_uri: 'https://crm.example.com/sso' })}`)
    const returnTo = inputValue(loginPage.html, 'return_to')!
    expect(returnTo).toMatch(/^\/page\/sso\/simple\?/)
    const auth = await startAtLoginPage(b, 'gh-sso', returnTo)
    const back = await signInAtGitHub(auth, `sso-${user.id.slice(0, 6)}`)
    const callback = await b.get(local(back))
    const { verify } = await bindMobile(b, callback.headers.get('Location')!, user.mobile)
    expect(verify.status).toBe(303)
    expect(verify.headers.get('Location')).toBe(returnTo)
    const hop = await b.get(returnTo)
    expect(hop.status).toBe(302)
    expect(hop.headers.get('Location')).toMatch(/^https:\/\/crm\.example\.com\/sso\?ticket=/)
  })
})

describe('the GitHub preset (against a server speaking GitHub\'s documented endpoints)', () => {
  it('the subject is the numeric user id: a renamed login still signs in to the same account; the verified primary email is read', async () => {
    await githubProvider('gh-rename', 0)
    const gh = upstreams().githubUrl
    const user = await createUser()
    const id = 700_000 + Math.floor(Math.random() * 100_000)
    const login0 = `octo-${id}`
    await fetch(`${gh}/_test/users`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id, login: login0, name: 'Octo Cat', email: null, emails: [{ email: `old-${id}@example.com`, primary: false, verified: true, visibility: null }, { email: `octo-${id}@example.com`, primary: true, verified: true, visibility: 'private' }] }),
    })
    const b = new Browser()
    const auth = await startAtLoginPage(b, 'gh-rename')
    const q = new URL(auth).searchParams
    expect(new URL(auth).pathname).toBe('/login/oauth/authorize')
    expect(q.get('scope')).toBe('read:user user:email')
    expect(q.get('nonce')).toBeNull()
    const cb = await b.get(local(await signInAtGitHub(auth, login0)))
    expect((await bindMobile(b, cb.headers.get('Location')!, user.mobile)).verify.status).toBe(303)
    const link = await env.DB.prepare("SELECT subject, display, email, email_verified FROM linked_identities WHERE provider_id = 'gh-rename' AND user_id = ?").bind(user.id).first()
    expect(link).toEqual({ subject: String(id), display: login0, email: `octo-${id}@example.com`, email_verified: 1 })

    // renamed at GitHub: same id, new login
    await fetch(`${gh}/_test/users`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ previous_login: login0, id, login: `renamed-${id}`, name: 'Octo Cat', email: null, emails: [] }) })
    const b2 = new Browser()
    const cb2 = await b2.get(local(await signInAtGitHub(await startAtLoginPage(b2, 'gh-rename'), `renamed-${id}`)))
    expect(cb2.status).toBe(303)
    expect(cb2.headers.get('Location')).toBe('/page/home') // no return_to: the portal
    expect(sessionCookie(b2)).toBeTruthy()
    expect(await env.DB.prepare("SELECT display, email, email_verified FROM linked_identities WHERE provider_id = 'gh-rename' AND user_id = ?").bind(user.id).first()).toEqual({ display: `renamed-${id}`, email: null, email_verified: 0 })
    // and a new account that takes the old login name is someone else
    const b3 = new Browser()
    const cb3 = await b3.get(local(await signInAtGitHub(await startAtLoginPage(b3, 'gh-rename'), login0)))
    expect(cb3.headers.get('Location')).toMatch(/^\/page\/federation\/bind/)
  })

  it('Cancel at GitHub comes back as error=access_denied: refused and audited', async () => {
    await githubProvider('gh-deny', 0)
    const b = new Browser()
    const back = await signInAtGitHub(await startAtLoginPage(b, 'gh-deny'), 'canceller', 'deny')
    expect(new URL(back).searchParams.get('error')).toBe('access_denied')
    const r = await b.get(local(back))
    expect(r.status).toBe(400)
    expect(r.html).toContain('did not sign you in')
    expect((await audits('federation.refused', 'gh-deny')).at(-1)!.details).toMatchObject({ reason: 'upstream_error', error: 'access_denied' })
  })

  it('a wrong client secret is refused by GitHub\'s token endpoint and surfaces as a refusal', async () => {
    await githubProvider('gh-secret', 0, { client_secret: 'not-the-secret' })
    const b = new Browser()
    const r = await b.get(local(await signInAtGitHub(await startAtLoginPage(b, 'gh-secret'), 'wrong-secret')))
    expect(r.status).toBe(400)
    expect((await audits('federation.refused', 'gh-secret')).at(-1)!.details.message).toMatch(/incorrect_client_credentials/)
  })
})

describe('a plain OAuth 2.0 provider (claim mapping over its user-info answer)', () => {
  // The GitHub-shaped server configured as type oauth2: its authorize, token and GET /user
  // endpoints given explicitly, the profile read through claim_mapping instead of the preset.
  const plainOauth2 = (id: string, claim_mapping: Record<string, string>) => {
    const u = upstreams()
    const a = u.githubApps[0]
    return createProvider({
      id,
      type: 'oauth2',
      display_name: 'Plain OAuth',
      authorization_endpoint: `${u.githubUrl}/login/oauth/authorize`,
      token_endpoint: `${u.githubUrl}/login/oauth/access_token`,
      userinfo_endpoint: `${u.githubUrl}/user`,
      client_id: a.client_id,
      client_secret: a.client_secret,
      token_endpoint_auth_method: 'client_secret_post',
      scopes: ['read:user'],
      claim_mapping,
    })
  }

  it('signs in with the mapped subject, binds the mobile once, and an email without a mapped verification is kept unverified', async () => {
    await plainOauth2('oa-plain', { subject: 'id', username: 'login', name: 'name', email: 'email' })
    const gh = upstreams().githubUrl
    const user = await createUser()
    const id = 600_000 + Math.floor(Math.random() * 100_000)
    const loginName = `plain-${id}`
    await fetch(`${gh}/_test/users`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id, login: loginName, name: 'Plain User', email: `plain-${id}@example.com`, emails: [] }),
    })
    const b = new Browser()
    const auth = await startAtLoginPage(b, 'oa-plain')
    const q = new URL(auth).searchParams
    expect(new URL(auth).pathname).toBe('/login/oauth/authorize')
    expect(q.get('scope')).toBe('read:user')
    expect(q.get('code_challenge_method')).toBe('S256')
    // no OIDC here: no nonce is sent
    expect(q.get('nonce')).toBeNull()
    const cb = await b.get(local(await signInAtGitHub(auth, loginName)))
    expect(cb.status).toBe(303)
    expect(cb.headers.get('Location')).toMatch(/^\/page\/federation\/bind/)
    expect((await bindMobile(b, cb.headers.get('Location')!, user.mobile)).verify.status).toBe(303)
    // the subject is the mapped numeric id as text; the email is informational and unverified (no email_verified mapping)
    expect(await env.DB.prepare("SELECT subject, display, email, email_verified FROM linked_identities WHERE provider_id = 'oa-plain' AND user_id = ?").bind(user.id).first()).toEqual({
      subject: String(id),
      display: loginName,
      email: `plain-${id}@example.com`,
      email_verified: 0,
    })

    const b2 = new Browser()
    const cb2 = await b2.get(local(await signInAtGitHub(await startAtLoginPage(b2, 'oa-plain'), loginName)))
    expect(cb2.status).toBe(303)
    expect(cb2.headers.get('Location')).toBe('/page/home') // no return_to: the portal
    expect(sessionCookie(b2)).toBeTruthy()
  })

  it('a user-info answer without the mapped subject is refused: nothing is linked, no session', async () => {
    await plainOauth2('oa-nosub', { subject: 'account.uid', username: 'login' })
    const b = new Browser()
    const r = await b.get(local(await signInAtGitHub(await startAtLoginPage(b, 'oa-nosub'), `nosub-${Date.now()}`)))
    expect(r.status).toBe(502)
    expect(r.html).toContain('answered in a way we cannot use')
    expect(sessionCookie(b)).toBeUndefined()
    expect((await audits('federation.refused', 'oa-nosub')).at(-1)!.details).toMatchObject({ reason: 'upstream_unavailable', message: expect.stringMatching(/account\.uid \(claim_mapping\.subject\)/) })
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM linked_identities WHERE provider_id = 'oa-nosub'").first<{ n: number }>())!.n).toBe(0)
  })
})

describe('the API flow (SPA and mobile apps)', () => {
  async function apiStart(provider: string, appId: string, redirect = upstreams().spaRedirect) {
    return api(`/api/v1/auth/federation/${provider}/login?${new URLSearchParams({ app_id: appId, redirect_uri: redirect })}`, { headers: { 'CF-Connecting-IP': '203.0.113.9' } })
  }
  const callback = (provider: string, body: Record<string, unknown>) => api(`/api/v1/auth/federation/${provider}/callback`, { method: 'POST', json: body })
  /** An API-flow sign-in at the GitHub-shaped server up to the redirect back: what the app then posts to the callback. */
  async function githubAnswer(provider: string, appId: string, login: string) {
    const start = await apiStart(provider, appId)
    const back = new URL(await signInAtGitHub(start.body.authorization_url, login))
    return { code: back.searchParams.get('code'), state: back.searchParams.get('state'), flow_secret: start.body.flow_secret as string }
  }

  it('login → authorization URL; callback with code, state and flow_secret → binding → tokens; second time tokens at once', async () => {
    await oidcProvider('wk-13')
    const spa = await createApp({ app_name: 'SPA', protocol_type: 'OIDC', redirect_uris: [upstreams().spaRedirect], token_endpoint_auth_method: 'none' })
    const user = await createUser({ name: 'Api User' })

    expect((await apiStart('wk-13', spa.app_id, 'https://spa.example.test/elsewhere')).body.error.code).toBe('redirect_uri_not_registered')
    expect((await apiStart('wk-13', 'app_nope')).body.error.code).toBe('invalid_app')
    expect((await apiStart('wk-nope', spa.app_id)).status).toBe(404)

    const start = await apiStart('wk-13', spa.app_id)
    expect(start.status).toBe(200)
    expect(start.headers.get('Cache-Control')).toBe('no-store')
    const { authorization_url, state, flow_secret } = start.body
    expect(new URL(authorization_url).searchParams.get('state')).toBe(state)
    expect(new URL(authorization_url).searchParams.get('redirect_uri')).toBe(upstreams().spaRedirect)
    const back = new URL(await signInAtOp(authorization_url, 'api-user'))
    expect(back.origin + back.pathname).toBe(upstreams().spaRedirect)
    const code = back.searchParams.get('code')!
    const iss = back.searchParams.get('iss')!

    // another client presenting the code and state without the flow secret gets nothing (and does not spend the state)
    const foreign = await callback('wk-13', { code, state, iss, flow_secret: 'fs_not-the-secret' })
    expect(foreign.status).toBe(400)
    expect(foreign.body.error.code).toBe('invalid_state')

    // the app says where the response arrived (RFC 9700 §4.4.2): here, where the flow sent the user
    const pending = await callback('wk-13', { code, state, iss, flow_secret, redirect_uri: upstreams().spaRedirect })
    expect(pending.status).toBe(202)
    expect(pending.body).toMatchObject({ binding_required: true, provider: 'wk-13', identity: { display: 'api-user' } })
    const ticket = pending.body.binding_ticket
    expect((await callback('wk-13', { code, state, iss, flow_secret })).body.error.code).toBe('invalid_state')

    const cap = await solvedCaptcha()
    const sent = await api('/api/v1/auth/federation/bind/send-code', { method: 'POST', json: { binding_ticket: ticket, mobile: user.mobile, ...cap } })
    expect(sent.status).toBe(200)
    expect(sent.body).toMatchObject({ sent: true })
    const wrong = await api('/api/v1/auth/federation/bind/verify', { method: 'POST', json: { binding_ticket: ticket, mobile: user.mobile, sms_code: '000000' } })
    expect(wrong.status).toBe(400)
    expect(wrong.body.error.code).toBe('invalid_sms_code')
    const done = await api('/api/v1/auth/federation/bind/verify', { method: 'POST', json: { binding_ticket: ticket, mobile: user.mobile, sms_code: await lastCode(user.mobile) } })
    expect(done.status).toBe(200)
    expect(done.body).toMatchObject({ token_type: 'Bearer' })
    const me = await api('/api/v1/auth/me', { token: done.body.access_token })
    expect(me.body).toMatchObject({ id: user.id, name: 'Api User' })
    // the refresh token works like any first-party one
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: done.body.refresh_token } })).status).toBe(200)
    expect((await api('/api/v1/auth/federation/bind/verify', { method: 'POST', json: { binding_ticket: ticket, mobile: user.mobile, sms_code: '123456' } })).body.error.code).toBe('invalid_ticket')

    // second time: tokens straight from the callback
    const s2 = await apiStart('wk-13', spa.app_id)
    const b2 = new URL(await signInAtOp(s2.body.authorization_url, 'api-user'))
    const again = await callback('wk-13', { code: b2.searchParams.get('code'), state: s2.body.state, iss: b2.searchParams.get('iss'), flow_secret: s2.body.flow_secret })
    expect(again.status).toBe(200)
    expect((await api('/api/v1/auth/me', { token: again.body.access_token })).body.id).toBe(user.id)
    const session = await env.DB.prepare("SELECT app_id FROM sessions WHERE user_id = ? ORDER BY created_at DESC LIMIT 1").bind(user.id).first<{ app_id: string }>()
    expect(session!.app_id).toBe(spa.app_id)
  })

  it('an unknown number: verify answers account_required, create-account makes it and returns tokens', async () => {
    await githubProvider('gh-api', 1)
    const spa = await createApp({ app_name: 'SPA2', protocol_type: 'OIDC', redirect_uris: [upstreams().spaRedirect] })
    const pending = await callback('gh-api', await githubAnswer('gh-api', spa.app_id, `api-new-${Date.now()}`))
    expect(pending.status).toBe(202)
    const ticket = pending.body.binding_ticket
    const early = await api('/api/v1/auth/federation/bind/create-account', { method: 'POST', json: { binding_ticket: ticket, password: 'api-new-password-1' } })
    expect(early.status).toBe(400)
    expect(early.body.error.code).toBe('mobile_not_verified')
    const mobile = `+86133${String(Date.now()).slice(-8)}`
    await api('/api/v1/auth/federation/bind/send-code', { method: 'POST', json: { binding_ticket: ticket, mobile, ...(await solvedCaptcha()) } })
    const v = await api('/api/v1/auth/federation/bind/verify', { method: 'POST', json: { binding_ticket: ticket, mobile, sms_code: await lastCode(mobile) } })
    expect(v.status).toBe(202)
    expect(v.body).toEqual({ account_required: true })
    const made = await api('/api/v1/auth/federation/bind/create-account', { method: 'POST', json: { binding_ticket: ticket, password: 'api-new-password-1', name: 'New Api' } })
    expect(made.status).toBe(201)
    expect((await api('/api/v1/auth/me', { token: made.body.access_token })).body).toMatchObject({ mobile, name: 'New Api' })
    // a page can't use an API ticket
    const b = new Browser()
    expect((await b.get(`/page/federation/bind?ticket=${ticket}`)).status).toBe(400)
  })

  it('a tampered nonce is refused on the API flow too', async () => {
    await oidcProvider('wk-9')
    const spa = await createApp({ app_name: 'SPA3', protocol_type: 'OIDC', redirect_uris: [upstreams().spaRedirect] })
    const start = await apiStart('wk-9', spa.app_id)
    const auth = new URL(start.body.authorization_url)
    auth.searchParams.set('nonce', 'someone-elses-nonce-0123456789abcdefghijkl')
    const back = new URL(await signInAtOp(auth.toString(), 'api-nonce'))
    const r = await callback('wk-9', { code: back.searchParams.get('code'), state: start.body.state, iss: back.searchParams.get('iss'), flow_secret: start.body.flow_secret })
    expect(r.status).toBe(400)
    expect(r.body.error.code).toBe('upstream_rejected')
    expect(r.body.error.message).toMatch(/nonce/)
  })

  it('mix-up defences: a response that arrived at another redirect URI, or that names an issuer the provider has not, is refused before the code is used', async () => {
    await githubProvider('gh-mixup', 1)
    const spa = await createApp({ app_name: 'SPA mix-up', protocol_type: 'OIDC', redirect_uris: [upstreams().spaRedirect] })
    const refusals = async () =>
      (await env.DB.prepare("SELECT details FROM audit_logs WHERE action = 'federation.refused' AND target_id = 'gh-mixup' ORDER BY id").all<{ details: string }>()).results.map((r) => JSON.parse(r.details).reason)

    // arrived at the redirect URI the app keeps for another provider: refused, the state spent
    const a1 = await githubAnswer('gh-mixup', spa.app_id, `mixup-${Date.now()}`)
    const elsewhere = await callback('gh-mixup', { ...a1, redirect_uri: 'https://spa.example.test/auth/other-provider/callback' })
    expect(elsewhere.status).toBe(400)
    expect(elsewhere.body.error.code).toBe('upstream_rejected')
    expect(elsewhere.body.error.message).toMatch(/RFC 9700/)
    expect(await refusals()).toEqual(['redirect_uri_mismatch'])
    expect((await callback('gh-mixup', a1)).body.error.code).toBe('invalid_state')

    // an `iss` on a GitHub response names some other server's issuer (RFC 9207 §2.4)
    const named = await callback('gh-mixup', { ...(await githubAnswer('gh-mixup', spa.app_id, `mixup2-${Date.now()}`)), iss: 'https://accounts.other.example' })
    expect(named.status).toBe(400)
    expect(named.body.error.code).toBe('upstream_rejected')
    expect(named.body.error.message).toMatch(/RFC 9207/)

    // the same answers, arrived where they were sent and without an iss, sign in
    const ok = await callback('gh-mixup', { ...(await githubAnswer('gh-mixup', spa.app_id, `mixup3-${Date.now()}`)), redirect_uri: upstreams().spaRedirect })
    expect(ok.status).toBe(202)
  })

  it('disabling the provider stops its pending bindings at once, as the binding pages do', async () => {
    await githubProvider('gh-api-off', 1)
    const spa = await createApp({ app_name: 'SPA off', protocol_type: 'OIDC', redirect_uris: [upstreams().spaRedirect] })
    const pending = await callback('gh-api-off', await githubAnswer('gh-api-off', spa.app_id, `api-off-${Date.now()}`))
    expect(pending.status).toBe(202)
    const ticket = pending.body.binding_ticket
    const mobile = `+86134${String(Date.now()).slice(-8)}`
    expect((await api('/api/v1/auth/federation/bind/send-code', { method: 'POST', json: { binding_ticket: ticket, mobile, ...(await solvedCaptcha()) } })).status).toBe(200)
    const code = await lastCode(mobile)
    expect((await api('/api/v1/admin/identity-providers/gh-api-off/disable', { method: 'POST', token: await admin() })).status).toBe(200)

    for (const [path, body] of [
      ['send-code', { binding_ticket: ticket, mobile, ...(await solvedCaptcha()) }],
      ['verify', { binding_ticket: ticket, mobile, sms_code: code }],
      ['create-account', { binding_ticket: ticket, password: 'api-off-password-1' }],
    ] as const) {
      const r = await api(`/api/v1/auth/federation/bind/${path}`, { method: 'POST', json: body })
      expect(r.status, path).toBe(404)
      expect(r.body.error.code, path).toBe('unknown_provider')
    }
    expect((await env.DB.prepare("SELECT count(*) AS n FROM linked_identities WHERE provider_id = 'gh-api-off'").first<{ n: number }>())!.n).toBe(0)
    expect(await env.DB.prepare('SELECT id FROM users WHERE mobile = ?').bind(mobile).first()).toBeNull()
  })
})

describe('my identities', () => {
  it('lists and unlinks (audited); an unlinked identity binds again next time', async () => {
    await oidcProvider('wk-14')
    const user = await createUser()
    const b = new Browser()
    const { callback } = await viaOp(b, 'wk-14', `lister-${user.id.slice(0, 6)}`)
    await bindMobile(b, callback.headers.get('Location')!, user.mobile)
    const { access_token } = await login(user.mobile, user.password)
    const list = await api('/api/v1/auth/me/identities', { token: access_token })
    expect(list.status).toBe(200)
    expect(list.body.items).toHaveLength(1)
    expect(list.body.items[0]).toMatchObject({ provider: 'wk-14', provider_name: 'Test OP wk-14', provider_type: 'oidc', display: `lister-${user.id.slice(0, 6)}`, email_verified: true })

    // the page shows it too, with an Unlink button
    const page = await b.get('/page/federation/identities')
    expect(page.status).toBe(200)
    expect(page.html).toContain('Test OP wk-14')
    expect(inputValue(page.html, 'id')).toBe(list.body.items[0].id)

    // someone else's identity is not found
    const other = await createUser()
    const otherTok = (await login(other.mobile, other.password)).access_token
    expect((await api(`/api/v1/auth/me/identities/${list.body.items[0].id}`, { method: 'DELETE', token: otherTok })).status).toBe(404)
    const del = await api(`/api/v1/auth/me/identities/${list.body.items[0].id}`, { method: 'DELETE', token: access_token })
    expect(del.status).toBe(200)
    expect((await api('/api/v1/auth/me/identities', { token: access_token })).body.items).toEqual([])
    expect((await audits('federation.identity_unlinked', user.id))[0].details).toMatchObject({ provider: 'wk-14' })

    const again = await viaOp(new Browser(), 'wk-14', `lister-${user.id.slice(0, 6)}`)
    expect(again.callback.headers.get('Location')).toMatch(/^\/page\/federation\/bind/)
  })

  it('the last way in cannot be unlinked (an account without a usable password)', async () => {
    await githubProvider('gh-last', 0)
    const user = await createUser()
    const b = new Browser()
    const cb = await b.get(local(await signInAtGitHub(await startAtLoginPage(b, 'gh-last'), `last-${user.id.slice(0, 6)}`)))
    await bindMobile(b, cb.headers.get('Location')!, user.mobile)
    const { access_token } = await login(user.mobile, user.password)
    const [item] = (await api('/api/v1/auth/me/identities', { token: access_token })).body.items
    // an imported hash this service cannot read is no password
    await env.DB.prepare("UPDATE users SET password_hash = 'md5$unreadable' WHERE id = ?").bind(user.id).run()
    const r = await api(`/api/v1/auth/me/identities/${item.id}`, { method: 'DELETE', token: access_token })
    expect(r.status).toBe(409)
    expect(r.body.error.code).toBe('last_sign_in_method')
    expect((await audits('federation.unlink_refused')).at(-1)!.details).toMatchObject({ reason: 'last_sign_in_method' })
    // the page says so as well
    const page = await b.post('/page/federation/identities/unlink', { csrf_token: b.csrf, id: item.id })
    expect(page.status).toBe(409)
    expect(page.html).toContain('only way to sign in')
  })

  it('two unlinks at once of an account\'s two identities leave one (no usable password): the check holds in the delete itself', async () => {
    await githubProvider('gh-race-1', 0)
    await githubProvider('gh-race-2', 0)
    const user = await createUser()
    await env.DB.prepare("UPDATE users SET password_hash = 'md5$unreadable' WHERE id = ?").bind(user.id).run()
    for (const [id, subject] of [['gh-race-1', 'race-1'], ['gh-race-2', 'race-2']]) {
      await env.DB.prepare('INSERT INTO linked_identities (id, provider_id, subject, user_id, created_at) VALUES (?, ?, ?, ?, ?)').bind(`race-${id}-${user.id}`, id, `${subject}-${user.id}`, user.id, Date.now()).run()
    }
    const [first, second] = [`race-gh-race-1-${user.id}`, `race-gh-race-2-${user.id}`]
    const actor = { actorType: 'user' as const, actorId: user.id, requestId: 'race', ip: '203.0.113.7' }
    // the other identity is unlinked after this unlink's check and just before its delete
    const race = interleaved(/^delete from "linked_identities"/i, () => unlinkIdentity(env, user.id, second, actor))
    await expect(unlinkIdentity(race.env, user.id, first, actor)).rejects.toMatchObject({ code: 'last_sign_in_method' })
    expect(race.fired()).toBe(true)
    const left = await env.DB.prepare('SELECT id FROM linked_identities WHERE user_id = ?').bind(user.id).all<{ id: string }>()
    expect(left.results.map((r) => r.id)).toEqual([first])
    const unlinked = (await env.DB.prepare("SELECT details FROM audit_logs WHERE action = 'federation.identity_unlinked' AND target_id = ?").bind(user.id).all<{ details: string }>()).results
    expect(unlinked.map((r) => JSON.parse(r.details).identity_id)).toEqual([second])
  })

  it('a disabled account cannot sign in through its identity', async () => {
    await oidcProvider('wk-15')
    const user = await createUser()
    const b = new Browser()
    const { callback } = await viaOp(b, 'wk-15', `disabled-${user.id.slice(0, 6)}`)
    await bindMobile(b, callback.headers.get('Location')!, user.mobile)
    await api(`/api/v1/admin/users/${user.id}`, { method: 'PATCH', token: await admin(), json: { status: 'DISABLED' } })
    const b2 = new Browser()
    const r = await viaOp(b2, 'wk-15', `disabled-${user.id.slice(0, 6)}`)
    expect(r.callback.status).toBe(403)
    expect(r.callback.html).toContain('disabled')
    expect(sessionCookie(b2)).toBeUndefined()
  })
})

describe('the sign-in page', () => {
  it('shows one button per enabled provider in a CSRF-protected form that keeps return_to', async () => {
    await createProvider({ id: 'gh-button', type: 'github', display_name: 'Button Test', client_id: 'c', client_secret: 's' })
    const b = new Browser()
    const page = await b.get('/page/login?return_to=%2Fpage%2Flogin%3Fx%3D1')
    expect(page.html).toContain('Sign in with Button Test')
    const form = /<form method="post" action="\/page\/federation\/start">([\s\S]*?)<\/form>/.exec(page.html)![1]
    expect(inputValue(form, 'csrf_token')).toBe(b.csrf)
    expect(inputValue(form, 'return_to')).toBe('/page/login?x=1')
  })
})

describe('rate limits', () => {
  const limited = { RATE_LIMITS: JSON.stringify({ federation_ip: { limit: 3, windowS: 60 } }) }

  it('federation_ip counts starts and callbacks of one client IP together; past it the page answers 429', async () => {
    await githubProvider('gh-rate', 0)
    const b = new EnvBrowser(limited)
    await b.get('/page/login')
    expect((await b.post('/page/federation/start', { csrf_token: b.csrf, provider: 'gh-rate' })).status).toBe(303)
    expect((await b.post('/page/federation/start', { csrf_token: b.csrf, provider: 'gh-rate' })).status).toBe(303)
    expect((await b.get('/page/federation/gh-rate/callback?code=x&state=not-a-state')).status).toBe(400)
    const refused = await b.post('/page/federation/start', { csrf_token: b.csrf, provider: 'gh-rate' })
    expect(refused.status).toBe(429)
    expect(refused.html).toContain('Too many requests from your network')
    // nothing was started for the refused press
    expect(refused.headers.get('Location')).toBeNull()
    // another network is not affected
    const other = new EnvBrowser(limited)
    await other.get('/page/login')
    expect((await other.post('/page/federation/start', { csrf_token: other.csrf, provider: 'gh-rate' })).status).toBe(303)
  })

  it('the API flow answers 429 rate_limited with Retry-After past federation_ip, on login and callback alike', async () => {
    await githubProvider('gh-rate-api', 1)
    const spa = await createApp({ app_name: 'SPA rate', protocol_type: 'OIDC', redirect_uris: [upstreams().spaRedirect] })
    const ip = randomIp()
    const login = () => fetchWithEnv(limited, `/api/v1/auth/federation/gh-rate-api/login?${new URLSearchParams({ app_id: spa.app_id, redirect_uri: upstreams().spaRedirect })}`, { headers: { 'CF-Connecting-IP': ip } })
    const callback = () =>
      fetchWithEnv(limited, '/api/v1/auth/federation/gh-rate-api/callback', { method: 'POST', headers: { 'CF-Connecting-IP': ip, 'Content-Type': 'application/json' }, body: JSON.stringify({ code: 'x', state: 'not-a-state', flow_secret: 'fs_x' }) })
    expect((await login()).status).toBe(200)
    expect((await login()).status).toBe(200)
    expect((await callback()).status).toBe(400)
    for (const res of [await login(), await callback()]) {
      expect(res.status).toBe(429)
      expect(Number(res.headers.get('Retry-After'))).toBeGreaterThan(0)
      const body = (await res.json()) as { error: { code: string; details: { policy: string } } }
      expect(body.error.code).toBe('rate_limited')
      expect(body.error.details.policy).toBe('federation_ip')
    }
  })
})

describe('cleanup', () => {
  it('the cron deletes flows a day past their expiry and keeps younger ones', async () => {
    await oidcProvider('wk-1')
    expect(cronTasks.map((t) => t.name)).toContain('federation-cleanup-flows')
    const now = Date.now()
    const insert = (id: string, expiresAt: number) =>
      env.DB.prepare("INSERT INTO federation_flows (id, provider_id, channel, state_hash, binding_hash, code_verifier_enc, nonce, redirect_uri, created_at, expires_at) VALUES (?, 'wk-1', 'page', ?, 'b', 'v', 'n', 'r', ?, ?)")
        .bind(id, `h-${id}`, expiresAt - 600_000, expiresAt)
        .run()
    const old = crypto.randomUUID()
    const recent = crypto.randomUUID()
    await insert(old, now - 25 * 3600_000)
    await insert(recent, now - 3600_000)
    expect(await cleanupFederationFlows(env, now)).toBeGreaterThanOrEqual(1)
    const left = (await env.DB.prepare('SELECT id FROM federation_flows WHERE id IN (?, ?)').bind(old, recent).all<{ id: string }>()).results.map((r) => r.id)
    expect(left).toEqual([recent])
  })
})
