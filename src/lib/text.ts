import { z } from '@hono/zod-openapi'

/**
 * Text a person typed (a name, an app's title, an account key) is stored and later sent to
 * partner apps, in JSON, webhooks, ID tokens and pages. Two things in a JavaScript string
 * are never such text and break consumers downstream:
 * - control characters: NUL ends strings in C code, and the other C0/C1 controls (and DEL)
 *   have no place in a one-line field; a multi-line field may hold tab and line breaks;
 * - lone surrogates: half of a UTF-16 pair, not a Unicode character; JSON.parse accepts the
 *   escape `"\ud800"`, but no UTF-8 encoder can carry it (it becomes U+FFFD on the way out).
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const CONTROL = /[\u0000-\u001F\u007F-\u009F]/
const CONTROL_MULTILINE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/

export interface TextRules {
  /** tab, LF and CR allowed (default: one line, no control character at all) */
  multiline?: boolean
}

const codePoint = (ch: string) => 'U+' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')

/** Why `s` is not text a person typed, or null when it is. For checks outside zod (the hosted pages' forms). */
export function textProblem(s: string, rules: TextRules = {}): string | null {
  const lone = LONE_SURROGATE.exec(s)
  if (lone) return `must be valid Unicode text: it holds a lone surrogate (${codePoint(lone[0])}) at position ${lone.index}`
  const control = (rules.multiline ? CONTROL_MULTILINE : CONTROL).exec(s)
  if (control) return `must not contain control characters: ${codePoint(control[0])} at position ${control.index}`
  return null
}

export interface TypedTextOptions extends TextRules {
  max: number
  min?: number
  /** leading and trailing whitespace removed before the checks (default true); false for keys compared exactly */
  trim?: boolean
}

/**
 * The zod field for every free-text input: trimmed (unless `trim: false`), refused with a
 * 400 naming the field when it holds control characters or lone surrogates, then length
 * checked. Chain `.optional()`, `.nullable()`, `.email()`, `.openapi()` as usual.
 */
export function typedText(o: TypedTextOptions) {
  let s = z.string()
  if (o.trim !== false) s = s.trim()
  s = s.superRefine((v, ctx) => {
    const problem = textProblem(v, o)
    if (problem) ctx.addIssue({ code: 'custom', message: problem })
  })
  if (o.min !== undefined) s = s.min(o.min)
  return s.max(o.max)
}
