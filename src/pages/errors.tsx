import { ApiError } from '../lib/errors'
import { log } from '../lib/logger'
import { Alert, renderPage as render } from './layout'
import { applyPageHeaders } from './security'
import { waitText, type C } from './form'
import { pageLanguage } from './i18n'

/**
 * The hosted pages' error pages, in the page's language: what src/app.ts answers on /page/*
 * (no such page, wrong method, body too large, unreadable, a refusal, a failure) and what the
 * page routers' onError answer.
 */

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

