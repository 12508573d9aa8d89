import { describe, expect, it } from 'vitest'
import { createExecutionContext, env } from 'cloudflare:test'
import { buildApp } from '../src/app'
import { api } from './support/api'

describe('probes', () => {
  it('GET /healthz reports D1 reachability', async () => {
    const r = await api('/healthz')
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ status: 'ok', d1: 'ok' })
    expect(Date.parse(r.body.time)).toBeGreaterThan(0)
  })

  it('GET /healthz answers 503 degraded when D1 fails', async () => {
    const brokenDb = { prepare: () => { throw new Error('D1 is down') } } as unknown as D1Database
    const res = await buildApp().fetch(new Request('http://localhost/healthz'), { ...env, DB: brokenDb }, createExecutionContext())
    expect(res.status).toBe(503)
    expect(await res.json()).toMatchObject({ status: 'degraded', d1: 'unreachable' })
  })

  it('GET /livez answers without any binding', async () => {
    const none = { ...env, DB: undefined, KV: undefined, WEBHOOK_QUEUE: undefined, MAPPING_IMPORTER: undefined, RATE_LIMITER: undefined } as unknown as typeof env
    const res = await buildApp().fetch(new Request('http://localhost/livez'), none, createExecutionContext())
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ status: 'ok' })
  })
})
