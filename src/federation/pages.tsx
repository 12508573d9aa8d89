import { Hono } from 'hono'
import type { Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import type { AppEnv } from '../context'
import { ApiError } from '../lib/errors'
import { log } from '../lib/logger'
import { randomToken } from '../lib/crypto'
import { normalizeMobile } from '../lib/mobile'
import { PASSWORD_MAX_LENGTH as PASSWORD_MAX, PASSWORD_MIN_LENGTH as PASSWORD_MIN } from '../lib/password'
import { enforceRateLimit } from '../ratelimit'
import { auditActor, type AuditActor } from '../audit/service'
import { readBrowserSession, startBrowserSession } from '../auth/browser-session'
import { registrationOpen } from '../account/service'
import { verifyCaptcha } from '../captcha/service'
import { SMS_CODE_TTL_S } from '../sms/service'
import { Alert, Notice, Hidden, Csrf, Field, CaptchaField, CaptchaRefresh, renderPage as render, type CaptchaView } from '../pages/layout'
import { csrfToken } from '../pages/security'
import { postLoginRedirect, safeReturnTo } from '../pages/redirect'
import { formOf, newCaptcha, waitText, withReturn, type C } from '../pages/form'
import { enabledProvider, listEnabledProviders, pageCallbackUrl } from './providers'
import { pendingBinding, startFlow, type PendingBinding } from './flows'
import { createBoundAccount, handleCallback, sendBindingCode, verifyBindingCode, withLinkConflicts, type SignIn } from './service'
import { listIdentities, unlinkIdentity } from './identities'

/**
 * Hosted pages of the sign-in with another identity provider (docs/federation.md): the
 * buttons on /page/login, the hop to the provider and back, the binding of a mobile for an
 * identity seen the first time, and the user's list of linked identities. No JavaScript;
 * every POST passes the CSRF check of /page/*. Mounted at /page/federation.
 */
export const federationPageRoutes = new Hono<AppEnv>()

/**
 * Binds each flow to the browser that started it: a random value, its hash stored with the
 * flow. `__Host-` (Secure, Path=/, no Domain) so a sibling subdomain cannot plant one;
 * SameSite=Lax so it comes back on the provider's top-level redirect to the callback.
 */
export const FLOW_COOKIE = '__Host-uap_federation'
const FLOW_COOKIE_RE = /^[A-Za-z0-9_-]{43}$/

function flowCookie(c: C): string | null {
  const v = getCookie(c, FLOW_COOKIE)
  return v && FLOW_COOKIE_RE.test(v) ? v : null
}

/** The browser's flow secret, set first if it has none; one per browser, so two tabs can sign in at once. */
function ensureFlowCookie(c: C): string {
  const existing = flowCookie(c)
  if (existing) return existing
  const v = randomToken(32)
  setCookie(c, FLOW_COOKIE, v, { httpOnly: true, secure: true, sameSite: 'Lax', path: '/', maxAge: 3600 })
  return v
}

/**
 * The "Sign in with …" buttons under the login form: one form, a submit button per enabled
 * provider, so the start of a flow is a CSRF-checked POST. Nothing when no provider is enabled.
 */
export async function FederationButtons(props: { c: Context<AppEnv>; csrf: string; returnTo: string | null }) {
  const providers = await listEnabledProviders(props.c.env)
  if (!providers.length) return null
  return (
    <section class="federation" aria-label="Other ways to sign in">
      <p class="divider">or</p>
      <form method="post" action="/page/federation/start">
        <Csrf token={props.csrf} />
        <Hidden name="return_to" value={props.returnTo} />
        {providers.map((p) => (
          <button type="submit" name="provider" value={p.id} class="secondary">
            {`Sign in with ${p.displayName}`}
          </button>
        ))}
      </form>
    </section>
  )
}

const startAgain = (returnTo: string | null) => (
  <ul class="links">
    <li>
      <a href={withReturn('/page/login', returnTo)}>Back to sign in</a>
    </li>
  </ul>
)

function failurePage(c: C, e: ApiError, returnTo: string | null = null) {
  const message =
    e.code === 'invalid_state'
      ? 'This sign-in attempt has expired, was already used, or was started in another browser. Nothing was changed. Start again from the sign-in page.'
      : e.code === 'invalid_ticket'
        ? 'This sign-in has expired or was already finished. Start again from the sign-in page.'
        : e.code === 'upstream_denied'
          ? `The other provider did not sign you in. ${e.message}`
          : e.code === 'upstream_rejected'
            ? 'The answer of the other provider could not be verified, so you were not signed in. Start again from the sign-in page.'
            : e.code === 'upstream_unavailable'
              ? 'The other provider could not be reached or answered in a way we cannot use. Try again later, or sign in with your mobile number.'
              : e.code === 'account_disabled'
                ? 'The account linked to this identity is disabled. Contact your administrator.'
                : e.code === 'unknown_provider'
                  ? 'This way of signing in is not available.'
                  : e.message
  return render(c, e.status, 'Could not sign you in', <><Alert message={message} />{startAgain(returnTo)}</>)
}

federationPageRoutes.onError(async (err, c) => {
  if (err instanceof ApiError && err.status === 429) return render(c as C, 429, 'Please wait', <Alert message={`Too many requests from your network. Try again in ${waitText(err)}.`} />)
  if (err instanceof ApiError) return failurePage(c as C, err)
  log.error('page.error', { request_id: c.get('requestId'), error: err.message, stack: err.stack })
  return render(c as C, 500, 'Something went wrong', <Alert message={`Something went wrong on our side. Please try again. (Request ${c.get('requestId')})`} />)
})

/** The form's button: start the flow and send the browser to the provider. */
federationPageRoutes.post('/start', async (c) => {
  const f = await formOf(c)
  await enforceRateLimit(c, 'federation_ip', c.get('clientIp'))
  const p = await enabledProvider(c.env, f('provider', 64))
  const returnTo = await safeReturnTo(c.env, f('return_to', 2048))
  const flow = await startFlow(c.env, p, { channel: 'page', secret: ensureFlowCookie(c), redirectUri: pageCallbackUrl(c.env, p.id), returnTo })
  return c.redirect(flow.authorizationUrl, 303)
})

async function signInBrowser(c: C, signIn: SignIn, returnTo: string | null) {
  await withLinkConflicts(() => startBrowserSession(c, signIn.user, { audit: { details: signIn.details }, statements: signIn.statements }))
  return c.redirect(await postLoginRedirect(c, signIn.user, { return_to: returnTo }), 303)
}

/** RFC 6749 §4.1.2: the provider sends the browser back here with code and state (or error). */
federationPageRoutes.get('/:provider/callback', async (c) => {
  await enforceRateLimit(c, 'federation_ip', c.get('clientIp'))
  const p = await enabledProvider(c.env, c.req.param('provider'))
  const q = (name: string, max = 2048) => c.req.query(name)?.slice(0, max)
  const out = await handleCallback(
    c.env,
    p,
    { channel: 'page', state: q('state', 256) ?? '', secret: flowCookie(c), code: q('code'), iss: q('iss'), error: q('error', 256) },
    auditActor(c),
  )
  if (out.kind === 'signed_in') return signInBrowser(c, out.signIn, out.flow.returnTo)
  return c.redirect(`/page/federation/bind?${new URLSearchParams({ ticket: out.ticket })}`, 303)
})

// ---- binding a mobile to an identity seen for the first time

interface BindView {
  csrf: string
  ticket: string
  pending: PendingBinding
  providerName: string
  mobile?: string
  name?: string
  error?: string
  errors?: Record<string, string>
  notice?: string
}

function whoUpstream(v: BindView) {
  const who = v.pending.profile.display ?? v.pending.profile.name
  return who ? `You signed in with ${v.providerName} as ${who}.` : `You signed in with ${v.providerName}.`
}

function bindStartPage(c: C, status: number, v: BindView & { captcha: CaptchaView }) {
  const errs = v.errors ?? {}
  const open = registrationOpen(c.env)
  return render(
    c,
    status,
    'Link your mobile number',
    <>
      <p class="lead">
        {`${whoUpstream(v)} The first time, we link it to an account: enter the mobile number of your account${open ? ' (or the number for a new one)' : ''} and we text it a code.`}
      </p>
      <Alert message={v.error} />
      <form method="post" action="/page/federation/bind" novalidate>
        <Csrf token={v.csrf} />
        <input type="hidden" name="ticket" value={v.ticket} />
        <Field name="mobile" label="Mobile number" type="tel" inputmode="tel" autocomplete="tel" value={v.mobile} error={errs.mobile} autofocus={!v.mobile || !!errs.mobile} maxlength={32} />
        <CaptchaField captcha={v.captcha} error={errs.captcha} autofocus={!!v.mobile && !errs.mobile} />
        <button type="submit" name="step" value="send">
          Send code
        </button>
        <CaptchaRefresh />
      </form>
      {startAgain(v.pending.returnTo)}
    </>,
  )
}

function bindCodePage(c: C, status: number, v: BindView & { mobile: string }) {
  const errs = v.errors ?? {}
  return render(
    c,
    status,
    'Enter the code',
    <>
      <p class="lead">{`${whoUpstream(v)} Enter the code we texted to prove the number is yours.`}</p>
      <Notice message={v.notice} />
      <Alert message={v.error} />
      <form method="post" action="/page/federation/bind" novalidate>
        <Csrf token={v.csrf} />
        <input type="hidden" name="ticket" value={v.ticket} />
        <input type="hidden" name="mobile" value={v.mobile} />
        <Field name="sms_code" label="Code from the SMS" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength={6} hint={`6 digits, valid for ${SMS_CODE_TTL_S / 60} minutes.`} error={errs.sms_code} autofocus />
        <button type="submit" name="step" value="verify">
          Continue
        </button>
      </form>
      <ul class="links">
        <li>
          <a href={`/page/federation/bind?${new URLSearchParams({ ticket: v.ticket })}`}>No code? Start again</a>
        </li>
      </ul>
    </>,
  )
}

function bindCreatePage(c: C, status: number, v: BindView) {
  const errs = v.errors ?? {}
  const first = errs.name ? 'name' : errs.password_confirm && !errs.password ? 'password_confirm' : 'password'
  return render(
    c,
    status,
    'Create your account',
    <>
      <p class="lead">{`No account has ${v.pending.verifiedMobile} yet. Choose a password to create one: you can then sign in with ${v.providerName}, or with your mobile number and this password.`}</p>
      <Alert message={v.error} />
      <form method="post" action="/page/federation/bind" novalidate>
        <Csrf token={v.csrf} />
        <input type="hidden" name="ticket" value={v.ticket} />
        <Field name="name" label="Your name (optional)" autocomplete="name" value={v.name ?? v.pending.profile.name} required={false} maxlength={100} error={errs.name} autofocus={first === 'name'} />
        <Field name="password" label="Password" type="password" autocomplete="new-password" minlength={PASSWORD_MIN} maxlength={PASSWORD_MAX} hint={`At least ${PASSWORD_MIN} characters.`} error={errs.password} autofocus={first === 'password'} />
        <Field name="password_confirm" label="Repeat the password" type="password" autocomplete="new-password" maxlength={PASSWORD_MAX} error={errs.password_confirm} autofocus={first === 'password_confirm'} />
        <button type="submit" name="step" value="create">
          Create account
        </button>
      </form>
      {startAgain(v.pending.returnTo)}
    </>,
  )
}

async function loadBinding(c: C, ticket: string) {
  const pending = await pendingBinding(c.env, ticket, { channel: 'page', secret: flowCookie(c) })
  const p = await enabledProvider(c.env, pending.providerId)
  return { pending, providerName: p.displayName }
}

federationPageRoutes.get('/bind', async (c) => {
  const ticket = c.req.query('ticket')?.slice(0, 64) ?? ''
  const { pending, providerName } = await loadBinding(c, ticket)
  return bindStartPage(c, 200, { csrf: csrfToken(c), ticket, pending, providerName, captcha: await newCaptcha(c) })
})

federationPageRoutes.post('/bind', async (c) => {
  const f = await formOf(c)
  const ticket = f('ticket', 64)
  const { pending, providerName } = await loadBinding(c, ticket)
  const base: BindView = { csrf: csrfToken(c), ticket, pending, providerName }
  const actor: AuditActor = auditActor(c)
  const step = f('step')
  const mobileInput = f('mobile', 32).trim()
  const mobile = normalizeMobile(mobileInput)

  if (step === 'new_captcha') return bindStartPage(c, 200, { ...base, mobile: mobileInput, captcha: await newCaptcha(c) })

  if (step === 'send') {
    const again = async (status: number, error: string, errors: Record<string, string>) => bindStartPage(c, status, { ...base, mobile: mobileInput, captcha: await newCaptcha(c), error, errors })
    if (!mobile) return again(400, 'Check the highlighted fields.', { mobile: 'Enter a mobile number, such as +8613800138000 or 13800138000.' })
    const given = f('captcha_code', 32)
    if (!(await verifyCaptcha(c.env, f('captcha_id', 64), given))) {
      return again(400, given ? 'The characters did not match the picture.' : 'Enter the characters shown in the picture.', { captcha: 'Type the characters of this new picture.' })
    }
    await enforceRateLimit(c, 'sms_ip', c.get('clientIp'))
    try {
      await sendBindingCode(c.env, pending, mobile, { requestId: c.get('requestId'), ip: c.get('clientIp'), waitUntil: (p) => c.executionCtx.waitUntil(p) })
    } catch (e) {
      if (!(e instanceof ApiError) || e.code === 'rate_limited') throw e
      const msg = e.code === 'sms_cooldown' ? `A code was sent to this number less than a minute ago. Wait ${waitText(e)}, then try again.` : e.code === 'sms_daily_limit' ? 'Too many codes were sent to this number today. Try again tomorrow.' : e.message
      return again(e.status, msg, {})
    }
    // The same words whether or not the number has an account: only the code will tell.
    const notice = registrationOpen(c.env) ? `We have sent a 6-digit code to ${mobile}.` : `If ${mobile} belongs to an account, we have sent it a 6-digit code.`
    return bindCodePage(c, 200, { ...base, mobile, notice })
  }

  if (step === 'verify') {
    if (!mobile) return bindStartPage(c, 400, { ...base, captcha: await newCaptcha(c), error: 'Start again: the mobile number was missing.' })
    const code = f('sms_code', 16).trim()
    if (!/^\d{6}$/.test(code)) return bindCodePage(c, 400, { ...base, mobile, error: 'Check the highlighted field.', errors: { sms_code: 'Enter the 6 digits from the SMS.' } })
    let out
    try {
      out = await verifyBindingCode(c.env, pending, mobile, code, actor)
    } catch (e) {
      if (!(e instanceof ApiError)) throw e
      if (e.code === 'invalid_sms_code') return bindCodePage(c, 400, { ...base, mobile, error: 'That code is wrong or has expired.', errors: { sms_code: 'That code is wrong or has expired.' } })
      if (e.code === 'sms_code_locked') {
        return render(c, 429, 'Enter the code', <><Alert message={`Too many wrong codes for this number today. Try again in ${waitText(e)}.`} />{startAgain(pending.returnTo)}</>)
      }
      if (e.code === 'too_many_attempts') {
        return render(c, 429, 'Enter the code', <><Alert message="Too many wrong codes. Ask for a new code." /><p><a class="button" href={`/page/federation/bind?${new URLSearchParams({ ticket })}`}>Start again</a></p></>)
      }
      if (e.code === 'registration_closed') {
        return render(c, 403, 'No account with this number', <><Alert message={`No account has ${mobile}, and new accounts cannot be created here. Ask your administrator for an account, or link another number.`} /><p><a class="button" href={`/page/federation/bind?${new URLSearchParams({ ticket })}`}>Use another number</a></p></>)
      }
      throw e
    }
    if (out.kind === 'account_required') return bindCreatePage(c, 200, { ...base, pending: { ...pending, verifiedMobile: mobile } })
    return signInBrowser(c, out.signIn, pending.returnTo)
  }

  if (step === 'create') {
    if (!pending.verifiedMobile) return bindStartPage(c, 400, { ...base, captcha: await newCaptcha(c), error: 'Prove your mobile number with a code first.' })
    const password = f('password', PASSWORD_MAX + 1)
    const name = f('name', 101).trim()
    const errors: Record<string, string> = {}
    if (password.length < PASSWORD_MIN) errors.password = `Use at least ${PASSWORD_MIN} characters.`
    else if (password.length > PASSWORD_MAX) errors.password = `Use at most ${PASSWORD_MAX} characters.`
    else if (f('password_confirm', PASSWORD_MAX + 1) !== password) errors.password_confirm = 'The two passwords differ.'
    if (name.length > 100) errors.name = 'Use at most 100 characters.'
    if (Object.keys(errors).length) return bindCreatePage(c, 400, { ...base, name, error: 'Check the highlighted fields.', errors })
    await enforceRateLimit(c, 'register_ip', c.get('clientIp'))
    return signInBrowser(c, await createBoundAccount(c.env, pending, { password, name }, actor), pending.returnTo)
  }

  return bindStartPage(c, 400, { ...base, captcha: await newCaptcha(c) })
})

// ---- the signed-in user's identities (a minimal page; the user portal can reuse IdentityList)

export function IdentityList(props: { csrf: string; items: Awaited<ReturnType<typeof listIdentities>> }) {
  if (!props.items.length) return <p class="hint">No identity of another provider is linked to this account.</p>
  return (
    <ul class="identities" aria-label="Linked identities">
      {props.items.map((i) => (
        <li>
          <span>
            <strong>{i.provider_name}</strong>
            <span class="hint">{`${i.display ?? i.email ?? 'linked'} · since ${i.linked_at.slice(0, 10)}`}</span>
          </span>
          <form method="post" action="/page/federation/identities/unlink">
            <Csrf token={props.csrf} />
            <input type="hidden" name="id" value={i.id} />
            <button type="submit" class="secondary" aria-label={`Unlink ${i.provider_name} ${i.display ?? ''}`.trim()}>
              Unlink
            </button>
          </form>
        </li>
      ))}
    </ul>
  )
}

async function identitiesPage(c: C, status: number, msg: { notice?: string; error?: string } = {}) {
  const current = await readBrowserSession(c)
  if (!current) return c.redirect(withReturn('/page/login', '/page/federation/identities'), 303)
  return render(
    c,
    status,
    'Sign-in methods',
    <>
      <Notice message={msg.notice} />
      <Alert message={msg.error} />
      <p class="lead">{`Your mobile number ${current.user.mobile} and your password, and these identities of other providers:`}</p>
      <IdentityList csrf={csrfToken(c)} items={await listIdentities(c.env, current.user.id)} />
      <ul class="links">
        <li>
          <a href="/page/login">Done</a>
        </li>
      </ul>
    </>,
  )
}

federationPageRoutes.get('/identities', async (c) => identitiesPage(c, 200, { notice: c.req.query('unlinked') ? 'The identity is unlinked.' : undefined }))

federationPageRoutes.post('/identities/unlink', async (c) => {
  const current = await readBrowserSession(c)
  if (!current) return c.redirect(withReturn('/page/login', '/page/federation/identities'), 303)
  const f = await formOf(c)
  try {
    await unlinkIdentity(c.env, current.user.id, f('id', 64), { actorType: 'user', actorId: current.user.id, requestId: c.get('requestId'), ip: c.get('clientIp') })
  } catch (e) {
    if (!(e instanceof ApiError) || e.status >= 500) throw e
    return identitiesPage(c, e.status, { error: e.code === 'last_sign_in_method' ? 'This identity is the only way to sign in to your account. Set a password first (reset it by SMS), then unlink it.' : e.message })
  }
  return c.redirect('/page/federation/identities?unlinked=1', 303)
})
