import { defineErrors } from '../lib/errors'

export const CaptchaErrors = defineErrors({
  invalid_captcha: { status: 400, message: 'The captcha answer is wrong or the captcha has expired; fetch a new one' },
})
