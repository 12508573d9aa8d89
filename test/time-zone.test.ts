import { describe, expect, it } from 'vitest'
import { FALLBACK_TIME_ZONE, formatDate, formatTime, resolveTimeZone } from '../src/pages/i18n/time'

describe('time zone of the hosted pages (src/pages/i18n/time.ts)', () => {
  it('keeps an IANA name the runtime knows and falls back to UTC for anything else', () => {
    expect(resolveTimeZone('Asia/Shanghai')).toBe('Asia/Shanghai')
    expect(resolveTimeZone('America/Argentina/Buenos_Aires')).toBe('America/Argentina/Buenos_Aires')
    for (const bad of [undefined, null, '', 42, 'Mars/Olympus_Mons', 'Asia/Shanghai; DROP', 'x'.repeat(65), {}]) {
      expect(resolveTimeZone(bad), String(bad)).toBe(FALLBACK_TIME_ZONE)
    }
  })

  it('writes a time in the zone and the language, labelled with the zone', () => {
    const at = Date.UTC(2026, 11, 2, 1, 43) // 01:43 UTC = 09:43 in Shanghai
    const en = formatTime(at, 'en', 'Asia/Shanghai')
    const zh = formatTime(at, 'zh-CN', 'Asia/Shanghai')
    const utc = formatTime(at, 'en', 'UTC')
    expect(en).toContain('09:43')
    expect(en).toContain('GMT+8')
    expect(en).toContain('Dec')
    expect(zh).toContain('09:43')
    expect(zh).toContain('2026年12月2日')
    expect(utc).toContain('01:43')
    expect(utc).toContain('UTC')
    expect(formatDate(at, 'zh-CN', 'UTC')).toBe('2026年12月2日')
  })
})
