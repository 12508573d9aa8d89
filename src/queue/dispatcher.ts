import type { BatchItem } from 'drizzle-orm/batch'
import { getConfig, type Env } from '../env'
import { log } from '../lib/logger'
import { getDb, type DB } from '../db'
import { auditStatement } from '../audit/service'

/**
 * Queue messages are `{ kind, ... }`; each kind has one handler, listed in src/wiring.ts
 * (webhook delivery, back-channel logout). A handler throws to ask for a retry: the Queue
 * retries with backoff and after max_retries moves the message to the dead-letter queue.
 * Messages of a batch are handled side by side, each acked or retried on its own. A kind
 * whose messages share reads and writes (webhook delivery) takes all of the batch's messages
 * of its kind at once (BatchJobHandler) and answers per message.
 */
export type QueueJob = { kind: string; [k: string]: unknown }
export type JobHandler = (job: QueueJob, env: Env, attempt: number) => Promise<void>
/** One result per item, in order: null acks the message, an Error asks for its retry. */
export interface BatchJobHandler {
  batch(items: { job: QueueJob; attempt: number }[], env: Env): Promise<(Error | null)[]>
}
export type JobHandlers = Readonly<Record<string, JobHandler | BatchJobHandler>>
/**
 * What a job kind adds to the dead-letter record when the queue gives up on one of its
 * messages: statements written in the same batch as the audit row (e.g. marking a webhook
 * event failed).
 */
export type DeadLetterHook = (job: QueueJob, db: DB) => BatchItem<'sqlite'>[]
export type DeadLetterHooks = Readonly<Record<string, DeadLetterHook>>

export const DLQ_NAME = 'uap-edge-webhooks-dlq'

/** Exponential backoff for retries: 10 s, 20 s, 40 s ... capped at 15 min. */
export function retryDelaySeconds(attempt: number): number {
  return backoffSeconds(attempt, 10)
}

/** The same curve from another base: base × 2^(attempt-1), capped at 15 min. */
export function backoffSeconds(attempt: number, baseS: number): number {
  return Math.min(900, baseS * 2 ** Math.max(0, attempt - 1))
}

/** The retry delay this deployment uses: the base is QUEUE_RETRY_BASE_S (default 10 s). */
export function queueRetryDelay(env: Env, attempt: number): number {
  return backoffSeconds(attempt, getConfig(env).queueRetryBaseS)
}

export async function dispatchQueueBatch(handlers: JobHandlers, batch: MessageBatch<unknown>, env: Env, deadLetterHooks: DeadLetterHooks = {}) {
  if (batch.queue === DLQ_NAME) return recordDeadLetters(batch, env, deadLetterHooks)
  const settle = (msg: Message<unknown>, err: unknown) => {
    if (!err) return msg.ack()
    log.warn('queue.retry', { id: msg.id, kind: (msg.body as QueueJob).kind, attempt: msg.attempts, error: (err as Error).message })
    msg.retry({ delaySeconds: queueRetryDelay(env, msg.attempts) })
  }
  const byKind = new Map<BatchJobHandler, Message<unknown>[]>()
  const single: Promise<void>[] = []
  for (const msg of batch.messages) {
    const job = msg.body as QueueJob
    const handler = job && typeof job.kind === 'string' && Object.hasOwn(handlers, job.kind) ? handlers[job.kind] : undefined
    if (!handler) {
      // Nothing can ever handle it: retrying would only delay the dead-letter record.
      log.error('queue.unknown_job', { queue: batch.queue, id: msg.id, kind: (job as QueueJob)?.kind ?? null })
      single.push(recordDeadLetters({ queue: batch.queue, messages: [msg] } as unknown as MessageBatch<unknown>, env, deadLetterHooks).then(() => msg.ack()))
    } else if (typeof handler === 'function') {
      single.push(handler(job, env, msg.attempts).then(() => settle(msg, null), (err) => settle(msg, err)))
    } else {
      byKind.set(handler, [...(byKind.get(handler) ?? []), msg])
    }
  }
  const grouped = [...byKind].map(async ([handler, msgs]) => {
    let results: (Error | null)[]
    try {
      results = await handler.batch(msgs.map((m) => ({ job: m.body as QueueJob, attempt: m.attempts })), env)
    } catch (err) {
      results = msgs.map(() => err as Error)
    }
    msgs.forEach((m, i) => settle(m, i < results.length ? results[i] : new Error('the batch handler gave no result for this message')))
  })
  await Promise.all([...single, ...grouped])
}

/** Dead letters land in the audit log, so admins see what was given up on; their kind's hook adds its own record. */
async function recordDeadLetters(batch: MessageBatch<unknown>, env: Env, hooks: DeadLetterHooks) {
  const db = getDb(env.DB)
  const statements = batch.messages.flatMap((m) => {
    const job = m.body as QueueJob
    const hook = job && typeof job.kind === 'string' && Object.hasOwn(hooks, job.kind) ? hooks[job.kind] : undefined
    return [
      auditStatement(db, { action: 'queue.dead_letter', actorType: 'system', targetType: 'queue_message', targetId: m.id, details: { queue: batch.queue, body: m.body } }),
      ...(hook ? hook(job, db) : []),
    ]
  })
  if (statements.length) await db.batch(statements as [BatchItem<'sqlite'>, ...BatchItem<'sqlite'>[]])
  for (const m of batch.messages) m.ack()
}
