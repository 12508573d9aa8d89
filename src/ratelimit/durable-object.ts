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
  /**
   * The stored window as this instance last read or wrote it (null: none stored). This
   * instance is the only writer of its storage, so the copy is the stored value; it saves a
   * storage call on every hit (the OAuth endpoints count every request here).
   */
  private cached: Window | null | undefined

  private async stored(): Promise<Window | undefined> {
    if (this.cached === undefined) this.cached = (await this.ctx.storage.get<Window>('w')) ?? null
    return this.cached ?? undefined
  }

  private async store(w: Window) {
    await this.ctx.storage.put('w', w)
    this.cached = w
  }

  private async clear() {
    await this.ctx.storage.deleteAll()
    this.cached = null
  }

  async hit(limit: number, windowMs: number, cost = 1): Promise<HitResult> {
    const now = Date.now()
    const w = currentWindow(await this.stored(), windowMs, now)
    const r = checkHit(w, limit, cost, now)
    if (!r.allowed) return r
    await this.store(countHit(w, cost))
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
    const w = await this.stored()
    if (!w || Date.now() - w.start >= w.windowMs) return
    await this.store({ ...w, count: Math.max(0, w.count - cost) })
  }

  /** The current window's count, without counting (0 when no window is running). */
  async peek(): Promise<{ count: number; retryAfterS: number }> {
    const now = Date.now()
    const w = await this.stored()
    if (!w || now - w.start >= w.windowMs) return { count: 0, retryAfterS: 0 }
    return { count: w.count, retryAfterS: Math.max(1, Math.ceil((w.start + w.windowMs - now) / 1000)) }
  }

  async reset(): Promise<void> {
    await this.clear()
  }

  async alarm() {
    const w = await this.stored()
    if (!w || Date.now() >= w.start + w.windowMs) await this.clear()
  }
}
