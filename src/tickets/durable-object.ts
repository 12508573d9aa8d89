import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env'

/** What a ticket is bound to. Only the SHA-256 of the ticket string is kept, never the ticket. */
export interface TicketRecord {
  ticketHash: string
  targetAppId: string
  /** null: UAP Edge itself issued the ticket (no-interaction sign-in on the hosted pages). */
  sourceAppId: string | null
  userId: string
  mappedKey: string
  issuedAt: number
  expiresAt: number
}

export type RedeemResult =
  | { ok: true; ticket: TicketRecord }
  | { ok: false; reason: 'ticket_invalid' | 'ticket_not_for_app' | 'ticket_expired' }
  | { ok: false; reason: 'ticket_already_used'; redeemedAt: number }

/**
 * After expiry a ticket's row is kept this long so that late redemptions get
 * `ticket_expired` / `ticket_already_used` rather than `ticket_invalid`; then the alarm
 * deletes the object's storage.
 */
export const TICKET_RETAIN_MS = 15 * 60_000

type Row = {
  ticket_hash: string
  target_app_id: string
  source_app_id: string | null
  user_id: string
  mapped_key: string
  issued_at: number
  expires_at: number
  redeemed_at: number | null
}

const toRecord = (r: Row): TicketRecord => ({
  ticketHash: r.ticket_hash,
  targetAppId: r.target_app_id,
  sourceAppId: r.source_app_id,
  userId: r.user_id,
  mappedKey: r.mapped_key,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
})

/**
 * Holds SSO tickets: by default one object per ticket (`newUniqueId()`, whose id travels
 * inside the ticket, see service.ts); with TICKET_SHARDS, a fixed set of shard objects. A Durable Object id names one instance worldwide that runs one event at a
 * time, and the SQL calls below are synchronous, so the check-and-consume in `redeem` is
 * linearizable: of any number of concurrent redemptions from any location exactly one wins.
 * The object is created where the exchange runs (or at its location hint) and its alarm
 * deletes everything once the ticket is long expired. Design and trade-offs: docs/tickets.md.
 */
export class TicketVault extends DurableObject<Env> {
  private get sql() {
    return this.ctx.storage.sql
  }

  /** Does this object hold tickets? Checked without writing, so probing unknown ids creates no storage. */
  private hasTable(): boolean {
    return this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ticket'").toArray().length > 0
  }

  async issue(t: TicketRecord): Promise<void> {
    this.sql.exec(
      `CREATE TABLE IF NOT EXISTS ticket (
        ticket_hash TEXT PRIMARY KEY, target_app_id TEXT NOT NULL, source_app_id TEXT, user_id TEXT NOT NULL,
        mapped_key TEXT NOT NULL, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, redeemed_at INTEGER)`,
    )
    this.sql.exec(
      'INSERT INTO ticket (ticket_hash, target_app_id, source_app_id, user_id, mapped_key, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      t.ticketHash,
      t.targetAppId,
      t.sourceAppId,
      t.userId,
      t.mappedKey,
      t.issuedAt,
      t.expiresAt,
    )
    const due = t.expiresAt + TICKET_RETAIN_MS
    const alarm = await this.ctx.storage.getAlarm()
    if (alarm === null || alarm > due) await this.ctx.storage.setAlarm(due)
  }

  /**
   * Consumes the ticket if, and only if, it is this app's, unused and unexpired. The app
   * binding is checked before the ticket's state, so a foreign app neither consumes the
   * ticket nor learns whether it was used or expired.
   */
  async redeem(ticketHash: string, appId: string, now = Date.now()): Promise<RedeemResult> {
    if (!this.hasTable()) return { ok: false, reason: 'ticket_invalid' }
    const row = this.sql.exec<Row>('SELECT * FROM ticket WHERE ticket_hash = ?', ticketHash).toArray()[0]
    if (!row) return { ok: false, reason: 'ticket_invalid' }
    if (row.target_app_id !== appId) return { ok: false, reason: 'ticket_not_for_app' }
    if (row.redeemed_at !== null) return { ok: false, reason: 'ticket_already_used', redeemedAt: row.redeemed_at }
    if (row.expires_at <= now) return { ok: false, reason: 'ticket_expired' }
    // Conditional write: even without the object's single-threading this could only succeed once.
    const won = this.sql.exec('UPDATE ticket SET redeemed_at = ? WHERE ticket_hash = ? AND redeemed_at IS NULL', now, ticketHash).rowsWritten
    if (won !== 1) return { ok: false, reason: 'ticket_already_used', redeemedAt: now }
    return { ok: true, ticket: toRecord(row) }
  }

  /** Drops tickets past their retention; the object's storage goes entirely once none is left. */
  async alarm() {
    if (this.hasTable()) {
      this.sql.exec('DELETE FROM ticket WHERE expires_at <= ?', Date.now() - TICKET_RETAIN_MS)
      const next = this.sql.exec<{ m: number | null }>('SELECT MIN(expires_at) AS m FROM ticket').one().m
      if (next !== null) {
        await this.ctx.storage.setAlarm(next + TICKET_RETAIN_MS)
        return
      }
    }
    await this.ctx.storage.deleteAll()
  }
}
