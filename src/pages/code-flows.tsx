import { Hono } from 'hono'
import { deleteCookie } from 'hono/cookie'
import type { AppEnv } from '../context'
import { ApiError } from '../lib/errors'
import { normalizeMobile } from '../lib/mobile'
import { textProblem } from '../lib/text'
import { enforceRateLimit } from '../ratelimit'
import { startBrowserSession, SESSION_COOKIE } from '../auth/browser-session'
import { verifyCaptcha } from '../captcha/service'
import { sendSmsCode, SMS_CODE_TTL_S } from '../sms/service'
import type { SmsPurpose } from '../sms/providers'
import { registerUser, resetPassword, registrationOpen } from '../account/service'
import { PASSWORD_MAX_LENGTH as PASSWORD_MAX, PASSWORD_MIN_LENGTH as PASSWORD_MIN } from '../lib/password'
import { Alert, Notice, Hidden, Csrf, Field, CaptchaField, CaptchaRefresh, renderPage as render, type CaptchaView } from './layout'
import { csrfToken } from './security'
import { postLoginRedirect, safeReturnTo } from './redirect'
import { formOf, newCaptcha, waitText, withReturn, type C } from './form'
import { pageLanguage, type Catalog } from './i18n'

/** /page/register and /page/pwd/reset: captcha → SMS code → password. */
export const codeFlowRoutes = new Hono<AppEnv>()


interface Flow {
  purpose: SmsPurpose
  path: string
  title: (t: Catalog) => string
  lead: (t: Catalog) => string
}

const REGISTER: Flow = { purpose: 'register', path: '/page/register', title: (t) => t.registerTitle, lead: (t) => t.registerLead }
const RESET: Flow = { purpose: 'reset', path: '/page/pwd/reset', title: (t) => t.resetTitle, lead: (t) => t.resetLead }

interface StartView {
  t: Catalog
  csrf: string
  returnTo: string | null
  mobile?: string
  captcha: CaptchaView
  error?: string
  errors?: { mobile?: string; captcha?: string }
}

function startPage(c: C, flow: Flow, status: number, v: StartView) {
  const errs = v.errors ?? {}
  const { t } = v
  return render(
    c,
    status,
    flow.title(t),
    <>
      <p class="lead">{flow.lead(t)}</p>
      <Alert message={v.error} />
      <form method="post" action={flow.path} novalidate>
        <Csrf token={v.csrf} />
        <Hidden name="return_to" value={v.returnTo} />
        <Field name="mobile" label={t.mobileField} type="tel" inputmode="tel" autocomplete="tel" value={v.mobile} error={errs.mobile} errorPrefix={t.errorPrefix} autofocus={!v.mobile || !!errs.mobile} maxlength={32} />
        <CaptchaField captcha={v.captcha} error={errs.captcha} autofocus={!!v.mobile && !errs.mobile} t={t} />
        <button type="submit" name="step" value="send">
          {t.sendCode}
        </button>
        <CaptchaRefresh t={t} />
      </form>
      <ul class="links">
        <li>
          <a href={withReturn('/page/login', v.returnTo)}>{t.backToSignIn}</a>
        </li>
      </ul>
    </>,
    { switchHref: withReturn(flow.path, v.returnTo) },
  )
}

interface CodeView {
  t: Catalog
  csrf: string
  returnTo: string | null
  mobile: string
  name?: string
  error?: string
  errors?: { sms_code?: string; password?: string; password_confirm?: string; name?: string }
  notice?: string
}

