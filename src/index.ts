import { buildApp } from './app'
import type { Env } from './env'
import { handleWebhookBatch } from './webhooks/consumer'
import { runScheduled } from './cron/scheduled'

export { MappingImporter } from './importer/durable-object'
export { RateLimiter } from './ratelimit/durable-object'
export { TicketVault } from './tickets/durable-object'

const app = buildApp()

export default {
  fetch: app.fetch,
  queue: (batch: MessageBatch<unknown>, env: Env, ctx: ExecutionContext) => handleWebhookBatch(batch, env, ctx),
  scheduled: (controller: ScheduledController, env: Env, ctx: ExecutionContext) => runScheduled(controller, env, ctx),
} satisfies ExportedHandler<Env>
