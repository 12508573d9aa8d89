import type { Env } from '../env'
import { timingSafeEqual } from '../lib/crypto'
import { firstUse } from '../ratelimit/counters'
import { latin1, pngDataUri, randomAnswer, renderCaptchaPng } from './image'

/** How long an answer stays valid. KV's minimum expirationTtl is 60 s. */
export const CAPTCHA_TTL_S = 120
export const CAPTCHA_LENGTH = 5

const kvKey = (id: string) => `captcha:${id}`
const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export interface Captcha {
  captcha_id: string
  image: string
  expires_in: number
}

/**
 * A new captcha: answer in KV (TTL CAPTCHA_TTL_S), picture returned. Should the random id,
 * the PNG bytes read as text or their base64 happen to contain the answer as a substring
 * (any case; about one picture in 5,000, nearly always in the base64), it is drawn again,
 * so the answer is nowhere in the payload as text.
 */
export async function createCaptcha(env: Env): Promise<Captcha> {
  for (let tries = 0; tries < 20; tries++) {
    const answer = randomAnswer(CAPTCHA_LENGTH)
    const id = crypto.randomUUID()
    const png = renderCaptchaPng(answer)
    const image = pngDataUri(png)
    if ([id, latin1(png), image].some((s) => s.toUpperCase().includes(answer))) continue
    await env.KV.put(kvKey(id), answer, { expirationTtl: CAPTCHA_TTL_S })
    return { captcha_id: id, image, expires_in: CAPTCHA_TTL_S }
  }
  throw new Error('could not draw a captcha that hides its answer')
}

export const normalizeCaptchaAnswer = (s: string) => s.replace(/\s+/g, '').toUpperCase()

/**
 * Checks an answer. Single use: the first attempt on an id spends it, right or wrong.
 * The spend is decided by a Durable Object counter (exact worldwide, so two concurrent
 * guesses cannot both be judged) and the KV entry is deleted as well. Case-insensitive.
 */
export async function verifyCaptcha(env: Env, id: string | null | undefined, answer: string | null | undefined): Promise<boolean> {
  if (!id || !ID_RE.test(id)) return false
  if (!(await firstUse(env, `captcha:${id}`, CAPTCHA_TTL_S * 2))) return false
  const expected = await env.KV.get(kvKey(id))
  await env.KV.delete(kvKey(id))
  if (!expected || !answer) return false
  return timingSafeEqual(expected, normalizeCaptchaAnswer(answer).slice(0, 32))
}

/** Development and test only (see src/dev/routes.ts): the answer, without spending it. */
export async function peekCaptchaAnswer(env: Env, id: string): Promise<string | null> {
  return ID_RE.test(id) ? env.KV.get(kvKey(id)) : null
}
