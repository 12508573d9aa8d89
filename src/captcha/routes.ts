import { createRoute, z } from '@hono/zod-openapi'
import { OPEN, pick } from '../lib/openapi'
import { router } from '../context'
import { rateLimit } from '../ratelimit'
import { createCaptcha, CAPTCHA_TTL_S } from './service'

/** Mounted at /api/v1/utils. */
export const captchaRoutes = router()

const CaptchaResponse = z
  .object({
    captcha_id: z.string().openapi({ example: '6f1c0b7e-2a4d-4c1e-9f3a-7b5d2e8c1a90' }),
    image: z.string().openapi({
      description: 'The picture: `data:image/png;base64,…`, a 200×70 PNG (8-bit palette, no metadata). Show it at 200×70 CSS pixels.',
      example: 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAMgAAABGCAMAAAC+PCsE...',
    }),
    expires_in: z.number().int().openapi({ example: CAPTCHA_TTL_S }),
  })
  .openapi('Captcha')

captchaRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/captcha',
    tags: ['Captcha'],
    summary: 'Get a captcha picture',
    description:
      'Returns a new captcha: a PNG picture (data URI, 200×70 pixels) of 5 distorted characters from an unambiguous alphabet (no 0/O, 1/I/L, 2/Z, 5/S, 6/G, 8/B) and its id. Send `captcha_id` and what the user typed as `captcha_code` with the operation it protects (e.g. `POST /api/v1/open/sms/send`). Answers are case-insensitive and single use: the first check spends the captcha, right or wrong, so fetch a new one after a failure. Valid for `expires_in` seconds. Rate limited per client IP (429 with Retry-After).',
    ...OPEN,
    middleware: [rateLimit('captcha_ip', (c) => c.get('clientIp'))] as const,
    responses: { 200: { description: 'A captcha', content: { 'application/json': { schema: CaptchaResponse } } }, ...pick(429) },
  }),
  async (c) => {
    c.header('Cache-Control', 'no-store')
    return c.json(await createCaptcha(c.env), 200)
  },
)
