import type { Env } from '../env'
import type { AuditActor } from '../audit/service'
import { legacyHashFormat } from '../lib/password'
import { ImportErrors } from './errors'
import { MAX_FILE_BYTES, kindOf, parseSheet, type FileKind } from './parse'
import { classifyMappings } from './mappings'
import { USERS_SCOPE, classifyUsers } from './users'
import { PREVIEW_TTL_MS, type ImportKindName, type MappingImporter, type ReportRow } from './durable-object'
import { summaryOf, type PreviewRow, type PreviewStatus, type Strategy } from './rows'
import { csvLine } from '../lib/csv'

const STORE_SLICE = 5_000

/** Rows shown in the preview answer itself; the rest are paged with GET …/preview/{id}. */
export const PREVIEW_INLINE_ROWS = 100

const importerOf = (env: Env, scope: string) => env.MAPPING_IMPORTER.get(env.MAPPING_IMPORTER.idFromName(scope))

/**
 * The uploaded file: the whole body (text/csv or XLSX), or the `file` part of a
 * multipart/form-data body. The body size was bounded before (src/app.ts).
 */
export async function readUpload(req: Request): Promise<{ bytes: Uint8Array; kind: FileKind }> {
  const ct = req.headers.get('Content-Type')
  if (ct && /^multipart\/form-data/i.test(ct)) {
    let form: FormData
    try {
      form = await req.formData()
    } catch {
      throw ImportErrors.malformed_file({ message: 'The multipart/form-data body cannot be read' })
    }
    const file = form.get('file')
    if (!file || typeof file === 'string') throw ImportErrors.file_missing({ message: 'The multipart/form-data body has no file part named "file"' })
    const kind = kindOf(file.type, file.name)
    if (!kind) throw ImportErrors.unsupported_file_type({ details: { content_type: file.type || null, filename: file.name } })
    return { bytes: new Uint8Array(await file.arrayBuffer()), kind }
  }
  const kind = kindOf(ct)
  if (!kind) throw ImportErrors.unsupported_file_type({ details: { content_type: ct } })
  const bytes = new Uint8Array(await req.arrayBuffer())
  if (!bytes.length) throw ImportErrors.file_missing()
  if (bytes.length > MAX_FILE_BYTES) throw ImportErrors.file_too_large({ details: { limit_bytes: MAX_FILE_BYTES, bytes: bytes.length } })
  return { bytes, kind }
}

/** A previewed row as the API shows it. */
export function rowView(kind: ImportKindName, r: PreviewRow) {
  const base = { row: r.row, status: r.status, reason: r.reason, message: r.message }
  if (kind === 'mappings') return { ...base, mobile: r.data.mobile ?? '', mapped_key: r.data.mapped_key ?? '', name: r.data.name ?? null }
  const hash = r.data.password_hash
  const format = hash ? legacyHashFormat(hash) : null
  return {
    ...base,
    mobile: r.data.mobile ?? '',
    name: r.data.name ?? null,
    email: r.data.email ?? null,
    user_status: r.data.status ?? null,
    // the hash itself is never echoed
    password_hash_format: format && 'format' in format ? format.format : null,
  }
}

export async function createPreview(env: Env, kind: ImportKindName, scope: string, req: Request) {
  const file = await readUpload(req)
  const sheet = await parseSheet(file.bytes, file.kind)
  const classified = kind === 'mappings' ? await classifyMappings(env, scope, sheet) : await classifyUsers(env, sheet)
  // in slices: one structured clone of 50,000 rows would hold the whole file twice more in memory
  const importer = importerOf(env, scope)
  const slices = Math.ceil(classified.rows.length / STORE_SLICE)
  const stored = await importer.storePreview({
    kind,
    scope,
    rows: classified.rows.slice(0, STORE_SLICE),
    columns: classified.columns,
    ignored_columns: classified.ignored_columns,
    summary: summaryOf(classified.rows),
    more: slices > 1,
  })
  for (let i = 1; i < slices; i++) {
    if (!(await importer.appendPreviewRows(stored.preview_id, classified.rows.slice(i * STORE_SLICE, (i + 1) * STORE_SLICE), i === slices - 1))) throw ImportErrors.preview_not_found()
  }
  return {
    preview_id: stored.preview_id,
    expires_in: Math.round(PREVIEW_TTL_MS / 1000),
    file_type: file.kind,
    columns: stored.columns,
    ignored_columns: stored.ignored_columns,
    summary: stored.summary,
    rows: classified.rows.slice(0, PREVIEW_INLINE_ROWS).map((r) => rowView(kind, r)),
    has_more: classified.rows.length > PREVIEW_INLINE_ROWS,
  }
}

