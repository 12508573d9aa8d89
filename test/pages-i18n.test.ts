import { describe, expect, it } from 'vitest'
import { SELF } from 'cloudflare:test'
import { ISSUER, api, createUser, signedApi, uniqueMobile } from './support/api'
import { createApp, createOidcApp, mapUser, partnerApp } from './support/apps'
import { Browser, location } from './support/browser'
import { solvedCaptcha } from './support/captcha'
import { outbox, skipCooldown } from './support/sms'
import { REDIRECT, pkce } from './support/oidc'
import { en } from '../src/pages/i18n/en'
import { zhCN } from '../src/pages/i18n/zh-CN'
import { LANG_COOKIE } from '../src/pages/i18n'
import { PASSWORD_MIN_LENGTH } from '../src/lib/password'

// Every hosted page beyond the portal in both languages (src/pages/i18n): chosen by
// Accept-Language or the ?lang= switch (remembered in a cookie), words from the catalogs only.

const ZH = { 'Accept-Language': 'zh-CN,zh;q=0.9,en;q=0.5' }

type Tree = { [k: string]: unknown }

/** Every entry of a catalog as [path, value], nested maps flattened. */
function entries(o: Tree, prefix = ''): [string, unknown][] {
  return Object.entries(o).flatMap(([k, v]) => (v && typeof v === 'object' ? entries(v as Tree, `${prefix}${k}.`) : [[`${prefix}${k}`, v] as [string, unknown]]))
}

/** What a catalog value says: a string, or a function called with sample arguments. */
const said = (v: unknown): string => (typeof v === 'function' ? String((v as (...a: unknown[]) => unknown)('X1', 'X2', 'X3', 7)) : String(v))

/**
 * The English catalog's sentences and labels that must not appear on a Chinese page: the
 * constant strings (and the fixed part of functions before their first argument) of 5 or more
 * characters with a letter, that zh-CN words differently.
 */
const englishOnly = entries(en as unknown as Tree)
  .filter(([k]) => k !== 'langName')
  .map(([k, v]) => [k, typeof v === 'function' ? said(v).split('X1')[0] : String(v)] as const)
  .filter(([k, s]) => s.trim().length >= 5 && /[A-Za-z]{3}/.test(s) && said(entries(zhCN as unknown as Tree).find(([z]) => z === k)![1]) !== said(entries(en as unknown as Tree).find(([e]) => e === k)![1]))

function expectChinese(html: string, title: string) {
  expect(html).toContain('<html lang="zh-CN">')
  expect(html).toContain(`<h1 id="page-title">${title}</h1>`)
  const visible = html.replace(/<[^>]+>/g, ' ')
  for (const [k, s] of englishOnly) expect(visible, `English "${k}" on a Chinese page`).not.toContain(s.trim())
  // the switch names both languages, each in its own
  expect(html).toContain('hreflang="en">English</a>')
  expect(html).toMatch(/hreflang="zh-CN"( aria-current="true")?>简体中文<\/a>/)
}

describe('catalogs', () => {
  it('en and zh-CN have the same keys, nested maps included, and no empty words', () => {
    const a = entries(en as unknown as Tree)
    const b = entries(zhCN as unknown as Tree)
    expect(b.map(([k]) => k).sort()).toEqual(a.map(([k]) => k).sort())
    for (const [k, v] of [...a, ...b]) {
      expect(['string', 'function'].includes(typeof v), k).toBe(true)
      if (k !== 'sentenceGap') expect(said(v).trim().length, k).toBeGreaterThan(0)
    }
    // a function takes the same parts of the sentence in both languages
    for (const [k, v] of a) if (typeof v === 'function') expect((b.find(([z]) => z === k)![1] as (...x: unknown[]) => unknown).length, k).toBe(v.length)
  })

  it('the Chinese catalog is Chinese: every entry of any length has CJK characters or is a name', () => {
    const names = new Set(['langName', 'colon', 'sentenceGap'])
    for (const [k, v] of entries(zhCN as unknown as Tree)) {
      if (names.has(k)) continue
      expect(said(v), k).toMatch(/[\u4e00-\u9fff]/)
    }
  })
})

