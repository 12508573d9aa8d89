import { Hono } from 'hono'
import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { ApiError } from '../lib/errors'
import { log } from '../lib/logger'
import { Alert, brand, renderPage as render } from './layout'
import { stylesheet } from './style'
import { CSRF_FIELD, applyPageHeaders, csrfAccepted, postedForm } from './security'
import { waitText, type C } from './form'
import { pageLanguage } from './i18n'
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

/**
 * A page for an error answered outside the pages' own handlers (src/app.ts: no such page, a
 * method the page does not take, a body over the size limit, a body the parser refused, an
 * unexpected failure), with the pages' headers, in the page's language. What went wrong
 * technically is for the log; the page says what the person can do.
 */
export async function pageErrorResponse(c: C, status: number) {
  const { t } = pageLanguage(c)
  const [title, message] =
    status === 404
      ? [t.notFoundTitle, t.notFound]
      : status === 405
        ? [t.methodNotAllowedTitle, t.methodNotAllowed]
        : status === 413
          ? [t.formTooLargeTitle, t.formTooLarge]
          : status < 500
            ? [t.cannotContinueTitle, t.requestUnreadable]
            : [t.somethingWrongTitle, t.somethingWrong(c.get('requestId'))]
  const res = await render(c, status, title, <Alert message={message} />)
  applyPageHeaders(c, res.headers)
  return res
}

/**
 * A refusal (ApiError below 500) as a page in the page's language: the catalog's words for its
 * code, else, in English, the error's own message; the code is shown for whoever helps.
 */
export function refusalPage(c: C, err: ApiError) {
  const { locale, t } = pageLanguage(c)
  const message = t.refusals[err.code] ?? (locale === 'en' ? err.message : t.requestRefused)
  return render(
    c,
    err.status,
    t.cannotContinueTitle,
    <>
      <Alert message={message} />
      <p class="hint">
        {t.errorCodeLabel}
        <code>{err.code}</code>
      </p>
    </>,
  )
}

/** refusalPage for an error answered by src/app.ts, with the pages' headers and the error's own (Retry-After). */
export async function pageRefusalResponse(c: C, err: ApiError) {
  const res = err.status === 429 || err.status >= 500 ? await pageOnError(err, c) : await refusalPage(c, err)
  for (const [k, v] of Object.entries(err.headers ?? {})) res.headers.set(k, v)
  applyPageHeaders(c, res.headers)
  return res
}

/** The page for an error a page handler threw: a rate limit, a refusal, or a failure (logged). */
export function pageOnError(err: Error, c: C, event = 'page.error') {
  const { t } = pageLanguage(c)
  if (err instanceof ApiError && err.status === 429) return render(c, 429, t.pleaseWaitTitle, <Alert message={t.tooManyRequests(waitText(err, t))} />)
  // A refusal the user should read (unregistered redirect_uri, no access to an app): a page, never a redirect.
  if (err instanceof ApiError && err.status < 500) return refusalPage(c, err)
  log.error(event, { request_id: c.get('requestId'), error: err.message, stack: err.stack })
  return render(c, 500, t.somethingWrongTitle, <Alert message={t.somethingWrong(c.get('requestId'))} />)
}

// A refused captcha/SMS rate limit or an unexpected error still gets a page, not JSON.
pageRoutes.onError((err, c) => pageOnError(err, c as C))

pageRoutes.route('/', signInRoutes)
pageRoutes.route('/', codeFlowRoutes)
pageRoutes.route('/', signOutRoutes)
