import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import bcrypt from 'bcryptjs'
import { argon2id } from '@noble/hashes/argon2.js'
import { scrypt } from '@noble/hashes/scrypt.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { ADMIN, adminToken, api, createUser, login, signedApi, uniqueMobile } from './support/api'
import { createApp, mapUser, partnerApp } from './support/apps'
import { lastCode, openSmsSend } from './support/sms'
import { auditOf, call, csv, freshMobiles, parseCsv, seedUsers, upload, waitForJob, type Auth } from './support/import'
import { TEST_PARAMS, needsRehash, verifyPassword } from '../src/lib/password'
import { exportUsers, EXPORT_PAGE } from '../src/importer/export'
import type { Env } from '../src/env'

const utf8 = (s: string) => new TextEncoder().encode(s)
const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replace(/=+$/, '')
const salt16 = () => crypto.getRandomValues(new Uint8Array(16))
const userRow = async (mobile: string) => env.DB.prepare('SELECT * FROM users WHERE mobile = ?').bind(mobile).first<any>()

async function importUsers(auth: Auth, file: string, strategy: 'SKIP' | 'OVERWRITE') {
  const p = await upload('/api/v1/admin/users/import/preview', auth, file, 'text/csv')
  expect(p.status).toBe(200)
  const s = await call('/api/v1/admin/users/import', auth, { method: 'POST', json: { preview_id: p.body.preview_id, strategy } })
  expect(s.status).toBe(202)
  const job = await waitForJob(`/api/v1/admin/users/import/${s.body.job_id}`, auth)
  const rep = await call(`/api/v1/admin/users/import/${s.body.job_id}/report`, auth)
  expect(rep.status).toBe(200)
  return { preview: p.body, job, report: parseCsv(rep.body) }
}