export async function previewPage(env: Env, kind: ImportKindName, scope: string, previewId: string, q: { status?: PreviewStatus; page: number; pageSize: number }) {
  const p = (await importerOf(env, scope).previewPage(previewId, q)) as Awaited<ReturnType<MappingImporter['previewPage']>>
  if (!p || p.preview.kind !== kind) throw ImportErrors.preview_not_found()
  return {
    preview_id: previewId,
    expires_in: Math.max(0, Math.round((p.preview.expires_at - Date.now()) / 1000)),
    summary: p.preview.summary,
    page: q.page,
    page_size: q.pageSize,
    total: p.matching,
    rows: p.rows.map((r) => rowView(kind, r)),
  }
}

export async function startImport(env: Env, kind: ImportKindName, scope: string, input: { previewId: string; strategy: Strategy; actor: AuditActor }) {
  const auditAction = kind === 'users' ? 'admin.user.import' : input.actor.actorType === 'app' ? 'app.mapping.import' : 'admin.mapping.import'
  const r = await importerOf(env, scope).startImport({ previewId: input.previewId, strategy: input.strategy, actor: input.actor, auditAction, targetType: kind === 'users' ? 'user' : 'application' })
  if (r.ok) {
    if (r.job.kind !== kind) throw ImportErrors.preview_not_found()
    return jobResponse(r.job)
  }
  if (r.error === 'import_running') throw ImportErrors.import_running({ message: `Import ${r.job_id} is running; one import at a time`, details: { job_id: r.job_id } })
  if (r.error === 'preview_already_imported') throw ImportErrors.preview_already_imported({ details: { job_id: r.job_id } })
  throw ImportErrors.preview_not_found()
}

type JobLike = Awaited<ReturnType<MappingImporter['job']>> & {}

function jobResponse(j: JobLike) {
  return {
    job_id: j.job_id,
    state: j.state,
    strategy: j.strategy,
    preview_id: j.preview_id,
    total: j.total,
    processed: j.processed,
    created: j.created,
    updated: j.updated,
    skipped: j.skipped,
    failed: j.failed,
    error: j.error,
    created_at: new Date(j.created_at).toISOString(),
    finished_at: j.finished_at ? new Date(j.finished_at).toISOString() : null,
  }
}

export async function jobStatus(env: Env, kind: ImportKindName, scope: string, jobId: string) {
  const j = await importerOf(env, scope).job(jobId)
  if (!j || j.kind !== kind) throw ImportErrors.job_not_found()
  return jobResponse(j)
}

const REPORT_COLUMNS: Record<ImportKindName, string[]> = {
  mappings: ['row', 'mobile', 'mapped_key', 'name', 'outcome', 'reason', 'message'],
  users: ['row', 'mobile', 'name', 'email', 'status', 'outcome', 'reason', 'message'],
}

function reportCells(kind: ImportKindName, r: ReportRow): (string | number | null)[] {
  const d = r.data
  return kind === 'mappings'
    ? [r.row, d.mobile, d.mapped_key, d.name, r.outcome, r.reason, r.message]
    : [r.row, d.mobile, d.name, d.email, d.status, r.outcome, r.reason, r.message]
}

/** The rows a job did not apply, as CSV (UTF-8 with a BOM, so Excel reads names right). */
export async function jobReport(env: Env, kind: ImportKindName, scope: string, jobId: string) {
  const rep = await importerOf(env, scope).report(jobId)
  if (!rep || rep.job.kind !== kind) throw ImportErrors.job_not_found()
  const lines = ['\ufeff' + csvLine(REPORT_COLUMNS[kind]), ...rep.rows.map((r) => csvLine(reportCells(kind, r)))]
  return lines.join('')
}

export { USERS_SCOPE }
