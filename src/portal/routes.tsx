import { Hono } from 'hono'
import type { Child } from 'hono/jsx'
import type { AppEnv } from '../context'
import { ApiError } from '../lib/errors'
import { readBrowserSession, type BrowserSession } from '../auth/browser-session'
import { enforceRateLimit } from '../ratelimit'
import { textProblem } from '../lib/text'
import { PASSWORD_MAX_LENGTH as PASSWORD_MAX, PASSWORD_MIN_LENGTH as PASSWORD_MIN } from '../lib/password'
import { Alert, Csrf, Field, LanguageSwitch, Notice, renderPage } from '../pages/layout'
import { pageErrorResponse } from '../pages/routes'
import { log } from '../lib/logger'
import { allowPageImage, csrfToken } from '../pages/security'
import { formOf, type C } from '../pages/form'
import { catalogOf, pageLocale, type Catalog, type Locale } from '../pages/i18n'
import { formatTime, visitorTimeZone } from '../pages/i18n/time'
import { listUserConsents, parseScope, revokeConsent } from '../oidc/service'
import { userSecurityActivity } from '../audit/service'
import { sessionDevices } from '../auth/sessions'
import { deviceHint } from '../lib/user-agent'
import { normalizeMobile } from '../lib/mobile'
import { afterResponse } from '../webhooks/outbox'
import { sendSmsCode } from '../sms/service'
import { changeMyMobile, changeMyPassword, endMySession, endOtherSessions, myApps, mySessions, updateMyProfile, type PortalCtx } from './service'

/**
 * The user's own portal, mounted at /page/home: my apps, profile, security (password and
 * recent activity), sessions and devices, authorized apps; in English and Simplified Chinese
 * (src/pages/i18n). Server-rendered forms without JavaScript, under the hosted pages' CSP and
 * CSRF check (src/app.ts applies both to /page/*). A form answers with the page itself and
 * what happened, so nothing depends on a redirect carrying text.
 */
export const portalRoutes = new Hono<AppEnv>()

type Section = 'home' | 'profile' | 'security' | 'sessions' | 'authorized'

const SECTIONS: { id: Section; path: string; label: (t: Catalog) => string }[] = [
  { id: 'home', path: '/page/home', label: (t) => t.navHome },
  { id: 'profile', path: '/page/home/profile', label: (t) => t.navProfile },
  { id: 'security', path: '/page/home/security', label: (t) => t.navSecurity },
  { id: 'sessions', path: '/page/home/sessions', label: (t) => t.navSessions },
  { id: 'authorized', path: '/page/home/authorized', label: (t) => t.navAuthorized },
]

interface View {
  s: BrowserSession
  locale: Locale
  t: Catalog
  /** The visitor's time zone (src/pages/i18n/time.ts), UTC when unknown. */
  zone: string
}

/** The signed-in browser and its language, or the sign-in page (coming back here afterwards). */
async function enter(c: C): Promise<View | Response> {
  const s = await readBrowserSession(c)
  if (!s) {
    const back = c.req.method === 'GET' ? c.req.path : '/page/home'
    return c.redirect(`/page/login?return_to=${encodeURIComponent(back)}`, 303)
  }
  const locale = pageLocale(c)
  return { s, locale, t: catalogOf(locale), zone: visitorTimeZone(c) }
}

const ctxOf = (c: C): PortalCtx => ({ requestId: c.get('requestId'), ip: c.get('clientIp') })

type Form = Awaited<ReturnType<typeof formOf>>

/**
 * A portal form's POST: the CSRF check already passed (/page/* middleware, src/app.ts); the
 * signed-in browser (else the sign-in page) and the submitted form, then the action.
 */
const formAction = (action: (c: C, v: View, f: Form) => Promise<Response>) => async (c: C) => {
  const v = await enter(c)
  if (v instanceof Response) return v
  return action(c, v, await formOf(c))
}

/** A time in the visitor's zone and the page's language, labelled with the zone. */
const when = (v: View, ms: number | null | undefined) => (ms ? formatTime(ms, v.locale, v.zone) : '—')

/** Which zone the page's times are in, said once under the section's title. */
const ZoneNote = (p: { v: View }) => <p class="hint zone">{p.v.t.timeZoneLabel(p.v.zone)}</p>