describe('users import', () => {
  it('classifies every kind of row; SKIP creates the new users only; OVERWRITE changes the fields a row fills in', async () => {
    const admin = { token: await adminToken() }
    const existing = await createUser({ name: 'Before' })
    const session = await login(existing.mobile, existing.password)
    const [fresh, fresh2, repeat] = [uniqueMobile(), uniqueMobile(), uniqueMobile()]
    const bcryptHash = bcrypt.hashSync('imported-password', 4)
    const file = csv([
      ['手机号', '姓名', '邮箱', '状态', 'password_hash'],
      [fresh, 'Fresh', 'fresh@example.com', 'active', bcryptHash], // 2 new, with a legacy hash
      [fresh2, '', '', '', ''], // 3 new, no password
      [existing.mobile, 'After', '', 'DISABLED', ''], // 4 duplicate: registered
      [ADMIN.mobile, 'Not an admin any more', '', 'DISABLED', ''], // 5 duplicate: an admin account
      [repeat, 'R', '', '', ''], // 6 new
      [repeat, 'R2', '', '', ''], // 7 duplicate: repeated
      ['12', '', '', '', ''], // 8 invalid mobile
      [uniqueMobile(), '', 'not-an-email', '', ''], // 9 invalid email
      [uniqueMobile(), '', '', 'LOCKED', ''], // 10 invalid status
      [uniqueMobile(), '', '', '', '$2x$10$' + 'a'.repeat(53)], // 11 invalid hash
      [uniqueMobile(), '', '', '', 'md5:5f4dcc3b5aa765d61d8327deb882cf99'], // 12 invalid hash
    ])
    const p = await upload('/api/v1/admin/users/import/preview', admin, file, 'text/csv')
    expect(p.status).toBe(200)
    expect(p.body.summary).toEqual({ total: 11, new: 3, duplicate: 3, invalid: 5 })
    expect(p.body.rows.map((r: any) => [r.row, r.status, r.reason])).toEqual([
      [2, 'new', null],
      [3, 'new', null],
      [4, 'duplicate', 'mobile_registered'],
      [5, 'duplicate', 'admin_account'],
      [6, 'new', null],
      [7, 'duplicate', 'repeated_in_file'],
      [8, 'invalid', 'invalid_mobile'],
      [9, 'invalid', 'invalid_email'],
      [10, 'invalid', 'invalid_status'],
      [11, 'invalid', 'invalid_password_hash'],
      [12, 'invalid', 'invalid_password_hash'],
    ])
    expect(p.body.rows[0]).toMatchObject({ mobile: fresh, name: 'Fresh', email: 'fresh@example.com', user_status: 'ACTIVE', password_hash_format: 'bcrypt' })
    expect(p.body.rows[9].message).toMatch(/\$2x\$/)
    expect(JSON.stringify(p.body)).not.toContain(bcryptHash) // hashes are never echoed
    const page = await call(`/api/v1/admin/users/import/preview/${p.body.preview_id}?status=invalid`, admin)
    expect(page.body.rows.map((r: any) => r.row)).toEqual([8, 9, 10, 11, 12])

    const s = await call('/api/v1/admin/users/import', admin, { method: 'POST', json: { preview_id: p.body.preview_id, strategy: 'SKIP' } })
    const job = await waitForJob(`/api/v1/admin/users/import/${s.body.job_id}`, admin)
    expect(job).toMatchObject({ state: 'done', total: 11, created: 3, updated: 0, skipped: 3, failed: 5 })
    expect(await userRow(fresh)).toMatchObject({ name: 'Fresh', email: 'fresh@example.com', status: 'ACTIVE', role: 'USER', password_hash: bcryptHash })
    expect(await userRow(existing.mobile)).toMatchObject({ name: 'Before', status: 'ACTIVE' })
    expect((await api('/api/v1/auth/me', { token: session.access_token })).status).toBe(200)
    const rep = parseCsv((await call(`/api/v1/admin/users/import/${s.body.job_id}/report`, admin)).body)
    expect(rep[0]).toEqual(['row', 'mobile', 'name', 'email', 'status', 'outcome', 'reason', 'message'])
    expect(rep.slice(1).map((r) => [r[0], r[5], r[6]])).toEqual([
      ['4', 'skipped', 'mobile_registered'],
      ['5', 'skipped', 'admin_account'],
      ['7', 'skipped', 'repeated_in_file'],
      ['8', 'failed', 'invalid_mobile'],
      ['9', 'failed', 'invalid_email'],
      ['10', 'failed', 'invalid_status'],
      ['11', 'failed', 'invalid_password_hash'],
      ['12', 'failed', 'invalid_password_hash'],
    ])
    const audits = await auditOf('admin.user.import')
    expect(audits.filter((a) => a.details.job_id === s.body.job_id).map((a) => a.details)).toEqual([{ job_id: s.body.job_id, rows: [2, 12], created: 3, updated: 0, skipped: 3, failed: 5 }])
    expect((await auditOf('admin.user.import.finish')).some((a) => a.details.job_id === s.body.job_id && a.details.created === 3)).toBe(true)

    // OVERWRITE: the registered user takes the row's non-empty fields; DISABLED ends the sessions; the admin is untouched
    const o = await importUsers(admin, csv([['mobile', 'name', 'status'], [existing.mobile, 'After', 'DISABLED'], [ADMIN.mobile, 'x', 'DISABLED'], [fresh, '', '']]), 'OVERWRITE')
    expect(o.job).toMatchObject({ created: 0, updated: 1, skipped: 1, failed: 1 })
    expect(o.report.slice(1).map((r) => [r[0], r[5], r[6]])).toEqual([
      ['3', 'failed', 'admin_account'],
      ['4', 'skipped', 'unchanged'],
    ])
    expect(await userRow(existing.mobile)).toMatchObject({ name: 'After', status: 'DISABLED' })
    expect((await api('/api/v1/auth/me', { token: session.access_token })).status).toBe(401)
    expect(await userRow(ADMIN.mobile)).toMatchObject({ role: 'ADMIN', status: 'ACTIVE' })
    expect((await userRow(fresh)).password_hash).toBe(bcryptHash)
  })

  it('OVERWRITE tells the user\'s apps what an admin edit would: the same outbox events, one per app, in the changes feed', async () => {
    const admin = { token: await adminToken() }
    const apps = [await createApp(), await createApp()]
    // one user of each pair is changed by the file, the other by the admin API
    const pair = async () => [await createUser({ name: 'Han Meimei' }), await createUser({ name: 'Han Meimei' })]
    const [disabled, renamed, enabled, emailed] = [await pair(), await pair(), await pair(), await pair()]
    for (const u of [disabled, renamed, enabled, emailed].flat()) for (const a of apps) await mapUser(a.app_id, u)
    const patch = async (u: { id: string }, json: unknown) => expect((await call(`/api/v1/admin/users/${u.id}`, admin, { method: 'PATCH', json })).status).toBe(200)
    for (const u of enabled) await patch(u, { status: 'DISABLED' })
    await patch(disabled[1], { status: 'DISABLED' })
    await patch(renamed[1], { name: 'Meimei H.' })
    await patch(enabled[1], { status: 'ACTIVE' })
    await patch(emailed[1], { email: 'hmm@example.com' })
    const o = await importUsers(
      admin,
      csv([
        ['mobile', 'name', 'email', 'status'],
        [disabled[0].mobile, '', '', 'DISABLED'],
        [renamed[0].mobile, 'Meimei H.', '', ''],
        [enabled[0].mobile, '', '', 'ACTIVE'],
        [emailed[0].mobile, '', 'hmm@example.com', ''],
      ]),
      'OVERWRITE',
    )
    expect(o.job).toMatchObject({ state: 'done', updated: 4, skipped: 0, failed: 0 })
    for (const a of apps) {
      const feed = await call(`/api/v1/apps/${a.app_id}/users/changes?limit=500`, { appToken: a.access_token })
      expect(feed.status).toBe(200)
      const of = (u: { id: string; mobile: string }) =>
        feed.body.items.filter((i: any) => i.user_id === u.id && i.type.startsWith('user.')).map((i: any) => (expect(i.mobile).toBe(u.mobile), [i.type, i.event_type, i.name, i.status, i.user_status]))
      for (const [byFile, byAdmin] of [disabled, renamed, enabled, emailed]) expect(of(byFile)).toEqual(of(byAdmin))
      expect(of(disabled[0])).toEqual([['user.disabled', 'DISABLE', 'Han Meimei', 'ACTIVE', 'DISABLED']])
      expect(of(renamed[0])).toEqual([['user.updated', 'UPDATE', 'Meimei H.', 'ACTIVE', 'ACTIVE']])
      expect(of(enabled[0])).toEqual([
        ['user.disabled', 'DISABLE', 'Han Meimei', 'ACTIVE', 'DISABLED'],
        ['user.enabled', 'ADD', 'Han Meimei', 'ACTIVE', 'ACTIVE'],
      ])
      expect(of(emailed[0])).toEqual([]) // email is not in the payload: no event, as for an admin
    }
  })

  it('refuses a row whose name or email holds a control character (invalid_characters)', async () => {
    const admin = { token: await adminToken() }
    const [ok, tab, c1] = [uniqueMobile(), uniqueMobile(), uniqueMobile()]
    const file = `mobile,name,email\n${ok},Li Lei,li@example.com\n${tab},Li\tLei,\n${c1},,li\u0085@example.com\n`
    const p = await upload('/api/v1/admin/users/import/preview', admin, file, 'text/csv')
    expect(p.status).toBe(200)
    expect(p.body.rows.map((r: any) => [r.row, r.status, r.reason, r.message])).toEqual([
      [2, 'new', null, null],
      [3, 'invalid', 'invalid_characters', 'name must not contain control characters: U+0009 at position 2'],
      [4, 'invalid', 'invalid_characters', 'email must not contain control characters: U+0085 at position 2'],
    ])
  })

  it('a user imported without a password cannot sign in until the password is set by SMS code', async () => {
    const admin = { token: await adminToken() }
    const mobile = uniqueMobile()
    await importUsers(admin, csv([['mobile', 'name'], [mobile, 'No password']]), 'SKIP')
    const row = await userRow(mobile)
    // a hash of the current scheme (same cost as a wrong password), of a secret nobody has
    expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$/)
    for (const guess of ['', 'No password', mobile]) expect(await verifyPassword(guess, row.password_hash)).toBe(false)
    const refused = await api('/api/v1/auth/login', { method: 'POST', json: { mobile, password: 'anything-at-all-1' }, headers: { 'CF-Connecting-IP': '10.203.0.1' } })
    expect(refused.status).toBe(401)
    expect(refused.body.error.code).toBe('invalid_credentials')
    expect((await openSmsSend(mobile)).status).toBe(200)
    const reset = await signedApi(await partnerApp(), 'POST', '/api/v1/open/pwd/reset', { json: { mobile, sms_code: await lastCode(mobile), new_password: 'my-first-password-1' } })
    expect(reset.status).toBe(200)
    await expect(login(mobile, 'my-first-password-1')).resolves.toHaveProperty('access_token')
  })

  it('a legacy hash of each format, imported as exported, signs in with the old password and is upgraded then', async () => {
    const admin = { token: await adminToken() }
    const django = async (pw: string, iterations: number) => {
      const salt = 'Hq5nLr8sTbW2xZ4mKp9vYc'
      const key = await crypto.subtle.importKey('raw', utf8(pw), 'PBKDF2', false, ['deriveBits'])
      const dk = new Uint8Array(await crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: utf8(salt), iterations }, key, 256))
      return `pbkdf2_sha256$${iterations}$${salt}$${btoa(String.fromCharCode(...dk))}`
    }
    const argon = (pw: string) => {
      const salt = salt16()
      return `$argon2id$v=19$m=2048,t=2,p=2$${b64(salt)}$${b64(argon2id(utf8(pw), salt, { m: 2048, t: 2, p: 2, dkLen: 32 }))}`
    }
    const scryptPhc = (pw: string) => {
      const salt = salt16()
      return `$scrypt$ln=10,r=8,p=1$${b64(salt)}$${b64(scrypt(pw, salt, { N: 2 ** 10, r: 8, p: 1, dkLen: 32 }))}`
    }
    const cases: { format: string; password: string; hash: string }[] = [
      { format: 'bcrypt', password: 'bcrypt-2b-pass', hash: bcrypt.hashSync('bcrypt-2b-pass', 4) },
      { format: 'bcrypt', password: 'rasmuslerdorf', hash: '$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a' },
      { format: 'bcrypt', password: 'abc', hash: '$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i' },
      { format: 'django_pbkdf2_sha256', password: 'django-pass-1', hash: await django('django-pass-1', 10_000) },
      { format: 'sha256', password: 'memberapi-pass', hash: `sha256:${bytesToHex(sha256(utf8('memberapi-pass')))}` },
      { format: 'argon2id', password: 'argon2-pass', hash: argon('argon2-pass') },
      { format: 'scrypt', password: 'scrypt-pass', hash: scryptPhc('scrypt-pass') },
    ]
    const mobiles = cases.map(() => uniqueMobile())
    const file = csv([['mobile', 'password_hash'], ...cases.map((c, i) => [mobiles[i], `"${c.hash}"`])])
    const { preview, job } = await importUsers(admin, file, 'SKIP')
    expect(preview.rows.map((r: any) => r.password_hash_format)).toEqual(cases.map((c) => c.format))
    expect(job).toMatchObject({ created: cases.length, failed: 0 })
    for (const [i, c] of cases.entries()) {
      expect((await userRow(mobiles[i])).password_hash).toBe(c.hash)
      const wrong = await api('/api/v1/auth/login', { method: 'POST', json: { mobile: mobiles[i], password: c.password + 'x' }, headers: { 'CF-Connecting-IP': `10.204.${i}.1` } })
      expect(wrong.status).toBe(401)
      expect((await userRow(mobiles[i])).password_hash).toBe(c.hash)
      await expect(login(mobiles[i], c.password)).resolves.toHaveProperty('access_token')
      const upgraded = (await userRow(mobiles[i])).password_hash
      expect(upgraded, c.format).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$/)
      expect(needsRehash(upgraded, TEST_PARAMS)).toBe(false)
      await expect(login(mobiles[i], c.password)).resolves.toHaveProperty('access_token')
    }
  })

  it('refuses a second users import while one runs', async () => {
    const admin = { token: await adminToken() }
    const mobiles = freshMobiles(1500)
    const file = csv([['mobile'], ...mobiles.map((m) => [m])])
    const [p1, p2] = await Promise.all([1, 2].map(() => upload('/api/v1/admin/users/import/preview', admin, file, 'text/csv')))
    const [a, b] = await Promise.all([p1, p2].map((p) => call('/api/v1/admin/users/import', admin, { method: 'POST', json: { preview_id: p.body.preview_id, strategy: 'SKIP' } })))
    expect([a.status, b.status].sort()).toEqual([202, 409])
    const won = a.status === 202 ? a : b
    const lost = a.status === 202 ? b : a
    expect(lost.body.error).toMatchObject({ code: 'import_running', details: { job_id: won.body.job_id } })
    expect(await waitForJob(`/api/v1/admin/users/import/${won.body.job_id}`, admin)).toMatchObject({ state: 'done', created: 1500 })

    // disabling them all is four statements a user (update, events, sessions, refresh tokens): the job splits its batches and alarms to stay inside D1's limits
    const off = await importUsers(admin, csv([['mobile', 'status'], ...mobiles.map((m) => [m, 'DISABLED'])]), 'OVERWRITE')
    expect(off.job).toMatchObject({ state: 'done', total: 1500, processed: 1500, updated: 1500, skipped: 0, failed: 0 })
    const still = await env.DB.prepare("SELECT count(*) AS n FROM users WHERE status = 'ACTIVE' AND mobile IN (SELECT value FROM json_each(?))").bind(JSON.stringify(mobiles)).first<{ n: number }>()
    expect(still!.n).toBe(0)
    const batches = (await auditOf('admin.user.import')).filter((a) => a.details.job_id === off.job.job_id)
    expect(batches.length).toBeGreaterThan(10)
    expect(batches.reduce((n, b) => n + b.details.updated, 0)).toBe(1500)
  })

  it('is for admins only', async () => {
    const u = await createUser()
    const t = (await login(u.mobile, u.password)).access_token
    expect((await upload('/api/v1/admin/users/import/preview', { token: t }, 'mobile\n1\n', 'text/csv')).status).toBe(403)
    expect((await call('/api/v1/admin/users/export', { token: t })).status).toBe(403)
  })
})

