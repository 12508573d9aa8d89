import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { adminApi, adminToken, api, auditLog, createUser, login, signedApi } from './support/api'
import { createApp, createOidcApp, disableApp, mapUser } from './support/apps'
import { Browser, csrfFrom, location } from './support/browser'
import { codeFlow, oauthPost } from './support/oidc'
import { fromAcceptLanguage } from '../src/pages/i18n'
import { lastCode, outbox } from './support/sms'
import { setGrant } from './support/directory'
import { uniqueMobile } from './support/api'
import { deviceHint } from '../src/lib/user-agent'

// The user's portal (/page/home, docs/portal.md): every page and action, and that a user only
// ever sees and ends their own sessions and consents.

const CHROME_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36'

async function signedIn(opts: { name?: string } = {}) {
  const user = await createUser(opts)
  const b = new Browser()
  const { res, sessionId } = await b.loginOnPage(user)
  return { user, b, res, sessionId }
}

const refresh = (token: string) => api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: token } })

/** A form on a portal page, posted with the page's own csrf_token. */
async function submit(b: Browser, page: string, action: string, fields: Record<string, string> = {}) {
  const html = (await b.get(page)).html
  return b.post(action, { csrf_token: csrfFrom(html), ...fields })
}

describe('portal: my apps', () => {
  it('sign-in without return_to lands on /page/home; not signed in, /page/home sends to sign-in and back', async () => {
    const { res } = await signedIn()
    expect(res.headers.get('Location')).toBe('/page/home')
    const anon = await new Browser().get('/page/home/sessions')
    expect(anon.status).toBe(303)
    expect(anon.headers.get('Location')).toBe('/page/login?return_to=%2Fpage%2Fhome%2Fsessions')
  })

  it('lists the active apps with an active mapping, with description and icon, and opens each the right way', async () => {
    const { user, b } = await signedIn({ name: 'Portal User' })
    const simple = await createApp({ app_name: 'Legacy HR', redirect_uris: ['https://hr.example.com/cb', 'https://hr.example.com/home'] })
    await adminApi('PATCH', `/api/v1/admin/apps/${simple.app_id}`, { description: 'Leave and payslips', home_url: 'https://hr.example.com/home', icon_url: 'https://cdn.example.net/hr.png' })
    const oidc = await createOidcApp({ app_name: 'Reports' })
    const patched = await adminApi('PATCH', `/api/v1/admin/apps/${oidc.app_id}`, { initiate_login_uri: 'https://rp.example.com/login', home_url: 'https://rp.example.com/dash', description: 'Monthly numbers' })
    expect(patched).toMatchObject({ initiate_login_uri: 'https://rp.example.com/login', home_url: 'https://rp.example.com/dash', description: 'Monthly numbers' })
    const plain = await createOidcApp({ app_name: 'Wiki' })
    await adminApi('PATCH', `/api/v1/admin/apps/${plain.app_id}`, { home_url: 'https://wiki.example.com/' })
    const unmapped = await createApp({ app_name: 'Not Yours' })
    const inactive = await createApp({ app_name: 'Inactive Mapping' })
    const disabled = await createApp({ app_name: 'Disabled App' })
    const { mappedKey } = await mapUser(simple.app_id, user)
    for (const a of [oidc, plain, disabled]) await mapUser(a.app_id, user)
    await mapUser(inactive.app_id, user, { isActive: false })
    await disableApp(disabled.app_id)
    void unmapped

    const page = await b.get('/page/home')
    expect(page.status).toBe(200)
    expect(page.html).toContain('Portal User')
    expect(page.html).toContain('Legacy HR')
    expect(page.html).toContain('Leave and payslips')
    expect(page.html).toContain('Monthly numbers')
    expect(page.html).not.toContain('Not Yours')
    expect(page.html).not.toContain('Inactive Mapping')
    expect(page.html).not.toContain('Disabled App')
    // the icon's origin is allowed by this page's CSP, nothing else is loosened
    expect(page.headers.get('Content-Security-Policy')).toContain('img-src ' + "'self' data: https://cdn.example.net")
    expect(page.html).not.toMatch(/<script|\sstyle=|\son[a-z]+=/i)

    // OIDC third-party-initiated login (OpenID Connect Core §4): iss, target_link_uri
    const initiate = new URL(`https://rp.example.com/login?iss=${encodeURIComponent('http://localhost')}&target_link_uri=${encodeURIComponent('https://rp.example.com/dash')}`)
    expect(page.html).toContain(`href="${initiate.toString().replace(/&/g, '&amp;')}"`)
    expect(page.html).toContain('href="https://wiki.example.com/"')

    // SIMPLE_API: the ticket hop, to the home URL since it is a registered callback; the ticket verifies
    const hop = `/page/sso/simple?app_id=${simple.app_id}&redirect_uri=${encodeURIComponent('https://hr.example.com/home')}`
    expect(page.html).toContain(`href="${hop.replace(/&/g, '&amp;')}"`)
    const jump = await b.get(hop)
    expect(jump.status).toBe(302)
    const to = location(jump)
    expect(to.origin + to.pathname).toBe('https://hr.example.com/home')
    const verified = await signedApi(simple, 'POST', '/api/v1/simple/ticket/verify', { json: { ticket: to.searchParams.get('ticket') } })
    expect(verified.status).toBe(200)
    expect(verified.body.user).toMatchObject({ mobile: user.mobile, mapped_key: mappedKey })
  })

  it("an app whose access_policy is `permission` is listed only once the user holds its access permission", async () => {
    const { user, b } = await signedIn()
    const gated = await createApp({ app_name: 'Gated App', access_policy: 'permission' })
    await mapUser(gated.app_id, user)
    expect((await b.get('/page/home')).html).not.toContain('Gated App')
    await setGrant(gated.app_id, { permission: 'access', subject: { type: 'user', id: user.id }, effect: 'allow' })
    expect((await b.get('/page/home')).html).toContain('Gated App')
  })

  it('the admin API refuses an http initiate_login_uri and keeps the fields on GET', async () => {
    const app = await createOidcApp()
    const bad = await api(`/api/v1/admin/apps/${app.app_id}`, { method: 'PATCH', token: await adminToken(), json: { initiate_login_uri: 'http://127.0.0.1/login' } })
    expect(bad.status).toBe(400)
    await adminApi('PATCH', `/api/v1/admin/apps/${app.app_id}`, { description: 'About it' })
    expect(await adminApi('GET', `/api/v1/admin/apps/${app.app_id}`)).toMatchObject({ description: 'About it', home_url: null, initiate_login_uri: null })
  })
})

