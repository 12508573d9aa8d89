import { DurableObject } from 'cloudflare:workers'
import type { Env } from '../env'
import { log } from '../lib/logger'
import { auditRowsStatements, type AuditEntry } from '../audit/service'
import { checkHit, countHit, currentWindow, type HitResult, type Window } from '../ratelimit/window'
import { TICKET_RETAIN_MS, createTicketTable, purgeTickets, redeemTicket, storeTicket, ticketExists, type RedeemResult, type TicketRecord } from '../tickets/store'

/**
 * AppGate: one Durable Object per application (`idFromName(app_id)`), the one place every
 * signed call of that app passes through, in one call (docs/signing.md, docs/security.md):
 *
 * - **the app row version**: a Worker may check a signature against its isolate's cached
 *   copy of the app row only while this object vouches for that row's `version`. Admin
 *   changes take a hold here before writing D1 and release it with the new version after
 *   (holdAppChange below), so a cached row can never outlive a rotation or a disable;
 * - **the nonce**, single use exactly: an insert-if-absent in this object's SQLite;
 * - **the per-app rate limits** (`signed_app`, and `ticket_exchange_app` on exchanges),
 *   counted after the nonce check, so a replay spends nothing;
 * - **the SSO tickets issued for this app** (as the target): a redemption is the same
 *   call that admits the verify request (src/tickets/store.ts);
 * - **an audit outbox** for the ticket events it records (issued, redeemed): the audit row
 *   is committed with the ticket change itself and the alarm ships the rows to D1 in
 *   batches (at least once), instead of one D1 write per request.
 *
 * One object id is one instance worldwide that runs one event at a time, and the SQL API
 * is synchronous: each call below checks and writes with no await in between, so all of
 * it is linearizable. Tables are created on first write, so probing unknown ids creates no
 * storage. The alarm drops expired nonces, rate windows and tickets.
 */

export interface PolicyHit {
  name: string
  limit: number
  windowMs: number
}

export interface AdmitRequest {
  /** the app row version the caller checked the signature against */
  version: number
  /** true: the caller read this row from D1 for this request; false: from its isolate cache */
  fresh: boolean
  /** false: only confirm the version (the app is disabled or its partner API is off): no nonce, no rate spent */
  spend: boolean
  nonce: string
  nonceTtlMs: number
  /** per-app policies, each counted once; all must allow before any is counted */
  policies: PolicyHit[]
  /** a ticket issued for this app to redeem once the call is admitted, and the audit row of a redemption */
  redeem?: { ticketHash: string; appId: string; audit: AuditEntry }
}

export type AdmitResult =
  /** this object does not vouch for the row the caller used: read D1 and try again */
  | { kind: 'stale' }
  /** version confirmed, nothing spent (spend: false) */
  | { kind: 'checked' }
  | { kind: 'replayed' }
  | { kind: 'limited'; policy: string; hit: HitResult }
  | { kind: 'admitted'; hits: HitResult[]; redeemed?: RedeemResult }

/**
 * A hold older than this is treated as abandoned (its admin request failed between taking
 * it and releasing it): the object stops vouching for any version until a row read from
 * D1 after that sets one again. Far longer than any D1 write can be in flight.
 */
export const HOLD_MAX_MS = 5 * 60_000

/** Audit rows wait at most about this long in the outbox before the alarm writes them to D1. */
export const AUDIT_FLUSH_MS = 1000
/** Rows per D1 batch (multi-row INSERTs of audit/service auditRowsStatements; D1 allows 100 bound parameters per statement and 1,000 queries per invocation). */
const AUDIT_BATCH = 50

/** What admit reads in its one statement. */
type GateRead = { current: number | null; best: number | null; tainted: number; holds: number; oldest: number | null; seen: number | null; windows: string }

interface Meta {
  /** the version cached rows must carry; null: vouch for none (read D1) */
  current: number | null
  /** while holds are open: the highest version released so far, and whether one was unknown */
  best: number | null
  tainted: boolean
}

