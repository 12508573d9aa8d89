import { z, type OpenAPIHono } from '@hono/zod-openapi'

type OpenAPIRegistry = OpenAPIHono['openAPIRegistry']
type PathConfig = Parameters<OpenAPIRegistry['registerPath']>[0]

/**
 * The hosted pages are HTML forms (plain Hono routes rendering hono/jsx), so they are
 * described here for /docs/admin: what each page does and which form fields it takes.
 */
const html = (description: string) => ({ description, content: { 'text/html': { schema: z.string() } } })
const seeOther = { description: 'Redirect (303) after a successful form post' }
const form = (fields: Record<string, z.ZodType>) => ({ body: { content: { 'application/x-www-form-urlencoded': { schema: z.object({ csrf_token: z.string(), ...fields }) } }, required: true } })
/** Every page is in English and Simplified Chinese (docs/pages.md). */
const lang = z.enum(['en', 'zh-CN']).optional().openapi({ description: 'Switch the language (remembered in the `__Host-uap_lang` cookie); otherwise the cookie, then Accept-Language, then English' })
const returnTo = z.string().optional().openapi({ description: 'Where to continue after sign-in: a path on this site or a registered redirect URI' })

const PAGES: Omit<PathConfig, 'tags'>[] = [
  {
    method: 'get',
    path: '/page/login',
    summary: 'Sign-in page',
    description:
      'The hosted sign-in form. Signed in already: continues to `return_to` (unless `prompt=login`). With `app_id` + `redirect_uri` of a SIMPLE_API app: a signed-in browser goes straight to the app with a ticket; otherwise it signs in first. A captcha appears after 5 failures for the number or 10 from the network in 15 minutes (the counters of the login API).',
    request: { query: z.object({ lang, return_to: returnTo, prompt: z.enum(['login']).optional(), app_id: z.string().optional(), redirect_uri: z.string().optional() }) },
    responses: { 200: html('The form, or "signed in as"'), 302: { description: 'To the SIMPLE_API app with a ticket' }, 303: { description: 'To return_to' }, 400: html('Unknown app_id or unregistered redirect_uri'), 403: html('Signed in, but the account is disabled or has no access to the SIMPLE_API app'), 429: html('Too many captcha pictures asked for from this network') },
  },
  {
    method: 'post',
    path: '/page/login',
    summary: 'Sign in',
    description: 'Checks the password with the same failure counters as `POST /api/v1/auth/login`: past the threshold the form needs the captcha (`captcha_id`, `captcha_code`; a missing or wrong answer is a 400 form error and the password is not checked), and past the hard limit sign-in is refused (429). Sets the `AUTH_SESSION_ID` cookie (HttpOnly, Secure, SameSite=Lax) and redirects to `return_to`.',
    request: form({ mobile: z.string(), password: z.string(), return_to: returnTo, captcha_id: z.string().optional(), captcha_code: z.string().optional(), step: z.enum(['login', 'new_captcha']).optional() }),
    responses: { 303: seeOther, 400: html('Form errors, a missing or wrong captcha, or a body that is not a readable form'), 401: html('Wrong mobile or password'), 403: html('CSRF refused or account disabled'), 429: html('Locked out for the rest of the window, or too many captchas from the network') },
  },
  {
    method: 'get',
    path: '/page/register',
    summary: 'Registration page',
    description: 'Step 1: mobile + captcha, which sends an SMS code. Open only when REGISTRATION_OPEN is true.',
    request: { query: z.object({ lang, return_to: returnTo }) },
    responses: { 200: html('The form'), 403: html('Registration closed'), 429: html('Too many captcha pictures asked for from this network') },
  },
  {
    method: 'post',
    path: '/page/register',
    summary: 'Register (two steps)',
    description: '`step=send`: mobile, captcha_id, captcha_code → SMS code sent. `step=finish`: mobile, sms_code, password, password_confirm, name → account created and signed in.',
    request: form({ step: z.enum(['send', 'finish', 'new_captcha']), mobile: z.string(), captcha_id: z.string().optional(), captcha_code: z.string().optional(), sms_code: z.string().optional(), password: z.string().optional(), password_confirm: z.string().optional(), name: z.string().optional(), return_to: returnTo }),
    responses: { 200: html('Next step'), 303: seeOther, 400: html('Form errors, or a body that is not a readable form'), 403: html('CSRF refused or registration closed'), 409: html('The number already has an account (shown only after its SMS code was verified)'), 429: html('Too many codes or wrong codes for this number, or too many requests from this network') },
  },
  {
    method: 'get',
    path: '/page/pwd/reset',
    summary: 'Password reset page',
    description: 'Step 1: mobile + captcha, which sends an SMS code (the answer is the same whether the number is registered or not).',
    request: { query: z.object({ lang, return_to: returnTo }) },
    responses: { 200: html('The form'), 429: html('Too many captcha pictures asked for from this network') },
  },
  {
    method: 'post',
    path: '/page/pwd/reset',
    summary: 'Reset the password (two steps)',
    description: '`step=send`: mobile, captcha_id, captcha_code → SMS code. `step=finish`: mobile, sms_code, password, password_confirm → password set, every session of the user ended.',
    request: form({ step: z.enum(['send', 'finish', 'new_captcha']), mobile: z.string(), captcha_id: z.string().optional(), captcha_code: z.string().optional(), sms_code: z.string().optional(), password: z.string().optional(), password_confirm: z.string().optional(), return_to: returnTo }),
    responses: { 200: html('Next step, or "password changed"'), 400: html('Form errors, or a body that is not a readable form'), 403: html('CSRF refused or account disabled'), 429: html('Too many codes or wrong codes for this number, or too many requests from this network') },
  },
  {
    method: 'get',
    path: '/page/logout',
    summary: 'Sign-out confirmation page',
    description: 'Asks the user to confirm signing out (a GET never signs out, so links and prefetching cannot).',
    request: { query: z.object({ lang }) },
    responses: { 200: html('The confirmation form') },
  },
  {
    method: 'post',
    path: '/page/logout',
    summary: 'Sign out',
    description: 'Ends the browser session and every refresh token issued under it (single sign-out hooks run: OIDC back-channel logout).',
    request: form({}),
    responses: { 303: { description: 'To /page/login?signed_out=1' }, 400: html('A body that is not a readable form'), 403: html('CSRF refused') },
  },
  {
    method: 'get',
    path: '/page/assets/style.css',
    summary: 'Hosted pages stylesheet',
    description: 'The pages\' CSS with the configured brand colour (the CSP allows styles only from here).',
    responses: { 200: { description: 'CSS', content: { 'text/css': { schema: z.string() } } } },
  },
]

export function documentPages(registry: OpenAPIRegistry) {
  for (const p of PAGES) registry.registerPath({ ...p, tags: ['Pages'] } as PathConfig)
}
