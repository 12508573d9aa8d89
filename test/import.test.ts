import { describe, expect, it } from 'vitest'
import { env, runInDurableObject } from 'cloudflare:test'
import * as XLSX from '@e965/xlsx'
import { adminToken, createUser, uniqueMobile } from './support/api'
import { createApp } from './support/apps'
import { XLSX_TYPE, auditOf, call, csv, eventsOf, freshMobiles, mappingsOf, parseCsv, seedUsers, upload, waitForJob, type Auth } from './support/import'
import { CHUNK_ROWS, type MappingImporter } from '../src/importer/durable-object'
import { MAX_ROWS } from '../src/importer/parse'
import { MAX_BODY_BYTES } from '../src/app'
import { csvField } from '../src/lib/csv'
import { cell } from '../src/importer/rows'
import exampleMappings from '../docs/examples/mappings.csv?raw'
import exampleUsers from '../docs/examples/users.csv?raw'

const stubFor = (scope: string) => env.MAPPING_IMPORTER.get(env.MAPPING_IMPORTER.idFromName(scope)) as DurableObjectStub<MappingImporter>

async function appWithToken() {
  const a = await createApp()
  return { appId: a.app_id, auth: { appToken: a.access_token } as Auth }
}

const preview = (appId: string, auth: Auth, body: BodyInit, type = 'text/csv') => upload(`/api/v1/apps/${appId}/mapping/preview`, auth, body, type)
const startImport = (appId: string, auth: Auth, preview_id: string, strategy: 'SKIP' | 'OVERWRITE') => call(`/api/v1/apps/${appId}/mapping/import`, auth, { method: 'POST', json: { preview_id, strategy } })

async function importFile(appId: string, auth: Auth, body: string, strategy: 'SKIP' | 'OVERWRITE') {
  const p = await preview(appId, auth, body)
  expect(p.status).toBe(200)
  const s = await startImport(appId, auth, p.body.preview_id, strategy)
  expect(s.status).toBe(202)
  const job = await waitForJob(`/api/v1/apps/${appId}/mapping/import/${s.body.job_id}`, auth)
  return { preview: p.body, job }
}

async function report(appId: string, auth: Auth, jobId: string) {
  const r = await call(`/api/v1/apps/${appId}/mapping/import/${jobId}/report`, auth)
  expect(r.status).toBe(200)
  expect(r.headers.get('Content-Type')).toMatch(/^text\/csv/)
  return parseCsv(r.body)
}

/**
 * One file with a row of every kind, over an app where some users are mapped already:
 * user A new; B mapped to the same key; C mapped to another key; D (unmapped) asks for C's key
 * ... (see the rows below).
 */
async function everyKindWorld() {
  const { appId, auth } = await appWithToken()
  const users = await Promise.all(['New', 'Same', 'Other', 'Taker', 'Disabled', 'Renamed', 'Repeat', 'Holder'].map((name) => createUser({ name })))
  const [nu, same, other, taker, disabled, renamed, repeat, holder] = users
  const admin = { token: await adminToken() }
  const map = (mobile: string, mapped_key: string, name?: string) => call(`/api/v1/admin/apps/${appId}/mappings`, admin, { method: 'POST', json: { mobile, mapped_key, name } })
  expect((await map(same.mobile, 'same-key')).status).toBe(201)
  expect((await map(other.mobile, 'other-key-old')).status).toBe(201)
  expect((await map(holder.mobile, 'held-key')).status).toBe(201)
  expect((await map(disabled.mobile, 'disabled-key')).status).toBe(201)
  expect((await map(renamed.mobile, 'renamed-key', 'Old name')).status).toBe(201)
  const disabledId = (await mappingsOf(appId)).find((m) => m.mapped_key === 'disabled-key')!.id
  expect((await call(`/api/v1/admin/apps/${appId}/mappings/${disabledId}/disable`, admin, { method: 'POST' })).status).toBe(200)
  const stranger = uniqueMobile()
  const rows: (string | number)[][] = [
    ['姓名', '手机号', '映射账号', 'department'], // aliases, another order, a column the import ignores
    ['New user', nu.mobile.replace('+86', ''), 'new-key', 'HR'], // 2 new (11-digit mainland form)
    ['', same.mobile, 'same-key', ''], // 3 duplicate: already mapped to this key
    ['', other.mobile, 'other-key-new', ''], // 4 duplicate: mapped to another key
    ['', taker.mobile, 'held-key', ''], // 5 duplicate: the key belongs to another user
    ['', disabled.mobile, 'disabled-key', ''], // 6 duplicate: mapped to this key, disabled
    ['New name', renamed.mobile, 'renamed-key', ''], // 7 duplicate: mapped, the row renames
    ['', repeat.mobile, 'repeat-key', ''], // 8 new
    ['', repeat.mobile, 'repeat-key-2', ''], // 9 duplicate: same mobile as row 8
    ['', uniqueMobile(), 'new-key', ''], // 10 duplicate: same key as row 2 (checked before the user)
    ['', 'not-a-phone', 'k', ''], // 11 invalid mobile
    ['', '', 'k2', ''], // 12 invalid: no mobile
    ['', taker.mobile.replace('+86', '+86 '), '', ''], // 13 invalid: empty key
    ['', stranger, 'stranger-key', ''], // 14 invalid: no such user
    ['', taker.mobile, 'x'.repeat(101), ''], // 15 invalid: key too long
    ['y'.repeat(101), taker.mobile, 'long-name', ''], // 16 invalid: name too long
  ]
  return { appId, auth, admin, users: { nu, same, other, taker, disabled, renamed, repeat, holder }, file: '\ufeff' + csv(rows) }
}

