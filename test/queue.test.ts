import { describe, expect, it, vi } from 'vitest'
import { createExecutionContext, createMessageBatch, env, getQueueResult } from 'cloudflare:test'
import worker from '../src/index'
import { dispatchQueueBatch, DLQ_NAME, retryDelaySeconds } from '../src/queue/dispatcher'
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
    await dispatchQueueBatch(handlers, batch, env)
    const result = await getQueueResult(batch, ctx)
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(['fail-1'])
    expect(retrySpy).toHaveBeenCalledWith({ delaySeconds: retryDelaySeconds(3) })
    expect(result.explicitAcks).toEqual(['ok-1'])
    expect(seen).toEqual([1])
    expect([1, 2, 3, 10, 20].map(retryDelaySeconds)).toEqual([10, 20, 40, 900, 900])
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