describe('users export', () => {
  it('streams every user page by page (keyset), the first bytes before the last page is read, in the columns the import reads', async () => {
    const mobiles = freshMobiles(3 * EXPORT_PAGE + 17)
    await seedUsers(mobiles, (i) => (i === 0 ? '=HYPERLINK("x")' : `Export ${i}`))
    let queries = 0
    const counting = {
      ...env,
      DB: new Proxy(env.DB, {
        get(target, prop) {
          const v = Reflect.get(target, prop)
          if (prop !== 'prepare') return typeof v === 'function' ? v.bind(target) : v
          return (sql: string) => {
            const st = target.prepare(sql)
            const wrap = (s: D1PreparedStatement): D1PreparedStatement =>
              new Proxy(s, {
                get(t, p) {
                  const f = Reflect.get(t, p)
                  if (p === 'bind') return (...a: unknown[]) => wrap(t.bind(...a))
                  if (p === 'all' || p === 'raw' || p === 'first' || p === 'run') return (...a: unknown[]) => (queries++, (f as Function).apply(t, a))
                  return typeof f === 'function' ? f.bind(t) : f
                },
              })
            return wrap(st)
          }
        },
      }),
    } as Env
    const reader = exportUsers(counting, {}).getReader()
    const dec = new TextDecoder('utf-8', { ignoreBOM: true })
    const first = await reader.read()
    expect(dec.decode(first.value)).toBe('\ufeffmobile,name,email,status\r\n')
    // reads follow the client: taking a chunk starts the read of the next page, no more
    expect(queries).toBeLessThanOrEqual(1)
    const second = await reader.read()
    expect(queries).toBeLessThanOrEqual(2)
    let text = dec.decode(first.value) + dec.decode(second.value)
    let chunks = 2
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      chunks++
      text += dec.decode(value)
    }
    // one query per page: as many as chunks after the header, plus an empty last page when the count is a multiple of the page
    expect([0, 1]).toContain(queries - (chunks - 1))
    expect(chunks).toBeGreaterThanOrEqual(5)
    const rows = parseCsv(text)
    expect(rows[0]).toEqual(['mobile', 'name', 'email', 'status'])
    const byMobile = new Map(rows.slice(1).map((r) => [r[0], r]))
    expect(byMobile.size).toBe(rows.length - 1) // no user twice
    for (const [i, m] of mobiles.entries()) expect(byMobile.get(m)?.[1]).toBe(i === 0 ? "'=HYPERLINK(\"x\")" : `Export ${i}`)
    expect(text).not.toMatch(/\$argon2id\$|\$2[aby]\$|pbkdf2_sha256\$|sha256:|\$scrypt\$/)
  })

  it('GET /api/v1/admin/users/export answers CSV (BOM, attachment), filtered by q and status, which previews back as registered', async () => {
    const admin = { token: await adminToken() }
    const u = await createUser({ name: `Exportee ${crypto.randomUUID().slice(0, 8)}` })
    const res = await call(`/api/v1/admin/users/export?q=${encodeURIComponent(u.mobile.slice(-8))}`, admin)
    expect(res.status).toBe(200)
    expect(res.headers.get('Content-Type')).toBe('text/csv; charset=utf-8')
    expect(res.headers.get('Content-Disposition')).toBe('attachment; filename="users.csv"')
    const rows = parseCsv(res.body)
    expect(rows).toContainEqual([u.mobile, expect.stringMatching(/^Exportee /), '', 'ACTIVE'])
    const disabled = parseCsv((await call(`/api/v1/admin/users/export?status=DISABLED&q=${encodeURIComponent(u.mobile.slice(-8))}`, admin)).body)
    expect(disabled).toEqual([['mobile', 'name', 'email', 'status']])
    const back = await upload('/api/v1/admin/users/import/preview', admin, res.body, 'text/csv')
    expect(back.body.rows.find((r: any) => r.mobile === u.mobile)).toMatchObject({ status: 'duplicate', reason: 'mobile_registered' })
    expect((await call('/api/v1/admin/users/export?status=NOPE', admin)).status).toBe(400)
  })
})
