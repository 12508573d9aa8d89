import { defineErrors } from '../lib/errors'

export const AccountErrors = defineErrors({
  registration_closed: { status: 403, message: 'Registration is closed; ask an administrator for an account' },
  mobile_taken: { status: 409, message: 'This mobile number already has an account; sign in or reset the password' },
  account_disabled: { status: 403, message: 'This account is disabled' },
})
