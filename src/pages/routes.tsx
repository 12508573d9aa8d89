import { Hono } from 'hono'
import type { MiddlewareHandler } from 'hono'
import type { AppEnv } from '../context'
import { ApiError } from '../lib/errors'
import { log } from '../lib/logger'
import { Alert, brand, renderPage as render } from './layout'
import { stylesheet } from './style'
import { CSRF_FIELD, applyPageHeaders, csrfAccepted, postedForm } from './security'
import { waitText, type C } from './form'
import { signInRoutes } from './signin'
import { codeFlowRoutes } from './code-flows'
import { signOutRoutes } from './signout'

/**
 * Hosted pages: /page/login, /page/register, /page/pwd/reset, /page/logout.
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
  if (!form) {
    log.warn('page.form_unreadable', { request_id: c.get('requestId'), path: c.req.path, content_type: c.req.header('Content-Type') ?? null })
    return render(
      c,
      400,
      'Form not readable',
      <>
        <Alert message="This form could not be read: its contents were damaged or sent in a format this site does not accept. Nothing was changed." />
        <p>
          <a href={c.req.path}>Open the page again</a> and resubmit.
        </p>
      </>,
    )
  }
  if (csrfAccepted(c, form[CSRF_FIELD])) return next()
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
}

/**
 * A page for an error answered outside the pages' own handlers (src/app.ts: a body over the
 * size limit, a body the parser refused, an unexpected failure), with the pages' headers.
 * What went wrong technically is for the log; the page says what the person can do.
 */
export async function pageErrorResponse(c: C, status: number) {
  const [title, message] =
    status === 413
      ? ['Form too large', 'The form sent was larger than this site accepts. Nothing was changed.']
      : status < 500
        ? ['Cannot continue', 'This request could not be read: its contents were damaged or sent in a format this site does not accept. Nothing was changed.']
        : ['Something went wrong', `Something went wrong on our side. Please try again. (Request ${c.get('requestId')})`]
  const res = await render(c, status, title, <Alert message={message} />)
  applyPageHeaders(c, res.headers)
  return res
}

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


pageRoutes.route('/', signInRoutes)
pageRoutes.route('/', codeFlowRoutes)
pageRoutes.route('/', signOutRoutes)
