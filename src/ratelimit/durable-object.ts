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

  async reset(): Promise<void> {
    await this.ctx.storage.deleteAll()
  }

  async alarm() {
    const w = await this.ctx.storage.get<Window>('w')
    if (!w || Date.now() >= w.start + w.windowMs) await this.ctx.storage.deleteAll()
  }
}
