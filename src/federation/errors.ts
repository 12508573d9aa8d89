import { defineErrors } from '../lib/errors'

/** Sign-in with another identity provider (docs/federation.md). */
export const FederationErrors = defineErrors({
  // admin: /api/v1/admin/identity-providers
  provider_not_found: { status: 404, code: 'not_found', message: 'Identity provider not found' },
  provider_exists: { status: 409, message: 'An identity provider with this id already exists' },
  provider_has_links: { status: 409, message: "Identities are linked through the provider's current issuer, servers or subject claim; delete the provider and create it again to change them" },
  invalid_provider: { status: 400, code: 'invalid_request', message: 'The provider settings are incomplete or inconsistent; the message names the field' },
  // starting a sign-in
  unknown_provider: { status: 404, message: 'No enabled identity provider has this id' },
  invalid_app: { status: 400, message: 'app_id does not name an active application' },
  redirect_uri_not_registered: { status: 400, message: 'redirect_uri is not registered for this application' },
  // the callback
  invalid_state: { status: 400, message: 'This sign-in attempt is unknown, expired, already used or was started elsewhere; start again' },
  upstream_denied: { status: 400, message: 'The identity provider did not sign the user in' },
  upstream_rejected: { status: 400, message: "The identity provider's answer failed verification (ID token, nonce, issuer or audience)" },
  upstream_unavailable: { status: 502, message: 'The identity provider could not be reached or gave an unusable answer' },
  account_disabled: { status: 403, message: 'The account linked to this identity is disabled' },
  // binding a mobile to an unknown identity
  invalid_ticket: { status: 400, message: 'The binding ticket is unknown, expired or already used; sign in with the provider again' },
  mobile_not_verified: { status: 400, message: 'Prove the mobile number with an SMS code first (POST /api/v1/auth/federation/bind/verify)' },
  registration_closed: { status: 403, message: 'No account has this mobile number and registration is closed; ask an administrator for an account' },
  identity_taken: { status: 409, message: 'This identity was linked to another account meanwhile' },
  // the user's own identities
  identity_not_found: { status: 404, code: 'not_found', message: 'No such linked identity on this account' },
  last_sign_in_method: { status: 409, message: 'This identity is the only way to sign in to the account; set a password (reset it by SMS) before unlinking it' },
})
