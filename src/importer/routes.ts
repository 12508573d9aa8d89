import { createRoute, z } from '@hono/zod-openapi'
import { OPEN, bearerSecurity, jsonBody, mergeErrors, pick } from '../lib/openapi'
import { CommonErrors, errorResponses } from '../lib/errors'
import { router } from '../context'
import { requireAppOrAdmin, targetApp } from '../apps/access'
import { auditActor } from '../audit/service'
import type { AppEnv } from '../context'
import type { Context } from 'hono'
import { AppIdParam } from '../mappings/view'
import { ImportErrors } from './errors'
import { MAX_FILE_BYTES, MAX_ROWS, XLSX_TYPE } from './parse'
import { PREVIEW_INLINE_ROWS, USERS_SCOPE, createPreview, jobReport, jobStatus, previewPage, startImport } from './service'
import { exportMappings, exportUsers } from './export'
import { PREVIEW_TTL_MS, type ImportKindName } from './durable-object'
import { needs } from '../delegation/rights'
import { within } from '../delegation/scope'

/*
 * Bulk import and export (docs/import.md). Mapping import and export for one app under
 * /api/v1/apps (app token or admin, as the rest of the mapping API); users import and
 * export under /api/v1/admin/users (admin only, guarded in src/app.ts).
 */

const appOrAdmin: Record<string, string[]>[] = [{ appAccessToken: [] }, { bearerAuth: [] }]
const MAPPING_TAG = 'Open: mapping import'
const USER_TAG = 'Admin: users import and export'

const ok = <T extends z.ZodType>(description: string, schema: T) => ({ description, content: { 'application/json': { schema } } })
const csvResponse = (description: string) => ({ description, content: { 'text/csv': { schema: { type: 'string' as const } } } })

/** The upload: the file as the body, or the multipart part `file`. Read by the service, not by a validator (the body may be 10 MB). */
const uploadBody = {
  required: true,
  description: `The file: CSV (UTF-8, with or without BOM) or XLSX (first sheet), at most ${MAX_FILE_BYTES / 2 ** 20} MB and ${MAX_ROWS.toLocaleString('en')} data rows.`,
  content: {
    'text/csv': { schema: { type: 'string' as const } },
    [XLSX_TYPE]: { schema: { type: 'string' as const, format: 'binary' } },
    'multipart/form-data': { schema: { type: 'object' as const, properties: { file: { type: 'string' as const, format: 'binary' } }, required: ['file'] } },
  },
}

const Summary = z.object({ total: z.number().int(), new: z.number().int(), duplicate: z.number().int(), invalid: z.number().int() }).openapi('ImportSummary')
const RowBase = {
  row: z.number().int().openapi({ example: 2, description: 'Row of the spreadsheet (the header is row 1)' }),
  status: z.enum(['new', 'duplicate', 'invalid']),
  reason: z.string().nullable().openapi({ example: 'mapped_key_taken', description: 'Stable code (docs/import.md); null for a new row' }),
  message: z.string().nullable(),
}
const MappingPreviewRow = z
  .object({ ...RowBase, mobile: z.string().openapi({ example: '+8613800138000' }), mapped_key: z.string().openapi({ example: 'lilei@hr.example.com' }), name: z.string().nullable() })
  .openapi('MappingPreviewRow')
const UserPreviewRow = z
  .object({
    ...RowBase,
    mobile: z.string().openapi({ example: '+8613800138000' }),
    name: z.string().nullable(),
    email: z.string().nullable(),
    user_status: z.enum(['ACTIVE', 'DISABLED']).nullable().openapi({ description: 'The file\'s status column' }),
    password_hash_format: z.string().nullable().openapi({ example: 'bcrypt', description: 'The format of the row\'s password_hash (the hash itself is never shown)' }),
  })
  .openapi('UserPreviewRow')

const previewSchema = (row: z.ZodType, name: string) =>
  z
    .object({
      preview_id: z.string(),
      expires_in: z.number().int().openapi({ example: PREVIEW_TTL_MS / 1000, description: 'Seconds until the preview is dropped' }),
      file_type: z.enum(['csv', 'xlsx']),
      columns: z.record(z.string(), z.string()).openapi({ description: 'Header → field, as understood', example: { 手机号: 'mobile', 映射账号: 'mapped_key' } }),
      ignored_columns: z.array(z.string()),
      summary: Summary,
      rows: z.array(row).openapi({ description: `The first ${PREVIEW_INLINE_ROWS} rows; page through all with GET …/preview/{preview_id}` }),
      has_more: z.boolean(),
    })
    .openapi(name)

