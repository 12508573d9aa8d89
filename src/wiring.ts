/**
 * Everything that runs outside a request handler, in one list each: the cron trigger's
 * tasks, the queue's job handlers, the hooks run when sessions end and the guards around
 * admin writes of applications. src/index.ts hands these to the Worker's `scheduled` and
 * `queue` handlers and installs the hooks; nothing registers itself by being imported.
 */
import type { CronTask } from './cron/scheduled'
import type { DeadLetterHooks, JobHandlers } from './queue/dispatcher'
import type { SessionEndHook } from './auth/session-hooks'
import type { AppChangeGuard } from './apps/change-guards'
import { holdAppChange } from './signing/gate'
import { ensureBootstrapAdmin } from './users/service'
import { rotateKeys } from './keys/service'
import { cleanupExpiredSessions } from './auth/cleanup'
import { reencryptAppSecrets } from './apps/service'
import { cleanupImportLedger } from './importer/apply'
import { cleanupFederationFlows } from './federation/flows'
import { reencryptProviderSecrets } from './federation/providers'
import { BACKCHANNEL_JOB, cleanupCodes, deliverBackchannelLogout, signOutClients } from './oidc/logout'
import { WEBHOOK_JOB, sweepWebhooks } from './webhooks/outbox'
import { deliverWebhooks, webhookDeadLetter } from './webhooks/delivery'
import { maintainWebhookSecrets } from './webhooks/secrets'

/** Every 5 minutes (wrangler.toml [triggers]); tasks run side by side. */
export const cronTasks: readonly CronTask[] = [
  { name: 'bootstrap-admin', run: (env) => ensureBootstrapAdmin(env) },
  { name: 'rotate-keys', run: (env, now) => rotateKeys(env, { now }) },
  { name: 'cleanup-sessions', run: cleanupExpiredSessions },
  { name: 'oidc-cleanup-codes', run: cleanupCodes },
  { name: 'federation-cleanup-flows', run: (env, now) => cleanupFederationFlows(env, now) },
  // after a master key rotation, app secrets move to the new key a batch per run (docs/apps.md)
  { name: 'reencrypt-app-secrets', run: reencryptAppSecrets },
  // outbox events nothing scheduled, and deliveries whose queue message is overdue (docs/webhooks.md)
  { name: 'webhook-sweep', run: sweepWebhooks },
  // expired previous webhook secrets dropped; envelopes moved to a new master key
  { name: 'webhook-secrets', run: maintainWebhookSecrets },
  // import jobs' ledger entries, once their reports are gone (src/importer/apply.ts)
  { name: 'cleanup-import-ledger', run: (env, now) => cleanupImportLedger(env, now) },
  { name: 'reencrypt-idp-secrets', run: (env) => reencryptProviderSecrets(env) },
]

/** Queue `uap-edge-webhooks` job kinds → handler. */
export const queueJobs: JobHandlers = {
  [BACKCHANNEL_JOB]: deliverBackchannelLogout,
  [WEBHOOK_JOB]: deliverWebhooks,
}

/** What a job kind records, besides the audit row, when its message reaches the dead-letter queue. */
export const deadLetterHooks: DeadLetterHooks = {
  [WEBHOOK_JOB]: webhookDeadLetter,
}

/** Run after any session ends (src/auth/session-hooks.ts). */
export const sessionEndHooks: readonly SessionEndHook[] = [signOutClients]

/**
 * Around every admin write of an application (src/apps/change-guards.ts): the app's AppGate
 * stops vouching for cached copies of the row until the write is done (docs/security.md).
 */
export const appChangeGuards: readonly AppChangeGuard[] = [holdAppChange]
