import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { Alert, Csrf, Hidden, Notice, brand, renderPage } from '../pages/layout'
import { allowPageImage, csrfAccepted } from '../pages/security'
import { SCOPE_DESCRIPTIONS, SUPPORTED_SCOPES } from './service'

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

export function errorPage(c: C, title: string, message: string, status = 400) {
  return renderPage(
    c,
    status,
    title,
    <>
      <Alert message={message} />
      <p class="hint">
        Go back to the application and try again. Request id: <code>{c.get('requestId')}</code>
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
  // https icons are allowed by this response's CSP; data: images always are.
  const icon = o.iconUrl && /^(https:\/\/|data:image\/)/.test(o.iconUrl) ? o.iconUrl : null
  if (icon?.startsWith('https://')) allowPageImage(c, icon)
  const scopes = [...o.scope].sort((a, b) => SUPPORTED_SCOPES.indexOf(a as never) - SUPPORTED_SCOPES.indexOf(b as never))
  return renderPage(
    c,
    200,
    `${o.appName} wants to use your account`,
    <>
      <div class="app">
        {icon ? <img src={icon} alt="" width={48} height={48} /> : null}
        <div>
          <strong>{o.appName}</strong>
          <p class="hint">{o.redirectHost}</p>
        </div>
      </div>
      <p class="who">
        Signed in as <strong>{o.user.name ?? maskMobile(o.user.mobile)}</strong>
      </p>
      <p id="scopes-label">{o.appName} asks to:</p>
      <ul class="scopes" aria-labelledby="scopes-label">
        {scopes.map((s) => (
          <li>{SCOPE_DESCRIPTIONS[s] ?? s}</li>
        ))}
      </ul>
      <form method="post" action="/page/consent">
        <Csrf token={o.csrf} />
        <input type="hidden" name="request_id" value={o.requestId} />
        <div class="actions">
          <button type="submit" name="decision" value="deny" class="secondary">
            Deny
          </button>
          <button type="submit" name="decision" value="allow">
            Allow
          </button>
        </div>
      </form>
      <p class="hint">After you answer you go back to {o.redirectHost}.</p>
    </>,
  )
}

export function logoutConfirmPage(c: C, o: { csrf: string; clientId?: string; postLogoutRedirectUri?: string; state?: string; appName?: string }) {
  return renderPage(
    c,
    200,
    `Sign out of ${brand(c).name}?`,
    <>
      <p>
        {o.appName ? `${o.appName} asks to sign you out.` : 'An application asks to sign you out.'} This signs you out of every application you use with this account on this browser.
      </p>
      <form method="post" action="/oauth2/end_session">
        <Csrf token={o.csrf} />
        <Hidden name="client_id" value={o.clientId} />
        <Hidden name="post_logout_redirect_uri" value={o.postLogoutRedirectUri} />
        <Hidden name="state" value={o.state} />
        <div class="actions">
          <button type="submit" name="confirm" value="no" class="secondary">
            Stay signed in
          </button>
          <button type="submit" name="confirm" value="yes">
            Sign out
          </button>
        </div>
      </form>
    </>,
  )
}

export function signedOutPage(c: C) {
  return renderPage(c, 200, 'Signed out', <Notice message={`You are signed out of ${brand(c).name}. You can close this page.`} />)
}

export function stillSignedInPage(c: C) {
  return renderPage(c, 200, 'Still signed in', <Notice message="You are still signed in. You can close this page." />)
}