function portalPage(c: C, v: View, section: Section, status: number, body: Child) {
  const { t, s } = v
  const title = SECTIONS.find((x) => x.id === section)!.label(t)
  const path = SECTIONS.find((x) => x.id === section)!.path
  const header = (
    <>
      <div class="portal-top">
        <p class="who">
          {t.signedInAs}
          <strong>{s.user.name || s.user.mobile}</strong>
          {s.user.name ? ` · ${s.user.mobile}` : ''}
        </p>
        <LanguageSwitch href={path} locale={v.locale} label={t.languageLabel} />
      </div>
      <nav class="portal-nav" aria-label={t.navLabel}>
        <ul>
          {SECTIONS.map((x) => (
            <li>
              <a href={x.path} aria-current={x.id === section ? 'page' : undefined}>
                {x.label(t)}
              </a>
            </li>
          ))}
          <li>
            <a href="/page/logout">{t.navSignOut}</a>
          </li>
        </ul>
      </nav>
    </>
  )
  return renderPage(c, status, title, body, { lang: v.locale, wide: true, header, switchHref: null })
}

const AppMark = (p: { iconUrl: string | null }) => (p.iconUrl ? <img src={p.iconUrl} alt="" width={48} height={48} /> : <span class="mark" aria-hidden="true" />)

// ---------------------------------------------------------------------------------------
// My apps

portalRoutes.get('/', async (c) => {
  const v = await enter(c)
  if (v instanceof Response) return v
  const apps = await myApps(c.env, v.s.user.id)
  for (const a of apps) if (a.iconUrl) allowPageImage(c, a.iconUrl)
  return portalPage(
    c,
    v,
    'home',
    200,
    <>
      <p class="lead">{apps.length ? v.t.homeLead : v.t.homeEmpty}</p>
      {apps.length ? (
        <ul class="cards apps">
          {apps.map((a) => (
            <li>
              {a.href ? (
                <a class="app" href={a.href}>
                  <AppMark iconUrl={a.iconUrl} />
                  <span>
                    <strong>{a.name}</strong>
                    {a.description ? <span class="hint">{a.description}</span> : null}
                  </span>
                </a>
              ) : (
                <div class="app">
                  <AppMark iconUrl={a.iconUrl} />
                  <span>
                    <strong>{a.name}</strong>
                    {a.description ? <span class="hint">{a.description}</span> : null}
                    <span class="hint">{v.t.appNoStart}</span>
                  </span>
                </div>
              )}
            </li>
          ))}
        </ul>
      ) : null}
    </>,
  )
})

// ---------------------------------------------------------------------------------------
// Profile

interface ProfileForm {
  name?: string
  email?: string
  errors?: { name?: string; email?: string }
  notice?: string
  /** The mobile change: `codeFor` once a code went to that number. */
  mobile?: { codeFor?: string; value?: string; error?: string; errors?: { new_mobile?: string; sms_code?: string; current_password?: string } }
}

function profilePage(c: C, v: View, status: number, f: ProfileForm = {}) {
  const { t, s } = v
  const errs = f.errors ?? {}
  return portalPage(
    c,
    v,
    'profile',
    status,
    <>
      <Notice message={f.notice} />
      <Alert message={errs.name || errs.email ? t.checkFields : null} />
      <form method="post" action="/page/home/profile" novalidate>
        <Csrf token={csrfToken(c)} />
        <Field name="name" label={t.nameLabel} value={f.name ?? s.user.name} autocomplete="name" maxlength={100} required={false} error={errs.name} errorPrefix={t.errorPrefix} />
        <Field name="email" label={t.emailLabel} type="email" inputmode="email" value={f.email ?? s.user.email} autocomplete="email" maxlength={254} required={false} hint={t.emailHint} error={errs.email} errorPrefix={t.errorPrefix} />
        <div>
          <p class="hint">
            {t.mobileLabel}
            {t.colon}
            <strong>{s.user.mobile}</strong>
          </p>
          <p class="hint">{t.mobileHint}</p>
        </div>
        <button type="submit">{t.save}</button>
      </form>
      <MobileChangeForm c={c} t={t} m={f.mobile ?? {}} />
    </>,
  )
}