describe('portal: sessions and devices', () => {
  it("lists only the user's own live sessions, with device, IP and times", async () => {
    const { user, b } = await signedIn()
    const other = await createUser()
    await login(other.mobile, other.password)
    const api1 = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: user.mobile, password: user.password }, headers: { 'User-Agent': CHROME_MAC, 'CF-Connecting-IP': '10.66.5.4' } })
    expect(api1.status).toBe(200)
    const page = await b.get('/page/home/sessions')
    expect(page.status).toBe(200)
    expect(page.html).toContain('This device')
    expect(page.html).toContain('Chrome on macOS')
    expect(page.html).toContain('10.66.5.4')
    expect(page.html).toContain(b.ip)
    expect((page.html.match(/name="session_id"/g) ?? []).length).toBe(1) // the API session; this browser's is signed out through /page/logout
    const otherIds = await sessionIdsOf(other.id)
    for (const id of otherIds) expect(page.html).not.toContain(id)
  })

  it("signs out one session (its refresh token dies); another user's session id is refused and stays live", async () => {
    const { user, b } = await signedIn()
    const mine = await login(user.mobile, user.password)
    const stranger = await createUser()
    const theirs = await login(stranger.mobile, stranger.password)
    const [theirSession] = await sessionIdsOf(stranger.id)

    const refused = await submit(b, '/page/home/sessions', '/page/home/sessions/end', { session_id: theirSession })
    expect(refused.status).toBe(404)
    expect(refused.html).toContain('not one of your live sessions')
    expect((await refresh(theirs.refresh_token)).status).toBe(200)

    const page = await b.get('/page/home/sessions')
    const target = /name="session_id" value="([^"]+)"/.exec(page.html)![1] // the API session: the only one besides this browser's
    expect(await sessionIdsOf(user.id)).toContain(target)
    expect(target).not.toBe(await b.sessionId())
    const ended = await b.post('/page/home/sessions/end', { csrf_token: csrfFrom(page.html), session_id: target })
    expect(ended.status).toBe(200)
    expect(ended.html).toContain('That session was signed out')
    expect((await refresh(mine.refresh_token)).status).toBe(401)
    expect((await b.get('/page/home')).status).toBe(200) // this browser is still signed in
    const rows = await auditLog({ action: 'portal.session_ended', target_id: target })
    expect(rows[0]).toMatchObject({ actor_type: 'user', actor_id: user.id, target_type: 'session' })
  })

  it('signs out every other session, keeps this one, and never touches another user', async () => {
    const { user, b, sessionId } = await signedIn()
    const a = await login(user.mobile, user.password)
    const b2 = new Browser()
    await b2.loginOnPage(user)
    const stranger = await createUser()
    const theirs = await login(stranger.mobile, stranger.password)
    const r = await submit(b, '/page/home/sessions', '/page/home/sessions/end-others')
    expect(r.status).toBe(200)
    expect(r.html).toContain('2 other sessions were signed out')
    expect((await refresh(a.refresh_token)).status).toBe(401)
    expect((await b2.get('/page/home')).status).toBe(303)
    expect((await b.get('/page/home')).status).toBe(200)
    expect((await refresh(theirs.refresh_token)).status).toBe(200)
    expect((await auditLog({ action: 'portal.other_sessions_ended', target_id: user.id }))[0].details).toMatchObject({ sessions: 2, kept: sessionId })
  })

  it('ending this browser’s own session from the list signs it out', async () => {
    const { b, sessionId } = await signedIn()
    const page = await b.get('/page/home/sessions')
    expect(page.html).not.toContain(`value="${sessionId}"`) // offered as "sign out on this device" (/page/logout) instead
    const r = await b.post('/page/home/sessions/end', { csrf_token: b.csrf, session_id: sessionId })
    expect(r.status).toBe(303)
    expect(r.headers.get('Location')).toBe('/page/login?signed_out=1')
    expect((await b.get('/page/home')).status).toBe(303)
  })

  it('signing a session out runs single sign-out: the OIDC app holding a token of it loses it', async () => {
    const { user, b } = await signedIn()
    const app = await createOidcApp({ first_party: true })
    await mapUser(app.app_id, user)
    const other = new Browser()
    await other.loginOnPage(user)
    const t = await codeFlow(other, app)
    await submit(b, '/page/home/sessions', '/page/home/sessions/end-others')
    const r = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token! }, app)
    expect(r.status).toBe(400)
    expect(r.body.error).toBe('invalid_grant')
  })
})

