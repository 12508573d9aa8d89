import { describe, expect, it } from 'vitest'
import { SELF } from 'cloudflare:test'
import { ISSUER, api, createUser } from './support/api'
import { createOidcApp, mapUser, setAppColumnsInD1, type AppSettings } from './support/apps'
import { Browser, csrfFrom, location } from './support/browser'
import { POST_LOGOUT, REDIRECT, oauthPost, pkce } from './support/oidc'

// The OIDC pages (consent, errors, sign-out) are hosted pages like /page/login: the shared
// layout and stylesheet, and the same security headers, wherever they are served from.

function expectPageHeaders(res: { headers: Headers }, opts: { img?: string } = {}) {
  expect(res.headers.get('Content-Type')).toMatch(/^text\/html/)
  const csp = res.headers.get('Content-Security-Policy')!
  expect(csp).toContain("default-src 'none'")
  expect(csp).toContain("style-src 'self'")
  expect(csp).toContain("frame-ancestors 'none'")
  expect(csp).not.toContain('unsafe-inline')
  const img = csp.split('; ').find((d) => d.startsWith('img-src '))!
  if (opts.img) expect(img.split(' ')).toContain(opts.img)
  else expect(img).toBe("img-src 'self' data:")
  expect(res.headers.get('X-Frame-Options')).toBe('DENY')
  expect(res.headers.get('X-Content-Type-Options')).toBe('nosniff')
  expect(res.headers.get('Referrer-Policy')).toBe('same-origin')
  expect(res.headers.get('Cache-Control')).toBe('no-store')
}

/** The shared layout: stylesheet link, brand, labelled main, no inline style or script. */
function expectSharedLayout(html: string, title: string) {
  expect(html.startsWith('<!DOCTYPE html>')).toBe(true)
  expect(html).toContain('<link rel="stylesheet" href="/page/assets/style.css"/>')
  expect(html).toContain(`<title>${title} · UAP Edge</title>`)
  expect(html).toContain('<main aria-labelledby="page-title">')
  expect(html).toContain(`<h1 id="page-title">${title}</h1>`)
  expect(html).not.toMatch(/<style|\sstyle=|<script|\son[a-z]+=/i)
}

async function signedIn(appInput: AppSettings = {}) {
  const app = await createOidcApp(appInput)
  const user = await createUser()
  await mapUser(app.app_id, user, { mappedKey: `p-${user.id.slice(0, 8)}@rp.example.com` })
  const b = new Browser()
  await b.loginOnPage(user)
  return { ...app, user, b }
}

async function consentUrl(s: Awaited<ReturnType<typeof signedIn>>, scope = 'openid email') {
  const { challenge } = await pkce()
  const q = new URLSearchParams({ client_id: s.app_id, redirect_uri: REDIRECT, response_type: 'code', scope, code_challenge: challenge, code_challenge_method: 'S256' })
  const to = location(await s.b.get(`/oauth2/authorize?${q}`))
  expect(to.pathname).toBe('/page/consent')
  return to.pathname + to.search
}

