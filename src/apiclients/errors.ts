import { defineErrors } from '../lib/errors'
import { API_KEY_HEADER, CLIENT_KEY_HEADER } from './schema'

/** API clients: their management and the authentication of machines on the admin API (docs/api-clients.md). */
export const ApiClientErrors = defineErrors({
  api_client_not_found: { status: 404, code: 'not_found', message: 'No API client with this id' },
  full_admin_required: { status: 403, message: 'Only a full admin manages API clients' },
  expires_at_in_past: { status: 400, message: 'expires_at must be in the future; to expire a client now, POST …/expire' },
  scope_group_unknown: { status: 400, message: 'scope.groups names a group that does not exist' },
  scope_user_unknown: { status: 400, message: 'scope.users names a user that does not exist' },
  scope_app_unknown: { status: 400, message: 'scope.apps names an application that does not exist' },
  // authentication (authenticateApiClient)
  api_client_credentials_missing: { status: 401, message: `Both ${CLIENT_KEY_HEADER} and ${API_KEY_HEADER} are required` },
  invalid_api_client: { status: 401, message: 'Unknown client key or wrong API key' },
  api_client_disabled: { status: 401, message: 'This API client is disabled' },
  api_client_expired: { status: 401, message: 'This API client has expired' },
  api_client_ip_not_allowed: { status: 403, message: "The request's IP address is not in this API client's IP allowlist" },
  api_client_origin_not_allowed: { status: 403, message: "The request's Origin is not in this API client's origin allowlist" },
  api_client_path_not_allowed: { status: 403, message: "The path is not under any of this API client's allowed path prefixes" },
})
