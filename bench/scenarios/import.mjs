/**
 * Bulk import (issue 13), as an operator runs it over HTTP: a 50,000-row users file
 * (preview, then a SKIP import: the users import rate), then a 50,000-row mapping file for
 * those users into one app: its preview (CSV, and the same rows as XLSX) and its import (the
 * mapping import rate: rows over the time from the 202 to the job's `done`, polled every
 * 100 ms). A job, not a request stream: `job` instead of autocannon (bench/run.mjs).
 * Each figure comes with the Worker's CPU over it (workerd process, /proc).
 */
import * as XLSX from '@e965/xlsx'
import bcrypt from 'bcryptjs'

const ROWS = Number(process.env.BENCH_IMPORT_ROWS ?? 50_000)
const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'
// one bcrypt hash for every row: stored as it is, verified only at sign-in
const BCRYPT = bcrypt.hashSync('bench-import-password', 10)

const now = () => performance.now()

export default {
  name: 'bulk import',
  route: `POST …/import/preview + …/import (${ROWS.toLocaleString('en')} rows)`,
  order: 90,
  async job(ctx, cpuOf) {
    const token = await ctx.adminToken()
    const auth = { authorization: `Bearer ${token}` }
    const post = async (path, body, type) => {
      const res = await fetch(ctx.base + path, { method: 'POST', headers: { ...auth, 'content-type': type }, body })
      const text = await res.text()
      if (!res.ok) throw new Error(`${path}: ${res.status} ${text.slice(0, 300)}`)
      return JSON.parse(text)
    }
    const timed = async (fn) => {
      const c0 = cpuOf()
      const t0 = now()
      const value = await fn()
      const c1 = cpuOf()
      return { value, seconds: (now() - t0) / 1000, cpuMs: (c1.worker ?? 0) - (c0.worker ?? 0) }
    }
    const runJob = async (base, previewId, strategy) =>
      timed(async () => {
        const { job_id } = await post(`${base}/import`, JSON.stringify({ preview_id: previewId, strategy }), 'application/json')
        for (;;) {
          await new Promise((r) => setTimeout(r, 100))
          const res = await fetch(`${ctx.base}${base}/import/${job_id}`, { headers: auth })
          const job = await res.json()
          if (job.state !== 'running') {
            if (job.state !== 'done') throw new Error(`job ${job_id}: ${JSON.stringify(job)}`)
            return job
          }
        }
      })

    // users: distinct +1 numbers the other scenarios never use
    const base = 2_000_000_000 + Math.floor(Math.random() * 5_000_000_000)
    const mobiles = Array.from({ length: ROWS }, (_, i) => `+1${base + i}`)
    const usersCsv = 'mobile,name,password_hash\n' + mobiles.map((m, i) => `${m},Bench user ${i},${BCRYPT}`).join('\n') + '\n'
    const up = await timed(() => post('/api/v1/admin/users/import/preview', usersCsv, 'text/csv'))
    if (up.value.summary.new !== ROWS) throw new Error(`users preview: ${JSON.stringify(up.value.summary)}`)
    const ui = await runJob('/api/v1/admin/users', up.value.preview_id, 'SKIP')
    if (ui.value.created !== ROWS) throw new Error(`users import: ${JSON.stringify(ui.value)}`)

    const app = await ctx.createApp({ app_name: 'Bench import', protocol_type: 'SIMPLE_API', redirect_uris: ['https://import.example.com/cb'] })
    const mapBase = `/api/v1/apps/${app.appId}/mapping`
    const mapCsv = 'mobile,mapped_key,name\n' + mobiles.map((m, i) => `${m},bench.${i}@import.example.com,Bench ${i}`).join('\n') + '\n'
    const wb = XLSX.utils.book_new()
    XLSX.utils.book_append_sheet(wb, XLSX.utils.aoa_to_sheet([['mobile', 'mapped_key', 'name'], ...mobiles.map((m, i) => [m, `bench.${i}@import.example.com`, `Bench ${i}`])]), 'Sheet1')
    const xlsxBytes = XLSX.write(wb, { type: 'buffer', bookType: 'xlsx', compression: true })
    const xp = await timed(() => post(`${mapBase}/preview`, xlsxBytes, XLSX_TYPE))
    const mp = await timed(() => post(`${mapBase}/preview`, mapCsv, 'text/csv'))
    if (mp.value.summary.new !== ROWS || xp.value.summary.new !== ROWS) throw new Error(`mapping preview: ${JSON.stringify([mp.value.summary, xp.value.summary])}`)
    const mi = await runJob(mapBase, mp.value.preview_id, 'SKIP')
    if (mi.value.created !== ROWS) throw new Error(`mapping import: ${JSON.stringify(mi.value)}`)
    // the same file again: every row planned, nothing written but the ledger
    const again = await timed(() => post(`${mapBase}/preview`, mapCsv, 'text/csv'))
    const mi2 = await runJob(mapBase, again.value.preview_id, 'SKIP')

    const mb = (n) => `${(n / 2 ** 20).toFixed(1)} MiB`
    const row = (metric, t, extra = {}) => ({ metric, seconds: t.seconds, cpuMs: t.cpuMs, ...extra })
    return [
      row(`users preview, CSV ${mb(usersCsv.length)}`, up),
      row('users import (SKIP, all new, bcrypt hashes stored as given)', ui, { rowsPerS: ROWS / ui.seconds }),
      row(`mapping preview, CSV ${mb(mapCsv.length)}`, mp, { target: { op: '<=', seconds: 10 } }),
      row(`mapping preview, XLSX ${mb(xlsxBytes.length)}`, xp, { target: { op: '<=', seconds: 10 } }),
      row('mapping import (SKIP, all new)', mi, { rowsPerS: ROWS / mi.seconds, target: { op: '>=', rowsPerS: 5000 } }),
      row('mapping import of the same file again (all skipped)', mi2, { rowsPerS: ROWS / mi2.seconds }),
    ]
  },
}
