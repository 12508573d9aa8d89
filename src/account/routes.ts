import { createRoute, z } from '@hono/zod-openapi'
import { OPEN, pick, jsonBody } from '../lib/openapi'
import { router } from '../context'
import { MobileField } from '../lib/mobile'
import { typedText } from '../lib/text'
import { enforceRateLimit } from '../ratelimit'
import { UserProfile, publicUser } from '../users/view'
import { verifyCaptcha } from '../captcha/service'
import { invalidCaptcha } from '../sms/routes'
import { requireSignedApp } from '../signing/verify'
import { signedRoute } from '../signing/routes'
import { registerUser, resetPassword, registrationOpen, registrationClosed } from './service'
import { PASSWORD_MAX_LENGTH as PASSWORD_MAX, PASSWORD_MIN_LENGTH as PASSWORD_MIN } from '../lib/password'

/** Signed partner call: password reset with an SMS code. Mounted at /api/v1/open/pwd. */
export const passwordResetRoutes = router()

/** Self-service sign-up. Mounted at /api/v1/auth. */
export const registerRoutes = router()

const SmsCode = z.string().regex(/^\d{6}$/, 'must be the six digits from the SMS').openapi({ example: '493817' })
const NewPassword = z.string().min(PASSWORD_MIN).max(PASSWORD_MAX).openapi({ example: 'a long new passphrase' })

passwordResetRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/reset',
    tags: ['Open: account'],
    summary: 'Reset a password with an SMS code',
    description:
      'Signed request. Flow: `GET /api/v1/utils/captcha` → `POST /api/v1/open/sms/send` (purpose `reset`) → this call with the code from the SMS. Sets the new password and signs the user out everywhere: every session and refresh token is revoked, and access tokens of those sessions are refused by UAP Edge at once. A wrong or expired code is 400 `invalid_sms_code` (with `attempts_left`); after 5 wrong codes 429 `too_many_attempts` until a new code is requested; after 10 wrong codes for the number in 24 h, across resends, 429 `sms_code_locked` (Retry-After) whatever the code.',
    ...signedRoute(requireSignedApp),
    request: { body: jsonBody(z.object({ mobile: MobileField, sms_code: SmsCode, new_password: NewPassword })) },
    responses: { 200: { description: 'Password changed; all sessions ended', content: { 'application/json': { schema: z.object({ ok: z.literal(true) }).openapi('PasswordReset') } } }, ...pick(400, 401, 403, 429) },
  }),
  async (c) => {
    const body = c.req.valid('json')
    await resetPassword(c.env, { mobile: body.mobile, smsCode: body.sms_code, newPassword: body.new_password }, { requestId: c.get('requestId'), ip: c.get('clientIp'), appId: c.get('app')!.appId })
    return c.json({ ok: true as const }, 200)
  },
)

registerRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/register',
    tags: ['Auth'],
    summary: 'Create an account',
    description: [
      'Only when registration is open (REGISTRATION_OPEN=true), else 403 `registration_closed`.',
      'Flow: `GET /api/v1/utils/captcha` → `POST /api/v1/open/sms/send` with `purpose: "register"` (spends the captcha; a code is sent whether or not the number is taken, so that step reveals nothing) → this call with the SMS code.',
      '`captcha_id` + `captcha_code` are optional here: when given (a fresh captcha, e.g. shown on the final form) they are checked too; the required proof is the SMS code, which itself needed a captcha.',
      'A number that already has an account gets 409 `mobile_taken`, but only after its SMS code was verified, i.e. only to the owner of the number. Rate limited per client IP (`register_ip`, and `sms_verify_ip` for the code check); a wrong code is 400 `invalid_sms_code`, and after 10 wrong codes for the number in 24 h 429 `sms_code_locked`. Returns the new profile; sign in with `POST /api/v1/auth/login`.',
    ].join(' '),
    ...OPEN,
    request: {
      body: jsonBody(
        z.object({
          mobile: MobileField,
          password: NewPassword,
          name: typedText({ max: 100 }).optional().openapi({ example: 'Li Lei' }),
          sms_code: SmsCode,
          captcha_id: z.string().min(1).max(64).optional().openapi({ example: '6f1c0b7e-2a4d-4c1e-9f3a-7b5d2e8c1a90' }),
          captcha_code: z.string().min(1).max(32).optional().openapi({ example: 'K7WPA' }),
        }),
      ),
    },
    responses: { 201: { description: 'Account created', content: { 'application/json': { schema: z.object({ user: UserProfile }).openapi('Registered') } } }, ...pick(400, 403, 409, 429) },
  }),
  async (c) => {
    if (!registrationOpen(c.env)) throw registrationClosed()
    await enforceRateLimit(c, 'register_ip', c.get('clientIp'))
    const body = c.req.valid('json')
    if ((body.captcha_id || body.captcha_code) && !(await verifyCaptcha(c.env, body.captcha_id, body.captcha_code))) throw invalidCaptcha()
    const user = await registerUser(c.env, { mobile: body.mobile, password: body.password, name: body.name, smsCode: body.sms_code }, { requestId: c.get('requestId'), ip: c.get('clientIp') })
    return c.json({ user: publicUser(user) }, 201)
  },
)
