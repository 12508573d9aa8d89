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

/** The day-long SMS lock's wait, in hours past an hour. */
const hoursText = (e: ApiError) => {
  const s = Number(e.headers?.['Retry-After'] ?? 0)
  return s > 3600 ? `${Math.ceil(s / 3600)} hours` : waitText(e)
}

/** /page/register and /page/pwd/reset: captcha → SMS code → password. */
export const codeFlowRoutes = new Hono<AppEnv>()


interface Flow {
  purpose: SmsPurpose
  path: string
  title: string
  lead: string
  sendLabel: string
}

const REGISTER: Flow = {
  purpose: 'register',
  path: '/page/register',
  title: 'Create an account',
  lead: 'Step 1 of 2: we text a code to your mobile number.',
  sendLabel: 'Send code',
}
const RESET: Flow = {
  purpose: 'reset',
  path: '/page/pwd/reset',
  title: 'Reset your password',
  lead: 'Step 1 of 2: we text a code to the mobile number of your account.',
  sendLabel: 'Send code',
}

interface StartView {
  csrf: string
  returnTo: string | null
  mobile?: string
  captcha: CaptchaView
  error?: string
  errors?: { mobile?: string; captcha?: string }
}

function startPage(c: C, flow: Flow, status: number, v: StartView) {
  const errs = v.errors ?? {}
  return render(
    c,
    status,
    flow.title,
    <>
      <p class="lead">{flow.lead}</p>
      <Alert message={v.error} />
      <form method="post" action={flow.path} novalidate>
        <Csrf token={v.csrf} />
        <Hidden name="return_to" value={v.returnTo} />
        <Field name="mobile" label="Mobile number" type="tel" inputmode="tel" autocomplete="tel" value={v.mobile} error={errs.mobile} autofocus={!v.mobile || !!errs.mobile} maxlength={32} />
        <CaptchaField captcha={v.captcha} error={errs.captcha} autofocus={!!v.mobile && !errs.mobile} />
        <button type="submit" name="step" value="send">
          {flow.sendLabel}
        </button>
        <CaptchaRefresh />
      </form>
      <ul class="links">
        <li>
          <a href={withReturn('/page/login', v.returnTo)}>Back to sign in</a>
        </li>
      </ul>
    </>,
  )
}

interface CodeView {
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
  return render(
    c,
    status,
    flow.title,
    <>
      <p class="lead">Step 2 of 2: enter the code and choose a password.</p>
      <Notice message={v.notice} />
      <Alert message={v.error} />
      <form method="post" action={flow.path} novalidate>
        <Csrf token={v.csrf} />
        <Hidden name="return_to" value={v.returnTo} />
        <input type="hidden" name="mobile" value={v.mobile} />
        <Field
          name="sms_code"
          label="Code from the SMS"
          inputmode="numeric"
          autocomplete="one-time-code"
          pattern="[0-9]{6}"
          maxlength={6}
          hint={`6 digits, valid for ${SMS_CODE_TTL_S / 60} minutes.`}
          error={errs.sms_code}
          autofocus={first === 'sms_code'}
        />
        {register ? <Field name="name" label="Your name (optional)" autocomplete="name" value={v.name} required={false} maxlength={100} error={errs.name} autofocus={first === 'name'} /> : null}
        <Field
          name="password"
          label={register ? 'Password' : 'New password'}
          type="password"
          autocomplete="new-password"
          minlength={PASSWORD_MIN}
          maxlength={PASSWORD_MAX}
          hint={`At least ${PASSWORD_MIN} characters.`}
          error={errs.password}
          autofocus={first === 'password'}
        />
        <Field name="password_confirm" label="Repeat the password" type="password" autocomplete="new-password" maxlength={PASSWORD_MAX} error={errs.password_confirm} autofocus={first === 'password_confirm'} />
        <button type="submit" name="step" value="finish">
          {register ? 'Create account' : 'Set new password'}
        </button>
      </form>
      <ul class="links">
        <li>
          <a href={withReturn(flow.path, v.returnTo)}>No code? Start again</a>
        </li>
        <li>
          <a href={withReturn('/page/login', v.returnTo)}>Back to sign in</a>
        </li>
      </ul>
    </>,
  )
}

function registrationClosedPage(c: C) {
  return render(
    c,
    403,
    'Registration is closed',
    <>
      <Alert message="New accounts cannot be created here. Ask your administrator for an account." />
      <ul class="links">
        <li>
          <a href="/page/login">Sign in</a>
        </li>
      </ul>
    </>,
  )
}

function codeFlowGet(flow: Flow) {
  return async (c: C) => {
    if (flow.purpose === 'register' && !registrationOpen(c.env)) return registrationClosedPage(c)
    const returnTo = await safeReturnTo(c.env, c.req.query('return_to'))
    return startPage(c, flow, 200, { csrf: csrfToken(c), returnTo, captcha: await newCaptcha(c) })
  }
}

