import { createRoute, z } from '@hono/zod-openapi'
import { pick, jsonBody } from '../lib/openapi'
import { router } from '../context'
import { MobileField } from '../lib/mobile'
import { CaptchaErrors } from '../captcha/errors'
import { requireSignedApp } from '../signing/verify'
import { signedRoute } from '../signing/routes'
import { verifyCaptcha } from '../captcha/service'
import { registrationClosed, registrationOpen } from '../account/service'
import type { Context } from 'hono'
import type { AppEnv } from '../context'
import { fromAcceptLanguage, localeOf, type Locale } from '../pages/i18n'
import { sendSmsCode, SMS_CODE_TTL_S, SMS_RESEND_COOLDOWN_S } from './service'

/** Signed partner call. Mounted at /api/v1/open/sms. */
export const smsRoutes = router()



export const CaptchaFields = {
  captcha_id: z.string().min(1).max(64).openapi({ example: '6f1c0b7e-2a4d-4c1e-9f3a-7b5d2e8c1a90', description: 'From GET /api/v1/utils/captcha' }),
  captcha_code: z.string().min(1).max(32).openapi({ example: 'K7WPA', description: 'What the user read in the picture (case-insensitive)' }),
}

export const invalidCaptcha = () => CaptchaErrors.invalid_captcha()

/** The optional language of an SMS an API call asks for (docs: README "SMS codes"). */
export const SmsLangField = {
  lang: z
    .string()
    .max(35)
    .optional()
    .openapi({
      example: 'zh-CN',
      description: 'Language of the SMS text: `en` or `zh-CN` (any `zh-*` tag gives Simplified Chinese, any `en-*` English). Without it (or with another language) the Accept-Language header of the call decides, then English.',
    }),
}

/** `lang` of the body, else the call's Accept-Language (RFC 9110 §12.5.4), else English. */
export function requestedSmsLocale(c: Context<AppEnv>, lang: string | undefined): Locale {
  return localeOf(lang) ?? fromAcceptLanguage(c.req.header('Accept-Language')) ?? 'en'
}

const SmsSent = z
  .object({
    sent: z.literal(true),
    expires_in: z.number().int().openapi({ example: SMS_CODE_TTL_S }),
    resend_after: z.number().int().openapi({ example: SMS_RESEND_COOLDOWN_S }),
  })
  .openapi('SmsSent')

smsRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/send',
    tags: ['Open: account'],
    summary: 'Send a one-time SMS code',
    description: [
      'Signed request (X-UAP-App-Id, X-UAP-Timestamp, X-UAP-Nonce, X-UAP-Signature; see the signing guide).',
      'Requires a captcha answer (`GET /api/v1/utils/captcha`); the captcha is spent by this call, right or wrong.',
      'Sends a six-digit code valid 5 minutes (at most 5 checks) for `purpose` `reset` (default, used by `POST /api/v1/open/pwd/reset`) or `register` (used by `POST /api/v1/auth/register`).',
      'Limits per number and purpose: one code per 60 s (429 `sms_cooldown`), 10 per 24 h (429 `sms_daily_limit`), both with Retry-After.',
      'The answer never tells whether the number has an account: for `reset` and an unknown number the reply is the same and simply no SMS is sent.',
      'The text is in `lang` (`en` or `zh-CN`), else in the language of the Accept-Language header, else English.',
    ].join(' '),
    ...signedRoute(requireSignedApp),
    request: {
      body: jsonBody(
        z.object({
          mobile: MobileField,
          purpose: z.enum(['reset', 'register']).default('reset').openapi({ example: 'reset' }),
          ...CaptchaFields,
          ...SmsLangField,
        }),
      ),
    },
    responses: { 200: { description: 'Accepted: if the number can receive a code for this purpose, it is on its way', content: { 'application/json': { schema: SmsSent } } }, ...pick(400, 401, 403, 429) },
  }),
  async (c) => {
    const body = c.req.valid('json')
    if (!(await verifyCaptcha(c.env, body.captcha_id, body.captcha_code))) throw invalidCaptcha()
    if (body.purpose === 'register' && !registrationOpen(c.env)) throw registrationClosed()
    const r = await sendSmsCode(c.env, { mobile: body.mobile, purpose: body.purpose, locale: requestedSmsLocale(c, body.lang) }, {
      requestId: c.get('requestId'),
      ip: c.get('clientIp'),
      appId: c.get('app')!.appId,
      waitUntil: (p) => c.executionCtx.waitUntil(p),
    })
    c.header('Cache-Control', 'no-store')
    return c.json({ sent: true as const, ...r }, 200)
  },
)
