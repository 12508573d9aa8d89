import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env'

export interface HitResult {
  allowed: boolean
  limit: number
  remaining: number
  /** seconds until the window resets (0 when allowed) */
  retryAfterS: number
}

interface Window {
  start: number
  count: number
  windowMs: number
}

/**
 * One object per (policy, key), e.g. `signed_app:app_123` or `captcha_ip:203.0.113.9`.
 * A Durable Object id is one instance worldwide and handles one request at a time, so
 * counts are exact across isolates and locations (a per-isolate Map would not be).
 * Fixed windows, persisted in the object's SQLite storage so eviction does not reset them.
 */
export class RateLimiter extends DurableObject<Env> {
  async hit(limit: number, windowMs: number, cost = 1): Promise<HitResult> {
    const now = Date.now()
    let w = await this.ctx.storage.get<Window>('w')
    if (!w || now - w.start >= windowMs) w = { start: now, count: 0, windowMs }
    if (w.count + cost > limit) {
      return { allowed: false, limit, remaining: Math.max(0, limit - w.count), retryAfterS: Math.max(1, Math.ceil((w.start + windowMs - now) / 1000)) }
    }
    w.count += cost
    await this.ctx.storage.put('w', w)
    // drop the storage once the window is long over
    await this.ctx.storage.setAlarm(w.start + windowMs * 2)
    return { allowed: true, limit, remaining: limit - w.count, retryAfterS: 0 }
  }

  /**
   * Gives back `cost` hits of the current window: an attempt counted before its outcome was
   * known (a password check, an SMS code check) that turned out not to count. A window that
   * has run out meanwhile is left alone.
   */
  async refund(cost = 1): Promise<void> {
    const w = await this.ctx.storage.get<Window>('w')
    if (!w || Date.now() - w.start >= w.windowMs) return
    w.count = Math.max(0, w.count - cost)
    await this.ctx.storage.put('w', w)
  }

  /** The current window's count, without counting (0 when no window is running). */
  async peek(): Promise<{ count: number; retryAfterS: number }> {
    const now = Date.now()
    const w = await this.ctx.storage.get<Window>('w')
    if (!w || now - w.start >= w.windowMs) return { count: 0, retryAfterS: 0 }
    return { count: w.count, retryAfterS: Math.max(1, Math.ceil((w.start + w.windowMs - now) / 1000)) }
  }

  async reset(): Promise<void> {
    await this.ctx.storage.deleteAll()
  }

  async alarm() {
    const w = await this.ctx.storage.get<Window>('w')
    if (!w || Date.now() >= w.start + w.windowMs) await this.ctx.storage.deleteAll()
  }
}