async function sessionIdsOf(userId: string): Promise<string[]> {
  const rows = await env.DB.prepare('SELECT id FROM sessions WHERE user_id = ? AND revoked_at IS NULL').bind(userId).all<{ id: string }>()
  return rows.results.map((r) => r.id)
}

describe('portal: every form is CSRF-checked', () => {
  it.each([
    ['/page/home/profile', { name: 'X' }],
    ['/page/home/profile/mobile', { step: 'send', new_mobile: '+8613700000001' }],
    ['/page/home/security/password', { current_password: 'x', new_password: 'y'.repeat(12), new_password_confirm: 'y'.repeat(12) }],
    ['/page/home/sessions/end', { session_id: 'x' }],
    ['/page/home/sessions/end-others', {}],
    ['/page/home/authorized/revoke', { client_id: 'x' }],
  ])('%s without the token, with a wrong one, or cross-site: 403 and nothing changes', async (path, fields) => {
    const { user, b } = await signedIn({ name: 'Before' })
    const other = await login(user.mobile, user.password)
    await b.get('/page/home')
    expect((await b.post(path, fields as Record<string, string>)).status).toBe(403)
    expect((await b.post(path, { ...fields, csrf_token: 'A'.repeat(43) } as Record<string, string>)).status).toBe(403)
    expect((await b.post(path, { ...fields, csrf_token: b.csrf } as Record<string, string>, { Origin: 'https://evil.example' })).status).toBe(403)
    expect((await refresh(other.refresh_token)).status).toBe(200)
    expect((await b.get('/page/home/profile')).html).toContain('value="Before"')
  })
})

