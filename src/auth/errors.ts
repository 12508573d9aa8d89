import { defineErrors } from '../lib/errors'

export const AuthErrors = defineErrors({
  invalid_credentials: { status: 401, message: 'Invalid mobile number or password' },
  too_many_attempts: { status: 429, message: 'Too many failed sign-in attempts; try again later' },
  account_disabled: { status: 403, message: 'This account is disabled' },
  invalid_app: { status: 400, message: 'app_id does not name an active application' },
  user_not_mapped: { status: 403, message: 'This account has no access to the application' },
  invalid_grant: { status: 401, message: 'The refresh token is invalid, expired or revoked' },
  invalid_scope: { status: 400, message: 'A refresh keeps the scope of the original grant; omit scope (narrowing is not supported)' },
  invalid_token: { status: 401, message: 'The access token is invalid or expired' },
  bearer_missing: { status: 401, code: 'unauthorized', message: 'A bearer access token is required' },
  not_admin_audience: { status: 403, code: 'forbidden', message: 'This token is not valid for the admin API' },
  not_admin: { status: 403, code: 'forbidden', message: 'Admin role required' },
})