const EXPECTED_ROWS = [
  [2, 'new', null],
  [3, 'duplicate', 'already_mapped'],
  [4, 'duplicate', 'mapped_to_other_key'],
  [5, 'duplicate', 'mapped_key_taken'],
  [6, 'duplicate', 'mapping_disabled'],
  [7, 'duplicate', 'already_mapped'],
  [8, 'new', null],
  [9, 'duplicate', 'repeated_in_file'],
  [10, 'duplicate', 'repeated_in_file'],
  [11, 'invalid', 'invalid_mobile'],
  [12, 'invalid', 'mobile_missing'],
  [13, 'invalid', 'mapped_key_missing'],
  [14, 'invalid', 'user_not_found'],
  [15, 'invalid', 'field_too_long'],
  [16, 'invalid', 'field_too_long'],
]

describe('mapping preview', () => {
  it('classifies a file with every kind of row (new, each duplicate, each invalid) and stores nothing', async () => {
    const w = await everyKindWorld()
    const before = await mappingsOf(w.appId)
    const r = await preview(w.appId, w.auth, w.file)
    expect(r.status).toBe(200)
    expect(r.body.summary).toEqual({ total: 15, new: 2, duplicate: 7, invalid: 6 })
    expect(r.body.columns).toEqual({ 姓名: 'name', 手机号: 'mobile', 映射账号: 'mapped_key' })
    expect(r.body.ignored_columns).toEqual(['department'])
    expect(r.body.file_type).toBe('csv')
    expect(r.body.expires_in).toBe(3600)
    expect(r.body.rows.map((x: any) => [x.row, x.status, x.reason])).toEqual(EXPECTED_ROWS)
    expect(r.body.rows[0]).toMatchObject({ mobile: w.users.nu.mobile, mapped_key: 'new-key', name: 'New user', message: null })
    expect(r.body.rows[7].message).toBe('Row 8 has the same mobile; the first one counts')
    expect(r.body.rows[8].message).toBe('Row 2 has the same mapped_key; the first one counts')
    expect(r.body.rows[13].message).toMatch(/mapped_key is longer than 100/)
    expect(await mappingsOf(w.appId)).toEqual(before)

    // every row, page by page and by status
    const base = `/api/v1/apps/${w.appId}/mapping/preview/${r.body.preview_id}`
    const p1 = await call(`${base}?page_size=4`, w.auth)
    expect(p1.body).toMatchObject({ total: 15, page: 1, page_size: 4 })
    expect(p1.body.rows.map((x: any) => x.row)).toEqual([2, 3, 4, 5])
    const p4 = await call(`${base}?page_size=4&page=4`, w.auth)
    expect(p4.body.rows.map((x: any) => x.row)).toEqual([14, 15, 16])
    const inv = await call(`${base}?status=invalid&page_size=100`, w.auth)
    expect(inv.body.total).toBe(6)
    expect(inv.body.rows.map((x: any) => x.row)).toEqual([11, 12, 13, 14, 15, 16])
    expect((await call(`${base}?status=bogus`, w.auth)).status).toBe(400)
    // another app (even with an admin token) does not see it
    const other = await appWithToken()
    expect((await call(`/api/v1/apps/${other.appId}/mapping/preview/${r.body.preview_id}`, { token: await adminToken() })).status).toBe(404)
  })

  it('keeps a large preview whole (stored in slices) and pages through it to the last row', async () => {
    const { appId, auth } = await appWithToken()
    const mobiles = freshMobiles(12_000)
    const r = await preview(appId, auth, csv([['mobile', 'mapped_key'], ...mobiles.map((m, i) => [m, `big-${i}`])]))
    expect(r.status).toBe(200)
    expect(r.body.summary).toEqual({ total: 12_000, new: 0, duplicate: 0, invalid: 12_000 })
    expect(r.body.rows).toHaveLength(100)
    expect(r.body.has_more).toBe(true)
    const last = await call(`/api/v1/apps/${appId}/mapping/preview/${r.body.preview_id}?page=24&page_size=500`, auth)
    expect(last.body.rows).toHaveLength(500)
    expect(last.body.rows.at(-1)).toMatchObject({ row: 12_001, mobile: mobiles.at(-1), mapped_key: 'big-11999', reason: 'user_not_found' })
  })

  it('reads the example files of docs/import.md', async () => {
    const { appId, auth } = await appWithToken()
    const m = await preview(appId, auth, exampleMappings)
    expect(m.status).toBe(200)
    expect(m.body.columns).toEqual({ 手机号: 'mobile', 映射账号: 'mapped_key', 姓名: 'name' })
    expect(m.body.rows.map((r: any) => r.mobile)).toEqual(['+8613800138000', '+8613900139000', '+8613700137000'])
    expect(m.body.rows.map((r: any) => r.reason).every((x: string | null) => x === null || x === 'user_not_found')).toBe(true)
    const u = await upload('/api/v1/admin/users/import/preview', { token: await adminToken() }, exampleUsers, 'text/csv')
    expect(u.status).toBe(200)
    expect(u.body.summary.invalid).toBe(0)
    expect(u.body.rows.map((r: any) => r.password_hash_format)).toEqual(['bcrypt', 'django_pbkdf2_sha256', 'sha256', null])
  })

  it('answers only the app itself or an admin', async () => {
    const a = await appWithToken()
    const b = await appWithToken()
    const body = csv([['mobile', 'mapped_key'], [uniqueMobile(), 'k']])
    expect((await preview(a.appId, b.auth, body)).status).toBe(403)
    const none = await upload(`/api/v1/apps/${a.appId}/mapping/preview`, { appToken: '' } as Auth, body, 'text/csv')
    expect(none.status).toBe(401)
    expect((await preview(a.appId, { token: await adminToken() }, body)).status).toBe(200)
    expect((await preview('app_does_not_exist', { token: await adminToken() }, body)).status).toBe(404)
  })

  it('reads a real XLSX workbook (made with SheetJS here), as the body and as a multipart file, first sheet only', async () => {
    const { appId, auth } = await appWithToken()
    const u1 = await createUser({ name: '李雷' })
    const u2 = await createUser()
    const wb = XLSX.utils.book_new()
    // mobiles typed as numbers, as Excel stores them
    const sheet = XLSX.utils.aoa_to_sheet([
      ['手机号', '映射账号', '姓名'],
      [Number(u1.mobile.replace('+86', '')), 'lilei@hr.example.com', '李雷'],
      [u2.mobile, 12345, null],
      [],
      ['not a phone', 'x', 'y'],
    ])
    XLSX.utils.book_append_sheet(wb, sheet, 'People')
    XLSX.utils.book_append_sheet(wb, XLSX.utils.aoa_to_sheet([['mobile', 'mapped_key'], [uniqueMobile(), 'never-read']]), 'Second')
    const bytes = new Uint8Array(XLSX.write(wb, { type: 'array', bookType: 'xlsx' }) as ArrayBuffer)

    const r = await preview(appId, auth, bytes, XLSX_TYPE)
    expect(r.status).toBe(200)
    expect(r.body.file_type).toBe('xlsx')
    expect(r.body.summary).toEqual({ total: 3, new: 2, duplicate: 0, invalid: 1 })
    expect(r.body.rows.map((x: any) => [x.row, x.mobile, x.mapped_key, x.name, x.status])).toEqual([
      [2, u1.mobile, 'lilei@hr.example.com', '李雷', 'new'],
      [3, u2.mobile, '12345', null, 'new'],
      [5, 'not a phone', 'x', 'y', 'invalid'],
    ])

    const form = new FormData()
    form.append('file', new File([bytes], 'people.xlsx', { type: XLSX_TYPE }))
    const m = await upload(`/api/v1/apps/${appId}/mapping/preview`, auth, form)
    expect(m.status).toBe(200)
    expect(m.body.summary).toEqual(r.body.summary)

    const s = await startImport(appId, auth, m.body.preview_id, 'SKIP')
    const job = await waitForJob(`/api/v1/apps/${appId}/mapping/import/${s.body.job_id}`, auth)
    expect(job).toMatchObject({ state: 'done', total: 3, created: 2, failed: 1 })
    expect((await mappingsOf(appId)).map((x) => [x.mobile, x.mapped_key, x.name])).toEqual(
      [[u1.mobile, 'lilei@hr.example.com', '李雷'], [u2.mobile, '12345', null]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    )
  })

  it('refuses bad files with a 4xx that names the row', async () => {
    const { appId, auth } = await appWithToken()
    const gbk = new Uint8Array([...new TextEncoder().encode('mobile,mapped_key,name\n13800138000,k,'), 0xc0, 0xee, 0xc0, 0xd7, 0x0a]) // 李雷 in GBK
    const enc = await preview(appId, auth, gbk)
    expect(enc.status).toBe(400)
    expect(enc.body.error.code).toBe('unsupported_encoding')
    expect(enc.body.error.details.row).toBe(2)
    expect(enc.body.error.message).toMatch(/row 2/)

    const utf16 = await preview(appId, auth, new Uint8Array([0xff, 0xfe, 0x6d, 0x00]))
    expect(utf16.status).toBe(400)
    expect(utf16.body.error.message).toMatch(/UTF-16/)

    const missing = await preview(appId, auth, csv([['phone', 'name'], ['13800138000', 'x']]))
    expect(missing.status).toBe(400)
    expect(missing.body.error).toMatchObject({ code: 'missing_column', details: { row: 1, missing: ['mapped_key'] } })

    const twice = await preview(appId, auth, csv([['mobile', '手机号', 'account'], ['1', '2', '3']]))
    expect(twice.status).toBe(400)
    expect(twice.body.error).toMatchObject({ code: 'duplicate_column', details: { row: 1, columns: [1, 2] } })

    const empty = await preview(appId, auth, 'mobile,mapped_key\n\n')
    expect(empty.status).toBe(400)
    expect(empty.body.error.code).toBe('empty_file')
    expect((await preview(appId, auth, '')).body.error.code).toBe('file_missing')

    const quotes = await preview(appId, auth, 'mobile,mapped_key\n13800138000,"unclosed\n')
    expect(quotes.status).toBe(400)
    expect(quotes.body.error).toMatchObject({ code: 'malformed_file', details: { row: 2 } })

    const tooMany = await preview(appId, auth, 'mobile,mapped_key\n' + '13800138000,k\n'.repeat(MAX_ROWS + 1))
    expect(tooMany.status).toBe(413)
    expect(tooMany.body.error).toMatchObject({ code: 'too_many_rows', details: { limit: MAX_ROWS, first_row_over: MAX_ROWS + 2 } })

    // over the API's 1 MiB body limit, under the upload limit: the preview reads it
    const overApiLimit = 'mobile,mapped_key,name\n' + `13800138000,k,${'n'.repeat(1000)}\n`.repeat(1_500)
    expect(overApiLimit.length).toBeGreaterThan(MAX_BODY_BYTES)
    const overApi = await preview(appId, auth, overApiLimit)
    expect(overApi.status).toBe(200)

    const big = await preview(appId, auth, 'mobile,mapped_key,name\n' + `13800138000,k,${'n'.repeat(1000)}\n`.repeat(10_500))
    expect(big.status).toBe(413)
    expect(big.body.error.code).toBe('payload_too_large')

    const type = await preview(appId, auth, '{"a":1}', 'application/json')
    expect(type.status).toBe(415)
    expect(type.body.error.code).toBe('unsupported_file_type')
    const notXlsx = await preview(appId, auth, 'mobile,mapped_key\n1,2\n', XLSX_TYPE)
    expect(notXlsx.status).toBe(415)
    const zipAsCsv = await preview(appId, auth, new Uint8Array([0x50, 0x4b, 0x03, 0x04, 1, 2, 3]))
    expect(zipAsCsv.status).toBe(415)

    const form = new FormData()
    form.append('other', 'x')
    const noFile = await upload(`/api/v1/apps/${appId}/mapping/preview`, auth, form)
    expect(noFile.status).toBe(400)
    expect(noFile.body.error.code).toBe('file_missing')
  })

  it('refuses an XLSX sheet whose blank rows push data past the rows read (too_many_rows), instead of dropping the rows there', async () => {
    const { appId, auth } = await appWithToken()
    const workbook = (sheet: XLSX.WorkSheet) => {
      const wb = XLSX.utils.book_new()
      XLSX.utils.book_append_sheet(wb, sheet, 'People')
      return new Uint8Array(XLSX.write(wb, { type: 'array', bookType: 'xlsx' }) as ArrayBuffer)
    }
    // SheetJS reads MAX_ROWS + 2 sheet rows, blank ones included: three blank rows hide the last three data rows
    const aoa: (string | number)[][] = [['mobile', 'mapped_key'], [], [], []]
    for (let i = 0; i <= MAX_ROWS; i++) aoa.push([13800138000, i])
    const over = await preview(appId, auth, workbook(XLSX.utils.aoa_to_sheet(aoa)), XLSX_TYPE)
    expect(over.status).toBe(413)
    expect(over.body.error).toMatchObject({ code: 'too_many_rows', details: { limit: MAX_ROWS, first_row_over: MAX_ROWS + 3 } })
    expect(over.body.error.message).toMatch(/runs to row 50,005.*blank rows count/)

    // a few data rows, then one far below: the sheet is refused, not imported without that row
    const sparse = XLSX.utils.aoa_to_sheet([['mobile', 'mapped_key'], [uniqueMobile(), 'a'], [uniqueMobile(), 'b']])
    XLSX.utils.sheet_add_aoa(sparse, [[uniqueMobile(), 'far below']], { origin: `A${MAX_ROWS + 10}` })
    const far = await preview(appId, auth, workbook(sparse), XLSX_TYPE)
    expect(far.status).toBe(413)
    expect(far.body.error.code).toBe('too_many_rows')
  })

  it('refuses a row whose free-text cell holds a control character or a line break (invalid_characters), as the JSON routes do; the other rows stand', async () => {
    const { appId, auth } = await appWithToken()
    const [a, b] = [await createUser(), await createUser()]
    const file =
      'mobile,mapped_key,name\n' +
      `${a.mobile},key-a,Li Lei\n` + // 2 fine
      `${uniqueMobile()},key-b,"Li\nLei"\n` + // 3: a line break inside the quoted name
      `${uniqueMobile()},key\u0007c,\n` + // 4: BEL in the key
      `${uniqueMobile()},key-d,Li\u0085Lei\n` + // 5: a C1 control in the name
      `${b.mobile},key-e,\n` // 6 fine
    const p = await preview(appId, auth, file)
    expect(p.status).toBe(200)
    expect(p.body.summary).toEqual({ total: 5, new: 2, duplicate: 0, invalid: 3 })
    expect(p.body.rows.map((r: any) => [r.row, r.status, r.reason, r.message])).toEqual([
      [2, 'new', null, null],
      [3, 'invalid', 'invalid_characters', 'name must not contain control characters: U+000A at position 2'],
      [4, 'invalid', 'invalid_characters', 'mapped_key must not contain control characters: U+0007 at position 3'],
      [5, 'invalid', 'invalid_characters', 'name must not contain control characters: U+0085 at position 2'],
      [6, 'new', null, null],
    ])
    const s = await startImport(appId, auth, p.body.preview_id, 'SKIP')
    expect(await waitForJob(`/api/v1/apps/${appId}/mapping/import/${s.body.job_id}`, auth)).toMatchObject({ state: 'done', created: 2, failed: 3 })
    expect((await mappingsOf(appId)).map((m) => m.mapped_key).sort()).toEqual(['key-a', 'key-e'])
  })
})

describe('mapping import', () => {
  it('SKIP creates the new rows and leaves every existing mapping alone; audited; events in the changes feed', async () => {
    const w = await everyKindWorld()
    const before = await mappingsOf(w.appId)
    const eventsBefore = (await eventsOf(w.appId)).length
    const { job } = await importFile(w.appId, w.auth, w.file, 'SKIP')
    expect(job).toMatchObject({ state: 'done', strategy: 'SKIP', total: 15, processed: 15, created: 2, updated: 0, skipped: 7, failed: 6, error: null })
    const after = await mappingsOf(w.appId)
    expect(after.length).toBe(before.length + 2)
    for (const m of before) expect(after).toContainEqual(m)
    expect(after.find((m) => m.mobile === w.users.nu.mobile)).toMatchObject({ mapped_key: 'new-key', name: 'New user', is_active: 1 })
    expect(after.find((m) => m.mobile === w.users.repeat.mobile)).toMatchObject({ mapped_key: 'repeat-key' })

    const events = (await eventsOf(w.appId)).slice(eventsBefore)
    expect(events.map((e) => e.event_type)).toEqual(['ADD', 'ADD'])
    // the webhook kind rides with each event, as for any other write path (docs/webhooks.md)
    expect(events.map((e) => e.type)).toEqual(['mapping.added', 'mapping.added'])
    const feed = await call(`/api/v1/apps/${w.appId}/users/changes?limit=500`, w.auth)
    expect(feed.body.items.filter((i: any) => i.mapped_key === 'new-key' && i.event_type === 'ADD')).toHaveLength(1)

    const rep = await report(w.appId, w.auth, job.job_id)
    expect(rep[0]).toEqual(['row', 'mobile', 'mapped_key', 'name', 'outcome', 'reason', 'message'])
    expect(rep.slice(1).map((r) => [Number(r[0]), r[4], r[5]])).toEqual(
      EXPECTED_ROWS.filter(([, s]) => s !== 'new').map(([row, s, reason]) => [row, s === 'invalid' ? 'failed' : 'skipped', reason]),
    )

    // audited as the app's own doing: start, the write batch, the finish with the totals
    const start = await auditOf('app.mapping.import.start', w.appId)
    expect(start).toHaveLength(1)
    expect(start[0]).toMatchObject({ actor_type: 'app', actor_id: w.appId, details: { job_id: job.job_id, strategy: 'SKIP', summary: { total: 15, new: 2 } } })
    const batches = await auditOf('app.mapping.import', w.appId)
    expect(batches.map((b) => b.details)).toEqual([{ job_id: job.job_id, rows: [2, 16], created: 2, updated: 0, skipped: 7, failed: 6 }])
    const finish = await auditOf('app.mapping.import.finish', w.appId)
    expect(finish[0].details).toMatchObject({ job_id: job.job_id, total: 15, created: 2, updated: 0, skipped: 7, failed: 6 })
  })

  it('OVERWRITE also changes the user\'s existing mapping to the row, never takes a key from another user', async () => {
    const w = await everyKindWorld()
    const eventsBefore = (await eventsOf(w.appId)).length
    const { job } = await importFile(w.appId, { token: w.admin.token }, w.file, 'OVERWRITE')
    // created: new + repeat; updated: other (new key), disabled (enabled), renamed (name)
    expect(job).toMatchObject({ state: 'done', total: 15, created: 2, updated: 3, skipped: 3, failed: 7 })
    const after = await mappingsOf(w.appId)
    const of = (u: { mobile: string }) => after.find((m) => m.mobile === u.mobile)
    expect(of(w.users.other)).toMatchObject({ mapped_key: 'other-key-new', is_active: 1 })
    expect(of(w.users.disabled)).toMatchObject({ mapped_key: 'disabled-key', is_active: 1 })
    expect(of(w.users.renamed)).toMatchObject({ mapped_key: 'renamed-key', name: 'New name' })
    expect(of(w.users.same)).toMatchObject({ mapped_key: 'same-key' })
    expect(of(w.users.taker)).toBeUndefined() // held-key stays with its holder
    expect(of(w.users.holder)).toMatchObject({ mapped_key: 'held-key' })
    const events = (await eventsOf(w.appId)).slice(eventsBefore)
    expect(events.map((e) => e.event_type).sort()).toEqual(['ADD', 'ADD', 'ADD', 'UPDATE', 'UPDATE'])
    expect(events.map((e) => e.type).sort()).toEqual(['mapping.added', 'mapping.added', 'mapping.added', 'mapping.updated', 'mapping.updated'])
    const renamedEvent = events.find((e) => JSON.parse(e.payload).name === 'New name')
    expect(JSON.parse(renamedEvent.payload)).toMatchObject({ mapped_key: 'renamed-key', status: 'ACTIVE' })
    const rep = await report(w.appId, { token: w.admin.token }, job.job_id)
    const byRow = Object.fromEntries(rep.slice(1).map((r) => [r[0], [r[4], r[5]]]))
    expect(byRow['3']).toEqual(['skipped', 'unchanged'])
    expect(byRow['5']).toEqual(['failed', 'mapped_key_taken'])
    expect(byRow['9']).toEqual(['skipped', 'repeated_in_file'])
    expect(await auditOf('admin.mapping.import', w.appId)).toHaveLength(1)
  })

  it('the same file imported twice applies nothing the second time, under either strategy', async () => {
    const { appId, auth } = await appWithToken()
    const users = await Promise.all([1, 2, 3].map(() => createUser()))
    const file = csv([['mobile', 'mapped_key', 'name'], ...users.map((u, i) => [u.mobile, `twice-${i}`, `Twice ${i}`])])
    const first = await importFile(appId, auth, file, 'OVERWRITE')
    expect(first.job).toMatchObject({ created: 3, updated: 0, skipped: 0, failed: 0 })
    const mappings = await mappingsOf(appId)
    const events = await eventsOf(appId)
    for (const strategy of ['SKIP', 'OVERWRITE'] as const) {
      const again = await importFile(appId, auth, file, strategy)
      expect(again.preview.summary).toEqual({ total: 3, new: 0, duplicate: 3, invalid: 0 })
      expect(again.job).toMatchObject({ state: 'done', created: 0, updated: 0, skipped: 3, failed: 0 })
      const reasons = (await report(appId, auth, again.job.job_id)).slice(1).map((r) => r[5])
      expect(reasons).toEqual(strategy === 'SKIP' ? ['already_mapped', 'already_mapped', 'already_mapped'] : ['unchanged', 'unchanged', 'unchanged'])
    }
    expect(await mappingsOf(appId)).toEqual(mappings)
    expect(await eventsOf(appId)).toEqual(events)
    // and a preview is imported once
    const p = await preview(appId, auth, file)
    expect((await startImport(appId, auth, p.body.preview_id, 'SKIP')).status).toBe(202)
    const reuse = await startImport(appId, auth, p.body.preview_id, 'SKIP')
    expect([409]).toContain(reuse.status)
    expect(['preview_already_imported', 'import_running']).toContain(reuse.body.error.code)
    expect((await startImport(appId, auth, crypto.randomUUID(), 'SKIP')).body.error.code).toBe('preview_not_found')
  })

  it('one import at a time per app: a second one gets 409 import_running with the running job id; other apps are not held up', async () => {
    const { appId, auth } = await appWithToken()
    const mobiles = freshMobiles(3 * CHUNK_ROWS)
    await seedUsers(mobiles)
    const file = csv([['mobile', 'mapped_key'], ...mobiles.map((m, i) => [m, `conc-${i}`])])
    const [p1, p2] = await Promise.all([preview(appId, auth, file), preview(appId, auth, file)])
    const [a, b] = await Promise.all([startImport(appId, auth, p1.body.preview_id, 'SKIP'), startImport(appId, auth, p2.body.preview_id, 'SKIP')])
    const [won, lost] = a.status === 202 ? [a, b] : [b, a]
    expect(won.status).toBe(202)
    expect(lost.status).toBe(409)
    expect(lost.body.error.code).toBe('import_running')
    expect(lost.body.error.details.job_id).toBe(won.body.job_id)

    const other = await appWithToken()
    const u = await createUser()
    const o = await importFile(other.appId, other.auth, csv([['mobile', 'mapped_key'], [u.mobile, 'other-app']]), 'SKIP')
    expect(o.job).toMatchObject({ state: 'done', created: 1 })

    const job = await waitForJob(`/api/v1/apps/${appId}/mapping/import/${won.body.job_id}`, auth)
    expect(job).toMatchObject({ state: 'done', created: 3 * CHUNK_ROWS })
    // once it finished, the other preview imports (everything is mapped by now)
    const late = await startImport(appId, auth, (won === a ? p2 : p1).body.preview_id, 'SKIP')
    expect(late.status).toBe(202)
    expect(await waitForJob(`/api/v1/apps/${appId}/mapping/import/${late.body.job_id}`, auth)).toMatchObject({ created: 0, skipped: 3 * CHUNK_ROWS })
    expect((await mappingsOf(appId)).length).toBe(3 * CHUNK_ROWS)
  })

  it('an import interrupted mid-way (D1 failing) is resumed by the alarm and finishes with every row applied once', async () => {
    const { appId, auth } = await appWithToken()
    const n = 3 * CHUNK_ROWS
    const mobiles = freshMobiles(n)
    await seedUsers(mobiles)
    const file = csv([['mobile', 'mapped_key'], ...mobiles.map((m, i) => [m, `int-${i}`])])
    // a real failure in the second chunk: D1 refuses one of its inserts until the trigger goes
    const trigger = `fail_${appId}`
    await env.DB.exec(`CREATE TRIGGER ${trigger} BEFORE INSERT ON app_user_mappings WHEN NEW.app_id = '${appId}' AND NEW.mapped_key = 'int-${CHUNK_ROWS + 7}' BEGIN SELECT RAISE(ABORT, 'injected outage'); END`)
    let path = ''
    try {
      const p = await preview(appId, auth, file)
      const s = await startImport(appId, auth, p.body.preview_id, 'SKIP')
      expect(s.status).toBe(202)
      path = `/api/v1/apps/${appId}/mapping/import/${s.body.job_id}`
      let seen: any
      for (let i = 0; i < 500; i++) {
        seen = (await call(path, auth)).body
        if (seen.error) break
        await new Promise((r) => setTimeout(r, 20))
      }
      // stopped after the first chunk, still running, the failure recorded
      expect(seen).toMatchObject({ state: 'running', processed: CHUNK_ROWS, created: CHUNK_ROWS })
      expect(seen.error).toMatch(/injected outage/)
      expect((await mappingsOf(appId)).length).toBe(CHUNK_ROWS)
    } finally {
      await env.DB.exec(`DROP TRIGGER IF EXISTS ${trigger}`)
    }
    const job = await waitForJob(path, auth)
    expect(job).toMatchObject({ state: 'done', processed: n, created: n, skipped: 0, failed: 0, error: null })
    const mappings = await mappingsOf(appId)
    expect(mappings.length).toBe(n)
    expect(new Set(mappings.map((m) => m.mapped_key)).size).toBe(n)
    expect((await eventsOf(appId)).length).toBe(n)
  })

  it('a job whose progress was lost after its writes committed (object restarted) adopts them from the ledger: nothing applied twice', async () => {
    const { appId, auth } = await appWithToken()
    const n = 2 * CHUNK_ROWS + 10
    const mobiles = freshMobiles(n)
    await seedUsers(mobiles)
    const bad = uniqueMobile()
    const file = csv([['mobile', 'mapped_key'], ...mobiles.map((m, i) => [m, `ledger-${i}`]), [bad, 'nobody']])
    const { job } = await importFile(appId, auth, file, 'SKIP')
    expect(job).toMatchObject({ state: 'done', created: n, failed: 1 })
    const mappings = await mappingsOf(appId)
    const events = await eventsOf(appId)
    const reportBefore = await report(appId, auth, job.job_id)

    // the object's storage as if it had died right after committing every chunk but recording none
    const stub = stubFor(appId)
    await runInDurableObject(stub, async (_i, state) => {
      const sql = state.storage.sql
      const j = sql.exec<{ preview_id: string }>('SELECT preview_id FROM jobs WHERE id = ?', job.job_id).one()
      sql.exec("UPDATE jobs SET state = 'running', processed = 0, created = 0, updated = 0, skipped = 0, failed = 0, cursor = 0, finished_at = NULL WHERE id = ?", job.job_id)
      sql.exec('DELETE FROM job_rows WHERE job_id = ?', job.job_id)
      // the preview rows are dropped when a job finishes: put them back as they were
      const data = [...mobiles.map((m, i) => ({ mobile: m, mapped_key: `ledger-${i}`, name: null })), { mobile: bad, mapped_key: 'nobody', name: null }]
      data.forEach((d, i) => sql.exec('INSERT INTO preview_rows (preview_id, row, status, reason, message, fixed, data) VALUES (?, ?, ?, ?, ?, 0, ?)', j.preview_id, i + 2, 'new', null, null, JSON.stringify(d)))
      await state.storage.setAlarm(Date.now())
    })
    const resumed = await waitForJob(`/api/v1/apps/${appId}/mapping/import/${job.job_id}`, auth)
    expect(resumed).toMatchObject({ state: 'done', processed: n + 1, created: n, updated: 0, skipped: 0, failed: 1 })
    expect(await mappingsOf(appId)).toEqual(mappings)
    expect(await eventsOf(appId)).toEqual(events)
    expect(await report(appId, auth, job.job_id)).toEqual(reportBefore)
    expect(await auditOf('app.mapping.import.finish', appId)).toHaveLength(1)
  })

  it('a concurrent writer that takes a key mid-import only fails that row', async () => {
    const { appId, auth } = await appWithToken()
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => createUser()))
    const p = await preview(appId, auth, csv([['mobile', 'mapped_key'], [a.mobile, 'race-a'], [b.mobile, 'race-b']]))
    expect(p.body.summary.new).toBe(2)
    // between preview and import someone else maps race-b
    await call(`/api/v1/admin/apps/${appId}/mappings`, { token: await adminToken() }, { method: 'POST', json: { mobile: c.mobile, mapped_key: 'race-b' } })
    const s = await startImport(appId, auth, p.body.preview_id, 'OVERWRITE')
    const job = await waitForJob(`/api/v1/apps/${appId}/mapping/import/${s.body.job_id}`, auth)
    expect(job).toMatchObject({ created: 1, failed: 1 })
    expect((await report(appId, auth, s.body.job_id)).slice(1).map((r) => [r[0], r[5]])).toEqual([['3', 'mapped_key_taken']])
  })

  it('export: the app\'s mappings as CSV in the columns the import reads, which imports back unchanged', async () => {
    const { appId, auth } = await appWithToken()
    const users = await Promise.all([1, 2].map(() => createUser()))
    await importFile(appId, auth, csv([['mobile', 'mapped_key', 'name'], [users[0].mobile, '=cmd|x', '"Formula, ""quoted"""'], [users[1].mobile, 'plain', '']]), 'SKIP')
    const r = await call(`/api/v1/apps/${appId}/mapping/export`, auth)
    expect(r.status).toBe(200)
    expect(r.headers.get('Content-Type')).toBe('text/csv; charset=utf-8')
    expect(r.headers.get('Content-Disposition')).toMatch(/attachment; filename=".*mappings\.csv"/)
    const rows = parseCsv(r.body)
    expect(rows[0]).toEqual(['mobile', 'mapped_key', 'name'])
    expect(rows.slice(1).sort()).toEqual([[users[0].mobile, "'=cmd|x", 'Formula, "quoted"'], [users[1].mobile, 'plain', '']].sort())
    const again = await preview(appId, auth, r.body)
    expect(again.body.summary).toEqual({ total: 2, new: 0, duplicate: 2, invalid: 0 })
    expect(again.body.rows.map((x: any) => x.reason)).toEqual(['already_mapped', 'already_mapped'])
    expect((await call(`/api/v1/apps/${appId}/mapping/export?status=DISABLED`, auth)).body.trim()).toBe('mobile,mapped_key,name')
  })
})

describe('export cells re-import as they were', () => {
  it('formula-like text gets an apostrophe the importer takes off again, text already starting with apostrophes before = + - @ included', () => {
    const values = ['=1', "'=1", "''=1", '+abc', "'+5", '-x', "'-x", '@sum', "'@", '+8613800138000', '-1.5', "'plain", 'plain', "'"]
    for (const v of values) {
      const exported = csvField(v)
      // a single cell without comma, quote or line break is written as it is
      expect(cell([exported], 0), `${JSON.stringify(v)} exported as ${JSON.stringify(exported)}`).toBe(v)
    }
    expect(csvField("'=1")).toBe("''=1")
    expect(csvField('=1')).toBe("'=1")
  })
})
