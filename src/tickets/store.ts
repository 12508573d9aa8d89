/**
 * SSO tickets at rest, inside the target app's AppGate Durable Object (src/signing/gate.ts):
 * the object the target's own signed calls already go through, so a redemption is part of
 * the same call that checks the verify request's nonce and rate (docs/tickets.md). The
 * functions take the object's synchronous SQL storage: nothing awaits between a check and
 * its write, and the object runs one event at a time, so every step here is atomic.
 */

/** What a ticket is bound to. Only the SHA-256 of the ticket string is kept, never the ticket. */
export interface TicketRecord {
  ticketHash: string
  targetAppId: string
  /** null: UAP Edge itself issued the ticket (no-interaction sign-in on the hosted pages). */
  sourceAppId: string | null
  userId: string
  mappedKey: string
  /** what the requesting app passed as `state`, returned by verify (login CSRF, docs/tickets.md) */
  state: string | null
  issuedAt: number
  expiresAt: number
}

export type RedeemResult =
  | { ok: true; ticket: TicketRecord }
  | { ok: false; reason: 'ticket_invalid' | 'ticket_not_for_app' | 'ticket_expired' }
  | { ok: false; reason: 'ticket_already_used'; redeemedAt: number }

/**
 * After expiry a ticket's row is kept this long so that late redemptions get
 * `ticket_expired` / `ticket_already_used` rather than `ticket_invalid`; then the object's
 * alarm deletes it.
 */
export const TICKET_RETAIN_MS = 15 * 60_000

type Row = {
  ticket_hash: string
  target_app_id: string
  source_app_id: string | null
  user_id: string
  mapped_key: string
  state: string | null
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
  state: r.state,
  issuedAt: r.issued_at,
  expiresAt: r.expires_at,
})

export function createTicketTable(sql: SqlStorage) {
  sql.exec(
    `CREATE TABLE IF NOT EXISTS ticket (
      ticket_hash TEXT PRIMARY KEY, target_app_id TEXT NOT NULL, source_app_id TEXT, user_id TEXT NOT NULL,
      mapped_key TEXT NOT NULL, state TEXT, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, redeemed_at INTEGER)`,
  )
  sql.exec('CREATE INDEX IF NOT EXISTS ticket_expires ON ticket (expires_at)')
}

export function storeTicket(sql: SqlStorage, t: TicketRecord) {
  sql.exec(
    'INSERT INTO ticket (ticket_hash, target_app_id, source_app_id, user_id, mapped_key, state, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    t.ticketHash,
    t.targetAppId,
    t.sourceAppId,
    t.userId,
    t.mappedKey,
    t.state,
    t.issuedAt,
    t.expiresAt,
  )
}

/**
 * Consumes the ticket if, and only if, it is this app's, unused and unexpired. The app
 * binding is checked before the ticket's state, so a foreign app neither consumes the
 * ticket nor learns whether it was used or expired.
 */
export function redeemTicket(sql: SqlStorage, ticketHash: string, appId: string, now: number): RedeemResult {
  // The common case in one statement: this app's unused, unexpired ticket, consumed.
  const won = sql.exec<Row>('UPDATE ticket SET redeemed_at = ? WHERE ticket_hash = ? AND target_app_id = ? AND redeemed_at IS NULL AND expires_at > ? RETURNING *', now, ticketHash, appId, now).toArray()[0]
  if (won) return { ok: true, ticket: toRecord(won) }
  // Otherwise say why, in the order a redeemer may learn it.
  const row = sql.exec<Row>('SELECT * FROM ticket WHERE ticket_hash = ?', ticketHash).toArray()[0]
  if (!row) return { ok: false, reason: 'ticket_invalid' }
  if (row.target_app_id !== appId) return { ok: false, reason: 'ticket_not_for_app' }
  if (row.redeemed_at !== null) return { ok: false, reason: 'ticket_already_used', redeemedAt: row.redeemed_at }
  return { ok: false, reason: 'ticket_expired' }
}

/** Does a ticket with this hash exist (in any state)? For telling a foreign redeemer `ticket_not_for_app`. */
export function ticketExists(sql: SqlStorage, ticketHash: string): boolean {
  return sql.exec('SELECT 1 FROM ticket WHERE ticket_hash = ?', ticketHash).toArray().length > 0
}

/** Drops tickets past their retention; returns when the next one is due (null: none left). */
export function purgeTickets(sql: SqlStorage, now: number): number | null {
  sql.exec('DELETE FROM ticket WHERE expires_at <= ?', now - TICKET_RETAIN_MS)
  const next = sql.exec<{ m: number | null }>('SELECT MIN(expires_at) AS m FROM ticket').one().m
  return next === null ? null : next + TICKET_RETAIN_MS
}
