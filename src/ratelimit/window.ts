/**
 * The fixed-window rule every exact limiter applies (the RateLimiter object per key, and
 * the per-app policies counted inside an app's AppGate object). Pure: the caller loads and
 * stores the window inside its own Durable Object, so the check and the count are one step.
 */
export interface Window {
  start: number
  count: number
  windowMs: number
}

export interface HitResult {
  allowed: boolean
  limit: number
  remaining: number
  /** seconds until the window resets (0 when allowed) */
  retryAfterS: number
}

/** A fresh window when there is none or it has run out. */
export function currentWindow(w: Window | undefined, windowMs: number, now: number): Window {
  return !w || now - w.start >= windowMs ? { start: now, count: 0, windowMs } : { ...w, windowMs }
}

/** Would `cost` more hits fit? Does not count them (see countHit). */
export function checkHit(w: Window, limit: number, cost: number, now: number): HitResult {
  if (w.count + cost > limit) {
    return { allowed: false, limit, remaining: Math.max(0, limit - w.count), retryAfterS: Math.max(1, Math.ceil((w.start + w.windowMs - now) / 1000)) }
  }
  return { allowed: true, limit, remaining: limit - w.count - cost, retryAfterS: 0 }
}

/** Counts `cost` hits into the window (after checkHit allowed them). */
export function countHit(w: Window, cost: number): Window {
  return { ...w, count: w.count + cost }
}