describe('OIDC pages in the hosted pages layout', () => {
  it('consent page: shared layout and stylesheet, strict CSP that still allows the app icon', async () => {
    const s = await signedIn()
    const res = await s.b.get(await consentUrl(s, 'openid email offline_access'))
    expect(res.status).toBe(200)
    expectPageHeaders(res, { img: 'https://rp.example.com' })
    const html = res.html
    expectSharedLayout(html, 'Reporting Portal wants to use your account')
    expect(html).toContain('<img src="https://rp.example.com/icon.png" alt="" width="48" height="48"/>')
    expect(html).toContain('<ul class="scopes" aria-labelledby="scopes-label">')
    expect(html).toContain('Your email address')
    expect(html).toContain('<button type="submit" name="decision" value="allow">Allow</button>')
    expect(html).toContain('<button type="submit" name="decision" value="deny" class="secondary">Deny</button>')
    expect(csrfFrom(html)).toBe(s.b.cookies.get('__Host-uap_csrf'))
  })

  it('consent page: an icon that is not https is left out, and the CSP allows no other image origin', async () => {
    const s = await signedIn()
    // the admin API refuses a non-https icon; the page must still leave out one that is stored
    await setAppColumnsInD1(s.app_id, { iconUrl: 'http://rp.example.com/icon.png' })
    const res = await s.b.get(await consentUrl(s))
    expectPageHeaders(res)
    expect(res.html).not.toContain('icon.png')
  })

  it('authorization endpoint error pages (unknown client, repeated parameter) carry the page headers and an alert', async () => {
    const b = new Browser()
    const unknown = await b.get(`/oauth2/authorize?client_id=app_nope&redirect_uri=${encodeURIComponent(REDIRECT)}&response_type=code&scope=openid`)
    expect(unknown.status).toBe(400)
    expectPageHeaders(unknown)
    const html = unknown.html
    expectSharedLayout(html, 'Unknown application')
    expect(html).toMatch(/<div class="alert" role="alert" id="form-error">[^<]*not registered/)
    expect(html).toContain(`<code>${unknown.headers.get('X-Request-Id')}</code>`)

    const repeated = await b.get('/oauth2/authorize?client_id=a&client_id=b')
    expect(repeated.status).toBe(400)
    expectPageHeaders(repeated)
    expectSharedLayout(repeated.html, 'Invalid request')

    const wrongType = await SELF.fetch(`${ISSUER}/oauth2/authorize`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' })
    expect(wrongType.status).toBe(400)
    expectPageHeaders(wrongType)
  })

  it('an expired consent request is an error page with the page headers', async () => {
    const b = new Browser()
    const res = await b.get('/page/consent?request_id=' + 'x'.repeat(43))
    expect(res.status).toBe(400)
    expectPageHeaders(res)
    expectSharedLayout(res.html, 'Sign-in request expired')
  })

  it('end_session: confirmation, "still signed in", signed-out and error pages all carry the page headers', async () => {
    const s = await signedIn({ first_party: true })
    const confirm = await s.b.get(`/oauth2/end_session?client_id=${s.app_id}&post_logout_redirect_uri=${encodeURIComponent(POST_LOGOUT)}`)
    expect(confirm.status).toBe(200)
    expectPageHeaders(confirm)
    const html = confirm.html
    expectSharedLayout(html, 'Sign out of UAP Edge?')
    expect(html).toContain('<form method="post" action="/oauth2/end_session">')
    expect(html).toContain(`<input type="hidden" name="client_id" value="${s.app_id}"/>`)

    const stay = await s.b.post('/oauth2/end_session', { csrf_token: csrfFrom(html), confirm: 'no' })
    expect(stay.status).toBe(200)
    expectPageHeaders(stay)
    expect(stay.html).toContain('role="status"')

    const out = await s.b.post('/oauth2/end_session', { csrf_token: csrfFrom(html), confirm: 'yes' })
    expect(out.status).toBe(200)
    expectPageHeaders(out)
    const outHtml = out.html
    expectSharedLayout(outHtml, 'Signed out')
    expect(outHtml).toContain('You are signed out of UAP Edge')

    const bad = await s.b.get('/oauth2/end_session?id_token_hint=not.a.token')
    expect(bad.status).toBe(400)
    expectPageHeaders(bad)
  })

  it('end_session confirmation refuses a cross-site post even with a matching token and cookie', async () => {
    const s = await signedIn({ first_party: true })
    const html = (await s.b.get('/oauth2/end_session')).html
    const cookie = [...s.b.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    const res = await SELF.fetch(`${ISSUER}/oauth2/end_session`, {
      method: 'POST',
      redirect: 'manual',
      headers: { Cookie: cookie, Origin: 'https://evil.example.com', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf_token: csrfFrom(html), confirm: 'yes' }).toString(),
    })
    expect(res.status).toBe(403)
    expectPageHeaders(res)
    // still signed in
    expect((await s.b.get('/page/login')).status).toBe(200)
    expect((await s.b.get('/page/login')).html).toContain('Signed in as')
  })

  it('uses the configured brand', async () => {
    const html = (await api('/oauth2/authorize?client_id=app_nope', { env: { BRAND_NAME: 'Acme ID' } })).body
    expect(html).toContain('<title>Unknown application · Acme ID</title>')
    expect(html).toContain('<span>Acme ID</span>')
  })

  it('redirects from the authorization endpoint carry the page headers too (no Referer to the client)', async () => {
    const s = await signedIn({ first_party: true })
    const { challenge } = await pkce()
    const q = new URLSearchParams({ client_id: s.app_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' })
    const res = await s.b.get(`/oauth2/authorize?${q}`)
    expect(res.status).toBe(302)
    expect(location(res).searchParams.get('code')).toBeTruthy()
    expect(res.headers.get('Referrer-Policy')).toBe('same-origin')
    expect(res.headers.get('Cache-Control')).toBe('no-store')
  })
})

describe('CORS on the public metadata', () => {
  for (const path of ['/.well-known/jwks.json', '/.well-known/openid-configuration']) {
    it(`${path}: any origin may GET it, and only GET`, async () => {
      const get = await SELF.fetch(`${ISSUER}${path}`, { headers: { Origin: 'https://spa.example.com' } })
      expect(get.status).toBe(200)
      expect(get.headers.get('Access-Control-Allow-Origin')).toBe('*')
      expect(get.headers.get('Access-Control-Allow-Credentials')).toBeNull()
      // both answer text serialized once (lib/openapi.ts jsonText): still JSON, still cacheable
      expect(get.headers.get('Content-Type')).toBe('application/json')
      expect(get.headers.get('Cache-Control')).toMatch(/^public, max-age=\d+$/)
      expect(((await get.json()) as object)).toBeTruthy()

      const preflight = await SELF.fetch(`${ISSUER}${path}`, { method: 'OPTIONS', headers: { Origin: 'https://spa.example.com', 'Access-Control-Request-Method': 'GET' } })
      expect(preflight.status).toBe(204)
      expect(preflight.headers.get('Access-Control-Allow-Origin')).toBe('*')
      expect(preflight.headers.get('Access-Control-Allow-Methods')).toBe('GET')
    })
  }

  it('the token endpoint keeps its own CORS (POST)', async () => {
    const r = await oauthPost('/oauth2/token', { grant_type: 'client_credentials' })
    expect(r.status).toBe(401)
    // an SPA must be able to read the refusal cross-origin
    expect(r.headers.get('Access-Control-Allow-Origin')).toBe('*')
    const pre = await SELF.fetch(`${ISSUER}/oauth2/token`, { method: 'OPTIONS', headers: { Origin: 'https://spa.example.com', 'Access-Control-Request-Method': 'POST' } })
    expect(pre.headers.get('Access-Control-Allow-Methods')).toContain('POST')
  })
})
