import { z, type OpenAPIHono } from '@hono/zod-openapi'

type OpenAPIRegistry = OpenAPIHono['openAPIRegistry']
type PathConfig = Parameters<OpenAPIRegistry['registerPath']>[0]

/** The portal's pages (plain Hono routes rendering hono/jsx), described for /docs/admin. */
const html = (description: string) => ({ description, content: { 'text/html': { schema: z.string() } } })
const toLogin = { description: 'Not signed in: to /page/login with return_to (303)' }
const form = (fields: Record<string, z.ZodType>) => ({ body: { content: { 'application/x-www-form-urlencoded': { schema: z.object({ csrf_token: z.string(), ...fields }) } }, required: true } })
const lang = z.object({ lang: z.enum(['en', 'zh-CN']).optional().openapi({ description: 'Switch the language (remembered in the `__Host-uap_lang` cookie); otherwise the cookie, then Accept-Language' }) })
const refused = { 400: html('A body that is not a readable form'), 403: html('CSRF refused') }

const PAGES: Omit<PathConfig, 'tags'>[] = [
  {
    method: 'get',
    path: '/page/home',
    summary: 'Portal: my apps',
    description: "Where sign-in lands without return_to. The active apps the user has an active mapping in, with icon, name and description; an OIDC app opens through its initiate_login_uri (OpenID Connect Core 1.0 §4: `iss`, `target_link_uri`) or its home_url, a SIMPLE_API app through the ticket hop `/page/sso/simple`.",
    request: { query: lang },
    responses: { 200: html('The list'), 303: toLogin },
  },
  { method: 'get', path: '/page/home/profile', summary: 'Portal: profile', description: 'Name and email; the mobile number and the form to change it.', request: { query: lang }, responses: { 200: html('The form'), 303: toLogin } },
  {
    method: 'post',
    path: '/page/home/profile',
    summary: 'Portal: save the profile',
    description: 'Sets name and email (empty clears). Audited as `portal.profile_updated` with the names of the changed fields.',
    request: form({ name: z.string().optional(), email: z.string().optional() }),
    responses: { 200: html('Saved'), 303: toLogin, ...refused, 400: html('Form errors, or a body that is not a readable form') },
  },
  {
    method: 'post',
    path: '/page/home/profile/mobile',
    summary: 'Portal: change the mobile number (two steps)',
    description:
      '`step=send`: `new_mobile` → a code to that number (purpose `change_mobile`; the same answer whether it has an account or not; cooldown, daily cap and `sms_ip` as for the other codes). `step=finish`: `new_mobile`, `sms_code`, `current_password` → the password is checked first (a wrong one spends no code; `portal_password` limit), then the code, then the number changes. A number that has an account is reported (409) only after its code was verified. Audited as `portal.mobile_changed` / `portal.mobile_change_failed`.',
    request: form({ step: z.enum(['send', 'finish']), new_mobile: z.string(), sms_code: z.string().optional(), current_password: z.string().optional() }),
    responses: { 200: html('Code sent, or number changed'), 303: toLogin, ...refused, 400: html('Form errors, a wrong code or password, or a body that is not a readable form'), 409: html('The number already has an account'), 429: html('SMS cooldown, daily cap, too many wrong codes or password attempts') },
  },
  { method: 'get', path: '/page/home/security', summary: 'Portal: security', description: 'The password form and the recent security activity from the audit log (sign-ins with time, IP and device, failed sign-ins, password and profile changes, sessions ended, consents).', request: { query: lang }, responses: { 200: html('The page'), 303: toLogin } },
  {
    method: 'post',
    path: '/page/home/security/password',
    summary: 'Portal: change the password',
    description: 'Needs the current password (a wrong one is audited as `portal.password_change_failed`); `sign_out_others=yes` ends every other session of the user in the same batch (refresh tokens revoked, back-channel logout). Rate limited per user (`portal_password`). Audited as `portal.password_changed`.',
    request: form({ current_password: z.string(), new_password: z.string(), new_password_confirm: z.string(), sign_out_others: z.enum(['yes']).optional() }),
    responses: { 200: html('Changed'), 303: toLogin, ...refused, 400: html('Form errors, a wrong current password, or a body that is not a readable form'), 429: html('Too many attempts for this account') },
  },
  { method: 'get', path: '/page/home/sessions', summary: 'Portal: sessions and devices', description: "The user's live sessions: device (from the user agent), IP, signed in, last active; this browser's marked.", request: { query: lang }, responses: { 200: html('The list'), 303: toLogin } },
  {
    method: 'post',
    path: '/page/home/sessions/end',
    summary: 'Portal: sign out one session',
    description: "Ends one of the user's own live sessions and its refresh tokens; the session-end hooks run (OIDC back-channel logout). An id that is not a live session of this user (another user's included) is 404 and changes nothing. Audited as `portal.session_ended`.",
    request: form({ session_id: z.string() }),
    responses: { 200: html('Signed out'), 303: { description: "This browser's own session: to /page/login?signed_out=1; not signed in: to /page/login" }, ...refused, 404: html('Not a live session of this user') },
  },
  {
    method: 'post',
    path: '/page/home/sessions/end-others',
    summary: 'Portal: sign out every other session',
    description: "Ends every live session of the user except this browser's, with their refresh tokens; back-channel logout follows. Audited as `portal.other_sessions_ended`.",
    request: form({}),
    responses: { 200: html('Signed out'), 303: toLogin, ...refused },
  },
  { method: 'get', path: '/page/home/authorized', summary: 'Portal: authorized apps', description: 'The OIDC apps the user consented to, with the scopes granted and the date.', request: { query: lang }, responses: { 200: html('The list'), 303: toLogin } },
  {
    method: 'post',
    path: '/page/home/authorized/revoke',
    summary: 'Portal: revoke an app',
    description: "Deletes the user's consent for the app and revokes every refresh token the app holds for the user (one batch with the audit row `oidc.consent.revoked`). The next authorization asks for consent again.",
    request: form({ client_id: z.string() }),
    responses: { 200: html('Revoked'), 303: toLogin, ...refused, 404: html('The user has no consent for this app') },
  },
]

export function documentPortal(registry: OpenAPIRegistry) {
  for (const p of PAGES) registry.registerPath({ ...p, tags: ['Pages'] } as PathConfig)
}
