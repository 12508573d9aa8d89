import { describe, expect, it } from 'vitest'
import { env } from 'cloudflare:test'
import { api, adminToken, createUser, uniqueMobile } from './support/api'
import { createApp } from './support/apps'
import { Browser, inputValue } from './support/browser'
import { textProblem, typedText } from '../src/lib/text'

// NUL bytes, other control characters and lone surrogates used to be stored as given (user
// names, app names, mapped keys, mapping names) and then sent on to partner apps. Every
// free-text field refuses them with a 400 that names the field; nothing is written.

/** Values that are not text a person typed; JSON.stringify sends the surrogates as \ud800 escapes. */
const BAD: [string, string][] = [
  ['NUL', 'Li\u0000Lei'],
  ['a trailing NUL', 'Li Lei\u0000'],
  ['BEL', 'Li\u0007Lei'],
  ['ESC', '\u001b[31mLi'],
  ['DEL', 'Li\u007fLei'],
  ['a C1 control', 'Li\u0085Lei'],
  ['a newline', 'Li\nLei'],
  ['a lone high surrogate', 'Li\ud800Lei'],
  ['a lone low surrogate', 'Li\udc00Lei'],
  ['a high surrogate at the end', 'Li Lei\ud83d'],
  ['two high surrogates', '\ud83d\ud83d'],
]
const GOOD = ['Li Lei', '李雷', 'Zoë 😀 O’Brien', 'a\u200db']

function expectRefused(r: { status: number; body: any }, field: string, label: string) {
  expect(r.status, `${field} ${label}: ${JSON.stringify(r.body)}`).toBe(400)
  expect(r.body.error.code, label).toBe('invalid_request')
  expect(r.body.error.details.issues[0].path, label).toBe(field)
  expect(r.body.error.message, label).toMatch(new RegExp(`^${field.replace(/\./g, '\\.')}: must (not contain control characters|be valid Unicode text)`))
}

describe('the free-text building block (src/lib/text.ts)', () => {
  it('refuses controls and lone surrogates, keeps everything else, trims unless told not to', () => {
    for (const [label, v] of BAD) expect(textProblem(v), label).not.toBeNull()
    for (const v of GOOD) expect(textProblem(v), v).toBeNull()
    expect(textProblem('line one\r\nline\ttwo', { multiline: true })).toBeNull()
    expect(textProblem('line\u0000two', { multiline: true })).not.toBeNull()
    expect(typedText({ max: 10 }).parse('  Li  ')).toBe('Li')
    expect(typedText({ max: 10, trim: false }).parse('  Li  ')).toBe('  Li  ')
    expect(typedText({ max: 3 }).safeParse('abcd').success).toBe(false)
    expect(typedText({ min: 1, max: 3 }).safeParse('   ').success).toBe(false)
  })
})

