import type { Context } from 'hono'
import type { AppEnv } from '../../context'
import type { Locale } from './index'

/**
 * Times on the hosted pages: in the visitor's time zone when Cloudflare tells it
 * (`request.cf.timezone`, an IANA name picked from the client IP), else UTC; written by
 * Intl.DateTimeFormat in the page's language and always labelled with the zone, since a
 * guess from an IP can be wrong (VPNs, travel). No script: the server decides.
 */
export const FALLBACK_TIME_ZONE = 'UTC'

/** An IANA zone name this runtime knows, or UTC (missing, malformed or unknown names). */
export function resolveTimeZone(zone: unknown): string {
  if (typeof zone !== 'string' || !zone || zone.length > 64 || !/^[A-Za-z0-9_+\-/]+$/.test(zone)) return FALLBACK_TIME_ZONE
  try {
    // throws RangeError for a zone the runtime's ICU data does not have; the name is kept as given
    new Intl.DateTimeFormat('en', { timeZone: zone })
    return zone
  } catch {
    return FALLBACK_TIME_ZONE
  }
}

/** The request's zone: `request.cf.timezone` (absent in tests and local dev without cf data). */
export function visitorTimeZone(c: Context<AppEnv>): string {
  const cf = (c.req.raw as Request & { cf?: { timezone?: unknown } }).cf
  return resolveTimeZone(cf?.timezone)
}

/** A point in time for people: date and minute in `zone`, in the page's language, with the zone's short name. */
export function formatTime(ms: number, locale: Locale, zone: string): string {
  return new Intl.DateTimeFormat(locale, {
    timeZone: zone,
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'short',
  }).format(ms)
}

/** A date alone (no time of day), in `zone` and the page's language. */
export function formatDate(ms: number, locale: Locale, zone: string): string {
  return new Intl.DateTimeFormat(locale, { timeZone: zone, year: 'numeric', month: 'short', day: 'numeric' }).format(ms)
}
