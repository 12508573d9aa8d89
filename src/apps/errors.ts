import { defineErrors } from '../lib/errors'
import { APP_TOKEN_HEADER } from './schema'

export const AppErrors = defineErrors({
  app_not_found: { status: 404, code: 'not_found', message: 'Application not found' },
  oidc_needs_redirect_uri: { status: 400, code: 'invalid_request', message: 'redirect_uris: an OIDC application needs at least one redirect URI' },
  app_token_missing: { status: 401, message: `${APP_TOKEN_HEADER} is required (or, on the mapping API, an admin bearer token)` },
  app_token_invalid: { status: 401, message: `${APP_TOKEN_HEADER} is not valid` },
  public_client_needs_pkce: { status: 400, code: 'invalid_request', message: 'require_pkce: a public client (token_endpoint_auth_method none) cannot be exempted from PKCE' },
  app_disabled: { status: 403, message: 'This application is disabled' },
  app_mismatch: { status: 403, message: 'An app access token can only read and change its own mappings' },
  app_id_required: { status: 400, code: 'invalid_request', message: 'app_id is required when calling with an admin token' },
  target_app_not_found: { status: 404, code: 'app_not_found', message: 'Application not found' },
  sso_target_unknown: { status: 400, message: 'sso_targets names an application that does not exist' },
  sso_target_invalid: { status: 400, message: 'sso_targets must name other SIMPLE_API applications' },
})
