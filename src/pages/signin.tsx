import { Hono } from 'hono'
import type { AppEnv } from '../context'
import { ApiError } from '../lib/errors'
import { normalizeMobile, type E164 } from '../lib/mobile'
import { authenticatePassword } from '../auth/service'
import { loginCaptchaRequired } from '../auth/login-attempts'
import { readBrowserSession, startBrowserSession } from '../auth/browser-session'
import { registrationOpen } from '../account/service'
import { PASSWORD_MAX_LENGTH as PASSWORD_MAX } from '../lib/password'
import { simpleSsoRedirect } from '../tickets/sso'
import { FederationButtons } from '../federation/pages'
import { Alert, Notice, Hidden, Csrf, Field, CaptchaField, CaptchaRefresh, renderPage as render, type CaptchaView } from './layout'
import { csrfToken } from './security'
import { postLoginRedirect, safeReturnTo } from './redirect'
import { formOf, newCaptcha, withReturn, type C } from './form'
import { catalogOf, pageLocale, type Catalog, type Locale } from './i18n'

/** /page/login: the hosted sign-in form. */
export const signInRoutes = new Hono<AppEnv>()

/**
 * Whether to show the captcha field. The page follows the login API's failure counters
 * (src/auth/login-attempts.ts): the decision itself is made by authenticatePassword; this
 * only avoids making the user type a password that would not be checked.
 */
const captchaShown = (c: C, mobile: E164 | null) => loginCaptchaRequired(c.env, { ip: c.get('clientIp'), mobile })

interface LoginView {
  locale: Locale
  t: Catalog
  csrf: string
  returnTo: string | null
  mobile?: string
  error?: string
  errors?: { mobile?: string; password?: string; captcha?: string }
  captcha?: CaptchaView | null
  notice?: string
}

/** Retry-After of a refusal, in the page's language. */
function waitIn(t: Catalog, e: ApiError) {
  const s = Number(e.headers?.['Retry-After'] ?? 0) || 60
  return s > 90 ? t.waitMinutes(Math.ceil(s / 60)) : t.waitSeconds(s)
}

/** The page's language (src/pages/i18n) and its catalog. */
function language(c: C) {
  const locale = pageLocale(c)
  return { locale, t: catalogOf(locale) }
}

function loginPage(c: C, status: number, v: LoginView) {
  const errs = v.errors ?? {}
  const { t } = v
  return render(
    c,
    status,
    t.signInTitle,
    <>
      <Notice message={v.notice} />
      <Alert message={v.error} />
      <form method="post" action="/page/login" novalidate>
        <Csrf token={v.csrf} />
        <Hidden name="return_to" value={v.returnTo} />
        <Field name="mobile" label={t.mobileField} type="tel" inputmode="tel" autocomplete="username" value={v.mobile} error={errs.mobile} errorPrefix={t.errorPrefix} autofocus={!v.mobile || !!errs.mobile} maxlength={32} />
        <Field name="password" label={t.passwordField} type="password" autocomplete="current-password" error={errs.password} errorPrefix={t.errorPrefix} autofocus={!!v.mobile && !errs.mobile} maxlength={PASSWORD_MAX} />
        {v.captcha ? <CaptchaField captcha={v.captcha} error={errs.captcha} t={t} /> : null}
        <button type="submit" name="step" value="login">
          {t.signInButton}
        </button>
        {v.captcha ? <CaptchaRefresh t={t} /> : null}
      </form>
      <FederationButtons c={c} csrf={v.csrf} returnTo={v.returnTo} />
      <ul class="links">
        <li>
          <a href={withReturn('/page/pwd/reset', v.returnTo)}>{t.forgotPassword}</a>
        </li>
        {registrationOpen(c.env) ? (
          <li>
            <a href={withReturn('/page/register', v.returnTo)}>{t.createAccount}</a>
          </li>
        ) : null}
      </ul>
    </>,
    { lang: v.locale, switchHref: withReturn('/page/login', v.returnTo) },
  )
}

