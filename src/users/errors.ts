import { defineErrors } from '../lib/errors'

export const UserErrors = defineErrors({
  user_not_found: { status: 404, code: 'not_found', message: 'User not found' },
  mobile_taken: { status: 409, message: 'A user with this mobile number already exists' },
})
