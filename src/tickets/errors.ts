import { defineErrors } from '../lib/errors'

/**
 * Ticket exchange and redemption (docs/tickets.md). Explicit codes are deliberate: the
 * caller is a signed, trusted app server, rate limited per app and audited.
 */
export const TicketErrors = defineErrors({
  // exchange
  source_app_not_simple_api: { status: 403, message: 'Only SIMPLE_API applications exchange tickets' },
  target_not_allowed: { status: 403, message: "target_app_id is not in this application's sso_targets (set by an admin)" },
  target_app_not_found: { status: 404, message: 'No application with this target_app_id' },
  target_app_disabled: { status: 403, message: 'The target application is disabled' },
  target_app_not_simple_api: { status: 400, message: 'The target is not a SIMPLE_API application; tickets are for SIMPLE_API apps' },
  target_app_no_callback: { status: 409, message: 'The target application has no registered redirect URI to send the user to' },
  user_not_found: { status: 404, message: 'No user with this mobile number is mapped in your application' },
  user_disabled: { status: 403, message: 'This user is disabled' },
  user_not_mapped: { status: 404, message: 'The user has no account mapping in the target application' },
  mapping_disabled: { status: 403, message: "The user's mapping in the target application is disabled" },
  user_no_access: { status: 403, code: 'no_access', message: "The target application's access policy needs the access permission, which the user does not have" },
  // redemption
  ticket_invalid: { status: 400, message: 'Unknown or malformed ticket' },
  ticket_not_for_app: { status: 403, message: 'This ticket was issued for another application' },
  ticket_already_used: { status: 409, message: 'This ticket was already redeemed' },
  ticket_expired: { status: 410, message: 'This ticket has expired' },
  redeemed_user_gone: { status: 403, code: 'user_not_found', message: 'The user of this ticket no longer exists' },
  redeemed_user_disabled: { status: 403, code: 'user_disabled', message: 'The user of this ticket has been disabled' },
  redeemed_mapping_disabled: { status: 403, code: 'mapping_disabled', message: "The user's mapping in this app has been disabled" },
  mapping_changed: { status: 403, message: "The user's mapping in this app changed after the ticket was issued" },
  redeemed_no_access: { status: 403, code: 'no_access', message: "The user's access permission in this app was revoked after the ticket was issued" },
  // the hosted ticket hop (/page/sso/simple)
  invalid_app: { status: 400, message: 'app_id does not name an active SIMPLE_API application with its partner API on' },
  redirect_uri_not_registered: { status: 400, message: 'redirect_uri is not registered for this application' },
  account_disabled: { status: 403, message: 'This account is disabled' },
  no_access: { status: 403, code: 'user_not_mapped', message: 'Your account has no access to this application' },
})