signInRoutes.get('/login', async (c) => {
  let returnTo = await safeReturnTo(c.env, c.req.query('return_to'))
  const appId = c.req.query('app_id')
  const redirectUri = c.req.query('redirect_uri')
  if (appId && redirectUri) {
    // SIMPLE_API app: signed in already → straight to the app with a ticket (no interaction);
    // otherwise sign in first and come back through /page/sso/simple, which issues the ticket.
    // An unknown app or unregistered redirect_uri throws (400 page), never redirects. The
    // app's `state` goes along, to be bound to the ticket.
    const state = c.req.query('state')
    const direct = await simpleSsoRedirect(c, { appId, redirectUri, state })
    if (direct) return direct
    returnTo = `/page/sso/simple?${new URLSearchParams({ app_id: appId, redirect_uri: redirectUri, ...(state ? { state } : {}) })}`
  }
  const current = await readBrowserSession(c)
  if (current) {
    // Already signed in: continue where the caller wanted to go, unless it asks for a fresh sign-in.
    const fresh = c.req.query('prompt') === 'login'
    if (returnTo && !fresh) return c.redirect(await postLoginRedirect(c, current.user, { return_to: returnTo }), 303)
    if (!returnTo && !fresh) {
      const { name, mobile } = current.user
      const { locale, t } = language(c)
      return render(
        c,
        200,
        t.signedInTitle,
        <>
          <p class="who">
            {t.signedInAs}
            <strong>{name || mobile}</strong>
          </p>
          {name ? <p class="hint">{mobile}</p> : null}
          <ul class="links">
            <li>
              <a href="/page/home">{t.myAppsLink}</a>
            </li>
            <li>
              <a href="/page/logout">{t.navSignOut}</a>
            </li>
            <li>
              <a href="/page/home/security">{t.changePasswordLink}</a>
            </li>
            <li>
              <a href="/page/federation/identities">{t.signInMethods}</a>
            </li>
            <li>
              <a href="/page/login?prompt=login">{t.someoneElse}</a>
            </li>
          </ul>
        </>,
        { lang: locale, switchHref: '/page/login' },
      )
    }
  }
  const captcha = (await captchaShown(c, null)) ? await newCaptcha(c) : null
  const lang = language(c)
  return loginPage(c, 200, {
    ...lang,
    csrf: csrfToken(c),
    returnTo,
    // OIDC login_hint (forwarded by /oauth2/authorize): only a prefill, the user can change it.
    mobile: c.req.query('login_hint')?.slice(0, 32),
    captcha,
    notice: c.req.query('signed_out') ? lang.t.signedOutNotice : c.req.query('registered') ? lang.t.registeredNotice : undefined,
  })
})

signInRoutes.post('/login', async (c) => {
  const f = await formOf(c)
  const returnTo = await safeReturnTo(c.env, f('return_to', 2048))
  const mobileInput = f('mobile', 32).trim()
  const view: LoginView = { ...language(c), csrf: csrfToken(c), returnTo, mobile: mobileInput }
  const { t } = view
  const mobile = normalizeMobile(mobileInput)
  if (f('step') === 'new_captcha') return loginPage(c, 200, { ...view, captcha: await newCaptcha(c) })

  const password = f('password', PASSWORD_MAX)
  const errors: LoginView['errors'] = {}
  if (!mobile) errors.mobile = t.mobileInvalid
  if (!password) errors.password = t.enterPassword
  if (errors.mobile || errors.password) {
    return loginPage(c, 400, { ...view, error: t.checkFields, errors, captcha: (await captchaShown(c, mobile)) ? await newCaptcha(c) : null })
  }

  // A captcha the form carried is checked (and spent) by authenticatePassword, as for the API.
  const captchaId = f('captcha_id', 64)
  const captchaCode = f('captcha_code', 32)
  let user
  try {
    user = await authenticatePassword(c.env, mobile!, password, { requestId: c.get('requestId'), ip: c.get('clientIp'), userAgent: c.req.header('User-Agent') }, captchaId ? { id: captchaId, code: captchaCode } : null)
    // under the verified hash: a password replaced meanwhile refuses it as a wrong one (invalid_credentials, below)
    await startBrowserSession(c, user, { verifiedPasswordHash: user.passwordHash })
  } catch (e) {
    if (!(e instanceof ApiError)) throw e
    if (e.code === 'captcha_required' || e.code === 'invalid_captcha') {
      // The password was not checked: a form error, like the other missing fields.
      const msg = e.code === 'invalid_captcha' && captchaCode ? t.captchaMismatch : t.captchaEnter
      return loginPage(c, 400, { ...view, error: t.captchaRetry(msg), errors: { captcha: t.captchaFieldError }, captcha: await newCaptcha(c) })
    }
    const error =
      e.code === 'invalid_credentials'
        ? t.wrongCredentials
        : e.code === 'too_many_attempts'
          ? t.tooManySignIns(waitIn(t, e))
          : e.code === 'account_disabled'
            ? t.accountDisabled
            : e.message
    const next = e.code === 'too_many_attempts' || (e.details as { captcha_required?: boolean } | undefined)?.captcha_required === true
    return loginPage(c, e.status, { ...view, error, captcha: next ? await newCaptcha(c) : null })
  }
  return c.redirect(await postLoginRedirect(c, user, { return_to: returnTo }), 303)
})

