import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { Alert, Csrf, Hidden, Notice, brand, renderPage } from '../pages/layout'
import { allowPageImage, csrfAccepted } from '../pages/security'
import { SUPPORTED_SCOPES } from './service'
import { pageLanguage, type Catalog } from '../pages/i18n'

/**
 * The OIDC flow's pages (consent, errors, sign-out), rendered in the hosted pages' layout
 * with their stylesheet and branding. The routes that serve them run the pages'
 * security-headers middleware (src/oidc/routes.ts). Forms carry the site-wide
 * double-submit CSRF token (`__Host-uap_csrf` cookie + `csrf_token` field).
 */

type C = Context<AppEnv>

export { csrfToken } from '../pages/security'

/** The CSRF check of the consent and sign-out confirmation forms (same check as /page/* forms). */
export function csrfValid(c: C, field: string | undefined): boolean {
  return csrfAccepted(c, field)
}

/** What an error page says, in the page's language (src/pages/i18n). */
export type ErrorText = (t: Catalog) => { title: string; message: string }

export function errorPage(c: C, text: ErrorText, status = 400) {
  const { t } = pageLanguage(c)
  const { title, message } = text(t)
  return renderPage(
    c,
    status,
    title,
    <>
      <Alert message={message} />
      <p class="hint">
        {t.goBackHint}
        <code>{c.get('requestId')}</code>
      </p>
    </>,
  )
}

/** Masks a mobile number for display: +86 138****8000. */
function maskMobile(m: string) {
  return m.length > 8 ? `${m.slice(0, m.length - 8)}****${m.slice(-4)}` : m
}

export function consentPage(
  c: C,
  o: { requestId: string; csrf: string; appName: string; iconUrl: string | null; scope: string[]; redirectHost: string; user: { name: string | null; mobile: string } },
) {
  const { t } = pageLanguage(c)
  // https icons are allowed by this response's CSP; data: images always are.
  const icon = o.iconUrl && /^(https:\/\/|data:image\/)/.test(o.iconUrl) ? o.iconUrl : null
  if (icon?.startsWith('https://')) allowPageImage(c, icon)
  const scopes = [...o.scope].sort((a, b) => SUPPORTED_SCOPES.indexOf(a as never) - SUPPORTED_SCOPES.indexOf(b as never))
  return renderPage(
    c,
    200,
    t.consentTitle(o.appName),
    <>
      <div class="app">
        {icon ? <img src={icon} alt="" width={48} height={48} /> : null}
        <div>
          <strong>{o.appName}</strong>
          <p class="hint">{o.redirectHost}</p>
        </div>
      </div>
      <p class="who">
        {t.signedInAs}
        <strong>{o.user.name ?? maskMobile(o.user.mobile)}</strong>
      </p>
      <p id="scopes-label">{t.consentAsks(o.appName)}</p>
      <ul class="scopes" aria-labelledby="scopes-label">
        {scopes.map((s) => (
          <li>{t.consentScopes[s] ?? s}</li>
        ))}
      </ul>
      <form method="post" action="/page/consent">
        <Csrf token={o.csrf} />
        <input type="hidden" name="request_id" value={o.requestId} />
        <div class="actions">
          <button type="submit" name="decision" value="deny" class="secondary">
            {t.deny}
          </button>
          <button type="submit" name="decision" value="allow">
            {t.allow}
          </button>
        </div>
      </form>
      <p class="hint">{t.afterAnswer(o.redirectHost)}</p>
    </>,
    { switchHref: `/page/consent?${new URLSearchParams({ request_id: o.requestId })}` },
  )
}

export function logoutConfirmPage(c: C, o: { csrf: string; clientId?: string; postLogoutRedirectUri?: string; state?: string; appName?: string }) {
  const { t } = pageLanguage(c)
  return renderPage(
    c,
    200,
    t.signOutOfTitle(brand(c).name),
    <>
      <p>
        {o.appName ? t.appAsksSignOut(o.appName) : t.someAppAsksSignOut}
        {t.signOutEverywhereHere}
      </p>
      <form method="post" action="/oauth2/end_session">
        <Csrf token={o.csrf} />
        <Hidden name="client_id" value={o.clientId} />
        <Hidden name="post_logout_redirect_uri" value={o.postLogoutRedirectUri} />
        <Hidden name="state" value={o.state} />
        <div class="actions">
          <button type="submit" name="confirm" value="no" class="secondary">
            {t.staySignedIn}
          </button>
          <button type="submit" name="confirm" value="yes">
            {t.signOutButton}
          </button>
        </div>
      </form>
    </>,
  )
}

export function signedOutPage(c: C) {
  const { t } = pageLanguage(c)
  return renderPage(c, 200, t.signedOutTitle, <Notice message={t.signedOutOf(brand(c).name)} />, { switchHref: null })
}

export function stillSignedInPage(c: C) {
  const { t } = pageLanguage(c)
  return renderPage(c, 200, t.stillSignedInTitle, <Notice message={t.stillSignedIn} />, { switchHref: null })
}