describe('portal: security', () => {
  it('changes the password with the current one; a wrong one is refused and audited', async () => {
    const { user, b } = await signedIn()
    const keep = await login(user.mobile, user.password)
    const wrong = await submit(b, '/page/home/security', '/page/home/security/password', { current_password: 'not-my-password', new_password: 'brand-new-password-1', new_password_confirm: 'brand-new-password-1' })
    expect(wrong.status).toBe(400)
    expect(wrong.html).toContain('The current password is wrong.')
    expect((await auditLog({ action: 'portal.password_change_failed', target_id: user.id })).length).toBe(1)
    const mismatch = await submit(b, '/page/home/security', '/page/home/security/password', { current_password: user.password, new_password: 'brand-new-password-1', new_password_confirm: 'brand-new-password-2' })
    expect(mismatch.status).toBe(400)

    const ok = await submit(b, '/page/home/security', '/page/home/security/password', { current_password: user.password, new_password: 'brand-new-password-1', new_password_confirm: 'brand-new-password-1' })
    expect(ok.status).toBe(200)
    expect(ok.html).toContain('Your password was changed.')
    expect((await api('/api/v1/auth/login', { method: 'POST', json: { mobile: user.mobile, password: user.password } })).status).toBe(401)
    await login(user.mobile, 'brand-new-password-1')
    expect((await refresh(keep.refresh_token)).status).toBe(200) // other sessions kept unless asked
    expect((await auditLog({ action: 'portal.password_changed', target_id: user.id }))[0].details).toEqual({ other_sessions_ended: 0 })
  })

  it('with "sign out every other session", the other sessions and their refresh tokens end', async () => {
    const { user, b } = await signedIn()
    const other = await login(user.mobile, user.password)
    const r = await submit(b, '/page/home/security', '/page/home/security/password', { current_password: user.password, new_password: 'brand-new-password-3', new_password_confirm: 'brand-new-password-3', sign_out_others: 'yes' })
    expect(r.status).toBe(200)
    expect(r.html).toContain('every other session was signed out')
    expect((await refresh(other.refresh_token)).status).toBe(401)
    expect((await b.get('/page/home')).status).toBe(200)
  })

  it('shows recent security activity from the audit log: sign-ins with IP and device, failures, password changes', async () => {
    const user = await createUser()
    const b = new Browser('10.88.7.6')
    await b.loginOnPage(user)
    await api('/api/v1/auth/login', { method: 'POST', json: { mobile: user.mobile, password: 'wrong-password-0' }, headers: { 'CF-Connecting-IP': '10.88.9.9' } })
    const page = await b.get('/page/home/security')
    expect(page.html).toContain('Signed in')
    expect(page.html).toContain('from 10.88.7.6')
    expect(page.html).toContain('Failed sign-in attempt')
    expect(page.html).toContain('from 10.88.9.9')
    const stranger = await createUser()
    await login(stranger.mobile, stranger.password)
    expect((await b.get('/page/home/security')).html.match(/<li>/g)?.length).toBe(page.html.match(/<li>/g)?.length)
  })
})

describe('portal: authorized apps', () => {
  it('lists consents with scopes; revoking removes the consent, kills the app’s refresh tokens and is audited', async () => {
    const { user, b } = await signedIn()
    const app = await createOidcApp({ app_name: 'Consented App' })
    await mapUser(app.app_id, user)
    const t = await codeFlow(b, app, 'openid email offline_access')
    const page = await b.get('/page/home/authorized')
    expect(page.html).toContain('Consented App')
    expect(page.html).toContain('Your email address')
    const stranger = await createUser()
    const sb = new Browser()
    await sb.loginOnPage(stranger)
    // another user cannot revoke it (their list has no such consent)
    expect((await sb.get('/page/home/authorized')).html).not.toContain('Consented App')
    const foreign = await sb.post('/page/home/authorized/revoke', { csrf_token: sb.csrf, client_id: app.app_id })
    expect(foreign.status).toBe(404)
    expect((await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token! }, app)).status).toBe(200)
    const t2 = await codeFlow(b, app, 'openid email offline_access') // consent remembered: no page
    const r = await b.post('/page/home/authorized/revoke', { csrf_token: csrfFrom(page.html), client_id: app.app_id })
    expect(r.status).toBe(200)
    expect(r.html).toContain('Consented App no longer has access')
    expect(r.html).not.toContain('value="' + app.app_id + '"')
    const refused = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: t2.refresh_token! }, app)
    expect(refused.status).toBe(400)
    expect(refused.body.error).toBe('invalid_grant')
    expect((await auditLog({ action: 'oidc.consent.revoked', target_id: app.app_id }))[0]).toMatchObject({ actor_id: user.id })
    // the next authorization asks again
    const again = await b.get(`/oauth2/authorize?${new URLSearchParams({ client_id: app.app_id, redirect_uri: 'https://rp.example.com/cb', response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`)
    expect(location(again).pathname).toBe('/page/consent')
  })
})