describe('free text is refused where it enters', () => {
  it('admin users: name and email on create and on PATCH; nothing stored', async () => {
    const token = await adminToken()
    for (const [label, v] of BAD) {
      const mobile = uniqueMobile()
      expectRefused(await api('/api/v1/admin/users', { method: 'POST', token, json: { mobile, password: 'a long passphrase', name: v } }), 'name', label)
      expectRefused(await api('/api/v1/admin/users', { method: 'POST', token, json: { mobile, password: 'a long passphrase', email: `li${v}@example.com` } }), 'email', label)
      expect(await env.DB.prepare('SELECT id FROM users WHERE mobile = ?').bind(mobile).first(), label).toBeNull()
    }
    const u = await createUser({ name: 'Before' })
    for (const [label, v] of BAD) {
      expectRefused(await api(`/api/v1/admin/users/${u.id}`, { method: 'PATCH', token, json: { name: v } }), 'name', label)
      expectRefused(await api(`/api/v1/admin/users/${u.id}`, { method: 'PATCH', token, json: { email: `${v}@example.com` } }), 'email', label)
    }
    expect((await api(`/api/v1/admin/users/${u.id}`, { token })).body.name).toBe('Before')
    for (const v of GOOD) {
      const r = await api(`/api/v1/admin/users/${u.id}`, { method: 'PATCH', token, json: { name: v } })
      expect(r.status, v).toBe(200)
      expect(r.body.name).toBe(v)
    }
    // trimmed, as the register API and the hosted page always did
    expect((await api(`/api/v1/admin/users/${u.id}`, { method: 'PATCH', token, json: { name: '  Li Lei  ' } })).body.name).toBe('Li Lei')
  })

  it('the register API: name', async () => {
    for (const [label, v] of BAD) {
      const mobile = uniqueMobile()
      const r = await api('/api/v1/auth/register', { method: 'POST', json: { mobile, password: 'a long passphrase', sms_code: '123456', name: v }, headers: { 'CF-Connecting-IP': `198.18.0.${Math.floor(Math.random() * 250)}` } })
      expectRefused(r, 'name', label)
    }
  })

  it('admin apps: app_name on create and on PATCH', async () => {
    const token = await adminToken()
    for (const [label, v] of BAD) expectRefused(await api('/api/v1/admin/apps', { method: 'POST', token, json: { app_name: v, protocol_type: 'SIMPLE_API' } }), 'app_name', label)
    const made = await api('/api/v1/admin/apps', { method: 'POST', token, json: { app_name: '  Legacy HR  ', protocol_type: 'SIMPLE_API' } })
    expect(made.body.app.app_name).toBe('Legacy HR')
    for (const [label, v] of BAD) expectRefused(await api(`/api/v1/admin/apps/${made.body.app_id}`, { method: 'PATCH', token, json: { app_name: v } }), 'app_name', label)
    expect((await api(`/api/v1/admin/apps/${made.body.app_id}`, { token })).body.app_name).toBe('Legacy HR')
    // a URI setting holding a lone surrogate is refused too
    const uri = await api(`/api/v1/admin/apps/${made.body.app_id}`, { method: 'PATCH', token, json: { notification_url: 'https://hr.example.com/\ud800' } })
    expect(uri.status).toBe(400)
    expect(uri.body.error.details.issues[0].path).toBe('notification_url')
  })

  it('mapping sync: mapped_key and name of an item; nothing of the batch is written', async () => {
    const app = await createApp()
    const u = await createUser()
    const sync = (item: Record<string, unknown>) => api('/api/v1/apps/mapping/sync', { method: 'POST', headers: { 'X-App-Access-Token': app.access_token }, json: { items: [{ mobile: u.mobile, action: 'ADD', mapped_key: 'ok-key', ...item }] } })
    for (const [label, v] of BAD) {
      expectRefused(await sync({ mapped_key: v }), 'items.0.mapped_key', label)
      expectRefused(await sync({ name: v }), 'items.0.name', label)
    }
    const rows = await env.DB.prepare('SELECT COUNT(*) AS n FROM app_user_mappings WHERE app_id = ?').bind(app.app_id).first<{ n: number }>()
    expect(rows!.n).toBe(0)
    // keys are kept exactly as sent (not trimmed), and any real text works
    const ok = await sync({ mapped_key: ' Zoë 😀 ', name: '李雷' })
    expect(ok.status).toBe(200)
    expect(ok.body.results[0]).toMatchObject({ status: 'ok', code: 'created' })
    const feed = await api(`/api/v1/apps/${app.app_id}/users/changes`, { headers: { 'X-App-Access-Token': app.access_token } })
    expect(feed.body.items[0]).toMatchObject({ mapped_key: ' Zoë 😀 ', name: '李雷' })
  })

  it('admin mappings: mapped_key and name on create and on PATCH', async () => {
    const token = await adminToken()
    const app = await createApp()
    const u = await createUser()
    const base = `/api/v1/admin/apps/${app.app_id}/mappings`
    for (const [label, v] of BAD) {
      expectRefused(await api(base, { method: 'POST', token, json: { mobile: u.mobile, mapped_key: v } }), 'mapped_key', label)
      expectRefused(await api(base, { method: 'POST', token, json: { mobile: u.mobile, mapped_key: 'fine', name: v } }), 'name', label)
    }
    const m = await api(base, { method: 'POST', token, json: { mobile: u.mobile, mapped_key: 'fine', name: 'Li' } })
    expect(m.status).toBe(201)
    for (const [label, v] of BAD) {
      expectRefused(await api(`${base}/${m.body.mapping_id}`, { method: 'PATCH', token, json: { mapped_key: v } }), 'mapped_key', label)
      expectRefused(await api(`${base}/${m.body.mapping_id}`, { method: 'PATCH', token, json: { name: v } }), 'name', label)
    }
    expect((await api(`${base}/${m.body.mapping_id}`, { token })).body).toMatchObject({ mapped_key: 'fine', name: 'Li' })
  })

  it('the hosted register page: the name field gets its own error; no account is made', async () => {
    for (const v of ['Li\u0000Lei', 'Li\u0007Lei', 'Li\u001bLei']) {
      const b = new Browser()
      await b.get('/page/register')
      const mobile = uniqueMobile()
      const r = await b.post('/page/register', { csrf_token: b.csrf, step: 'finish', mobile, sms_code: '123456', password: 'page-password-1', password_confirm: 'page-password-1', name: v })
      expect(r.status, JSON.stringify(v)).toBe(400)
      expect(r.html).toContain('aria-invalid="true"')
      expect(r.html).toMatch(/id="f-name-error"[^>]*>Error: Use letters, digits, spaces and punctuation only/)
      // the step-2 form again, with the mobile kept
      expect(inputValue(r.html, 'mobile')).toBe(mobile)
      expect(await env.DB.prepare('SELECT id FROM users WHERE mobile = ?').bind(mobile).first()).toBeNull()
    }
  })
})
