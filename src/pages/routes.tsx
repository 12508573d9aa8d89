import { Hono, type Context } from 'hono'
import { deleteCookie } from 'hono/cookie'
import type { Child } from 'hono/jsx'
import type { AppEnv } from '../context'
import { getConfig } from '../env'
import { ApiError } from '../lib/errors'
import { log } from '../lib/logger'
import { normalizeMobile } from '../lib/mobile'
import { clearFailures, lockedFor, recordFailure, type AttemptPolicy } from '../lib/attempts'
import { enforceRateLimit } from '../ratelimit'
import { authenticatePassword } from '../auth/service'
import { readBrowserSession, startBrowserSession, endBrowserSession, SESSION_COOKIE } from '../auth/browser-session'
import { createCaptcha, verifyCaptcha } from '../captcha/service'
import { sendSmsCode, SMS_CODE_TTL_S } from '../sms/service'
import type { SmsPurpose } from '../sms/providers'
import { registerUser, resetPassword, registrationOpen, PASSWORD_MIN, PASSWORD_MAX } from '../account/service'
import { Alert, Notice, Hidden, Csrf, Field, CaptchaField, CaptchaRefresh, brand, renderPage as render, type CaptchaView } from './layout'
import { stylesheet } from './style'
import { csrfToken, csrfValid, pageHeaders } from './security'
import { postLoginRedirect, safeReturnTo } from './redirect'
import { simpleSsoRedirect } from '../tickets/sso'

/**
 * Hosted pages: /page/login, /page/register, /page/pwd/reset, /page/logout.
 * Server-rendered HTML forms (hono/jsx), no JavaScript. Every POST passes the CSRF check.
 * Not part of the OpenAPI documents (they are pages, not API operations).
 */
export const pageRoutes = new Hono<AppEnv>()

type C = Context<AppEnv>

/** After this many failed sign-ins per mobile or per IP (15 min window) the login form asks for a captcha. */
export const LOGIN_CAPTCHA_AFTER: AttemptPolicy = { max: 3, windowS: 15 * 60 }

async function formOf(c: C) {
  const body = await c.req.parseBody()
  return (name: string, max = 256) => {
    const v = body[name]
    return typeof v === 'string' ? v.slice(0, max) : ''
  }
}

const withReturn = (path: string, returnTo: string | null, extra = '') => {
  const q = [returnTo ? `return_to=${encodeURIComponent(returnTo)}` : '', extra].filter(Boolean).join('&')
  return q ? `${path}?${q}` : path
}

async function newCaptcha(c: C): Promise<CaptchaView> {
  await enforceRateLimit(c, 'captcha_ip', c.get('clientIp'))
  return createCaptcha(c.env)
}

function waitText(e: ApiError): string {
  const s = Number(e.headers?.['Retry-After'] ?? 0) || 60
  return s > 90 ? `${Math.ceil(s / 60)} minutes` : `${s} seconds`
}

pageRoutes.use('/page/*', pageHeaders)

pageRoutes.get('/page/assets/style.css', (c) => {
  c.header('Content-Type', 'text/css; charset=utf-8')
  c.header('Cache-Control', 'public, max-age=300')
  return c.body(stylesheet(brand(c)))
})

pageRoutes.post('/page/*', async (c, next) => {
  if (await csrfValid(c)) return next()
  log.warn('page.csrf_refused', { request_id: c.get('requestId'), path: c.req.path })
  return render(
    c,
    403,
    'Form expired',
    <>
      <Alert message="This form could not be accepted: it expired or did not come from this site. Nothing was changed." />
      <p>
        <a href={c.req.path}>Open the page again</a> and resubmit.
      </p>
    </>,
  )
})

// A refused captcha/SMS rate limit or an unexpected error still gets a page, not JSON.
pageRoutes.onError(async (err, c) => {
  if (err instanceof ApiError && err.status === 429) {
    return render(c as C, 429, 'Please wait', <Alert message={`Too many requests from your network. Try again in ${waitText(err)}.`} />)
  }
  // A refusal the user should read (unregistered redirect_uri, no access to an app): a page, never a redirect.
  if (err instanceof ApiError && err.status < 500) return render(c as C, err.status, 'Cannot continue', <Alert message={err.message} />)
  log.error('page.error', { request_id: c.get('requestId'), error: err.message, stack: err.stack })
  return render(c as C, 500, 'Something went wrong', <Alert message={`Something went wrong on our side. Please try again. (Request ${c.get('requestId')})`} />)
})

