import type { Context } from 'hono'
import type { FC, PropsWithChildren } from 'hono/jsx'
import { getCookie } from 'hono/cookie'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { AppEnv } from '../lib/context'
import { timingSafeEqual } from '../lib/crypto'
import { CSRF_COOKIE, CSRF_RE } from '../pages/security'
import { SCOPE_DESCRIPTIONS, SUPPORTED_SCOPES } from './service'

/**
 * Server-rendered pages of the OIDC flow (consent, errors, sign-out). They work without
 * JavaScript; forms carry a double-submit CSRF token (cookie + hidden field, compared in
 * constant time).
 */

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1f2328;margin:0;padding:2rem 1rem}
main{max-width:28rem;margin:0 auto;background:#fff;border-radius:12px;padding:2rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.3rem;margin:0 0 1rem}
.app{display:flex;align-items:center;gap:.75rem;margin-bottom:1rem}
.app img{width:48px;height:48px;border-radius:8px}
ul{padding-left:1.2rem}li{margin:.35rem 0}
.actions{display:flex;gap:.75rem;margin-top:1.5rem}
button{flex:1;font-size:1rem;padding:.65rem 1rem;border-radius:8px;border:1px solid #d0d7de;background:#f6f8fa;cursor:pointer}
button.primary{background:#1f6feb;border-color:#1f6feb;color:#fff}
.muted{color:#656d76;font-size:.85rem}
code{font-size:.85rem}
`

const Layout: FC<PropsWithChildren<{ title: string }>> = ({ title, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="no-referrer" />
      <title>{title}</title>
      <style dangerouslySetInnerHTML={{ __html: STYLE }} />
    </head>
    <body>
      <main>{children}</main>
    </body>
  </html>
)

/** Headers for every hosted page: never cached, never framed (clickjacking on the consent buttons). */
export function pageHeaders(c: Context) {
  c.header('Cache-Control', 'no-store')
  c.header('X-Frame-Options', 'DENY')
  c.header('Referrer-Policy', 'no-referrer')
  // No form-action: browsers apply it to the redirect after the consent POST, which goes to the client.
  c.header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'none'; base-uri 'none'")
}

export function renderPage(c: Context, element: unknown, status: ContentfulStatusCode = 200) {
  pageHeaders(c)
  return c.html('<!doctype html>' + String(element), status)
}

/**
 * The hosted pages' double-submit CSRF token (src/pages/security.ts): one cookie for every
 * form of the site. POSTs under /page/* are also checked by the pages' middleware.
 */
export { csrfToken } from '../pages/security'

export function csrfValid(c: Context<AppEnv>, field: string | undefined): boolean {
  const cookie = getCookie(c, CSRF_COOKIE)
  return !!cookie && !!field && CSRF_RE.test(cookie) && timingSafeEqual(cookie, field)
}

export function errorPage(c: Context<AppEnv>, title: string, message: string, status: ContentfulStatusCode = 400) {
  return renderPage(
    c,
    <Layout title={title}>
      <h1>{title}</h1>
      <p>{message}</p>
      <p class="muted">
        Go back to the application and try again. Request id: <code>{c.get('requestId')}</code>
      </p>
    </Layout>,
    status,
  )
}

/** Masks a mobile number for display: +86 138****8000. */
function maskMobile(m: string) {
  return m.length > 8 ? `${m.slice(0, m.length - 8)}****${m.slice(-4)}` : m
}

export function consentPage(
  c: Context<AppEnv>,
  o: { requestId: string; csrf: string; appName: string; iconUrl: string | null; scope: string[]; redirectHost: string; user: { name: string | null; mobile: string } },
) {
  const icon = o.iconUrl && /^(https:|data:image\/)/.test(o.iconUrl) ? o.iconUrl : null
  return renderPage(
    c,
    <Layout title={`Allow ${o.appName}?`}>
      <div class="app">
        {icon ? <img src={icon} alt="" /> : null}
        <h1>{o.appName} wants to use your account</h1>
      </div>
      <p>
        Signed in as <strong>{o.user.name ?? maskMobile(o.user.mobile)}</strong>. {o.appName} asks to:
      </p>
      <ul>
        {[...o.scope].sort((a, b) => SUPPORTED_SCOPES.indexOf(a as never) - SUPPORTED_SCOPES.indexOf(b as never)).map((s) => (
          <li>{SCOPE_DESCRIPTIONS[s] ?? s}</li>
        ))}
      </ul>
      <form method="post" action="/page/consent">
        <input type="hidden" name="request_id" value={o.requestId} />
        <input type="hidden" name="csrf_token" value={o.csrf} />
        <div class="actions">
          <button type="submit" name="decision" value="deny">
            Deny
          </button>
          <button type="submit" name="decision" value="allow" class="primary">
            Allow
          </button>
        </div>
      </form>
      <p class="muted">After you answer you go back to {o.redirectHost}.</p>
    </Layout>,
  )
}

export function logoutConfirmPage(c: Context<AppEnv>, o: { csrf: string; clientId?: string; postLogoutRedirectUri?: string; state?: string; appName?: string }) {
  return renderPage(
    c,
    <Layout title="Sign out?">
      <h1>Sign out of UAP Edge?</h1>
      <p>{o.appName ? `${o.appName} asks to sign you out.` : 'An application asks to sign you out.'} This signs you out of every application you use with this account on this browser.</p>
      <form method="post" action="/oauth2/end_session">
        <input type="hidden" name="csrf_token" value={o.csrf} />
        {o.clientId ? <input type="hidden" name="client_id" value={o.clientId} /> : null}
        {o.postLogoutRedirectUri ? <input type="hidden" name="post_logout_redirect_uri" value={o.postLogoutRedirectUri} /> : null}
        {o.state ? <input type="hidden" name="state" value={o.state} /> : null}
        <div class="actions">
          <button type="submit" name="confirm" value="no">
            Stay signed in
          </button>
          <button type="submit" name="confirm" value="yes" class="primary">
            Sign out
          </button>
        </div>
      </form>
    </Layout>,
  )
}

export function messagePage(c: Context<AppEnv>, title: string, message: string) {
  return renderPage(
    c,
    <Layout title={title}>
      <h1>{title}</h1>
      <p>{message}</p>
    </Layout>,
  )
}
