import type { MiddlewareHandler } from 'hono'
import { log, setLogLevel } from './logger'

const REQUEST_ID_RE = /^[A-Za-z0-9._-]{8,128}$/

type RequestVariables = { Bindings: { LOG_LEVEL?: string }; Variables: { requestId: string; clientIp: string } }

/** Request id (taken from X-Request-Id when sane, else generated), client IP, JSON access log. */
export const requestContext: MiddlewareHandler<RequestVariables> = async (c, next) => {
  setLogLevel(c.env.LOG_LEVEL)
  const incoming = c.req.header('X-Request-Id')
  const requestId = incoming && REQUEST_ID_RE.test(incoming) ? incoming : crypto.randomUUID()
  c.set('requestId', requestId)
  c.set('clientIp', c.req.header('CF-Connecting-IP') ?? c.req.header('X-Real-IP') ?? '127.0.0.1')
  const started = Date.now()
  await next()
  c.res.headers.set('X-Request-Id', requestId)
  log.info('request', {
    request_id: requestId,
    method: c.req.method,
    path: c.req.path,
    status: c.res.status,
    duration_ms: Date.now() - started,
  })
}
