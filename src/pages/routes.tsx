import { Hono } from 'hono'
import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { log } from '../lib/logger'
import { Alert, brand, renderPage as render } from './layout'
import { stylesheet } from './style'
import { CSRF_FIELD, csrfAccepted, postedForm } from './security'
import type { C } from './form'
import { pageLanguage } from './i18n'
import { pageOnError } from './errors'

export { pageErrorResponse, pageRefusalResponse } from './errors'
import { signInRoutes } from './signin'
import { codeFlowRoutes } from './code-flows'
import { signOutRoutes } from './signout'

/**
 * Hosted pages: /page/login, /page/register, /page/pwd/reset, /page/logout, in English and
 * Simplified Chinese (src/pages/i18n).
 * Server-rendered HTML forms (hono/jsx), no JavaScript. Every POST passes the CSRF check.
 * Not part of the OpenAPI documents (they are pages, not API operations; src/pages/openapi.ts
 * describes them). Mounted at /page.
 */
export const pageRoutes = new Hono<AppEnv>()

pageRoutes.get('/assets/style.css', (c) => {
  c.header('Content-Type', 'text/css; charset=utf-8')
  c.header('Cache-Control', 'public, max-age=300')
  return c.body(stylesheet(brand(c)))
})


/** Every form POST under /page/* (mounted in app.ts): the double-submit CSRF check. */
export const pageCsrf: MiddlewareHandler<AppEnv> = async (c, next) => {
  const form = await postedForm(c)
  const { t } = pageLanguage(c)
  const again = (
    <p>
      <a href={c.req.path}>{t.openPageAgain}</a>
      {t.andResubmit}
    </p>
  )
  if (!form) {
    log.warn('page.form_unreadable', { request_id: c.get('requestId'), path: c.req.path, content_type: c.req.header('Content-Type') ?? null })
    return render(c, 400, t.formUnreadableTitle, <><Alert message={t.formUnreadable} />{again}</>)
  }
  if (csrfAccepted(c, form[CSRF_FIELD])) return next()
  log.warn('page.csrf_refused', { request_id: c.get('requestId'), path: c.req.path })
  return render(c, 403, t.formExpiredTitle, <><Alert message={t.formExpired} />{again}</>)
}

// A refused captcha/SMS rate limit or an unexpected error still gets a page, not JSON.
pageRoutes.onError((err, c) => pageOnError(err, c as C))

pageRoutes.route('/', signInRoutes)
pageRoutes.route('/', codeFlowRoutes)
pageRoutes.route('/', signOutRoutes)
