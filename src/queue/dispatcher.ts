import type { Env } from '../env'
import { log } from '../lib/logger'
import { getDb } from '../db'
import { auditStatement } from '../audit/service'

/**
 * Queue messages are `{ kind, ... }`; each kind has one handler, listed in src/wiring.ts
 * (webhook delivery, back-channel logout). A handler throws to ask for a retry: the Queue
 * retries with backoff and after max_retries moves the message to the dead-letter queue.
 */
export type QueueJob = { kind: string; [k: string]: unknown }
export type JobHandler = (job: QueueJob, env: Env, attempt: number) => Promise<void>
export type JobHandlers = Readonly<Record<string, JobHandler>>

export const DLQ_NAME = 'uap-edge-webhooks-dlq'

/** Exponential backoff for retries: 10 s, 20 s, 40 s ... capped at 15 min. */
export function retryDelaySeconds(attempt: number): number {
  return Math.min(900, 10 * 2 ** Math.max(0, attempt - 1))
}

export async function dispatchQueueBatch(handlers: JobHandlers, batch: MessageBatch<unknown>, env: Env) {
  if (batch.queue === DLQ_NAME) return recordDeadLetters(batch, env)
  for (const msg of batch.messages) {
    const job = msg.body as QueueJob
    const handler = job && typeof job.kind === 'string' && Object.hasOwn(handlers, job.kind) ? handlers[job.kind] : undefined
    if (!handler) {
      // Nothing can ever handle it: retrying would only delay the dead-letter record.
      log.error('queue.unknown_job', { queue: batch.queue, id: msg.id, kind: (job as QueueJob)?.kind ?? null })
      await recordDeadLetters({ queue: batch.queue, messages: [msg] } as unknown as MessageBatch<unknown>, env)
      msg.ack()
      continue
    }
    try {
      await handler(job, env, msg.attempts)
      msg.ack()
    } catch (err) {
      log.warn('queue.retry', { id: msg.id, kind: job.kind, attempt: msg.attempts, error: (err as Error).message })
      msg.retry({ delaySeconds: retryDelaySeconds(msg.attempts) })
    }
  }
}

/** Dead letters land in the audit log, so admins see what was given up on. */
async function recordDeadLetters(batch: MessageBatch<unknown>, env: Env) {
  const db = getDb(env.DB)
  const statements = batch.messages.map((m) =>
    auditStatement(db, { action: 'queue.dead_letter', actorType: 'system', targetType: 'queue_message', targetId: m.id, details: { queue: batch.queue, body: m.body } }),
  )
  if (statements.length) await db.batch(statements as [(typeof statements)[0], ...typeof statements])
  for (const m of batch.messages) m.ack()
}