/** Step 1: the new number (a code goes there); step 2: that code and the current password. */
function MobileChangeForm(p: { c: C; t: Catalog; m: NonNullable<ProfileForm['mobile']> }) {
  const { t, m } = p
  const errs = m.errors ?? {}
  return (
    <section aria-labelledby="mobile-heading">
      <h2 id="mobile-heading">{t.mobileHeading}</h2>
      {m.codeFor && !m.error ? <Notice message={t.codeSent(m.codeFor)} /> : null}
      <Alert message={m.error} />
      <form method="post" action="/page/home/profile/mobile" novalidate>
        <Csrf token={csrfToken(p.c)} />
        {m.codeFor ? (
          <>
            <input type="hidden" name="new_mobile" value={m.codeFor} />
            <input type="hidden" name="step" value="finish" />
            <Field name="sms_code" label={t.smsCodeLabel} inputmode="numeric" autocomplete="one-time-code" maxlength={6} pattern="[0-9]{6}" error={errs.sms_code} errorPrefix={t.errorPrefix} autofocus />
            <Field name="current_password" label={t.currentPassword} type="password" autocomplete="current-password" maxlength={PASSWORD_MAX} error={errs.current_password} errorPrefix={t.errorPrefix} />
            <button type="submit">{t.changeMobile}</button>
          </>
        ) : (
          <>
            <input type="hidden" name="step" value="send" />
            <Field name="new_mobile" label={t.newMobileLabel} type="tel" inputmode="tel" autocomplete="tel" value={m.value} maxlength={32} error={errs.new_mobile} errorPrefix={t.errorPrefix} />
            <button type="submit" class="secondary">{t.sendCode}</button>
          </>
        )}
      </form>
    </section>
  )
}

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

portalRoutes.get('/profile', async (c) => {
  const v = await enter(c)
  return v instanceof Response ? v : profilePage(c, v, 200)
})

portalRoutes.post('/profile', formAction(async (c, v, f) => {
  const name = f('name', 101).trim()
  const email = f('email', 255).trim()
  const errors: ProfileForm['errors'] = {}
  if (name.length > 100 || textProblem(name)) errors.name = v.t.nameInvalid
  if (email && (email.length > 254 || !EMAIL_RE.test(email) || textProblem(email))) errors.email = v.t.emailInvalid
  if (errors.name || errors.email) return profilePage(c, v, 400, { name, email, errors })
  const next = { name: name || null, email: email || null }
  await updateMyProfile(c.env, v.s.user, next, ctxOf(c), afterResponse(c))
  return profilePage(c, { ...v, s: { ...v.s, user: { ...v.s.user, ...next } } }, 200, { notice: v.t.profileSaved })
}))

portalRoutes.post('/profile/mobile', formAction(async (c, v, f) => {
  const { t } = v
  const typed = f('new_mobile', 32).trim()
  const mobile = normalizeMobile(typed)
  if (!mobile) return profilePage(c, v, 400, { mobile: { value: typed, error: t.checkFields, errors: { new_mobile: t.mobileInvalid } } })
  if (mobile === v.s.user.mobile) return profilePage(c, v, 400, { mobile: { value: typed, error: t.checkFields, errors: { new_mobile: t.mobileSame } } })
  if (f('step') !== 'finish') {
    try {
      await enforceRateLimit(c, 'sms_ip', c.get('clientIp'))
      await sendSmsCode(c.env, { mobile, purpose: 'change_mobile', locale: v.locale }, { requestId: c.get('requestId'), ip: c.get('clientIp'), waitUntil: (p) => c.executionCtx.waitUntil(p) })
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 429) throw e
      const error = e.code === 'sms_cooldown' ? t.codeWait(waitFor(t, e)) : e.code === 'sms_daily_limit' ? t.codeDaily : t.tooManyAttempts(waitFor(t, e))
      return profilePage(c, v, 429, { mobile: { value: typed, error } })
    }
    return profilePage(c, v, 200, { mobile: { codeFor: mobile } })
  }
  const code = f('sms_code', 16).trim()
  const currentPassword = f('current_password', PASSWORD_MAX + 1)
  const errors: NonNullable<ProfileForm['mobile']>['errors'] = {}
  if (!/^\d{6}$/.test(code)) errors.sms_code = t.codeWrong
  if (!currentPassword) errors.current_password = t.enterCurrent
  if (errors.sms_code || errors.current_password) return profilePage(c, v, 400, { mobile: { codeFor: mobile, error: t.checkFields, errors } })
  let result
  try {
    await enforceRateLimit(c, 'portal_password', v.s.user.id)
    result = await changeMyMobile(c.env, v.s.user, { mobile, code, currentPassword }, ctxOf(c), afterResponse(c))
  } catch (e) {
    if (!(e instanceof ApiError)) throw e
    if (e.code === 'invalid_sms_code') return profilePage(c, v, 400, { mobile: { codeFor: mobile, error: t.codeWrong, errors: { sms_code: t.codeWrong } } })
    if (e.code === 'too_many_attempts') return profilePage(c, v, 429, { mobile: { value: mobile, error: t.codeBurnt } })
    if (e.code === 'sms_code_locked') return profilePage(c, v, 429, { mobile: { value: mobile, error: t.codeLocked(waitFor(t, e)) } })
    if (e.status === 429) return profilePage(c, v, 429, { mobile: { codeFor: mobile, error: t.tooManyAttempts(waitFor(t, e)) } })
    throw e
  }
  if (result === 'wrong_password') return profilePage(c, v, 400, { mobile: { codeFor: mobile, error: t.currentWrong, errors: { current_password: t.currentWrong } } })
  if (result === 'taken') return profilePage(c, v, 409, { mobile: { value: mobile, error: t.mobileTaken } })
  return profilePage(c, { ...v, s: { ...v.s, user: { ...v.s.user, mobile } } }, 200, { notice: t.mobileChanged(mobile) })
}))