export class AppGate extends DurableObject<Env> {
  private tables: boolean
  private alarmAt: number | null | undefined

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    this.tables = this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'gate_meta'").toArray().length > 0
  }

  private get sql() {
    return this.ctx.storage.sql
  }

  private ensureTables() {
    if (this.tables) return
    this.sql.exec('CREATE TABLE IF NOT EXISTS gate_meta (id INTEGER PRIMARY KEY CHECK (id = 1), current INTEGER, best INTEGER, tainted INTEGER NOT NULL DEFAULT 0)')
    this.sql.exec('INSERT OR IGNORE INTO gate_meta (id) VALUES (1)')
    this.sql.exec('CREATE TABLE IF NOT EXISTS gate_hold (token TEXT PRIMARY KEY, since INTEGER NOT NULL)')
    this.sql.exec('CREATE TABLE IF NOT EXISTS nonce (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID')
    this.sql.exec('CREATE INDEX IF NOT EXISTS nonce_expires ON nonce (expires_at)')
    this.sql.exec('CREATE TABLE IF NOT EXISTS rate_window (policy TEXT PRIMARY KEY, start INTEGER NOT NULL, count INTEGER NOT NULL, window_ms INTEGER NOT NULL)')
    createTicketTable(this.sql)
    this.sql.exec('CREATE TABLE IF NOT EXISTS audit_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, entry TEXT NOT NULL)')
    this.tables = true
  }

  private meta(): Meta {
    const r = this.sql.exec<{ current: number | null; best: number | null; tainted: number }>('SELECT current, best, tainted FROM gate_meta WHERE id = 1').one()
    return { current: r.current, best: r.best, tainted: r.tainted === 1 }
  }

  private setMeta(m: Meta) {
    this.sql.exec('UPDATE gate_meta SET current = ?, best = ?, tainted = ? WHERE id = 1', m.current, m.best, m.tainted ? 1 : 0)
  }

  /**
   * Drops abandoned holds; once none is open, the highest released version is vouched for
   * (none if a release was unknown or a hold was abandoned). Returns the state and how many
   * holds are still open. `seen` is what the caller already read (admit reads it with the
   * nonce in one statement): the common case, no hold at all, costs no statement here.
   */
  private settleHolds(m: Meta, now: number, seen?: { holds: number; oldest: number | null }): { meta: Meta; holds: number } {
    let holds = seen?.holds
    let dropped = 0
    if (holds === undefined || (seen!.oldest !== null && seen!.oldest < now - HOLD_MAX_MS)) {
      dropped = this.sql.exec('DELETE FROM gate_hold WHERE since < ?', now - HOLD_MAX_MS).rowsWritten
      holds = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM gate_hold').one().n
    }
    let next = dropped ? { ...m, tainted: true } : m
    if (holds === 0 && (next.best !== null || next.tainted)) next = { current: next.tainted ? null : next.best, best: null, tainted: false }
    if (next !== m) this.setMeta(next)
    return { meta: next, holds }
  }

  /** Does this object vouch for the row the caller checked the signature against? */
  private vouches(req: Pick<AdmitRequest, 'version' | 'fresh'>, now: number, read: GateRead): boolean {
    const { meta: m, holds } = this.settleHolds({ current: read.current, best: read.best, tainted: read.tainted === 1 }, now, read)
    if (!req.fresh) return holds === 0 && m.current === req.version
    // A row read from D1 for this request is the truth as of that read. While an admin
    // change is open it is accepted (the change has not been answered yet) but not vouched
    // for; otherwise it moves the vouched version forward (D1 changed without a hold: a
    // first call, an edit outside the admin API) and an older one is refused (read before
    // a change that has since been answered).
    if (holds > 0) return true
    if (m.current === null || req.version > m.current) {
      this.setMeta({ ...m, current: req.version })
      return true
    }
    return req.version === m.current
  }

  async admit(req: AdmitRequest): Promise<AdmitResult> {
    const now = Date.now()
    this.ensureTables()
    // Everything the decision needs in one statement (this runs on every signed call): the
    // version state, the open holds, whether the nonce was seen, and the policies' windows.
    const read = this.sql
      .exec<GateRead>(
        `SELECT m.current, m.best, m.tainted, h.holds, h.oldest, (SELECT expires_at FROM nonce WHERE nonce = ?) AS seen,
          (SELECT json_group_array(json_array(policy, start, count, window_ms)) FROM rate_window WHERE policy IN (SELECT value FROM json_each(?))) AS windows
        FROM gate_meta m, (SELECT COUNT(*) AS holds, MIN(since) AS oldest FROM gate_hold) h WHERE m.id = 1`,
        req.nonce,
        JSON.stringify(req.policies.map((p) => p.name)),
      )
      .one()
    if (!this.vouches(req, now, read)) return { kind: 'stale' }
    if (!req.spend) return { kind: 'checked' }

    if (read.seen !== null && read.seen > now) return { kind: 'replayed' }

    const stored = new Map((JSON.parse(read.windows) as [string, number, number, number][]).map(([policy, start, count, windowMs]) => [policy, { start, count, windowMs }]))
    const windows = req.policies.map((p) => currentWindow(stored.get(p.name), p.windowMs, now))
    const hits = req.policies.map((p, i) => checkHit(windows[i], p.limit, 1, now))
    const refused = hits.findIndex((h) => !h.allowed)
    if (refused >= 0) return { kind: 'limited', policy: req.policies[refused].name, hit: hits[refused] }
    if (req.policies.length) {
      const counted = req.policies.map((p, i) => ({ name: p.name, w: countHit(windows[i], 1) }))
      this.sql.exec(
        `INSERT OR REPLACE INTO rate_window (policy, start, count, window_ms) VALUES ${counted.map(() => '(?, ?, ?, ?)').join(', ')}`,
        ...counted.flatMap(({ name, w }) => [name, w.start, w.count, w.windowMs]),
      )
    }
    this.sql.exec('INSERT OR REPLACE INTO nonce (nonce, expires_at) VALUES (?, ?)', req.nonce, now + req.nonceTtlMs)

    const redeemed = req.redeem ? redeemTicket(this.sql, req.redeem.ticketHash, req.redeem.appId, now) : undefined
    if (req.redeem && redeemed?.ok) {
      this.outbox({ ...req.redeem.audit, at: now, targetId: redeemed.ticket.userId, details: { source_app_id: redeemed.ticket.sourceAppId } })
      await this.alarmBy(now + AUDIT_FLUSH_MS)
    } else await this.alarmBy(now + req.nonceTtlMs)
    return redeemed ? { kind: 'admitted', hits, redeemed } : { kind: 'admitted', hits }
  }

  /** Stores a ticket issued for this app (the exchange, or UAP Edge's own sign-in page) with its audit row. */
  async issueTicket(t: TicketRecord, audit: AuditEntry): Promise<void> {
    this.ensureTables()
    storeTicket(this.sql, t)
    this.outbox({ ...audit, at: t.issuedAt })
    await this.alarmBy(Date.now() + AUDIT_FLUSH_MS)
  }

  private outbox(entry: AuditEntry) {
    this.sql.exec('INSERT INTO audit_outbox (entry) VALUES (?)', JSON.stringify(entry))
  }

  /** Writes waiting audit rows to D1, oldest first; a failure leaves them for the next alarm (at least once). */
  private async flushAudit() {
    for (;;) {
      const rows = this.sql.exec<{ id: number; entry: string }>('SELECT id, entry FROM audit_outbox ORDER BY id LIMIT ?', AUDIT_BATCH).toArray()
      if (!rows.length) return
      await this.env.DB.batch(auditRowsStatements(this.env.DB, rows.map((r) => JSON.parse(r.entry) as AuditEntry)))
      this.sql.exec('DELETE FROM audit_outbox WHERE id <= ?', rows[rows.length - 1].id)
    }
  }

  /** Whether a ticket exists here, in any state: no consumption, no state revealed. */
  async hasTicket(ticketHash: string): Promise<boolean> {
    return this.tables && ticketExists(this.sql, ticketHash)
  }

  /** An admin change of the app is about to be written to D1: vouch for no cached row until it is released. */
  async hold(): Promise<string> {
    const now = Date.now()
    this.ensureTables()
    const { meta: m, holds } = this.settleHolds(this.meta(), now)
    const token = crypto.randomUUID()
    // a new round of holds starts from nothing released
    const fresh = holds === 0
    this.sql.exec('INSERT INTO gate_hold (token, since) VALUES (?, ?)', token, now)
    this.setMeta({ current: null, best: fresh ? null : m.best, tainted: fresh ? false : m.tainted })
    return token
  }

  /**
   * The change is in D1 with `version` (read back from the write), or null when there is no
   * row to vouch for (deleted) or the outcome is unknown. When the last open hold is
   * released, the highest released version is vouched for.
   */
  async release(token: string, version: number | null): Promise<void> {
    const now = Date.now()
    this.ensureTables()
    let m = this.meta()
    const mine = this.sql.exec('DELETE FROM gate_hold WHERE token = ?', token).rowsWritten
    // a hold dropped as abandoned cannot vouch for anything any more
    if (!mine || version === null) m = { ...m, tainted: true }
    else m = { ...m, best: m.best === null ? version : Math.max(m.best, version) }
    this.setMeta(m)
    this.settleHolds(m, now)
  }

  private async alarmBy(at: number) {
    if (this.alarmAt === undefined) this.alarmAt = await this.ctx.storage.getAlarm()
    if (this.alarmAt === null || this.alarmAt > at) {
      await this.ctx.storage.setAlarm(at)
      this.alarmAt = at
    }
  }

  /** Ships the audit outbox to D1; drops expired nonces, rate windows and tickets; re-arms for the next one due. */
  async alarm() {
    this.alarmAt = null
    if (!this.tables) return
    try {
      await this.flushAudit()
    } catch (e) {
      log.error('app_gate.audit_flush_failed', { error: (e as Error).message })
    }
    const now = Date.now()
    this.sql.exec('DELETE FROM nonce WHERE expires_at <= ?', now)
    this.sql.exec('DELETE FROM rate_window WHERE start + window_ms <= ?', now)
    const nonce = this.sql.exec<{ m: number | null }>('SELECT MIN(expires_at) AS m FROM nonce').one().m
    const ticket = purgeTickets(this.sql, now)
    const audit = this.sql.exec('SELECT 1 FROM audit_outbox LIMIT 1').toArray().length ? now + AUDIT_FLUSH_MS : null
    const next = [nonce, ticket, audit].filter((t): t is number => t !== null)
    if (next.length) await this.alarmBy(Math.min(...next))
  }
}

