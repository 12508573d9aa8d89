import { buildApp } from './app'
import type { Env } from './env'
import { dispatchQueueBatch } from './queue/dispatcher'
import { runCronTasks } from './cron/scheduled'
import { installSessionEndHooks } from './auth/session-hooks'
import { installAppChangeGuards } from './apps/change-guards'
import { appChangeGuards, cronTasks, deadLetterHooks, queueJobs, sessionEndHooks } from './wiring'

export { MappingImporter } from './importer/durable-object'
export { RateLimiter } from './ratelimit/durable-object'
export { AppGate } from './signing/gate'

installSessionEndHooks(sessionEndHooks)
installAppChangeGuards(appChangeGuards)
const app = buildApp()

export default {
  fetch: app.fetch,
  queue: (batch: MessageBatch<unknown>, env: Env, _ctx: ExecutionContext) => dispatchQueueBatch(queueJobs, batch, env, deadLetterHooks),
  scheduled: (controller: ScheduledController, env: Env, _ctx: ExecutionContext) => runCronTasks(cronTasks, env, controller.scheduledTime),
} satisfies ExportedHandler<Env>
