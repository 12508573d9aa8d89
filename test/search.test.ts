import { describe, expect, it } from 'vitest'
import { api, adminToken, createUser } from './support/api'

// The admin list searches (`q` on users and apps, `mobile` on an app's mappings) take any
// string the spec allows. D1 refuses LIKE patterns over 50 bytes, so a LIKE-based search
// answered 500 for long queries or queries made of escaped `%` / `_`.

const search = (path: string, param: string, value: string, token: string) => api(`${path}${path.includes('?') ? '&' : '?'}${param}=${encodeURIComponent(value)}`, { token })

describe('admin searches take every query the spec allows', () => {
  it('users: 100 characters, 100 % signs, 49 characters; % and _ literal; ASCII case-insensitive', async () => {
    const token = await adminToken()
    const tag = crypto.randomUUID().replace(/-/g, '').slice(0, 12)
    const long = `${tag}-${'x'.repeat(100 - tag.length - 1)}`
    expect(long).toHaveLength(100)
    const longUser = await createUser({ name: long })
    const odd = await createUser({ name: `${tag} 50%_off` })
    const plain = await createUser({ name: `${tag} 50ab off` })

    const byLong = await search('/api/v1/admin/users', 'q', long, token)
    expect(byLong.status).toBe(200)
    expect(byLong.body.items.map((u: any) => u.id)).toEqual([longUser.id])

    for (const q of ['%'.repeat(100), '_'.repeat(100), '\\'.repeat(100), 'y'.repeat(49), '%'.repeat(25)]) {
      const r = await search('/api/v1/admin/users', 'q', q, token)
      expect(r.status, q).toBe(200)
      expect(r.body.total, q).toBe(0)
    }

    // `%` and `_` match themselves only: "50%_" finds the one name that has them
    const literal = await search('/api/v1/admin/users', 'q', `${tag} 50%_`, token)
    expect(literal.body.items.map((u: any) => u.id)).toEqual([odd.id])
    // the same length of plain text finds only its own match
    const other = await search('/api/v1/admin/users', 'q', `${tag} 50ab`, token)
    expect(other.body.items.map((u: any) => u.id)).toEqual([plain.id])

    // ASCII letters in either case, as LIKE matched before
    const upper = await search('/api/v1/admin/users', 'q', long.toUpperCase(), token)
    expect(upper.body.items.map((u: any) => u.id)).toEqual([longUser.id])

    // over the spec's maximum is still a 400, not a 500
    const tooLong = await search('/api/v1/admin/users', 'q', 'z'.repeat(101), token)
    expect(tooLong.status).toBe(400)
    expect(tooLong.body.error.details.issues[0].path).toBe('q')
  })

  it('users: part of the mobile number and non-ASCII names', async () => {
    const token = await adminToken()
    const tag = crypto.randomUUID().slice(0, 6)
    const u = await createUser({ name: `李雷 ${tag}` })
    const byName = await search('/api/v1/admin/users', 'q', `李雷 ${tag}`, token)
    expect(byName.body.items.map((x: any) => x.id)).toEqual([u.id])
    const byMobile = await search('/api/v1/admin/users', 'q', u.mobile.slice(4), token)
    expect(byMobile.body.items.map((x: any) => x.id)).toEqual([u.id])
  })

  it('apps: 100 characters and 100 % signs; name or app_id; % literal', async () => {
    const token = await adminToken()
    const tag = crypto.randomUUID().replace(/-/g, '').slice(0, 12)
    const long = `${tag}-${'n'.repeat(100 - tag.length - 1)}`
    const create = async (app_name: string) => {
      const r = await api('/api/v1/admin/apps', { method: 'POST', token, json: { app_name, protocol_type: 'SIMPLE_API' } })
      expect(r.status, JSON.stringify(r.body)).toBe(201)
      return r.body.app_id as string
    }
    const longApp = await create(long)
    const pct = await create(`${tag} 100%`)
    await create(`${tag} 1000`)

    const byLong = await search('/api/v1/admin/apps', 'q', long, token)
    expect(byLong.status).toBe(200)
    expect(byLong.body.items.map((a: any) => a.app_id)).toEqual([longApp])
    for (const q of ['%'.repeat(100), '_'.repeat(100), 'q'.repeat(49)]) {
      const r = await search('/api/v1/admin/apps', 'q', q, token)
      expect(r.status, q).toBe(200)
      expect(r.body.total, q).toBe(0)
    }
    expect((await search('/api/v1/admin/apps', 'q', `${tag} 100%`, token)).body.items.map((a: any) => a.app_id)).toEqual([pct])
    expect((await search('/api/v1/admin/apps', 'q', pct.slice(2), token)).body.items.map((a: any) => a.app_id)).toEqual([pct])
  })

  it("an app's mappings: mobile filter of 32 % signs, and part of a number", async () => {
    const token = await adminToken()
    const app = await api('/api/v1/admin/apps', { method: 'POST', token, json: { app_name: 'Search', protocol_type: 'SIMPLE_API' } })
    const appId = app.body.app_id as string
    const u = await createUser()
    const made = await api(`/api/v1/admin/apps/${appId}/mappings`, { method: 'POST', token, json: { mobile: u.mobile, mapped_key: 'searched' } })
    expect(made.status).toBe(201)
    const base = `/api/v1/admin/apps/${appId}/mappings`
    for (const mobile of ['%'.repeat(32), '_'.repeat(32)]) {
      const r = await search(base, 'mobile', mobile, token)
      expect(r.status, mobile).toBe(200)
      expect(r.body.total, mobile).toBe(0)
    }
    const part = await search(base, 'mobile', u.mobile.slice(5), token)
    expect(part.body.items.map((m: any) => m.user_id)).toEqual([u.id])
  })
})
