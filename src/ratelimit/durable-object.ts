import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env'
import { checkHit, countHit, currentWindow, type HitResult, type Window } from './window'

export type { HitResult }

/**
 * One object per (policy, key), e.g. `partner_ip:203.0.113.9` or `captcha_ip:203.0.113.9`.
 * A Durable Object id is one instance worldwide and handles one request at a time, so
 * counts are exact across isolates and locations (a per-isolate Map would not be).
 * Fixed windows, persisted in the object's SQLite storage so eviction does not reset them.
 * (Per-app policies of signed calls are counted in the app's AppGate object instead,
 * together with the nonce: src/signing/gate.ts.)
 */
export class RateLimiter extends DurableObject<Env> {
  async hit(limit: number, windowMs: number, cost = 1): Promise<HitResult> {
    const now = Date.now()
    const w = currentWindow(await this.ctx.storage.get<Window>('w'), windowMs, now)
    const r = checkHit(w, limit, cost, now)
    if (!r.allowed) return r
    await this.ctx.storage.put('w', countHit(w, cost))
    // drop the storage once the window is long over (once per window: the time is the window's)
    if (w.count === 0) await this.ctx.storage.setAlarm(w.start + windowMs * 2)
    return r
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