// ---------- sign in ----------

async function loginCaptchaRequired(c: C, mobile: string | null): Promise<boolean> {
  if ((await lockedFor(c.env.KV, 'page-login-ip', c.get('clientIp'), LOGIN_CAPTCHA_AFTER)) > 0) return true
  return !!mobile && (await lockedFor(c.env.KV, 'page-login-mobile', mobile, LOGIN_CAPTCHA_AFTER)) > 0
}

interface LoginView {
  csrf: string
  returnTo: string | null
  mobile?: string
  error?: string
  errors?: { mobile?: string; password?: string; captcha?: string }
  captcha?: CaptchaView | null
  notice?: string
}

function loginPage(c: C, status: number, v: LoginView) {
  const errs = v.errors ?? {}
  return render(
    c,
    status,
    'Sign in',
    <>
      <Notice message={v.notice} />
      <Alert message={v.error} />
      <form method="post" action="/page/login" novalidate>
        <Csrf token={v.csrf} />
        <Hidden name="return_to" value={v.returnTo} />
        <Field name="mobile" label="Mobile number" type="tel" inputmode="tel" autocomplete="username" value={v.mobile} error={errs.mobile} autofocus={!v.mobile || !!errs.mobile} maxlength={32} />
        <Field name="password" label="Password" type="password" autocomplete="current-password" error={errs.password} autofocus={!!v.mobile && !errs.mobile} maxlength={PASSWORD_MAX} />
        {v.captcha ? <CaptchaField captcha={v.captcha} error={errs.captcha} /> : null}
        <button type="submit" name="step" value="login">
          Sign in
        </button>
        {v.captcha ? <CaptchaRefresh /> : null}
      </form>
      <ul class="links">
        <li>
          <a href={withReturn('/page/pwd/reset', v.returnTo)}>Forgot password?</a>
        </li>
        {registrationOpen(c.env) ? (
          <li>
            <a href={withReturn('/page/register', v.returnTo)}>Create an account</a>
          </li>
        ) : null}
      </ul>
    </>,
  )
}

pageRoutes.get('/page/login', async (c) => {
  let returnTo = await safeReturnTo(c.env, c.req.query('return_to'))
  const appId = c.req.query('app_id')
  const redirectUri = c.req.query('redirect_uri')
  if (appId && redirectUri) {
    // SIMPLE_API app: signed in already → straight to the app with a ticket (no interaction);
    // otherwise sign in first and come back through /page/sso/simple, which issues the ticket.
    // An unknown app or unregistered redirect_uri throws (400 page), never redirects.
    const direct = await simpleSsoRedirect(c, { appId, redirectUri })
    if (direct) return direct
    returnTo = `/page/sso/simple?${new URLSearchParams({ app_id: appId, redirect_uri: redirectUri })}`
  }
  const current = await readBrowserSession(c)
  if (current) {
    // Already signed in: continue where the caller wanted to go, unless it asks for a fresh sign-in.
    if (returnTo && c.req.query('prompt') !== 'login') return c.redirect(await postLoginRedirect(c, current.user, { return_to: returnTo }), 303)
    if (!returnTo) {
      const { name, mobile } = current.user
      return render(
        c,
        200,
        'Signed in',
        <>
          <p class="who">
            Signed in as <strong>{name || mobile}</strong>
          </p>
          {name ? <p class="hint">{mobile}</p> : null}
          <ul class="links">
            <li>
              <a href="/page/logout">Sign out</a>
            </li>
            <li>
              <a href="/page/pwd/reset">Change password</a>
            </li>
          </ul>
        </>,
      )
    }
  }
  const captcha = (await loginCaptchaRequired(c, null)) ? await newCaptcha(c) : null
  return loginPage(c, 200, {
    csrf: csrfToken(c),
    returnTo,
    // OIDC login_hint (forwarded by /oauth2/authorize): only a prefill, the user can change it.
    mobile: c.req.query('login_hint')?.slice(0, 32),
    captcha,
    notice: c.req.query('signed_out') ? 'You have signed out.' : c.req.query('registered') ? 'Your account is ready.' : undefined,
  })
})

