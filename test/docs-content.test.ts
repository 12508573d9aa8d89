import { describe, expect, it } from 'vitest'
import mappingsDoc from '../docs/mappings.md?raw'
import oidcDoc from '../docs/oidc.md?raw'
import appsDoc from '../docs/apps.md?raw'
import { GRANT_TYPES } from '../src/apps/schema'
import { api, adminToken } from './support/api'
import { createApp } from './support/apps'

// What the docs say, checked against what the code does.

const DOCS: Record<string, string> = { 'mappings.md': mappingsDoc, 'oidc.md': oidcDoc, 'apps.md': appsDoc }

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-')
const anchors = (md: string) => new Set([...md.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1])))

/** Rows of the first markdown table after `heading`, as cells. */
function tableAfter(md: string, heading: string): string[][] {
  const lines = md.slice(md.indexOf(heading)).split('\n')
  const start = lines.findIndex((l) => l.startsWith('|'))
  const rows: string[][] = []
  for (const l of lines.slice(start)) {
    if (!l.startsWith('|')) break
    rows.push(l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()))
  }
  return rows.slice(2) // header and separator
}

describe('docs/mappings.md', () => {
  it("states the fresh app's feed exactly as the API answers it: cursor 0", async () => {
    const app = await createApp()
    const r = await api(`/api/v1/apps/${app.app_id}/users/changes`, { headers: { 'X-App-Access-Token': app.access_token } })
    expect(r.status).toBe(200)
    expect(r.body.next_cursor).toBe('0')
    const m = /A fresh app, with no change yet, answers\s+`([^`]+)`/.exec(mappingsDoc)
    expect(m, 'the doc describes the fresh feed').not.toBeNull()
    expect(JSON.parse(m![1])).toEqual(r.body)
    expect(mappingsDoc).toMatch(/starts at cursor `0`/)
    // since=0 is the same starting point
    const zero = await api(`/api/v1/apps/${app.app_id}/users/changes?since=0`, { headers: { 'X-App-Access-Token': app.access_token } })
    expect(zero.body).toEqual(r.body)
  })

  it('the sync table gives one result code and one outbox event per row', () => {
    const rows = tableAfter(mappingsDoc, '| action | current state | result code | outbox event |')
    expect(rows.length).toBeGreaterThan(8)
    for (const row of rows) {
      expect(row, row.join(' | ')).toHaveLength(4)
      const [, , result, event] = row
      // one code (the text after it may explain, never offer a second code)
      expect(result.match(/`[a-z_]+`/g), row.join(' | ')).toHaveLength(1)
      expect(['ADD', 'UPDATE', 'DISABLE', 'DELETE', 'none'], row.join(' | ')).toContain(event)
      const code = result.match(/`([a-z_]+)`/)![1]
      if (code === 'unchanged' || result.startsWith('error')) expect(event, row.join(' | ')).toBe('none')
      if (code === 'updated') expect(event, row.join(' | ')).toBe('UPDATE')
    }
    const codes = new Set(rows.map((r) => r[2].match(/`([a-z_]+)`/)![1]))
    for (const c of ['created', 'reactivated', 'updated', 'disabled', 'unchanged', 'invalid_mobile', 'user_not_found', 'mapping_exists', 'mapped_key_taken', 'mapping_not_found', 'mapped_key_mismatch']) expect(codes, c).toContain(c)
  })
})

describe('docs/oidc.md and docs/apps.md', () => {
  it('oidc.md names the admin route that creates the mapping a user needs, and that route creates one', async () => {
    expect(oidcDoc).toContain('`POST /api/v1/admin/apps/{app_id}/mappings`')
    const spec = (await api('/docs/admin/openapi.json')).body
    expect(spec.paths['/api/v1/admin/apps/{app_id}/mappings'].post.summary).toBe('Map a user into an app')
    expect(oidcDoc).toContain('(mappings.md#admin-crud-apiv1adminappsapp_idmappings)')
  })

  it('grant_types are listed once, in apps.md, and that list is what the token endpoint serves', async () => {
    const rows = tableAfter(appsDoc, '### Grant types')
    const listed = rows.map((r) => r[0].replace(/`/g, ''))
    expect([...listed].sort()).toEqual([...GRANT_TYPES].sort())
    const discovery = await api('/.well-known/openid-configuration')
    expect([...listed].sort()).toEqual([...discovery.body.grant_types_supported].sort())
    // oidc.md points there instead of keeping a list of its own
    const field = oidcDoc.split('\n').find((l) => l.startsWith('| `grant_types` |'))!
    expect(field).toContain('(apps.md#grant-types)')
    for (const g of GRANT_TYPES) expect(field).not.toContain(`\`${g}\``)
    expect(oidcDoc).not.toMatch(/\*\*Grants\*\* `authorization_code`/)
  })

  it('every link between these docs reaches an existing heading', () => {
    for (const [name, md] of Object.entries(DOCS)) {
      for (const [, file, anchor] of md.matchAll(/\]\(([a-z-]+\.md)?#([^)]+)\)/g)) {
        const target = file ?? name
        if (!DOCS[target]) continue
        expect(anchors(DOCS[target]), `${name} → ${target}#${anchor}`).toContain(anchor)
      }
    }
  })
})
