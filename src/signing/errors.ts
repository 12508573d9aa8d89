import { defineErrors } from '../lib/errors'

/** What a signed partner call can be refused with (docs/signing.md "Common mistakes"). */
export const SigningErrors = defineErrors({
  signature_missing: { status: 401, message: 'A signature header is missing or malformed' },
  signature_invalid: { status: 401, message: 'Signature does not match' },
  timestamp_stale: { status: 401, message: 'X-UAP-Timestamp is too far from server time' },
  nonce_replayed: { status: 401, message: 'X-UAP-Nonce was already used' },
  app_disabled: { status: 403, message: 'This application is disabled' },
  partner_api_disabled: { status: 403, message: "This application's partner API is switched off (an admin can enable it: partner_api_enabled)" },
  app_state_changing: { status: 503, message: "The application's settings changed while this request was checked; retry with a new nonce" },
})