describe('register and password reset in Chinese', () => {
  it('register: by Accept-Language, both steps, and the SMS in Chinese', async () => {
    const b = new Browser()
    const start = await b.get('/page/register', ZH)
    expect(start.status).toBe(200)
    expectChinese(start.html, zhCN.registerTitle)
    expect(start.html).toContain(zhCN.registerLead)
    expect(start.html).toContain(`<label for="f-captcha_code">${zhCN.captchaLabel}</label>`)
    const mobile = uniqueMobile()
    const cap = await solvedCaptcha(b.ip)
    const sent = await b.post('/page/register', { csrf_token: b.csrf, mobile, step: 'send', ...cap }, ZH)
    expect(sent.status).toBe(200)
    expectChinese(sent.html, zhCN.registerTitle)
    expect(sent.html).toContain(zhCN.codeSentTo(mobile))
    const [sms] = await outbox(mobile)
    expect(sms).toMatchObject({ purpose: 'register', lang: 'zh-CN' })
    expect((sms as unknown as { text: string }).text).toBe(zhCN.smsText('UAP Edge', zhCN.smsPurposes.register, sms.code, 5))
    const wrong = await b.post('/page/register', { csrf_token: b.csrf, mobile, step: 'finish', sms_code: '12', password: 'x', password_confirm: 'x' }, ZH)
    expect(wrong.status).toBe(400)
    expect(wrong.html).toContain(`${zhCN.errorPrefix}${zhCN.enterSixDigits}`)
    expect(wrong.html).toContain(`${zhCN.errorPrefix}${zhCN.passwordTooShort(PASSWORD_MIN_LENGTH)}`)
  })

  it('reset: ?lang=zh-CN switches, the cookie remembers it, ?lang=en switches back', async () => {
    const b = new Browser()
    const zh = await b.get('/page/pwd/reset?lang=zh-CN')
    expectChinese(zh.html, zhCN.resetTitle)
    expect(zh.headers.getSetCookie().find((c) => c.startsWith(`${LANG_COOKIE}=zh-CN`))).toMatch(/HttpOnly; Secure; SameSite=Lax/i)
    // remembered, even against an English Accept-Language
    const again = await b.get('/page/pwd/reset', { 'Accept-Language': 'en' })
    expectChinese(again.html, zhCN.resetTitle)
    expect(again.html).toContain('href="/page/pwd/reset?lang=en"')
    const user = await createUser()
    const cap = await solvedCaptcha(b.ip)
    const sent = await b.post('/page/pwd/reset', { csrf_token: b.csrf, mobile: user.mobile, step: 'send', ...cap })
    expect(sent.html).toContain(zhCN.codeSentIfAccount(user.mobile))
    expect((await outbox(user.mobile))[0]).toMatchObject({ purpose: 'reset', lang: 'zh-CN', text: expect.stringContaining('重置密码验证码') })
    const back = await b.get('/page/pwd/reset?lang=en', ZH)
    expect(back.html).toContain('<html lang="en">')
    expect(back.html).toContain(`<h1 id="page-title">${en.resetTitle}</h1>`)
  })
})

