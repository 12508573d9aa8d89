import { defineErrors } from '../lib/errors'

export const SmsErrors = defineErrors({
  sms_cooldown: { status: 429, message: 'A code was sent to this number moments ago; retry after Retry-After seconds' },
  sms_daily_limit: { status: 429, message: 'Too many codes were sent to this number for this purpose today' },
  invalid_sms_code: { status: 400, message: 'The SMS code is wrong or has expired' },
  too_many_attempts: { status: 429, message: 'Too many wrong codes; request a new code' },
  sms_code_locked: { status: 429, message: 'Too many wrong codes for this number today; codes are refused until Retry-After seconds have passed' },
})