// An object id is a pure function of the namespace and the name, and deriving it is a hash
// on every signed call (an exchange derives two), so the isolate keeps the ids it derived:
// ids only; the object handle from `get` is made per request, as it belongs to that request.
const gateIds = new WeakMap<object, Map<string, DurableObjectId>>()
const MAX_GATE_IDS = 1000

/** The gate of an application. */
export function appGate(env: Env, appId: string) {
  const ns = env.APP_GATE
  let ids = gateIds.get(ns)
  if (!ids) gateIds.set(ns, (ids = new Map()))
  let id = ids.get(appId)
  if (!id) {
    if (ids.size >= MAX_GATE_IDS) ids.delete(ids.keys().next().value!)
    ids.set(appId, (id = ns.idFromName(appId)))
  }
  return ns.get(id)
}

/**
 * The admin side of the version protocol (installed for src/apps/ through src/wiring.ts):
 * hold before the D1 write; the returned function releases with the version the write
 * left. A failed hold aborts the change before anything is written. A failed release is
 * logged and leaves the object vouching for nothing, which only sends this app's signed
 * calls to D1 until the hold is abandoned (HOLD_MAX_MS) and a fresh read sets a version.
 */
export async function holdAppChange(env: Env, appId: string): Promise<(version: number | null) => Promise<void>> {
  const gate = appGate(env, appId)
  const token = await gate.hold()
  return async (version) => {
    try {
      await gate.release(token, version)
    } catch (e) {
      log.error('app_gate.release_failed', { app_id: appId, error: (e as Error).message })
    }
  }
}