// ---------------------------------------------------------------------------------------
// Security: password and recent activity

interface PasswordForm {
  errors?: { current_password?: string; new_password?: string; new_password_confirm?: string }
  error?: string
  notice?: string
}

async function securityPage(c: C, v: View, status: number, f: PasswordForm = {}) {
  const { t, s } = v
  const errs = f.errors ?? {}
  const activity = await userSecurityActivity(c.env, s.user)
  const signIns = activity.filter((a) => a.action === 'login.succeeded' && a.targetId).map((a) => a.targetId!)
  const devices = await sessionDevices(c.env, s.user.id, [...new Set(signIns)])
  return portalPage(
    c,
    v,
    'security',
    status,
    <>
      <Notice message={f.notice} />
      <Alert message={f.error} />
      <h2>{t.passwordHeading}</h2>
      <form method="post" action="/page/home/security/password" novalidate>
        <Csrf token={csrfToken(c)} />
        <Field name="current_password" label={t.currentPassword} type="password" autocomplete="current-password" maxlength={PASSWORD_MAX} error={errs.current_password} errorPrefix={t.errorPrefix} />
        <Field name="new_password" label={t.newPassword} type="password" autocomplete="new-password" minlength={PASSWORD_MIN} maxlength={PASSWORD_MAX} hint={t.newPasswordHint(PASSWORD_MIN)} error={errs.new_password} errorPrefix={t.errorPrefix} />
        <Field name="new_password_confirm" label={t.repeatPassword} type="password" autocomplete="new-password" maxlength={PASSWORD_MAX} error={errs.new_password_confirm} errorPrefix={t.errorPrefix} />
        <div class="check">
          <input type="checkbox" id="f-sign_out_others" name="sign_out_others" value="yes" />
          <label for="f-sign_out_others">{t.signOutOthersOption}</label>
        </div>
        <button type="submit">{t.changePassword}</button>
      </form>
      <h2>{t.activityHeading}</h2>
      <ZoneNote v={v} />
      {activity.length ? (
        <ul class="activity">
          {activity.map((a) => {
            const device = a.action === 'login.succeeded' && a.targetId ? devices.get(a.targetId) : undefined
            return (
              <li>
                <strong>{t.actions[a.action] ?? t.actionOther}</strong>
                <time datetime={new Date(a.at).toISOString()}>{when(v, a.at)}</time>
                <span class="hint">{[a.ip ? t.activityFrom(a.ip) : '', device ? deviceText(t, device.userAgent) : ''].filter(Boolean).join(' · ')}</span>
              </li>
            )
          })}
        </ul>
      ) : (
        <p class="hint">{t.activityEmpty}</p>
      )}
    </>,
  )
}

