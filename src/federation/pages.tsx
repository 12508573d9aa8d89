import { Hono } from 'hono'
import type { Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import type { AppEnv } from '../context'
import { ApiError } from '../lib/errors'
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
import { pageOnError } from '../pages/errors'
import { pageLanguage, type Catalog } from '../pages/i18n'
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
const FLOW_COOKIE_MAX_AGE_S = 3600

function flowCookie(c: C): string | null {
  const v = getCookie(c, FLOW_COOKIE)
  return v && FLOW_COOKIE_RE.test(v) ? v : null
}

/**
 * The browser's flow secret, set first if it has none; one per browser, so two tabs can sign in
 * at once. Every start sets it again with a fresh Max-Age: a flow needs it for up to its own
 * 10 minutes plus the binding ticket's 15, so a cookie set 55 minutes ago must not die midway.
 */
function ensureFlowCookie(c: C): string {
  const v = flowCookie(c) ?? randomToken(32)
  setCookie(c, FLOW_COOKIE, v, { httpOnly: true, secure: true, sameSite: 'Lax', path: '/', maxAge: FLOW_COOKIE_MAX_AGE_S })
  return v
}

/**
 * The "Sign in with …" buttons under the login form: one form, a submit button per enabled
 * provider, so the start of a flow is a CSRF-checked POST. Nothing when no provider is enabled.
 */
export async function FederationButtons(props: { c: Context<AppEnv>; csrf: string; returnTo: string | null }) {
  const providers = await listEnabledProviders(props.c.env)
  if (!providers.length) return null
  const { t } = pageLanguage(props.c)
  return (
    <section class="federation" aria-label={t.otherWays}>
      <p class="divider">{t.or}</p>
      <form method="post" action="/page/federation/start">
        <Csrf token={props.csrf} />
        <Hidden name="return_to" value={props.returnTo} />
        {providers.map((p) => (
          <button type="submit" name="provider" value={p.id} class="secondary">
            {t.signInWith(p.displayName)}
          </button>
        ))}
      </form>
    </section>
  )
}

const startAgain = (t: Catalog, returnTo: string | null) => (
  <ul class="links">
    <li>
      <a href={withReturn('/page/login', returnTo)}>{t.backToSignIn}</a>
    </li>
  </ul>
)

function failurePage(c: C, e: ApiError, returnTo: string | null = null) {
  const { locale, t } = pageLanguage(c)
  const message =
    e.code === 'invalid_state'
      ? t.fedInvalidState
      : e.code === 'invalid_ticket'
        ? t.fedInvalidTicket
        : e.code === 'upstream_denied'
          ? // the provider's own words are English (they name its error code)
            locale === 'en' ? `${t.fedDenied} ${e.message}` : t.fedDenied
          : e.code === 'upstream_rejected'
            ? t.fedRejected
            : e.code === 'upstream_unavailable'
              ? t.fedUnavailable
              : e.code === 'account_disabled'
                ? t.fedAccountDisabled
                : e.code === 'unknown_provider'
                  ? t.fedUnknownProvider
                  : locale === 'en' ? e.message : t.requestRefused
  // the failed step is not a page to come back to: the switch leads to the sign-in page
  return render(c, e.status, t.couldNotSignInTitle, <><Alert message={message} />{startAgain(t, returnTo)}</>, { switchHref: withReturn('/page/login', returnTo) })
}

federationPageRoutes.onError(async (err, c) => {
  // an ApiError of any status is the provider's or the flow's (502 upstream_unavailable ...): the failure page
  if (err instanceof ApiError && err.status !== 429) return failurePage(c as C, err)
  return pageOnError(err, c as C)
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
  t: Catalog
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

function whoUpstream(t: Catalog, v: BindView) {
  const who = v.pending.profile.display ?? v.pending.profile.name
  return who ? t.fedSignedInAs(v.providerName, who) : t.fedSignedIn(v.providerName)
}

/** The binding pages' switch: the first step again, in the other language (the ticket is kept). */
const bindHref = (ticket: string) => `/page/federation/bind?${new URLSearchParams({ ticket })}`

function bindStartPage(c: C, status: number, v: BindView & { captcha: CaptchaView }) {
  const errs = v.errors ?? {}
  const { t } = v
  const open = registrationOpen(c.env)
  return render(
    c,
    status,
    t.bindTitle,
    <>
      <p class="lead">{`${whoUpstream(t, v)}${t.sentenceGap}${t.bindLead(open)}`}</p>
      <Alert message={v.error} />
      <form method="post" action="/page/federation/bind" novalidate>
        <Csrf token={v.csrf} />
        <input type="hidden" name="ticket" value={v.ticket} />
        <Field name="mobile" label={t.mobileField} type="tel" inputmode="tel" autocomplete="tel" value={v.mobile} error={errs.mobile} errorPrefix={t.errorPrefix} autofocus={!v.mobile || !!errs.mobile} maxlength={32} />
        <CaptchaField captcha={v.captcha} error={errs.captcha} autofocus={!!v.mobile && !errs.mobile} t={t} />
        <button type="submit" name="step" value="send">
          {t.sendCode}
        </button>
        <CaptchaRefresh t={t} />
      </form>
      {startAgain(t, v.pending.returnTo)}
    </>,
    { switchHref: bindHref(v.ticket) },
  )
}

function bindCodePage(c: C, status: number, v: BindView & { mobile: string }) {
  const errs = v.errors ?? {}
  const { t } = v
  return render(
    c,
    status,
    t.bindCodeTitle,
    <>
      <p class="lead">{`${whoUpstream(t, v)}${t.sentenceGap}${t.bindCodeLead}`}</p>
      <Notice message={v.notice} />
      <Alert message={v.error} />
      <form method="post" action="/page/federation/bind" novalidate>
        <Csrf token={v.csrf} />
        <input type="hidden" name="ticket" value={v.ticket} />
        <input type="hidden" name="mobile" value={v.mobile} />
        <Field name="sms_code" label={t.smsCodeLabel} inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength={6} hint={t.codeHint(SMS_CODE_TTL_S / 60)} error={errs.sms_code} errorPrefix={t.errorPrefix} autofocus />
        <button type="submit" name="step" value="verify">
          {t.continueButton}
        </button>
      </form>
      <ul class="links">
        <li>
          <a href={bindHref(v.ticket)}>{t.noCodeStartAgain}</a>
        </li>
      </ul>
    </>,
    { switchHref: bindHref(v.ticket) },
  )
}

function bindCreatePage(c: C, status: number, v: BindView) {
  const errs = v.errors ?? {}
  const first = errs.name ? 'name' : errs.password_confirm && !errs.password ? 'password_confirm' : 'password'
  const { t } = v
  return render(
    c,
    status,
    t.bindCreateTitle,
    <>
      <p class="lead">{t.bindCreateLead(v.pending.verifiedMobile ?? '', v.providerName)}</p>
      <Alert message={v.error} />
      <form method="post" action="/page/federation/bind" novalidate>
        <Csrf token={v.csrf} />
        <input type="hidden" name="ticket" value={v.ticket} />
        <Field name="name" label={t.nameOptional} autocomplete="name" value={v.name ?? v.pending.profile.name} required={false} maxlength={100} error={errs.name} errorPrefix={t.errorPrefix} autofocus={first === 'name'} />
        <Field name="password" label={t.passwordField} type="password" autocomplete="new-password" minlength={PASSWORD_MIN} maxlength={PASSWORD_MAX} hint={t.newPasswordHint(PASSWORD_MIN)} error={errs.password} errorPrefix={t.errorPrefix} autofocus={first === 'password'} />
        <Field name="password_confirm" label={t.repeatThePassword} type="password" autocomplete="new-password" maxlength={PASSWORD_MAX} error={errs.password_confirm} errorPrefix={t.errorPrefix} autofocus={first === 'password_confirm'} />
        <button type="submit" name="step" value="create">
          {t.createAccountButton}
        </button>
      </form>
      {startAgain(t, v.pending.returnTo)}
    </>,
    { switchHref: bindHref(v.ticket) },
  )
}

async function loadBinding(c: C, ticket: string) {
  const { pending, provider } = await pendingBinding(c.env, ticket, { channel: 'page', secret: flowCookie(c) })
  return { pending, providerName: provider.displayName }
}

federationPageRoutes.get('/bind', async (c) => {
  const ticket = c.req.query('ticket')?.slice(0, 64) ?? ''
  const { pending, providerName } = await loadBinding(c, ticket)
  return bindStartPage(c, 200, { t: pageLanguage(c).t, csrf: csrfToken(c), ticket, pending, providerName, captcha: await newCaptcha(c) })
})

federationPageRoutes.post('/bind', async (c) => {
  const f = await formOf(c)
  const ticket = f('ticket', 64)
  const { pending, providerName } = await loadBinding(c, ticket)
  const { locale, t } = pageLanguage(c)
  const base: BindView = { t, csrf: csrfToken(c), ticket, pending, providerName }
  const actor: AuditActor = auditActor(c)
  const step = f('step')
  const mobileInput = f('mobile', 32).trim()
  const mobile = normalizeMobile(mobileInput)

  if (step === 'new_captcha') return bindStartPage(c, 200, { ...base, mobile: mobileInput, captcha: await newCaptcha(c) })

  if (step === 'send') {
    const again = async (status: number, error: string, errors: Record<string, string>) => bindStartPage(c, status, { ...base, mobile: mobileInput, captcha: await newCaptcha(c), error, errors })
    if (!mobile) return again(400, t.checkFields, { mobile: t.mobileInvalid })
    const given = f('captcha_code', 32)
    if (!(await verifyCaptcha(c.env, f('captcha_id', 64), given))) {
      return again(400, given ? t.captchaMismatch : t.captchaEnter, { captcha: t.captchaFieldError })
    }
    await enforceRateLimit(c, 'sms_ip', c.get('clientIp'))
    try {
      await sendBindingCode(c.env, pending, mobile, { requestId: c.get('requestId'), ip: c.get('clientIp'), waitUntil: (p) => c.executionCtx.waitUntil(p) }, locale)
    } catch (e) {
      if (!(e instanceof ApiError) || e.code === 'rate_limited') throw e
      const msg = e.code === 'sms_cooldown' ? t.smsCooldown(waitText(e, t)) : e.code === 'sms_daily_limit' ? t.smsDaily : e.message
      return again(e.status, msg, {})
    }
    // The same words whether or not the number has an account: only the code will tell.
    const notice = registrationOpen(c.env) ? t.codeSentTo(mobile) : t.codeSentIfAccount(mobile)
    return bindCodePage(c, 200, { ...base, mobile, notice })
  }

  if (step === 'verify') {
    if (!mobile) return bindStartPage(c, 400, { ...base, captcha: await newCaptcha(c), error: t.mobileMissing })
    const code = f('sms_code', 16).trim()
    if (!/^\d{6}$/.test(code)) return bindCodePage(c, 400, { ...base, mobile, error: t.checkField, errors: { sms_code: t.enterSixDigits } })
    let out
    try {
      out = await verifyBindingCode(c.env, pending, mobile, code, actor)
    } catch (e) {
      if (!(e instanceof ApiError)) throw e
      if (e.code === 'invalid_sms_code') return bindCodePage(c, 400, { ...base, mobile, error: t.codeWrong, errors: { sms_code: t.codeWrong } })
      const again = { switchHref: bindHref(ticket) }
      if (e.code === 'sms_code_locked') {
        return render(c, 429, t.bindCodeTitle, <><Alert message={t.codeLockedToday(waitText(e, t))} />{startAgain(t, pending.returnTo)}</>, again)
      }
      if (e.code === 'too_many_attempts') {
        return render(c, 429, t.bindCodeTitle, <><Alert message={t.tooManyWrongCodes} /><p><a class="button" href={bindHref(ticket)}>{t.startAgain}</a></p></>, again)
      }
      if (e.code === 'registration_closed') {
        return render(c, 403, t.noAccountTitle, <><Alert message={t.noAccountClosed(mobile)} /><p><a class="button" href={bindHref(ticket)}>{t.useAnotherNumber}</a></p></>, again)
      }
      throw e
    }
    if (out.kind === 'account_required') return bindCreatePage(c, 200, { ...base, pending: { ...pending, verifiedMobile: mobile } })
    return signInBrowser(c, out.signIn, pending.returnTo)
  }

  if (step === 'create') {
    if (!pending.verifiedMobile) return bindStartPage(c, 400, { ...base, captcha: await newCaptcha(c), error: t.proveMobileFirst })
    const password = f('password', PASSWORD_MAX + 1)
    const name = f('name', 101).trim()
    const errors: Record<string, string> = {}
    if (password.length < PASSWORD_MIN) errors.password = t.passwordTooShort(PASSWORD_MIN)
    else if (password.length > PASSWORD_MAX) errors.password = t.passwordTooLong(PASSWORD_MAX)
    else if (f('password_confirm', PASSWORD_MAX + 1) !== password) errors.password_confirm = t.passwordsDiffer
    if (name.length > 100) errors.name = t.nameTooLong
    if (Object.keys(errors).length) return bindCreatePage(c, 400, { ...base, name, error: t.checkFields, errors })
    await enforceRateLimit(c, 'register_ip', c.get('clientIp'))
    return signInBrowser(c, await createBoundAccount(c.env, pending, { password, name }, actor), pending.returnTo)
  }

  return bindStartPage(c, 400, { ...base, captcha: await newCaptcha(c) })
})

// ---- the signed-in user's identities (a minimal page; the user portal can reuse IdentityList)

export function IdentityList(props: { t: Catalog; csrf: string; items: Awaited<ReturnType<typeof listIdentities>> }) {
  const { t } = props
  if (!props.items.length) return <p class="hint">{t.identitiesEmpty}</p>
  return (
    <ul class="identities" aria-label={t.identitiesLabel}>
      {props.items.map((i) => (
        <li>
          <span>
            <strong>{i.provider_name}</strong>
            <span class="hint">{t.linkedSince(i.display ?? i.email ?? t.linked, i.linked_at.slice(0, 10))}</span>
          </span>
          <form method="post" action="/page/federation/identities/unlink">
            <Csrf token={props.csrf} />
            <input type="hidden" name="id" value={i.id} />
            <button type="submit" class="secondary" aria-label={t.unlinkOf(`${i.provider_name} ${i.display ?? ''}`.trim())}>
              {t.unlink}
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
  const { t } = pageLanguage(c)
  return render(
    c,
    status,
    t.identitiesTitle,
    <>
      <Notice message={msg.notice} />
      <Alert message={msg.error} />
      <p class="lead">{t.identitiesLead(current.user.mobile)}</p>
      <IdentityList t={t} csrf={csrfToken(c)} items={await listIdentities(c.env, current.user.id)} />
      <ul class="links">
        <li>
          <a href="/page/login">{t.done}</a>
        </li>
      </ul>
    </>,
    { switchHref: '/page/federation/identities' },
  )
}

federationPageRoutes.get('/identities', async (c) => identitiesPage(c, 200, { notice: c.req.query('unlinked') ? pageLanguage(c).t.unlinked : undefined }))

federationPageRoutes.post('/identities/unlink', async (c) => {
  const current = await readBrowserSession(c)
  if (!current) return c.redirect(withReturn('/page/login', '/page/federation/identities'), 303)
  const f = await formOf(c)
  try {
    await unlinkIdentity(c.env, current.user.id, f('id', 64), { actorType: 'user', actorId: current.user.id, requestId: c.get('requestId'), ip: c.get('clientIp') })
  } catch (e) {
    if (!(e instanceof ApiError) || e.status >= 500) throw e
    const { locale, t } = pageLanguage(c)
    return identitiesPage(c, e.status, { error: e.code === 'last_sign_in_method' ? t.lastSignInMethod : locale === 'en' ? e.message : t.requestRefused })
  }
  return c.redirect('/page/federation/identities?unlinked=1', 303)
})