describe('portal: profile', () => {
  it('saves name and email, refuses a bad email, audits the changed fields', async () => {
    const { user, b } = await signedIn({ name: 'Old Name' })
    const app = await createApp({ app_name: 'Feed App' })
    await mapUser(app.app_id, user)
    const bad = await submit(b, '/page/home/profile', '/page/home/profile', { name: 'New Name', email: 'not-an-email' })
    expect(bad.status).toBe(400)
    expect(bad.html).toContain('aria-invalid="true"')
    const ok = await submit(b, '/page/home/profile', '/page/home/profile', { name: 'New Name', email: 'me@example.com' })
    expect(ok.status).toBe(200)
    expect(ok.html).toContain('Your profile was saved.')
    expect(await adminApi('GET', `/api/v1/admin/users/${user.id}`)).toMatchObject({ name: 'New Name', email: 'me@example.com' })
    expect((await auditLog({ action: 'portal.profile_updated', target_id: user.id }))[0].details).toEqual({ fields: ['name', 'email'] })
    const feed = await api(`/api/v1/apps/${app.app_id}/users/changes`, { headers: { 'X-App-Access-Token': app.access_token } })
    expect(feed.body.items.map((e: any) => e.type)).toEqual(['mapping.added', 'user.updated'])
    // an email alone is not in the apps' payload: no event
    await submit(b, '/page/home/profile', '/page/home/profile', { name: 'New Name', email: 'other@example.com' })
    expect((await api(`/api/v1/apps/${app.app_id}/users/changes`, { headers: { 'X-App-Access-Token': app.access_token } })).body.items.length).toBe(2)
  })
})

describe('portal: mobile number', () => {
  it('changes the number after a code to the new number and the current password; the old number stops signing in', async () => {
    const { user, b } = await signedIn()
    const app = await createApp({ app_name: 'Feed App' })
    await mapUser(app.app_id, user)
    const next = uniqueMobile()
    const sent = await submit(b, '/page/home/profile', '/page/home/profile/mobile', { step: 'send', new_mobile: next })
    expect(sent.status).toBe(200)
    expect(sent.html).toContain(`We sent a 6-digit code to ${next}`)
    expect((await outbox(next))[0]).toMatchObject({ purpose: 'change_mobile', to: next })
    expect(await outbox(user.mobile)).toEqual([])
    const code = await lastCode(next)
    // a wrong password spends no code and is audited
    const wrong = await b.post('/page/home/profile/mobile', { csrf_token: csrfFrom(sent.html), step: 'finish', new_mobile: next, sms_code: code, current_password: 'not-my-password' })
    expect(wrong.status).toBe(400)
    expect(wrong.html).toContain('The current password is wrong.')
    expect((await auditLog({ action: 'portal.mobile_change_failed', target_id: user.id })).length).toBe(1)
    const badCode = await b.post('/page/home/profile/mobile', { csrf_token: b.csrf, step: 'finish', new_mobile: next, sms_code: code === '000000' ? '111111' : '000000', current_password: user.password })
    expect(badCode.status).toBe(400)
    expect(badCode.html).toContain('That code is wrong or has expired.')
    const ok = await b.post('/page/home/profile/mobile', { csrf_token: b.csrf, step: 'finish', new_mobile: next, sms_code: code, current_password: user.password })
    expect(ok.status).toBe(200)
    expect(ok.html).toContain(`Your mobile number is now ${next}`)
    expect((await api('/api/v1/auth/login', { method: 'POST', json: { mobile: user.mobile, password: user.password } })).status).toBe(401)
    await login(next, user.password)
    expect((await auditLog({ action: 'portal.mobile_changed', target_id: user.id }))[0].details).toEqual({ from: user.mobile, to: next })
    // the app the user is mapped in hears of the new number (changes feed; webhooks use the same outbox)
    const feed = await api(`/api/v1/apps/${app.app_id}/users/changes`, { headers: { 'X-App-Access-Token': app.access_token } })
    expect(feed.body.items.map((e: any) => e.type)).toEqual(['mapping.added', 'user.updated'])
    expect(JSON.stringify(feed.body.items[1])).toContain(next)
    // the code was single use
    const again = await b.post('/page/home/profile/mobile', { csrf_token: b.csrf, step: 'finish', new_mobile: next, sms_code: code, current_password: user.password })
    expect(again.status).toBe(400)
  })

  it("a number that has an account is refused only after its code proved the person holds it", async () => {
    const { user, b } = await signedIn()
    const taken = await createUser()
    const sent = await submit(b, '/page/home/profile', '/page/home/profile/mobile', { step: 'send', new_mobile: taken.mobile })
    expect(sent.html).toContain(`We sent a 6-digit code to ${taken.mobile}`) // the same answer as for a free number
    const r = await b.post('/page/home/profile/mobile', { csrf_token: b.csrf, step: 'finish', new_mobile: taken.mobile, sms_code: await lastCode(taken.mobile), current_password: user.password })
    expect(r.status).toBe(409)
    expect(r.html).toContain('That number already has an account')
    await login(user.mobile, user.password)
    const invalid = await b.post('/page/home/profile/mobile', { csrf_token: b.csrf, step: 'send', new_mobile: 'abc' })
    expect(invalid.status).toBe(400)
  })
})

