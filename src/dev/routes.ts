import { Hono, type Context } from 'hono'
import type { AppEnv } from '../context'
import { getConfig } from '../env'
import { errorResponse } from '../lib/errors'
import { normalizeMobile } from '../lib/mobile'
import { outboxKey, type SmsMessage } from '../sms/providers'
import { peekCaptchaAnswer } from '../captcha/service'
import { authenticateApiClient } from '../apiclients/auth'

/**
 * Development and test helpers: read the console SMS provider's outbox and a captcha's
 * answer (the picture has no text, so browser tests need this); answer an API client's
 * principal, so tests drive authenticateApiClient with real headers, IPs and paths before
 * the admin guard calls it. They exist only when
 * ENVIRONMENT is development or test: in production every path here is a plain 404,
 * and the console provider (the only writer of the outbox) is refused by getConfig.
 * Deliberately not in the OpenAPI documents. Mounted at /api/v1/dev.
 */
export const devRoutes = new Hono<AppEnv>()

export function devToolsEnabled(env: AppEnv['Bindings']): boolean {
  const e = getConfig(env).environment
  return e === 'development' || e === 'test'
}

devRoutes.use('*', async (c, next) => {
  if (!devToolsEnabled(c.env)) return errorResponse(c, 404, 'not_found', `No route for ${c.req.method} ${c.req.path}`)
  c.header('Cache-Control', 'no-store')
  await next()
})

devRoutes.get('/sms-outbox', async (c) => {
  const mobile = normalizeMobile(c.req.query('mobile') ?? '')
  if (!mobile) return errorResponse(c, 400, 'invalid_request', 'mobile: must be a mobile number')
  const messages = (await c.env.KV.get<SmsMessage[]>(outboxKey(mobile), 'json')) ?? []
  return c.json({ mobile, messages })
})

devRoutes.get('/captcha/:id', async (c) => {
  const answer = await peekCaptchaAnswer(c.env, c.req.param('id'))
  if (!answer) return errorResponse(c, 404, 'not_found', 'No such captcha (expired or spent)')
  return c.json({ captcha_id: c.req.param('id'), answer })
})

// any method, any path below it: the path allowlist is checked against the path called
const whoami = async (c: Context<AppEnv>) => c.json(await authenticateApiClient(c))
devRoutes.all('/api-client-whoami', whoami)
devRoutes.all('/api-client-whoami/*', whoami)
