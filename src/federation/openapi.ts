import { z, type OpenAPIHono } from '@hono/zod-openapi'

type OpenAPIRegistry = OpenAPIHono['openAPIRegistry']
type PathConfig = Parameters<OpenAPIRegistry['registerPath']>[0]

/** The federation pages (plain Hono routes rendering hono/jsx), described for /docs/admin like src/pages/openapi.ts does. */
const html = (description: string) => ({ description, content: { 'text/html': { schema: z.string() } } })
const form = (fields: Record<string, z.ZodType>) => ({ body: { content: { 'application/x-www-form-urlencoded': { schema: z.object({ csrf_token: z.string(), ...fields }) } }, required: true } })

const PAGES: Omit<PathConfig, 'tags'>[] = [
  {
    method: 'post',
    path: '/page/federation/start',
    summary: 'Start a sign-in with another identity provider',
    description:
      'The "Sign in with …" buttons of /page/login. Creates the flow (state, PKCE verifier, nonce, return_to), bound to this browser by the `__Host-uap_federation` cookie (HttpOnly, Secure, SameSite=Lax), and redirects to the provider.',
    request: form({ provider: z.string(), return_to: z.string().optional() }),
    responses: { 303: { description: "To the provider's authorization endpoint" }, 400: html('Unreadable form'), 403: html('CSRF refused'), 404: html('No enabled provider with this id'), 429: html('Rate limited'), 502: html('The provider could not be reached (discovery)') },
  },
  {
    method: 'get',
    path: '/page/federation/{provider}/callback',
    summary: "The provider's redirect back",
    description:
      'Register this URL at the provider. Redeems `state` once, only in the browser that started the flow; exchanges the code with the PKCE verifier; verifies the ID token (OIDC) or reads the user API. A linked identity is signed in and continues to return_to (an OIDC authorization request, a simple-SSO hop, …); an unknown one goes to /page/federation/bind.',
    request: {
      params: z.object({ provider: z.string().openapi({ param: { name: 'provider', in: 'path' } }) }),
      query: z.object({ code: z.string().optional(), state: z.string().optional(), iss: z.string().optional(), error: z.string().optional() }),
    },
    responses: {
      303: { description: 'Signed in: to return_to; or to the binding page' },
      400: html('Replayed, expired, foreign or tampered state; the provider refused; the ID token or nonce did not verify; a provider id over 64 characters'),
      403: html('The linked account is disabled'),
      404: html('No enabled provider with this id'),
      409: html('The identity was linked to another account meanwhile'),
      429: html('Rate limited'),
      502: html('The provider could not be reached'),
    },
  },
  {
    method: 'get',
    path: '/page/federation/bind',
    summary: 'Link a mobile number (first sign-in with an identity)',
    description: 'Step 1: mobile + captcha, which sends an SMS code (purpose `bind`). Only the browser that started the flow can open it.',
    request: { query: z.object({ ticket: z.string() }) },
    responses: { 200: html('The form'), 400: html('Unknown, expired or finished ticket, or another browser') },
  },
  {
    method: 'post',
    path: '/page/federation/bind',
    summary: 'Link a mobile number (three steps)',
    description:
      '`step=send`: mobile, captcha → SMS code (the same answer whether the number has an account). `step=verify`: mobile, sms_code → the code proves the number: linked to its account and signed in (303), or, without an account and with registration open, the create-account form. `step=create`: name, password, password_confirm → account created, identity linked, signed in.',
    request: form({ ticket: z.string(), step: z.enum(['send', 'verify', 'create', 'new_captcha']), mobile: z.string().optional(), captcha_id: z.string().optional(), captcha_code: z.string().optional(), sms_code: z.string().optional(), name: z.string().optional(), password: z.string().optional(), password_confirm: z.string().optional() }),
    responses: {
      200: html('Next step'),
      303: { description: 'Signed in: to return_to' },
      400: html('Form errors, wrong code, or an unusable ticket'),
      403: html('CSRF refused, registration closed for an unknown number, or account disabled'),
      409: html('The identity was linked meanwhile, or the number was registered meanwhile'),
      429: html('Too many codes or wrong codes'),
    },
  },
  {
    method: 'get',
    path: '/page/federation/identities',
    summary: 'My sign-in methods',
    description: 'The signed-in user\'s linked identities, each with an Unlink button. Without a session: to /page/login and back.',
    responses: { 200: html('The list'), 303: { description: 'To /page/login' } },
  },
  {
    method: 'post',
    path: '/page/federation/identities/unlink',
    summary: 'Unlink an identity',
    description: 'Unlinks one of the signed-in user\'s identities (refused when it is the only way to sign in).',
    request: form({ id: z.string() }),
    responses: { 303: { description: 'Back to the list' }, 400: html('Unreadable form'), 403: html('CSRF refused'), 404: html('Not one of your identities'), 409: html('The only way to sign in') },
  },
]

export function documentFederationPages(registry: OpenAPIRegistry) {
  for (const p of PAGES) registry.registerPath({ ...p, tags: ['Pages'] } as PathConfig)
}
