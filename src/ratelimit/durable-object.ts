import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env'
import { log } from '../lib/logger'
import { checkHit, countHit, currentWindow, type HitResult, type Window } from './window'

export type { HitResult }

/** When a hit must be in storage: before the answer, or within PERSIST_SOON_MS (see RateLimiter). */
export type Persist = 'now' | 'soon'

/**
 * A policy's hits (RATE_LIMITS, `persist: 'soon'`) reach storage at most this long after they
 * are counted: the pending timer keeps the object from hibernating, so nothing is lost to an
 * idle eviction; only a crash or restart within this delay forgets that second's hits.
 */
export const PERSIST_SOON_MS = 1000

/**
 * One object per (policy, key), e.g. `partner_ip:203.0.113.9` or `captcha_ip:203.0.113.9`.
 * A Durable Object id is one instance worldwide and handles one request at a time, so
 * counts are exact across isolates and locations (a per-isolate Map would not be).
 * Fixed windows, persisted in the object's SQLite storage so eviction does not reset them.
 * (Per-app policies of signed calls are counted in the app's AppGate object instead,
 * together with the nonce: src/signing/gate.ts.)
 *
 * Two ways a hit is kept: the exact counters of src/ratelimit/counters.ts (single use,
 * sign-in failures, SMS caps) are in storage before their answer (`persist: 'now'`); a
 * RATE_LIMITS policy's hit (`'soon'`) is counted in memory, which is the object's truth, and
 * written within PERSIST_SOON_MS. One write a second instead of one a hit: the OAuth token
 * endpoint counts every request here, and each write was a storage commit the answer waited
 * for (its output gate).
 */
export class RateLimiter extends DurableObject<Env> {
  /**
   * The window as this instance last read or counted it (null: none). This instance is the
   * only writer of its storage, so the copy is the truth; storage equals it unless `flush`
   * is pending.
   */
  private cached: Window | null | undefined
  private flush: ReturnType<typeof setTimeout> | undefined

  private async stored(): Promise<Window | undefined> {
    if (this.cached === undefined) this.cached = (await this.ctx.storage.get<Window>('w')) ?? null
    return this.cached ?? undefined
  }

  private async store(w: Window, persist: Persist = 'now') {
    if (persist === 'soon') {
      this.cached = w
      this.flush ??= setTimeout(() => void this.persist(), PERSIST_SOON_MS)
      return
    }
    // a write that fails leaves the copy as it was
    await this.ctx.storage.put('w', w)
    this.cached = w
    clearTimeout(this.flush)
    this.flush = undefined
  }

  /** The pending `'soon'` write of the counted window. */
  private async persist() {
    this.flush = undefined
    try {
      if (this.cached) await this.ctx.storage.put('w', this.cached)
    } catch (e) {
      // the count in memory still holds; the next 'soon' hit tries again
      log.error('rate_limiter_persist', { error: (e as Error).message })
    }
  }

  private async clear() {
    clearTimeout(this.flush)
    this.flush = undefined
    await this.ctx.storage.deleteAll()
    this.cached = null
  }

  async hit(limit: number, windowMs: number, cost = 1, persist: Persist = 'now'): Promise<HitResult> {
    const now = Date.now()
    const w = currentWindow(await this.stored(), windowMs, now)
    const r = checkHit(w, limit, cost, now)
    if (!r.allowed) return r
    await this.store(countHit(w, cost), persist)
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
