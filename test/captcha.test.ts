import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { api } from './support/api'
import { randomIp } from './support/browser'
import { solvedCaptcha } from './support/captcha'
import { verifyCaptcha, createCaptcha } from '../src/captcha/service'
import { ALPHABET, GLYPHS, renderCaptchaSvg } from '../src/captcha/image'

const decode = (dataUri: string) => {
  const b64 = dataUri.replace(/^data:image\/svg\+xml;base64,/, '')
  return new TextDecoder().decode(Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)))
}

describe('captcha image', () => {
  it('is an SVG data URI of paths, with the answer nowhere as text', async () => {
    for (let i = 0; i < 25; i++) {
      const r = await api('/api/v1/utils/captcha', { headers: { 'CF-Connecting-IP': randomIp() } })
      expect(r.status).toBe(200)
      expect(r.headers.get('Cache-Control')).toBe('no-store')
      expect(r.body.expires_in).toBeGreaterThanOrEqual(60)
      expect(r.body.image).toMatch(/^data:image\/svg\+xml;base64,/)
      const answer = (await env.KV.get(`captcha:${r.body.captcha_id}`))!
      expect(answer).toMatch(new RegExp(`^[${ALPHABET}]{5}$`))
      const svg = decode(r.body.image)
      expect(svg.startsWith('<svg')).toBe(true)
      expect(svg.match(/<path /g)!.length).toBeGreaterThan(5)
      expect(svg).not.toMatch(/<text|<tspan|<title|<desc|<!--|\bid=|<font|<glyph|<use|href=/i)
      expect(svg.toUpperCase()).not.toContain(answer)
      expect(JSON.stringify(r.body).toUpperCase()).not.toContain(answer)
    }
  })

  it('uses an unambiguous alphabet and draws every glyph inside its box', () => {
    for (const ch of '0O1IlL2Z5S8B6G') expect(ALPHABET).not.toContain(ch)
    expect(ALPHABET.length).toBeGreaterThanOrEqual(20)
    for (const [ch, strokes] of Object.entries(GLYPHS)) {
      for (const s of strokes) for (const [x, y] of s) {
        expect(x, ch).toBeGreaterThanOrEqual(-0.5)
        expect(x, ch).toBeLessThanOrEqual(10.5)
        expect(y, ch).toBeGreaterThanOrEqual(-0.5)
        expect(y, ch).toBeLessThanOrEqual(14.5)
      }
    }
    // every glyph renders, and the same answer never draws the same picture twice
    expect(renderCaptchaSvg(ALPHABET.slice(0, 5))).not.toBe(renderCaptchaSvg(ALPHABET.slice(0, 5)))
  })

  it('is rate limited per client IP', async () => {
    const ip = randomIp()
    let last
    for (let i = 0; i < 31; i++) last = await api('/api/v1/utils/captcha', { headers: { 'CF-Connecting-IP': ip } })
    expect(last!.status).toBe(429)
    expect(last!.body.error.code).toBe('rate_limited')
    expect(Number(last!.headers.get('Retry-After'))).toBeGreaterThan(0)
  })
})

describe('captcha verification', () => {
  it('accepts the right answer once, case-insensitively', async () => {
    const c = await solvedCaptcha()
    expect(await verifyCaptcha(env, c.captcha_id, ` ${c.captcha_code.toLowerCase()} `)).toBe(true)
    expect(await verifyCaptcha(env, c.captcha_id, c.captcha_code)).toBe(false)
  })

  it('a wrong answer spends the captcha: the right one fails afterwards', async () => {
    const c = await solvedCaptcha()
    const wrong = c.captcha_code === 'AAAAA' ? 'CCCCC' : 'AAAAA'
    expect(await verifyCaptcha(env, c.captcha_id, wrong)).toBe(false)
    expect(await env.KV.get(`captcha:${c.captcha_id}`)).toBeNull()
    expect(await verifyCaptcha(env, c.captcha_id, c.captcha_code)).toBe(false)
  })

  it('an empty answer spends it too, and concurrent guesses get one judgement', async () => {
    const c = await solvedCaptcha()
    expect(await verifyCaptcha(env, c.captcha_id, '')).toBe(false)
    expect(await verifyCaptcha(env, c.captcha_id, c.captcha_code)).toBe(false)
    const d = await createCaptcha(env)
    const answer = (await env.KV.get(`captcha:${d.captcha_id}`))!
    const results = await Promise.all(Array.from({ length: 5 }, () => verifyCaptcha(env, d.captcha_id, answer)))
    expect(results.filter(Boolean).length).toBe(1)
  })

  it('refuses unknown and malformed ids', async () => {
    expect(await verifyCaptcha(env, crypto.randomUUID(), 'ACDEF')).toBe(false)
    expect(await verifyCaptcha(env, 'not-an-id', 'ACDEF')).toBe(false)
    expect(await verifyCaptcha(env, null, 'ACDEF')).toBe(false)
  })
})