describe('portal: language', () => {
  it('follows Accept-Language, and a switch is remembered in a cookie', async () => {
    const { b } = await signedIn()
    const zh = await b.get('/page/home/sessions', { 'Accept-Language': 'zh-CN,zh;q=0.9,en;q=0.8' })
    expect(zh.html).toContain('<html lang="zh-CN">')
    expect(zh.html).toContain('登录设备')
    expect(zh.html).toContain('本设备')
    const en = await b.get('/page/home/sessions?lang=en', { 'Accept-Language': 'zh-CN' })
    expect(en.html).toContain('<html lang="en">')
    expect(en.html).toContain('This device')
    expect((await b.get('/page/home', { 'Accept-Language': 'zh-CN' })).html).toContain('My apps') // remembered
    await b.get('/page/home?lang=zh-CN')
    expect((await b.get('/page/home/security')).html).toContain('修改密码')
  })

  it('the sign-in and sign-out pages speak it too, and the switch keeps return_to', async () => {
    const user = await createUser()
    const b = new Browser()
    const zh = await b.get('/page/login?return_to=%2Fpage%2Fhome%2Fsessions', { 'Accept-Language': 'zh-CN' })
    expect(zh.html).toContain('<html lang="zh-CN">')
    expect(zh.html).toContain('<label for="f-mobile">手机号</label>')
    expect(zh.html).toContain('忘记密码？')
    expect(zh.html).toContain('href="/page/login?return_to=%2Fpage%2Fhome%2Fsessions&amp;lang=en"')
    const wrong = await b.post('/page/login', { csrf_token: b.csrf, mobile: user.mobile, password: 'wrong-password-1', step: 'login' }, { 'Accept-Language': 'zh-CN' })
    expect(wrong.html).toContain('手机号或密码错误。')
    const en = await b.get('/page/login?lang=en', { 'Accept-Language': 'zh-CN' })
    expect(en.html).toContain('Forgot password?')
    await b.get('/page/login?lang=zh-CN')
    await b.loginOnPage(user)
    expect((await b.get('/page/logout')).html).toContain('要在本设备退出')
    expect((await b.get('/page/login')).html).toContain('当前账号：<strong>')
  })

  it('picks the language by q value; every Chinese tag gets Simplified Chinese', () => {
    expect(fromAcceptLanguage('en;q=0.5, zh-TW;q=0.8')).toBe('zh-CN')
    expect(fromAcceptLanguage('fr, en;q=0.1')).toBe('en')
    expect(fromAcceptLanguage('fr')).toBeNull()
    expect(fromAcceptLanguage('zh;q=0, en')).toBe('en')
  })

  it('names devices from user agents', () => {
    expect(deviceHint(CHROME_MAC)).toEqual({ browser: 'Chrome', os: 'macOS' })
    expect(deviceHint('Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1')).toEqual({ browser: 'Safari', os: 'iOS' })
    expect(deviceHint('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0')).toEqual({ browser: 'Edge', os: 'Windows' })
    expect(deviceHint(null)).toEqual({ browser: null, os: null })
  })
})