const pageSchema = (row: z.ZodType, name: string) =>
  z.object({ preview_id: z.string(), expires_in: z.number().int(), summary: Summary, page: z.number().int(), page_size: z.number().int(), total: z.number().int(), rows: z.array(row) }).openapi(name)

const PageQuery = z.object({
  status: z.enum(['new', 'duplicate', 'invalid']).optional(),
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(500).default(100),
})

const ImportBody = z.object({
  preview_id: z.string().min(1).max(64),
  strategy: z.enum(['SKIP', 'OVERWRITE']).openapi({ description: 'SKIP: existing data stays as it is. OVERWRITE: existing data is changed to the row' }),
})

const JobView = z
  .object({
    job_id: z.string(),
    state: z.enum(['running', 'done', 'failed']),
    strategy: z.enum(['SKIP', 'OVERWRITE']),
    preview_id: z.string(),
    total: z.number().int(),
    processed: z.number().int(),
    created: z.number().int(),
    updated: z.number().int(),
    skipped: z.number().int(),
    failed: z.number().int(),
    error: z.string().nullable().openapi({ description: 'The last error of a chunk that is being retried, or why the job failed' }),
    created_at: z.string(),
    finished_at: z.string().nullable(),
  })
  .openapi('ImportJob')

const PreviewParam = z.object({ preview_id: z.string().min(1).max(64).openapi({ param: { name: 'preview_id', in: 'path' } }) })
const JobParam = z.object({ job_id: z.string().min(1).max(64).openapi({ param: { name: 'job_id', in: 'path' } }) })
const ExportQuery = z.object({ status: z.enum(['ACTIVE', 'DISABLED']).optional() })

const uploadErrors = mergeErrors(
  errorResponses(ImportErrors, 'file_missing', 'unsupported_encoding', 'malformed_file', 'empty_file', 'missing_column', 'duplicate_column', 'file_too_large', 'too_many_rows', 'unsupported_file_type'),
  errorResponses(CommonErrors, 'payload_too_large'),
  pick(400, 401, 403, 404, 429),
)

const csvFile = (c: Context<AppEnv>, body: BodyInit, filename: string) =>
  new Response(body, { status: 200, headers: { 'Content-Type': 'text/csv; charset=utf-8', 'Content-Disposition': `attachment; filename="${filename}"`, 'Cache-Control': 'no-store', 'X-Request-Id': c.get('requestId') } })

// ---------------------------------------------------------------------------- mappings

export const mappingImportRoutes = router()
const M: ImportKindName = 'mappings'

mappingImportRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/mapping/preview',
    tags: [MAPPING_TAG],
    summary: 'Preview a mapping import file',
    description: `Reads a file of \`mobile, mapped_key, name\` (headers also \`phone\`/\`手机号\`, \`account\`/\`映射账号\`, \`姓名\`; any order) and classifies every row: **new**, **duplicate** (the user is mapped in the app already, the key belongs to another user, or an earlier row has the same mobile or key) or **invalid** (bad mobile, empty key, no such user, a field too long). Nothing is written. The preview is kept ${PREVIEW_TTL_MS / 60_000} minutes for \`POST …/mapping/import\`.`,
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: { params: AppIdParam, body: uploadBody },
    responses: { 200: ok('The classified rows', previewSchema(MappingPreviewRow, 'MappingImportPreview')), ...uploadErrors },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    return c.json(await createPreview(c.env, M, app.appId, c.req.raw), 200)
  },
)

mappingImportRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/mapping/preview/{preview_id}',
    tags: [MAPPING_TAG],
    summary: 'Page through a preview',
    description: 'All rows of a preview in file order, optionally of one status.',
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: { params: AppIdParam.merge(PreviewParam), query: PageQuery },
    responses: { 200: ok('A page of rows', pageSchema(MappingPreviewRow, 'MappingImportPreviewPage')), ...mergeErrors(errorResponses(ImportErrors, 'preview_not_found'), pick(400, 401, 403, 429)) },
  }),
  async (c) => {
    const { app_id, preview_id } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    const q = c.req.valid('query')
    return c.json(await previewPage(c.env, M, app.appId, preview_id, { status: q.status, page: q.page, pageSize: q.page_size }), 200)
  },
)

mappingImportRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/{app_id}/mapping/import',
    tags: [MAPPING_TAG],
    summary: 'Import a previewed file',
    description:
      'Starts applying a preview and answers 202 with the job id at once. **SKIP** creates the new rows and leaves every existing mapping alone; **OVERWRITE** also changes the user\'s existing mapping to the row (key, name, enabled). Neither takes a key from another user. Rows are planned again against the data as it is when applied. One import at a time per app (409 `import_running` names the running job). Every change writes its outbox event (webhooks, changes feed) and the job is audited.',
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: { params: AppIdParam, body: jsonBody(ImportBody) },
    responses: {
      202: ok('Started', JobView),
      ...mergeErrors(errorResponses(ImportErrors, 'preview_not_found', 'preview_already_imported', 'import_running'), pick(400, 401, 403, 429)),
    },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    const body = c.req.valid('json')
    const caller = c.get('app')
    const actor = caller ? { ...auditActor(c), actorType: 'app' as const, actorId: caller.appId } : auditActor(c)
    return c.json(await startImport(c.env, M, app.appId, { previewId: body.preview_id, strategy: body.strategy, actor }), 202)
  },
)

mappingImportRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/mapping/import/{job_id}',
    tags: [MAPPING_TAG],
    summary: 'Progress of an import',
    description: 'state running → done (or failed), rows processed so far and what became of them. The rows not applied, with reasons: GET …/report.',
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: { params: AppIdParam.merge(JobParam) },
    responses: { 200: ok('The job', JobView), ...mergeErrors(errorResponses(ImportErrors, 'job_not_found'), pick(400, 401, 403, 429)) },
  }),
  async (c) => {
    const { app_id, job_id } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    return c.json(await jobStatus(c.env, M, app.appId, job_id), 200)
  },
)

mappingImportRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/mapping/import/{job_id}/report',
    tags: [MAPPING_TAG],
    summary: 'The rows an import did not apply (CSV)',
    description: 'Columns `row, mobile, mapped_key, name, outcome, reason, message`: every skipped or failed row so far, in file order.',
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: { params: AppIdParam.merge(JobParam) },
    responses: { 200: csvResponse('The report'), ...mergeErrors(errorResponses(ImportErrors, 'job_not_found'), pick(400, 401, 403, 429)) },
  }),
  async (c) => {
    const { app_id, job_id } = c.req.valid('param')
    const app = await targetApp(c, app_id)
    return csvFile(c, await jobReport(c.env, M, app.appId, job_id), `import-${job_id}-report.csv`)
  },
)

mappingImportRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/{app_id}/mapping/export',
    tags: [MAPPING_TAG],
    summary: "Export the app's mappings (CSV)",
    description: 'Columns `mobile, mapped_key, name`, the ones the import reads; streamed, in mapping id order. Filter with `status`.',
    ...OPEN,
    security: appOrAdmin,
    middleware: [requireAppOrAdmin] as const,
    request: { params: AppIdParam, query: ExportQuery },
    responses: { 200: csvResponse('The mappings'), ...pick(400, 401, 403, 404, 429) },
  }),
  async (c) => {
    const app = await targetApp(c, c.req.valid('param').app_id)
    return csvFile(c, exportMappings(c.env, app.appId, c.req.valid('query')), `${app.appId}-mappings.csv`)
  },
)

// ---------------------------------------------------------------------------- users

export const userImportRoutes = router()
const U: ImportKindName = 'users'

userImportRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/import/preview',
    tags: [USER_TAG],
    summary: 'Preview a users import file',
    description: `Columns \`mobile\` (required), \`name\`, \`email\`, \`status\` (ACTIVE | DISABLED), \`password_hash\` (bcrypt \`$2a$/$2b$/$2y$\`, Django \`pbkdf2_sha256$…\`, \`sha256:<hex>\`, \`$argon2id$\`, \`$scrypt$\`; docs/passwords.md). Rows: **new**, **duplicate** (the mobile is registered, or an earlier row has it) or **invalid** (bad mobile, email, status or hash). Nothing is written; the preview is kept ${PREVIEW_TTL_MS / 60_000} minutes.`,
    security: bearerSecurity,
    ...needs('admin'),
    request: { body: uploadBody },
    responses: { 200: ok('The classified rows', previewSchema(UserPreviewRow, 'UserImportPreview')), ...uploadErrors },
  }),
  async (c) => c.json(await createPreview(c.env, U, USERS_SCOPE, c.req.raw), 200),
)

userImportRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/import/preview/{preview_id}',
    tags: [USER_TAG],
    summary: 'Page through a users preview',
    description: 'All rows of a preview in file order, optionally of one status.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: PreviewParam, query: PageQuery },
    responses: { 200: ok('A page of rows', pageSchema(UserPreviewRow, 'UserImportPreviewPage')), ...mergeErrors(errorResponses(ImportErrors, 'preview_not_found'), pick(400, 401, 403)) },
  }),
  async (c) => {
    const q = c.req.valid('query')
    return c.json(await previewPage(c.env, U, USERS_SCOPE, c.req.valid('param').preview_id, { status: q.status, page: q.page, pageSize: q.page_size }), 200)
  },
)

userImportRoutes.openapi(
  createRoute({
    method: 'post',
    path: '/import',
    tags: [USER_TAG],
    summary: 'Import a previewed users file',
    description:
      'Answers 202 with the job id. **SKIP** creates the new users and leaves existing ones alone; **OVERWRITE** also changes existing users to the row\'s non-empty fields (a new password hash or DISABLED ends their sessions). Admin accounts are never changed. A user imported without password_hash has no usable password until it is reset by SMS code or set by an admin. One users import at a time (409 `import_running`). Audited.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { body: jsonBody(ImportBody) },
    responses: { 202: ok('Started', JobView), ...mergeErrors(errorResponses(ImportErrors, 'preview_not_found', 'preview_already_imported', 'import_running'), pick(400, 401, 403)) },
  }),
  async (c) => {
    const body = c.req.valid('json')
    return c.json(await startImport(c.env, U, USERS_SCOPE, { previewId: body.preview_id, strategy: body.strategy, actor: auditActor(c) }), 202)
  },
)

userImportRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/import/{job_id}',
    tags: [USER_TAG],
    summary: 'Progress of a users import',
    description: 'state running → done (or failed) and the counts so far.',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: JobParam },
    responses: { 200: ok('The job', JobView), ...mergeErrors(errorResponses(ImportErrors, 'job_not_found'), pick(400, 401, 403)) },
  }),
  async (c) => c.json(await jobStatus(c.env, U, USERS_SCOPE, c.req.valid('param').job_id), 200),
)

userImportRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/import/{job_id}/report',
    tags: [USER_TAG],
    summary: 'The rows a users import did not apply (CSV)',
    description: 'Columns `row, mobile, name, email, status, outcome, reason, message` (never the hash).',
    security: bearerSecurity,
    ...needs('admin'),
    request: { params: JobParam },
    responses: { 200: csvResponse('The report'), ...mergeErrors(errorResponses(ImportErrors, 'job_not_found'), pick(400, 401, 403)) },
  }),
  async (c) => {
    const { job_id } = c.req.valid('param')
    return csvFile(c, await jobReport(c.env, U, USERS_SCOPE, job_id), `users-import-${job_id}-report.csv`)
  },
)

userImportRoutes.openapi(
  createRoute({
    method: 'get',
    path: '/export',
    tags: [USER_TAG],
    summary: 'Export users (CSV)',
    description: 'Columns `mobile, name, email, status`, the ones the users import reads (never password hashes); streamed in id order, so any number of users export in constant memory. Filter with `status` and `q` (part of the mobile or name). A sub-admin exports the users of their scope.',
    security: bearerSecurity,
    ...needs('users.read'),
    request: { query: ExportQuery.extend({ q: z.string().min(1).max(50).optional() }) },
    responses: { 200: csvResponse('The users'), ...pick(400, 401, 403) },
  }),
  async (c) => {
    const q = c.req.valid('query')
    return csvFile(c, exportUsers(c.env, { status: q.status, search: q.q, within: within(c, 'users') }), 'users.csv')
  },
)