function deviceText(t: Catalog, userAgent: string | null) {
  const d = deviceHint(userAgent)
  if (d.browser && d.os) return t.deviceOn(d.browser, d.os)
  return d.browser ?? d.os ?? t.unknownDevice
}

function waitFor(t: Catalog, e: ApiError) {
  const s = Number(e.headers?.['Retry-After'] ?? 0) || 60
  return s > 90 ? t.waitMinutes(Math.ceil(s / 60)) : t.waitSeconds(s)
}

portalRoutes.get('/security', async (c) => {
  const v = await enter(c)
  return v instanceof Response ? v : securityPage(c, v, 200)
})

portalRoutes.post('/security/password', formAction(async (c, v, f) => {
  const { t } = v
  const current = f('current_password', PASSWORD_MAX + 1)
  const next = f('new_password', PASSWORD_MAX + 1)
  const errors: PasswordForm['errors'] = {}
  if (!current) errors.current_password = t.enterCurrent
  if (next.length < PASSWORD_MIN) errors.new_password = t.passwordTooShort(PASSWORD_MIN)
  else if (next.length > PASSWORD_MAX) errors.new_password = t.passwordTooLong(PASSWORD_MAX)
  else if (f('new_password_confirm', PASSWORD_MAX + 1) !== next) errors.new_password_confirm = t.passwordMismatch
  if (Object.keys(errors).length) return securityPage(c, v, 400, { errors, error: t.checkFields })
  try {
    // guessing the current password from a borrowed session is bounded per account
    await enforceRateLimit(c, 'portal_password', v.s.user.id)
  } catch (e) {
    if (e instanceof ApiError && e.status === 429) return securityPage(c, v, 429, { error: t.tooManyAttempts(waitFor(t, e)) })
    throw e
  }
  const r = await changeMyPassword(c.env, v.s, { currentPassword: current, newPassword: next, signOutOthers: f('sign_out_others') === 'yes' }, ctxOf(c))
  if (!r.ok) return securityPage(c, v, 400, { errors: { current_password: t.currentWrong }, error: t.currentWrong })
  return securityPage(c, v, 200, { notice: r.othersEnded ? t.passwordChangedOthers : t.passwordChanged })
}))

// ---------------------------------------------------------------------------------------
// Sessions and devices

async function sessionsPage(c: C, v: View, status: number, msg: { notice?: string; error?: string } = {}) {
  const { t, s } = v
  const list = await mySessions(c.env, s.user.id)
  const others = list.filter((x) => x.session.id !== s.session.id)
  return portalPage(
    c,
    v,
    'sessions',
    status,
    <>
      <Notice message={msg.notice} />
      <Alert message={msg.error} />
      <p class="lead">{t.sessionsLead}</p>
      <ZoneNote v={v} />
      <ul class="cards sessions">
        {list.map(({ session }) => {
          const here = session.id === s.session.id
          const device = deviceText(t, session.userAgent)
          return (
            <li>
              <strong>{device}</strong>
              {here ? <span class="tag">{t.thisDevice}</span> : null}
              {session.cookieHash ? null : <span class="hint">{t.viaApi}</span>}
              <dl>
                <dt>{t.startedLabel}</dt>
                <dd>
                  <time datetime={new Date(session.createdAt).toISOString()}>{when(v, session.createdAt)}</time>
                </dd>
                <dt>{t.lastSeenLabel}</dt>
                <dd>{when(v, session.lastSeenAt ?? session.createdAt)}</dd>
                <dt>{t.ipLabel}</dt>
                <dd>{session.ip ?? '—'}</dd>
              </dl>
              {here ? (
                <p>
                  <a href="/page/logout">{t.signOutHere}</a>
                </p>
              ) : (
                <form method="post" action="/page/home/sessions/end">
                  <Csrf token={csrfToken(c)} />
                  <input type="hidden" name="session_id" value={session.id} />
                  <button type="submit" class="secondary" aria-label={`${t.signOutSession}${t.colon}${device}, ${when(v, session.createdAt)}`}>
                    {t.signOutSession}
                  </button>
                </form>
              )}
            </li>
          )
        })}
      </ul>
      {others.length ? (
        <form method="post" action="/page/home/sessions/end-others">
          <Csrf token={csrfToken(c)} />
          <button type="submit">{t.signOutOthers}</button>
        </form>
      ) : (
        <p class="hint">{t.noOtherSessions}</p>
      )}
    </>,
  )
}