describe('OIDC pages in Chinese', () => {
  it('the consent page: title, scopes and buttons from the catalog', async () => {
    const app = await createOidcApp({ app_name: 'Reporting' })
    const user = await createUser()
    await mapUser(app.app_id, user)
    const b = new Browser()
    await b.loginOnPage(user)
    const { challenge } = await pkce()
    const q = new URLSearchParams({ client_id: app.app_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid email', code_challenge: challenge, code_challenge_method: 'S256' })
    const to = location(await b.get(`/oauth2/authorize?${q}`))
    expect(to.pathname).toBe('/page/consent')
    const page = await b.get(to.pathname + to.search, ZH)
    expect(page.status).toBe(200)
    expectChinese(page.html, zhCN.consentTitle('Reporting'))
    expect(page.html).toContain(`<li>${zhCN.consentScopes.email}</li>`)
    expect(page.html).toContain(`>${zhCN.allow}</button>`)
    expect(page.html).toContain(`>${zhCN.deny}</button>`)
    // the switch keeps the request
    expect(page.html).toContain(`href="/page/consent?request_id=${to.searchParams.get('request_id')}&amp;lang=en"`)
    const english = await b.get(`${to.pathname}${to.search}&lang=en`)
    expect(english.html).toContain(`<h1 id="page-title">${en.consentTitle('Reporting')}</h1>`)
  })

  it('the authorization error pages and the expired consent page', async () => {
    const b = new Browser()
    const unknown = await b.get('/oauth2/authorize?client_id=app_nobody&redirect_uri=https%3A%2F%2Fx.example.com', ZH)
    expect(unknown.status).toBe(400)
    expectChinese(unknown.html, zhCN.unknownAppTitle)
    expect(unknown.html).toContain(zhCN.unknownClient)
    const expired = await b.get('/page/consent?request_id=' + 'x'.repeat(43) + '&lang=zh-CN')
    expectChinese(expired.html, zhCN.requestExpiredTitle)
    expect(expired.html).toContain(zhCN.goBackHint)
  })

  it('the sign-out confirmation of end_session', async () => {
    const user = await createUser()
    const b = new Browser()
    await b.loginOnPage(user)
    const page = await b.get('/oauth2/end_session', ZH)
    expect(page.status).toBe(200)
    expectChinese(page.html, zhCN.signOutOfTitle('UAP Edge'))
    expect(page.html).toContain(`>${zhCN.staySignedIn}</button>`)
  })
})

describe('error pages of /page/* in Chinese', () => {
  it('404 and 405 are pages (not JSON) in the page language', async () => {
    const b = new Browser()
    const missing = await b.get('/page/no-such-page', ZH)
    expect(missing.status).toBe(404)
    expect(missing.headers.get('Content-Type')).toMatch(/^text\/html/)
    expect(missing.headers.get('Content-Security-Policy')).toContain("default-src 'none'")
    expectChinese(missing.html, zhCN.notFoundTitle)
    expect((await b.get('/page/no-such-page?lang=en')).html).toContain(`<h1 id="page-title">${en.notFoundTitle}</h1>`)
    const put = await SELF.fetch(`${ISSUER}/page/register`, { method: 'PUT', headers: { ...ZH, 'CF-Connecting-IP': b.ip } })
    expect(put.status).toBe(405)
    expect(put.headers.get('Allow')).toContain('GET')
    expectChinese(await put.text(), zhCN.methodNotAllowedTitle)
    // the API keeps its JSON
    expect((await api('/api/v1/no-such-route')).body.error.code).toBe('not_found')
  })

  it('the CSRF refusal, an unreadable form and a form too large', async () => {
    const b = new Browser()
    const csrf = await b.post('/page/login', { mobile: '13800138000', password: 'x' }, ZH)
    expect(csrf.status).toBe(403)
    expectChinese(csrf.html, zhCN.formExpiredTitle)
    expect(csrf.html).toContain(zhCN.openPageAgain)
    const broken = await SELF.fetch(`${ISSUER}/page/login`, { method: 'POST', headers: { ...ZH, 'Content-Type': 'multipart/form-data' }, body: 'x' })
    expect(broken.status).toBe(400)
    expectChinese(await broken.text(), zhCN.formUnreadableTitle)
    const big = await SELF.fetch(`${ISSUER}/page/login`, { method: 'POST', headers: { ...ZH, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=' + 'x'.repeat(1_100_000) })
    expect(big.status).toBe(413)
    expectChinese(await big.text(), zhCN.formTooLargeTitle)
  })

  it('the ticket hop refuses with a page: the code shown, in the page language', async () => {
    const target = await createApp({ app_name: 'Hop', redirect_uris: ['https://hop.example.com/cb'] })
    const user = await createUser()
    const b = new Browser()
    await b.loginOnPage(user)
    const r = await b.get(`/page/sso/simple?${new URLSearchParams({ app_id: target.app_id, redirect_uri: 'https://hop.example.com/cb' })}`, ZH)
    expect(r.status).toBe(403)
    expect(r.headers.get('Location')).toBeNull()
    expectChinese(r.html, zhCN.cannotContinueTitle)
    expect(r.html).toContain(zhCN.refusals.user_not_mapped)
    expect(r.html).toContain('<code>user_not_mapped</code>')
    // a malformed link too: a page, not the API's JSON
    const malformed = await b.get(`/page/sso/simple?app_id=${target.app_id}`, ZH)
    expect(malformed.status).toBe(400)
    expect(malformed.headers.get('Content-Type')).toMatch(/^text\/html/)
    expectChinese(malformed.html, zhCN.cannotContinueTitle)
    expect(malformed.html).toContain('<code>invalid_request</code>')
  })
})

describe('federation pages in Chinese', () => {
  it('the sign-in methods page', async () => {
    const user = await createUser()
    const b = new Browser()
    await b.loginOnPage(user)
    const page = await b.get('/page/federation/identities', ZH)
    expect(page.status).toBe(200)
    expectChinese(page.html, zhCN.identitiesTitle)
    expect(page.html).toContain(zhCN.identitiesLead(user.mobile))
    expect(page.html).toContain(zhCN.identitiesEmpty)
  })
})

describe('SMS language of the API', () => {
  const send = async (mobile: string, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const c = await solvedCaptcha()
    return signedApi(await partnerApp(), 'POST', '/api/v1/open/sms/send', { json: { mobile, purpose: 'register', captcha_id: c.captcha_id, captcha_code: c.captcha_code, ...body }, headers })
  }

  it('`lang` decides, else Accept-Language, else English', async () => {
    const m = uniqueMobile()
    expect((await send(m, { lang: 'zh-CN' }, { 'Accept-Language': 'en' })).status).toBe(200)
    let [sms] = (await outbox(m)) as unknown as { lang: string; text: string; code: string }[]
    expect(sms.lang).toBe('zh-CN')
    expect(sms.text).toBe(`【UAP Edge】你的注册验证码是 ${sms.code}，5 分钟内有效。请勿告诉他人。`)

    await skipCooldown(m, 'register')
    expect((await send(m, {}, { 'Accept-Language': 'zh-TW,en;q=0.5' })).status).toBe(200)
    ;[sms] = (await outbox(m)) as unknown as typeof sms[]
    expect(sms.lang).toBe('zh-CN')

    await skipCooldown(m, 'register')
    expect((await send(m, { lang: 'fr' })).status).toBe(200)
    ;[sms] = (await outbox(m)) as unknown as typeof sms[]
    expect(sms.lang).toBe('en')
    expect(sms.text).toBe(`UAP Edge: your sign-up code is ${sms.code}. It expires in 5 minutes. Never share it.`)
  })

  it('a `lang` that is not a short string is a 400', async () => {
    const r = await send(uniqueMobile(), { lang: 'x'.repeat(40) })
    expect(r.status).toBe(400)
    expect(r.body.error.code).toBe('invalid_request')
  })
})

describe('portal times', () => {
  it('are labelled with their zone (UTC when Cloudflare gives none, as in tests)', async () => {
    const user = await createUser()
    const b = new Browser()
    await b.loginOnPage(user)
    const zh = await b.get('/page/home/sessions?lang=zh-CN')
    expect(zh.html).toContain(zhCN.timeZoneLabel('UTC'))
    // the zh-CN date form, and the zone's name beside each time
    expect(zh.html).toMatch(/<time datetime="[^"]+">\d{4}年\d{1,2}月\d{1,2}日 UTC \d{2}:\d{2}<\/time>/)
    const enPage = await b.get('/page/home/sessions?lang=en')
    expect(enPage.html).toContain(en.timeZoneLabel('UTC'))
    expect(enPage.html).toMatch(/<time datetime="[^"]+">[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{2}:\d{2} UTC<\/time>/)
  })
})
