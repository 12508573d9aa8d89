import { z } from '@hono/zod-openapi'

declare const e164Brand: unique symbol
/** A mobile number already normalised to E.164: only normalizeMobile (and MobileField) make one. */
export type E164 = string & { readonly [e164Brand]: true }

/**
 * Mobile numbers are stored in E.164 (`+8613800138000`). Input may use spaces, dashes or
 * dots, a `00` international prefix, or a bare national number: an 11-digit number
 * starting with 1 is taken as mainland China (+86), the product's home market.
 */
export function normalizeMobile(input: string): E164 | null {
  let s = input.trim().replace(/[\s\-().]/g, '')
  if (s.startsWith('00')) s = '+' + s.slice(2)
  if (/^1\d{10}$/.test(s)) s = '+86' + s
  if (!/^\+[1-9]\d{6,14}$/.test(s)) return null
  return s as E164
}

/** zod field that normalises to E.164 or fails with a clear message. */
export const MobileField = z
  .string()
  .min(1)
  .max(32)
  .transform((v, ctx) => {
    const m = normalizeMobile(v)
    if (!m) {
      ctx.addIssue({ code: 'custom', message: 'must be a mobile number in E.164 (+8613800138000) or an 11-digit mainland number' })
      return z.NEVER
    }
    return m
  })
  .openapi({ example: '+8613800138000', type: 'string' })