pageRoutes.post('/page/login', async (c) => {
  const f = await formOf(c)
  const returnTo = await safeReturnTo(c.env, f('return_to', 2048))
  const mobileInput = f('mobile', 32).trim()
  const view: LoginView = { csrf: csrfToken(c), returnTo, mobile: mobileInput }
  const mobile = normalizeMobile(mobileInput)
  if (f('step') === 'new_captcha') return loginPage(c, 200, { ...view, captcha: await newCaptcha(c) })

  const password = f('password', PASSWORD_MAX)
  const errors: LoginView['errors'] = {}
  if (!mobile) errors.mobile = 'Enter a mobile number, such as +8613800138000 or 13800138000.'
  if (!password) errors.password = 'Enter your password.'
  if (errors.mobile || errors.password) {
    return loginPage(c, 400, { ...view, error: 'Check the highlighted fields.', errors, captcha: (await loginCaptchaRequired(c, mobile)) ? await newCaptcha(c) : null })
  }

  if (await loginCaptchaRequired(c, mobile)) {
    const given = f('captcha_code', 32)
    if (!(await verifyCaptcha(c.env, f('captcha_id', 64), given))) {
      const msg = given ? 'The characters did not match the picture.' : 'Enter the characters shown in the picture.'
      return loginPage(c, 400, { ...view, error: `${msg} Enter your password again, with the characters of the new picture.`, errors: { captcha: 'Type the characters of this new picture.' }, captcha: await newCaptcha(c) })
    }
  }

  let user
  try {
    user = await authenticatePassword(c.env, mobile!, password, { requestId: c.get('requestId'), ip: c.get('clientIp'), userAgent: c.req.header('User-Agent') })
  } catch (e) {
    if (!(e instanceof ApiError)) throw e
    if (e.status === 401) {
      await Promise.all([recordFailure(c.env.KV, 'page-login-ip', c.get('clientIp'), LOGIN_CAPTCHA_AFTER), recordFailure(c.env.KV, 'page-login-mobile', mobile!, LOGIN_CAPTCHA_AFTER)])
    }
    const error =
      e.code === 'invalid_credentials'
        ? 'The mobile number or password is wrong.'
        : e.code === 'too_many_attempts'
          ? `Too many failed sign-ins for this number or network. Try again in ${waitText(e)}, or reset your password.`
          : e.code === 'account_disabled'
            ? 'This account is disabled. Contact your administrator.'
            : e.message
    return loginPage(c, e.status, { ...view, error, captcha: (await loginCaptchaRequired(c, mobile)) ? await newCaptcha(c) : null })
  }
  await clearFailures(c.env.KV, 'page-login-mobile', user.mobile)
  await startBrowserSession(c, user)
  return c.redirect(await postLoginRedirect(c, user, { return_to: returnTo }), 303)
})

// ---------- register and reset: captcha → SMS code → password ----------

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

pageRoutes.get('/page/register', codeFlowGet(REGISTER))
pageRoutes.post('/page/register', codeFlowPost(REGISTER))
pageRoutes.get('/page/pwd/reset', codeFlowGet(RESET))
pageRoutes.post('/page/pwd/reset', codeFlowPost(RESET))

// ---------- sign out ----------

pageRoutes.get('/page/logout', async (c) => {
  const current = await readBrowserSession(c)
  if (!current) {
    return render(c, 200, 'Sign out', <>
      <p>You are not signed in.</p>
      <ul class="links"><li><a href="/page/login">Sign in</a></li></ul>
    </>)
  }
  return render(c, 200, 'Sign out', <>
    <p>Sign out of {brand(c).name} on this device? You stay signed in on other devices.</p>
    <form method="post" action="/page/logout">
      <Csrf token={csrfToken(c)} />
      <button type="submit">Sign out</button>
    </form>
    <ul class="links"><li><a href="/page/login">Cancel</a></li></ul>
  </>)
})

pageRoutes.post('/page/logout', async (c) => {
  await endBrowserSession(c)
  return c.redirect('/page/login?signed_out=1', 303)
})