function codeFlowPost(flow: Flow) {
  return async (c: C) => {
    if (flow.purpose === 'register' && !registrationOpen(c.env)) return registrationClosedPage(c)
    const f = await formOf(c)
    const returnTo = await safeReturnTo(c.env, f('return_to', 2048))
    const csrf = csrfToken(c)
    const mobileInput = f('mobile', 32).trim()
    const mobile = normalizeMobile(mobileInput)
    const step = f('step')

    if (step === 'new_captcha') return startPage(c, flow, 200, { csrf, returnTo, mobile: mobileInput, captcha: await newCaptcha(c) })

    if (step === 'send') {
      const start = (status: number, error: string, errors: StartView['errors']) =>
        newCaptcha(c).then((captcha) => startPage(c, flow, status, { csrf, returnTo, mobile: mobileInput, captcha, error, errors }))
      if (!mobile) return start(400, 'Check the highlighted fields.', { mobile: 'Enter a mobile number, such as +8613800138000 or 13800138000.' })
      const given = f('captcha_code', 32)
      if (!(await verifyCaptcha(c.env, f('captcha_id', 64), given))) {
        const msg = given ? 'The characters did not match the picture.' : 'Enter the characters shown in the picture.'
        return start(400, msg, { captcha: 'Type the characters of this new picture.' })
      }
      await enforceRateLimit(c, 'sms_ip', c.get('clientIp'))
      try {
        await sendSmsCode(c.env, { mobile, purpose: flow.purpose }, { requestId: c.get('requestId'), ip: c.get('clientIp'), waitUntil: (p) => c.executionCtx.waitUntil(p) })
      } catch (e) {
        if (!(e instanceof ApiError)) throw e
        const msg =
          e.code === 'sms_cooldown'
            ? `A code was sent to this number less than a minute ago. Wait ${waitText(e)}, then try again.`
            : e.code === 'sms_daily_limit'
              ? 'Too many codes were sent to this number today. Try again tomorrow.'
              : e.message
        return start(e.status, msg, {})
      }
      // Same words whether or not the number has an account (no enumeration).
      const notice =
        flow.purpose === 'reset'
          ? `If ${mobile} belongs to an account, we have sent it a 6-digit code.`
          : `We have sent a 6-digit code to ${mobile}.`
      return codePage(c, flow, 200, { csrf, returnTo, mobile, notice })
    }

    // step "finish": code + password
    if (!mobile) return startPage(c, flow, 400, { csrf, returnTo, captcha: await newCaptcha(c), error: 'Start again: the mobile number was missing.' })
    const code = f('sms_code', 16).trim()
    const password = f('password', PASSWORD_MAX + 1)
    const name = f('name', 101).trim()
    const errors: CodeView['errors'] = {}
    if (!/^\d{6}$/.test(code)) errors.sms_code = 'Enter the 6 digits from the SMS.'
    if (password.length < PASSWORD_MIN) errors.password = `Use at least ${PASSWORD_MIN} characters.`
    else if (password.length > PASSWORD_MAX) errors.password = `Use at most ${PASSWORD_MAX} characters.`
    else if (f('password_confirm', PASSWORD_MAX + 1) !== password) errors.password_confirm = 'The two passwords differ.'
    if (name.length > 100) errors.name = 'Use at most 100 characters.'
    else if (textProblem(name)) errors.name = 'Use letters, digits, spaces and punctuation only: the name holds a control character or a broken character.'
    if (Object.keys(errors).length) return codePage(c, flow, 400, { csrf, returnTo, mobile, name, error: 'Check the highlighted fields.', errors })

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
      if (e.code === 'invalid_sms_code') return codePage(c, flow, 400, { csrf, returnTo, mobile, name, error: 'That code is wrong or has expired.', errors: { sms_code: 'That code is wrong or has expired.' } })
      if (e.code === 'too_many_attempts') {
        return render(c, 429, flow.title, <>
          <Alert message="Too many wrong codes. Ask for a new code." />
          <p><a class="button" href={withReturn(flow.path, returnTo)}>Start again</a></p>
        </>)
      }
      if (e.code === 'sms_code_locked') {
        return render(c, 429, flow.title, <>
          <Alert message={`Too many wrong codes for this number today. Try again in ${hoursText(e)}.`} />
          <p><a class="button" href={withReturn('/page/login', returnTo)}>Back to sign in</a></p>
        </>)
      }
      if (e.code === 'mobile_taken') {
        return render(c, 409, 'You already have an account', <>
          <Alert message={`${mobile} already has an account. Sign in, or reset the password if you forgot it.`} />
          <ul class="links">
            <li><a href={withReturn('/page/login', returnTo)}>Sign in</a></li>
            <li><a href={withReturn('/page/pwd/reset', returnTo)}>Reset password</a></li>
          </ul>
        </>)
      }
      return codePage(c, flow, e.status, { csrf, returnTo, mobile, name, error: e.code === 'account_disabled' ? 'This account is disabled. Contact your administrator.' : e.message })
    }
    // Every session ended, this browser's too.
    deleteCookie(c, SESSION_COOKIE, { path: '/', secure: true })
    return render(c, 200, 'Password changed', <>
      <Notice message="Your new password is set. For your safety every device was signed out." />
      <p><a class="button" href={withReturn('/page/login', returnTo)}>Sign in</a></p>
    </>)
  }
}

codeFlowRoutes.get('/register', codeFlowGet(REGISTER))
codeFlowRoutes.post('/register', codeFlowPost(REGISTER))
codeFlowRoutes.get('/pwd/reset', codeFlowGet(RESET))
codeFlowRoutes.post('/pwd/reset', codeFlowPost(RESET))

