import type { Context } from 'hono'
import type { Child } from 'hono/jsx'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { AppEnv } from '../context'
import { getConfig } from '../env'
import { brandOf, type Brand } from './style'
import { CSRF_FIELD } from './security'
import { en, type Catalog } from './i18n/en'
import { LOCALES, catalogOf, pageLanguage, type Locale } from './i18n'

/**
 * Shared building blocks of every hosted page (/page/* and the OIDC consent, error and
 * sign-out pages). No script and no inline style anywhere: forms work as plain HTML and
 * the look comes from /page/assets/style.css, the only stylesheet the CSP allows.
 */

export const brand = (c: Context<AppEnv>): Brand => brandOf(getConfig(c.env))

/**
 * A complete page in the shared layout, in the page's language (src/pages/i18n) with its
 * language switch under the title. The security headers (CSP, framing, caching) are added
 * by the pageHeaders middleware of the route (src/pages/security.ts).
 */
export async function renderPage(c: Context<AppEnv>, status: number, title: string, body: Child, opts: PageOptions = {}) {
  const { locale, t } = pageLanguage(c)
  const switchHref = opts.switchHref === undefined ? defaultSwitchHref(c) : opts.switchHref
  const node = (
    <Page brand={brand(c)} title={title} {...opts} lang={opts.lang ?? locale}>
      {switchHref ? <LanguageSwitch href={switchHref} locale={locale} label={t.languageLabel} /> : null}
      {body}
    </Page>
  )
  // toString() is a promise when a component is async (one that reads D1, like the sign-in buttons)
  return c.html('<!DOCTYPE html>' + (await node.toString()), status as ContentfulStatusCode)
}

/**
 * Where the switch leads: the same address for a GET (the page again, in the other language);
 * the form's path for a POST, since repeating a form's answer is not a link's job.
 */
function defaultSwitchHref(c: Context<AppEnv>): string {
  const u = new URL(c.req.url)
  return c.req.method === 'GET' ? u.pathname + u.search : u.pathname
}

/**
 * `lang`: the page's language tag (default: the request's, src/pages/i18n); `wide`: the portal's
 * wider card; `header`: above the title; `switchHref`: the language switch's target (null: the
 * page draws its own, or none).
 */
export interface PageOptions {
  lang?: string
  wide?: boolean
  header?: Child
  switchHref?: string | null
}

export function Page(props: { brand: Brand; title: string; children?: Child } & PageOptions) {
  const { brand } = props
  return (
    <html lang={props.lang ?? 'en'}>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="robots" content="noindex, nofollow" />
        <title>{`${props.title} · ${brand.name}`}</title>
        <link rel="stylesheet" href="/page/assets/style.css" />
      </head>
      <body>
        <main aria-labelledby="page-title" class={props.wide ? 'wide' : undefined}>
          <p class="brand">
            {brand.logoUrl ? <img src={brand.logoUrl} alt="" /> : <span class="mark" aria-hidden="true" />}
            <span>{brand.name}</span>
          </p>
          {props.header ?? null}
          <h1 id="page-title">{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  )
}

/** Form-level error, announced by screen readers as soon as the page loads. */
export function Alert(props: { message?: string | null }) {
  return props.message ? (
    <div class="alert" role="alert" id="form-error">
      {props.message}
    </div>
  ) : null
}

/** Non-error news ("we sent a code"), announced politely. */
export function Notice(props: { message?: string | null }) {
  return props.message ? (
    <div class="notice" role="status" aria-live="polite">
      {props.message}
    </div>
  ) : null
}

export function Hidden(props: { name: string; value?: string | null }) {
  return props.value ? <input type="hidden" name={props.name} value={props.value} /> : null
}

export function Csrf(props: { token: string }) {
  return <input type="hidden" name={CSRF_FIELD} value={props.token} />
}

export interface FieldProps {
  name: string
  label: string
  type?: 'text' | 'tel' | 'password' | 'email'
  value?: string | null
  autocomplete?: string
  inputmode?: 'numeric' | 'tel' | 'text' | 'email'
  hint?: string
  error?: string | null
  required?: boolean
  autofocus?: boolean
  maxlength?: number
  minlength?: number
  pattern?: string
  extra?: Record<string, string>
  /** Before the error text, for screen readers that do not announce aria-invalid (default English). */
  errorPrefix?: string
}

/** Label + input + hint + error, tied together with for/id, aria-describedby and aria-invalid. */
export function Field(p: FieldProps) {
  const id = `f-${p.name}`
  const described = [p.hint ? `${id}-hint` : '', p.error ? `${id}-error` : ''].filter(Boolean).join(' ')
  return (
    <div>
      <label for={id}>{p.label}</label>
      <input
        id={id}
        name={p.name}
        type={p.type ?? 'text'}
        value={p.type === 'password' ? undefined : (p.value ?? undefined)}
        autocomplete={p.autocomplete}
        inputmode={p.inputmode}
        required={p.required ?? true}
        autofocus={p.autofocus}
        maxlength={p.maxlength}
        minlength={p.minlength}
        pattern={p.pattern}
        aria-invalid={p.error ? 'true' : undefined}
        aria-describedby={described || undefined}
        {...(p.extra ?? {})}
      />
      {p.hint ? (
        <p class="hint" id={`${id}-hint`}>
          {p.hint}
        </p>
      ) : null}
      {p.error ? (
        <p class="field-error" id={`${id}-error`}>
          {`${p.errorPrefix ?? 'Error: '}${p.error}`}
        </p>
      ) : null}
    </div>
  )
}

export interface CaptchaView {
  captcha_id: string
  image: string
}

/** The captcha picture, its id and the answer field. */
export function CaptchaField(p: { captcha: CaptchaView; error?: string | null; autofocus?: boolean; t?: Catalog }) {
  const t = p.t ?? en
  return (
    <div class="captcha">
      <input type="hidden" name="captcha_id" value={p.captcha.captcha_id} />
      <div class="picture">
        <img src={p.captcha.image} width={200} height={70} alt={t.captchaAlt} />
      </div>
      <Field
        name="captcha_code"
        label={t.captchaLabel}
        hint={t.captchaHint}
        error={p.error}
        errorPrefix={t.errorPrefix}
        autocomplete="off"
        maxlength={12}
        autofocus={p.autofocus}
        extra={{ autocapitalize: 'characters', spellcheck: 'false' }}
      />
    </div>
  )
}

/**
 * "Another picture" without JavaScript: a second submit button. It must come after the
 * form's main button, because Enter in a field activates the first submit button.
 */
export function CaptchaRefresh(p: { t?: Catalog } = {}) {
  const t = p.t ?? en
  return (
    <p class="hint">
      {t.captchaCantRead}
      <button type="submit" name="step" value="new_captcha" class="link" formnovalidate>
        {t.captchaAnother}
      </button>
    </p>
  )
}

/**
 * The language switch of a page: a link per language to `href` with `lang=` set (src/pages/i18n
 * remembers the choice), each named in its own language.
 */
export function LanguageSwitch(p: { href: string; locale: Locale; label: string }) {
  const link = (l: Locale) => {
    const u = new URL(p.href, 'http://x')
    u.searchParams.set('lang', l)
    return u.pathname + u.search
  }
  return (
    <p class="lang" aria-label={p.label}>
      {LOCALES.map((l, i) => (
        <>
          {i ? ' · ' : ''}
          <a href={link(l)} lang={l} hreflang={l} aria-current={l === p.locale ? 'true' : undefined}>
            {catalogOf(l).langName}
          </a>
        </>
      ))}
    </p>
  )
}
