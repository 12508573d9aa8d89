import { defineErrors } from '../lib/errors'
import { APP_TOKEN_HEADER } from './schema'

export const AppErrors = defineErrors({
  app_not_found: { status: 404, code: 'not_found', message: 'Application not found' },
  oidc_needs_redirect_uri: { status: 400, code: 'invalid_request', message: 'redirect_uris: an OIDC application with the authorization_code grant needs at least one redirect URI' },
  app_token_missing: { status: 401, message: `${APP_TOKEN_HEADER} is required (or, on the mapping API, an admin bearer token)` },
  app_token_invalid: { status: 401, message: `${APP_TOKEN_HEADER} is not valid` },
  public_client_needs_pkce: { status: 400, code: 'invalid_request', message: 'require_pkce: a public client (token_endpoint_auth_method none) cannot be exempted from PKCE' },
  client_credentials_needs_secret: { status: 400, code: 'invalid_request', message: 'grant_types: client_credentials is for confidential clients only (token_endpoint_auth_method client_secret_basic or client_secret_post; RFC 6749 §4.4)' },
  refresh_needs_authorization_code: { status: 400, code: 'invalid_request', message: 'grant_types: refresh_token needs authorization_code, the only grant that issues refresh tokens (client_credentials issues none, RFC 6749 §4.4.3)' },
  response_types_mismatch: { status: 400, code: 'invalid_request', message: 'response_types: ["code"] goes with the authorization_code grant and only with it (RFC 7591 §2.1); omit it to have it derived from grant_types' },
  app_disabled: { status: 403, message: 'This application is disabled' },
  app_mismatch: { status: 403, message: 'An app access token can only read and change its own mappings' },
  app_id_required: { status: 400, code: 'invalid_request', message: 'app_id is required when calling with an admin token' },
  target_app_not_found: { status: 404, code: 'app_not_found', message: 'Application not found' },
  sso_target_unknown: { status: 400, message: 'sso_targets names an application that does not exist' },
  sso_target_invalid: { status: 400, message: 'sso_targets must name other SIMPLE_API applications' },
  backchannel_logout_uri_not_allowed: { status: 400, message: 'backchannel_logout_uri: in production, https to a public host, as notification_url (docs/security.md); the message names the problem' },
})
