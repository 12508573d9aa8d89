import { describe, expect, it, vi } from 'vitest'
import { createExecutionContext, createMessageBatch, env, getQueueResult } from 'cloudflare:test'
import worker from '../src/index'
import { backoffSeconds, dispatchQueueBatch, DLQ_NAME, queueRetryDelay, retryDelaySeconds } from '../src/queue/dispatcher'
import { auditLog } from './support/api'

describe('queue consumer', () => {
  const auditFor = async (msgId: string) => (await auditLog({ action: 'queue.dead_letter', target_id: msgId }))[0]

  it('an unknown job kind is acked and recorded as queue.dead_letter', async () => {
    const id = `msg-${crypto.randomUUID()}`
    const batch = createMessageBatch('uap-edge-webhooks', [{ id, timestamp: new Date(), attempts: 1, body: { kind: 'no.such.kind', x: 1 } }])
    const ctx = createExecutionContext()
    await worker.queue(batch, env, ctx)
    const result = await getQueueResult(batch, ctx)
    expect(result.explicitAcks).toEqual([id])
    expect(result.retryMessages).toEqual([])
    const row = await auditFor(id)
    expect(row).toMatchObject({ action: 'queue.dead_letter', actor_type: 'system', target_type: 'queue_message', target_id: id })
    expect(row.details).toEqual({ queue: 'uap-edge-webhooks', body: { kind: 'no.such.kind', x: 1 } })
  })

  it('a failing handler asks for a retry with backoff; a succeeding one acks', async () => {
    const failKind = `test.fail.${crypto.randomUUID()}`
    const okKind = `test.ok.${crypto.randomUUID()}`
    const seen: number[] = []
    const handlers = {
      [failKind]: async () => {
        throw new Error('receiver down')
      },
      [okKind]: async (_job: unknown, _env: unknown, attempt: number) => {
        seen.push(attempt)
      },
    }
    const batch = createMessageBatch('uap-edge-webhooks', [
      { id: 'fail-1', timestamp: new Date(), attempts: 3, body: { kind: failKind } },
      { id: 'ok-1', timestamp: new Date(), attempts: 1, body: { kind: okKind } },
    ])
    const retrySpy = vi.spyOn(batch.messages[0], 'retry')
    const ctx = createExecutionContext()
    await dispatchQueueBatch(handlers, batch, { ...env, QUEUE_RETRY_BASE_S: '10' })
    const result = await getQueueResult(batch, ctx)
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(['fail-1'])
    expect(retrySpy).toHaveBeenCalledWith({ delaySeconds: retryDelaySeconds(3) })
    // the base is QUEUE_RETRY_BASE_S (the suite runs with 0, so real-queue retries come at once)
    expect(queueRetryDelay(env, 3)).toBe(0)
    expect([1, 2, 3, 10].map((a) => backoffSeconds(a, 1))).toEqual([1, 2, 4, 512])
    expect(result.explicitAcks).toEqual(['ok-1'])
    expect(seen).toEqual([1])
    expect([1, 2, 3, 10, 20].map(retryDelaySeconds)).toEqual([10, 20, 40, 900, 900])
  })

  it('a batch handler gets every message of its kind at once and settles each by its own result', async () => {
    const kind = `test.batch.${crypto.randomUUID()}`
    const calls: { job: { n: number }; attempt: number }[][] = []
    const handlers = {
      [kind]: {
        batch: async (items: { job: any; attempt: number }[]) => {
          calls.push(items)
          return items.map((i) => (i.job.n % 2 ? new Error(`odd ${i.job.n}`) : null))
        },
      },
    }
    const batch = createMessageBatch('uap-edge-webhooks', [1, 2, 3, 4].map((n) => ({ id: `b-${n}`, timestamp: new Date(), attempts: n, body: { kind, n } })))
    const ctx = createExecutionContext()
    await dispatchQueueBatch(handlers, batch, env)
    const result = await getQueueResult(batch, ctx)
    expect(calls).toHaveLength(1)
    expect(calls[0].map((i) => [i.job.n, i.attempt])).toEqual([[1, 1], [2, 2], [3, 3], [4, 4]])
    expect(result.explicitAcks.sort()).toEqual(['b-2', 'b-4'])
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId).sort()).toEqual(['b-1', 'b-3'])
  })

  it('messages arriving on the dead-letter queue are recorded and acked', async () => {
    const id = `dlq-${crypto.randomUUID()}`
    const batch = createMessageBatch(DLQ_NAME, [{ id, timestamp: new Date(), attempts: 6, body: { kind: 'webhook.deliver', event_id: 'evt_1' } }])
    const ctx = createExecutionContext()
    await worker.queue(batch, env, ctx)
    expect((await getQueueResult(batch, ctx)).explicitAcks).toEqual([id])
    expect((await auditFor(id)).details).toMatchObject({ queue: DLQ_NAME, body: { event_id: 'evt_1' } })
  })
})