portalRoutes.get('/sessions', async (c) => {
  const v = await enter(c)
  return v instanceof Response ? v : sessionsPage(c, v, 200)
})

portalRoutes.post('/sessions/end', formAction(async (c, v, f) => {
  const ended = await endMySession(c.env, v.s.user, f('session_id', 64), ctxOf(c))
  if (!ended) return sessionsPage(c, v, 404, { error: v.t.sessionNotFound })
  // this browser's own session ended: it is signed out, like /page/logout
  if (f('session_id', 64) === v.s.session.id) return c.redirect('/page/login?signed_out=1', 303)
  return sessionsPage(c, v, 200, { notice: v.t.sessionEnded })
}))

portalRoutes.post('/sessions/end-others', formAction(async (c, v) => {
  const n = await endOtherSessions(c.env, v.s.user, v.s.session.id, ctxOf(c))
  return sessionsPage(c, v, 200, { notice: n ? v.t.othersEnded(n) : v.t.noOtherSessions })
}))

// ---------------------------------------------------------------------------------------
// Authorized apps (OIDC consents)

async function authorizedPage(c: C, v: View, status: number, msg: { notice?: string; error?: string } = {}) {
  const { t, s } = v
  const consents = await listUserConsents(c.env, s.user.id)
  for (const a of consents) if (a.iconUrl?.startsWith('https://')) allowPageImage(c, a.iconUrl)
  return portalPage(
    c,
    v,
    'authorized',
    status,
    <>
      <Notice message={msg.notice} />
      <Alert message={msg.error} />
      <p class="lead">{consents.length ? t.authorizedLead : t.authorizedEmpty}</p>
      {consents.length ? (
        <ul class="cards consents">
          {consents.map((a) => (
            <li>
              <div class="app">
                <AppMark iconUrl={a.iconUrl?.startsWith('https://') ? a.iconUrl : null} />
                <span>
                  <strong>{a.appName}</strong>
                  <span class="hint">{t.grantedOn(when(v, a.createdAt))}</span>
                </span>
              </div>
              <p class="hint">
                {t.scopesLabel}
                {t.colon}
              </p>
              <ul class="scopes">
                {parseScope(a.scope).map((sc) => (
                  <li>{t.scopes[sc] ?? sc}</li>
                ))}
              </ul>
              <form method="post" action="/page/home/authorized/revoke">
                <Csrf token={csrfToken(c)} />
                <input type="hidden" name="client_id" value={a.clientId} />
                <button type="submit" class="secondary" aria-label={t.revokeAccessOf(a.appName)}>
                  {t.revokeAccess}
                </button>
              </form>
            </li>
          ))}
        </ul>
      ) : null}
    </>,
  )
}

portalRoutes.get('/authorized', async (c) => {
  const v = await enter(c)
  return v instanceof Response ? v : authorizedPage(c, v, 200)
})

portalRoutes.post('/authorized/revoke', formAction(async (c, v, f) => {
  const clientId = f('client_id', 64)
  const name = (await listUserConsents(c.env, v.s.user.id)).find((x) => x.clientId === clientId)?.appName
  const revoked = name !== undefined && (await revokeConsent(c.env, { userId: v.s.user.id, clientId, ...ctxOf(c) }))
  if (!revoked) return authorizedPage(c, v, 404, { error: v.t.consentNotFound })
  return authorizedPage(c, v, 200, { notice: v.t.consentRevoked(name) })
}))

// A refusal or failure inside the portal is a page, like the other hosted pages' (never JSON).
portalRoutes.onError(async (err, c) => {
  if (err instanceof ApiError && err.status < 500) return pageErrorResponse(c as C, err.status)
  log.error('portal.error', { request_id: c.get('requestId'), error: err.message, stack: err.stack })
  return pageErrorResponse(c as C, 500)
})

portalRoutes.all('*', async (c) => {
  const v = await enter(c)
  if (v instanceof Response) return v
  return renderPage(c, 404, v.t.notFoundTitle, <Alert message={v.t.notFound} />, { lang: v.locale })
})
