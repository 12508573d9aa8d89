import { defineErrors } from '../lib/errors'

/** Webhook administration (/api/v1/admin/apps/{app_id}/webhooks) and notification_url checks. */
export const WebhookErrors = defineErrors({
  event_not_found: { status: 404, message: "No outbox event with this id in this app's changes" },
  already_delivered: { status: 409, message: 'The event was delivered already; receivers that lost it can read it from the changes feed' },
  notification_url_missing: { status: 409, message: 'The application has no notification_url: set one (PATCH the app) before sending webhooks' },
  webhook_secret_missing: { status: 409, message: 'The application has no webhook secret yet: create one with POST …/webhooks/secret/rotate' },
  notification_url_not_allowed: { status: 400, code: 'invalid_request', message: 'notification_url: must be an https URL to a public host in production (no IP literal of a private, loopback or link-local network, no localhost)' },
  concurrent_modification: { status: 409, message: 'The event changed while retrying it; read it again' },
})
