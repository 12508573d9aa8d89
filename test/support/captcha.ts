// Captchas a test can answer: the dev-only peek route (/api/v1/dev/captcha/{id}) reads the answer.
import { api } from './api'
import { randomIp } from './browser'

/** The answer to a captcha, through the dev-only peek route (it does not spend the captcha). */
export async function captchaAnswer(captchaId: string): Promise<string> {
  const r = await api(`/api/v1/dev/captcha/${encodeURIComponent(captchaId)}`)
  if (r.status !== 200) throw new Error(`captcha peek ${r.status} ${JSON.stringify(r.body)}`)
  return r.body.answer
}

/** A fresh captcha and its answer. */
export async function solvedCaptcha(ip = randomIp()) {
  const r = await api('/api/v1/utils/captcha', { headers: { 'CF-Connecting-IP': ip } })
  if (r.status !== 200) throw new Error(`captcha ${r.status}`)
  return { captcha_id: r.body.captcha_id as string, captcha_code: await captchaAnswer(r.body.captcha_id), image: r.body.image as string }
}
