import type { Context } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import type { AppEnv } from '../../context'
import { en, type Catalog } from './en'
import { zhCN } from './zh-CN'

/**
 * The language of a hosted page: `?lang=` (the switch on the page, remembered in a cookie),
 * else the remembered choice, else the best match of Accept-Language (RFC 9110 §12.5.4),
 * else English. Every Chinese tag gets Simplified Chinese, the only Chinese catalog.
 */
export const LOCALES = ['en', 'zh-CN'] as const
export type Locale = (typeof LOCALES)[number]
export const LANG_COOKIE = '__Host-uap_lang'

const CATALOGS: Record<Locale, Catalog> = { en, 'zh-CN': zhCN }

export const catalogOf = (locale: Locale): Catalog => CATALOGS[locale]

/** A language tag → one of LOCALES, or null when we have no catalog for it. */
export function localeOf(tag: string | null | undefined): Locale | null {
  const t = (tag ?? '').trim().toLowerCase()
  if (t === 'en' || t.startsWith('en-')) return 'en'
  if (t === 'zh' || t.startsWith('zh-')) return 'zh-CN'
  return null
}

/** Accept-Language → the supported locale with the highest q (first listed wins a tie). */
export function fromAcceptLanguage(header: string | null | undefined): Locale | null {
  let best: { locale: Locale; q: number } | null = null
  for (const part of (header ?? '').slice(0, 512).split(',')) {
    const [tag, ...params] = part.split(';')
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    const q = qParam ? Number(qParam.slice(2)) : 1
    const locale = localeOf(tag)
    if (locale && Number.isFinite(q) && q > 0 && (!best || q > best.q)) best = { locale, q }
  }
  return best?.locale ?? null
}

/** The page's locale; a `?lang=` switch is remembered for a year. Decided once per request. */
export function pageLocale(c: Context<AppEnv>): Locale {
  const known = c.get('locale')
  if (known) return known
  let locale: Locale
  const asked = localeOf(c.req.query('lang'))
  if (asked) {
    setCookie(c, LANG_COOKIE, asked, { httpOnly: true, secure: true, sameSite: 'Lax', path: '/', maxAge: 365 * 86400 })
    locale = asked
  } else {
    locale = localeOf(getCookie(c, LANG_COOKIE)) ?? fromAcceptLanguage(c.req.header('Accept-Language')) ?? 'en'
  }
  c.set('locale', locale)
  return locale
}

/** The page's locale and its catalog. */
export function pageLanguage(c: Context<AppEnv>): { locale: Locale; t: Catalog } {
  const locale = pageLocale(c)
  return { locale, t: CATALOGS[locale] }
}

export type { Catalog }