function codePage(c: C, flow: Flow, status: number, v: CodeView) {
  const errs = v.errors ?? {}
  const register = flow.purpose === 'register'
  const first = errs.sms_code ? 'sms_code' : errs.name ? 'name' : errs.password ? 'password' : errs.password_confirm ? 'password_confirm' : 'sms_code'
  const { t } = v
  return render(
    c,
    status,
    flow.title(t),
    <>
      <p class="lead">{t.step2Lead}</p>
      <Notice message={v.notice} />
      <Alert message={v.error} />
      <form method="post" action={flow.path} novalidate>
        <Csrf token={v.csrf} />
        <Hidden name="return_to" value={v.returnTo} />
        <input type="hidden" name="mobile" value={v.mobile} />
        <Field
          name="sms_code"
          label={t.smsCodeLabel}
          inputmode="numeric"
          autocomplete="one-time-code"
          pattern="[0-9]{6}"
          maxlength={6}
          hint={t.codeHint(SMS_CODE_TTL_S / 60)}
          error={errs.sms_code}
          errorPrefix={t.errorPrefix}
          autofocus={first === 'sms_code'}
        />
        {register ? <Field name="name" label={t.nameOptional} autocomplete="name" value={v.name} required={false} maxlength={100} error={errs.name} errorPrefix={t.errorPrefix} autofocus={first === 'name'} /> : null}
        <Field
          name="password"
          label={register ? t.passwordField : t.newPassword}
          type="password"
          autocomplete="new-password"
          minlength={PASSWORD_MIN}
          maxlength={PASSWORD_MAX}
          hint={t.newPasswordHint(PASSWORD_MIN)}
          error={errs.password}
          errorPrefix={t.errorPrefix}
          autofocus={first === 'password'}
        />
        <Field name="password_confirm" label={t.repeatThePassword} type="password" autocomplete="new-password" maxlength={PASSWORD_MAX} error={errs.password_confirm} errorPrefix={t.errorPrefix} autofocus={first === 'password_confirm'} />
        <button type="submit" name="step" value="finish">
          {register ? t.createAccountButton : t.setNewPassword}
        </button>
      </form>
      <ul class="links">
        <li>
          <a href={withReturn(flow.path, v.returnTo)}>{t.noCodeStartAgain}</a>
        </li>
        <li>
          <a href={withReturn('/page/login', v.returnTo)}>{t.backToSignIn}</a>
        </li>
      </ul>
    </>,
    { switchHref: withReturn(flow.path, v.returnTo) },
  )
}

function registrationClosedPage(c: C) {
  const { t } = pageLanguage(c)
  return render(
    c,
    403,
    t.registrationClosedTitle,
    <>
      <Alert message={t.registrationClosed} />
      <ul class="links">
        <li>
          <a href="/page/login">{t.signInButton}</a>
        </li>
      </ul>
    </>,
  )
}

function codeFlowGet(flow: Flow) {
  return async (c: C) => {
    if (flow.purpose === 'register' && !registrationOpen(c.env)) return registrationClosedPage(c)
    const returnTo = await safeReturnTo(c.env, c.req.query('return_to'))
    return startPage(c, flow, 200, { t: pageLanguage(c).t, csrf: csrfToken(c), returnTo, captcha: await newCaptcha(c) })
  }
}

