import { describe, expect, it, vi } from 'vitest'
import { createExecutionContext, env } from 'cloudflare:test'
import { buildApp } from '../src/app'

describe('structured logs', () => {
  it('one JSON line per request with the request id; LOG_LEVEL=warn silences the access log', async () => {
    const lines: string[] = []
    const spy = vi.spyOn(console, 'log').mockImplementation((l: string) => void lines.push(l))
    try {
      const app = buildApp()
      await app.fetch(new Request('http://localhost/livez', { headers: { 'X-Request-Id': 'log-test-0001' } }), env, createExecutionContext())
      const entry = lines.map((l) => JSON.parse(l)).find((l) => l.request_id === 'log-test-0001')
      expect(entry).toMatchObject({ level: 'info', msg: 'request', method: 'GET', path: '/livez', status: 200 })
      lines.length = 0
      await app.fetch(new Request('http://localhost/livez', { headers: { 'X-Request-Id': 'log-test-0002' } }), { ...env, LOG_LEVEL: 'warn' }, createExecutionContext())
      expect(lines.filter((l) => l.includes('log-test-0002'))).toEqual([])
    } finally {
      spy.mockRestore()
      await buildApp().fetch(new Request('http://localhost/livez'), env, createExecutionContext()) // back to the default level
    }
  })
})
