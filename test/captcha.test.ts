import { describe, expect, it } from 'vitest'
import { convertIndexedToRgb, decode } from 'fast-png'
import { env } from 'cloudflare:test'
import { api } from './support/api'
import { randomIp } from './support/browser'
import { solvedCaptcha } from './support/captcha'
import { verifyCaptcha, createCaptcha } from '../src/captcha/service'
import { ALPHABET, GLYPHS, HEIGHT, latin1, renderCaptchaPng, WIDTH } from '../src/captcha/image'

const PNG_URI = /^data:image\/png;base64,([A-Za-z0-9+/]+={0,2})$/
const pngBytes = (dataUri: string) => Uint8Array.from(atob(PNG_URI.exec(dataUri)![1]), (ch) => ch.charCodeAt(0))

/** Chunk types in file order (PNG spec §5.3: 4-byte length, 4-byte type, data, 4-byte CRC). */
function chunkTypes(png: Uint8Array): string[] {
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength)
  const types: string[] = []
  for (let at = 8; at < png.length; at += 12 + view.getUint32(at)) types.push(String.fromCharCode(...png.subarray(at + 4, at + 8)))
  return types
}

/** The picture as RGB bytes, whatever colour type the PNG uses. */
function pixels(png: Uint8Array): { width: number; height: number; rgb: Uint8Array } {
  const d = decode(png)
  const rgb = d.palette ? convertIndexedToRgb(d) : d.data
  const channels = d.palette ? d.palette[0].length : d.channels
  const out = new Uint8Array(d.width * d.height * 3)
  for (let p = 0; p < d.width * d.height; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = rgb[p * channels + c]
  return { width: d.width, height: d.height, rgb: out }
}

describe('captcha image', () => {
  it('is a PNG data URI of 200×70 pixels and nothing else, with the answer nowhere as text', async () => {
    for (let i = 0; i < 25; i++) {
      const r = await api('/api/v1/utils/captcha', { headers: { 'CF-Connecting-IP': randomIp() } })
      expect(r.status).toBe(200)
      expect(r.headers.get('Cache-Control')).toBe('no-store')
      expect(r.body.expires_in).toBeGreaterThanOrEqual(60)
      expect(r.body.image).toMatch(PNG_URI)
      const answer = (await env.KV.get(`captcha:${r.body.captcha_id}`))!
      expect(answer).toMatch(new RegExp(`^[${ALPHABET}]{5}$`))

      const png = pngBytes(r.body.image)
      expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
      // critical chunks only: no tEXt/iTXt/zTXt, no time, no metadata of any kind
      const types = chunkTypes(png)
      expect(types[0]).toBe('IHDR')
      expect(types.at(-1)).toBe('IEND')
      expect(new Set(types)).toEqual(new Set(['IHDR', 'PLTE', 'IDAT', 'IEND']))
      const decoded = decode(png)
      expect([decoded.width, decoded.height]).toEqual([WIDTH, HEIGHT])
      expect([WIDTH, HEIGHT]).toEqual([200, 70])
      expect(decoded.text).toEqual({})

      // pixels, not drawing instructions
      const asText = latin1(png)
      expect(asText).not.toMatch(/<svg|<path|<text|<\?xml|stroke|viewBox|xmlns/i)

      // a picture: a light background with dark ink on part of it
      const { rgb } = pixels(png)
      let ink = 0
      for (let p = 0; p < rgb.length; p += 3) if (0.299 * rgb[p] + 0.587 * rgb[p + 1] + 0.114 * rgb[p + 2] < 110) ink++
      expect(ink / (WIDTH * HEIGHT)).toBeGreaterThan(0.04)
      expect(ink / (WIDTH * HEIGHT)).toBeLessThan(0.4)

      // the answer is in no text of the payload: id, base64, the PNG's bytes read as ASCII
      for (const text of [r.body.captcha_id, r.body.image, asText, JSON.stringify(r.body)]) expect(text.toUpperCase()).not.toContain(answer)
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
    // every glyph renders
    for (let i = 0; i < ALPHABET.length; i += 5) expect(pixels(renderCaptchaPng(ALPHABET.slice(i, i + 5).padEnd(5, 'A'))).width).toBe(WIDTH)
  })

  it('never draws the same answer the same way twice', () => {
    const a = pixels(renderCaptchaPng('ACDEF')).rgb
    const b = pixels(renderCaptchaPng('ACDEF')).rgb
    let differ = 0
    for (let p = 0; p < a.length; p += 3) if (a[p] !== b[p] || a[p + 1] !== b[p + 1] || a[p + 2] !== b[p + 2]) differ++
    // background, glyph shapes, placement, noise and grain are all drawn afresh
    expect(differ / (WIDTH * HEIGHT)).toBeGreaterThan(0.5)
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