function codeFlowPost(flow: Flow) {
  return async (c: C) => {
    if (flow.purpose === 'register' && !registrationOpen(c.env)) return registrationClosedPage(c)
    const f = await formOf(c)
    const { locale, t } = pageLanguage(c)
    const returnTo = await safeReturnTo(c.env, f('return_to', 2048))
    const csrf = csrfToken(c)
    const mobileInput = f('mobile', 32).trim()
    const mobile = normalizeMobile(mobileInput)
    const step = f('step')

    if (step === 'new_captcha') return startPage(c, flow, 200, { t, csrf, returnTo, mobile: mobileInput, captcha: await newCaptcha(c) })

    if (step === 'send') {
      const start = (status: number, error: string, errors: StartView['errors']) =>
        newCaptcha(c).then((captcha) => startPage(c, flow, status, { t, csrf, returnTo, mobile: mobileInput, captcha, error, errors }))
      if (!mobile) return start(400, t.checkFields, { mobile: t.mobileInvalid })
      const given = f('captcha_code', 32)
      if (!(await verifyCaptcha(c.env, f('captcha_id', 64), given))) {
        return start(400, given ? t.captchaMismatch : t.captchaEnter, { captcha: t.captchaFieldError })
      }
      await enforceRateLimit(c, 'sms_ip', c.get('clientIp'))
      try {
        // the SMS speaks the page's language
        await sendSmsCode(c.env, { mobile, purpose: flow.purpose, locale }, { requestId: c.get('requestId'), ip: c.get('clientIp'), waitUntil: (p) => c.executionCtx.waitUntil(p) })
      } catch (e) {
        if (!(e instanceof ApiError)) throw e
        const msg = e.code === 'sms_cooldown' ? t.smsCooldown(waitText(e, t)) : e.code === 'sms_daily_limit' ? t.smsDaily : e.message
        return start(e.status, msg, {})
      }
      // Same words whether or not the number has an account (no enumeration).
      const notice = flow.purpose === 'reset' ? t.codeSentIfAccount(mobile) : t.codeSentTo(mobile)
      return codePage(c, flow, 200, { t, csrf, returnTo, mobile, notice })
    }

    // step "finish": code + password
    if (!mobile) return startPage(c, flow, 400, { t, csrf, returnTo, captcha: await newCaptcha(c), error: t.mobileMissing })
    const code = f('sms_code', 16).trim()
    const password = f('password', PASSWORD_MAX + 1)
    const name = f('name', 101).trim()
    const errors: CodeView['errors'] = {}
    if (!/^\d{6}$/.test(code)) errors.sms_code = t.enterSixDigits
    if (password.length < PASSWORD_MIN) errors.password = t.passwordTooShort(PASSWORD_MIN)
    else if (password.length > PASSWORD_MAX) errors.password = t.passwordTooLong(PASSWORD_MAX)
    else if (f('password_confirm', PASSWORD_MAX + 1) !== password) errors.password_confirm = t.passwordsDiffer
    if (name.length > 100) errors.name = t.nameTooLong
    else if (textProblem(name)) errors.name = t.nameBroken
    if (Object.keys(errors).length) return codePage(c, flow, 400, { t, csrf, returnTo, mobile, name, error: t.checkFields, errors })

    const ctx = { requestId: c.get('requestId'), ip: c.get('clientIp') }
    try {
      if (flow.purpose === 'register') {
        await enforceRateLimit(c, 'register_ip', c.get('clientIp'))
        const user = await registerUser(c.env, { mobile, password, name, smsCode: code }, ctx)
        await startBrowserSession(c, user, { audit: { details: { via: 'page', registered: true } } })
        return c.redirect(await postLoginRedirect(c, user, { return_to: returnTo }), 303)
      }
      await resetPassword(c.env, { mobile, smsCode: code, newPassword: password }, ctx)
    } catch (e) {
      if (!(e instanceof ApiError) || e.status === 429 && e.code === 'rate_limited') throw e
      if (e.code === 'invalid_sms_code') return codePage(c, flow, 400, { t, csrf, returnTo, mobile, name, error: t.codeWrong, errors: { sms_code: t.codeWrong } })
      if (e.code === 'too_many_attempts') {
        return render(c, 429, flow.title(t), <>
          <Alert message={t.tooManyWrongCodes} />
          <p><a class="button" href={withReturn(flow.path, returnTo)}>{t.startAgain}</a></p>
        </>, { switchHref: withReturn(flow.path, returnTo) })
      }
      if (e.code === 'sms_code_locked') {
        return render(c, 429, flow.title(t), <>
          <Alert message={t.codeLockedToday(waitText(e, t))} />
          <p><a class="button" href={withReturn('/page/login', returnTo)}>{t.backToSignIn}</a></p>
        </>, { switchHref: withReturn(flow.path, returnTo) })
      }
      if (e.code === 'mobile_taken') {
        return render(c, 409, t.alreadyAccountTitle, <>
          <Alert message={t.alreadyAccount(mobile)} />
          <ul class="links">
            <li><a href={withReturn('/page/login', returnTo)}>{t.signInButton}</a></li>
            <li><a href={withReturn('/page/pwd/reset', returnTo)}>{t.resetPasswordLink}</a></li>
          </ul>
        </>, { switchHref: withReturn('/page/login', returnTo) })
      }
      return codePage(c, flow, e.status, { t, csrf, returnTo, mobile, name, error: e.code === 'account_disabled' ? t.accountDisabled : e.message })
    }
    // Every session ended, this browser's too.
    deleteCookie(c, SESSION_COOKIE, { path: '/', secure: true })
    return render(c, 200, t.passwordResetTitle, <>
      <Notice message={t.passwordResetDone} />
      <p><a class="button" href={withReturn('/page/login', returnTo)}>{t.signInButton}</a></p>
    </>, { switchHref: withReturn('/page/login', returnTo) })
  }
}

codeFlowRoutes.get('/register', codeFlowGet(REGISTER))
codeFlowRoutes.post('/register', codeFlowPost(REGISTER))
codeFlowRoutes.get('/pwd/reset', codeFlowGet(RESET))
codeFlowRoutes.post('/pwd/reset', codeFlowPost(RESET))

