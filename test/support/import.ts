// Helpers for the bulk import tests: uploads, waiting for jobs, reading D1.
import { SELF, env } from 'cloudflare:test'
import { readResponse } from './api'

export const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'

export type Auth = { token: string } | { appToken: string }
const authHeaders = (a: Auth): Record<string, string> => ('token' in a ? { Authorization: `Bearer ${a.token}` } : { 'X-App-Access-Token': a.appToken })

export async function upload(path: string, auth: Auth, body: BodyInit, contentType?: string) {
  const headers: Record<string, string> = authHeaders(auth)
  if (contentType) headers['Content-Type'] = contentType
  return readResponse(await SELF.fetch(`http://localhost${path}`, { method: 'POST', headers, body }))
}

export async function call(path: string, auth: Auth, init: { method?: string; json?: unknown } = {}) {
  const headers: Record<string, string> = authHeaders(auth)
  if (init.json !== undefined) headers['Content-Type'] = 'application/json'
  return readResponse(await SELF.fetch(`http://localhost${path}`, { method: init.method ?? 'GET', headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) }))
}

/** Polls a job until it is no longer running. */
export async function waitForJob(path: string, auth: Auth, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs
  for (;;) {
    const r = await call(path, auth)
    if (r.status !== 200) throw new Error(`job ${r.status} ${JSON.stringify(r.body)}`)
    if (r.body.state !== 'running') return r.body
    if (Date.now() > until) throw new Error(`job still running: ${JSON.stringify(r.body)}`)
    await new Promise((res) => setTimeout(res, 40))
  }
}

export const csv = (rows: (string | number)[][]) => rows.map((r) => r.join(',')).join('\n') + '\n'

/** Parses simple CSV output (our own: quoted fields, CRLF) into rows. */
export function parseCsv(text: string): string[][] {
  const out: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  const s = text.replace(/^\ufeff/, '')
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]
    if (quoted) {
      if (ch === '"' && s[i + 1] === '"') (field += '"'), i++
      else if (ch === '"') quoted = false
      else field += ch
    } else if (ch === '"') quoted = true
    else if (ch === ',') row.push(field), (field = '')
    else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && s[i + 1] === '\n') i++
      row.push(field)
      out.push(row)
      row = []
      field = ''
    } else field += ch
  }
  if (field || row.length) row.push(field), out.push(row)
  return out
}

export async function mappingsOf(appId: string) {
  return (await env.DB.prepare('SELECT m.id, m.user_id, m.mapped_key, m.name, m.is_active, u.mobile FROM app_user_mappings m JOIN users u ON u.id = m.user_id WHERE m.app_id = ? ORDER BY u.mobile').bind(appId).all<any>()).results
}

export async function eventsOf(appId: string) {
  return (await env.DB.prepare('SELECT event_type, type, mapping_id, payload FROM mapping_events WHERE app_id = ? ORDER BY id').bind(appId).all<any>()).results
}

export async function auditOf(action: string, targetId?: string) {
  const q = targetId === undefined ? env.DB.prepare('SELECT * FROM audit_logs WHERE action = ? ORDER BY id').bind(action) : env.DB.prepare('SELECT * FROM audit_logs WHERE action = ? AND target_id = ? ORDER BY id').bind(action, targetId)
  return (await q.all<any>()).results.map((r) => ({ ...r, details: r.details ? JSON.parse(r.details) : null }))
}

/** Users straight in D1 (fast: thousands per test), with a hash nobody can sign in with. */
export async function seedUsers(mobiles: string[], name = (i: number) => `Seed ${i}`) {
  const ids: string[] = []
  const now = Date.now()
  for (let i = 0; i < mobiles.length; i += 500) {
    const part = mobiles.slice(i, i + 500).map((m, k) => [crypto.randomUUID(), m, '!', name(i + k), null, 'ACTIVE', 'USER', now, now])
    ids.push(...part.map((p) => p[0] as string))
    await env.DB.prepare("INSERT INTO users (id, mobile, password_hash, name, email, status, role, created_at, updated_at) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6, value ->> 7, value ->> 8 FROM json_each(?)")
      .bind(JSON.stringify(part))
      .run()
  }
  return ids
}

let seq = 0
/** Distinct mobiles in a range no other test file uses (+1 area codes), unique per call. */
export function freshMobiles(n: number): string[] {
  seq++
  const base = 2_000_000_000 + Math.floor(Math.random() * 7_000_000_000)
  return Array.from({ length: n }, (_, i) => `+1${base + i * 7 + seq}`.slice(0, 12))
}
