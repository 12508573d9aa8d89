import { defineErrors } from '../lib/errors'

export const AuthErrors = defineErrors({
  invalid_credentials: { status: 401, message: 'Invalid mobile number or password' },
  captcha_required: { status: 401, message: 'Too many failed sign-ins for this number or network: send captcha_id and captcha_code (GET /api/v1/utils/captcha) with the password' },
  too_many_attempts: { status: 429, message: 'Too many failed sign-in attempts, even with captchas; try again after Retry-After seconds' },
  app_auth_required: { status: 401, message: "Sign-in with app_id must be authenticated by the app's server: sign the request (X-UAP-* headers, docs/signing.md) or send HTTP Basic app_id:app_secret" },
  invalid_app_credentials: { status: 401, message: 'The app credentials are wrong, or they are not those of app_id' },
  account_disabled: { status: 403, message: 'This account is disabled' },
  invalid_app: { status: 400, message: 'app_id does not name an active application' },
  user_not_mapped: { status: 403, message: 'This account has no access to the application' },
  no_access: { status: 403, message: "The application's access policy needs the access permission, which this account does not have" },
  invalid_grant: { status: 401, message: 'The refresh token is invalid, expired or revoked' },
  invalid_scope: { status: 400, message: 'A refresh keeps the scope of the original grant; omit scope (narrowing is not supported)' },
  invalid_token: { status: 401, message: 'The access token is invalid or expired' },
  bearer_missing: { status: 401, code: 'unauthorized', message: 'A bearer access token is required' },
  not_admin_audience: { status: 403, code: 'forbidden', message: 'This token is not valid for the admin API' },
  not_admin: { status: 403, code: 'forbidden', message: 'Admin role required' },
  admin_session_expired: { status: 401, message: 'This session is past the admin session lifetimes (ADMIN_SESSION_TTL, ADMIN_SESSION_IDLE_TIMEOUT); sign in again to use the admin API' },
})
