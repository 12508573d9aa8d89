import { defineErrors } from '../lib/errors'

/**
 * Bulk import and export (docs/import.md). Refusals of a file name the row in the message
 * and in `details.row` (the header is row 1).
 */
export const ImportErrors = defineErrors({
  file_missing: { status: 400, message: 'Send the file as the body (text/csv or XLSX) or as the multipart/form-data field "file"' },
  unsupported_file_type: { status: 415, message: 'Send text/csv (UTF-8) or an XLSX workbook (application/vnd.openxmlformats-officedocument.spreadsheetml.sheet)' },
  unsupported_encoding: { status: 400, message: 'The file is not UTF-8; save it as "CSV UTF-8"' },
  malformed_file: { status: 400, message: 'The file cannot be read as CSV or XLSX; the message names the row' },
  empty_file: { status: 400, message: 'The file has no header row or no data rows' },
  file_too_large: { status: 413, message: 'The file is larger than 10 MB' },
  too_many_rows: { status: 413, message: 'The file has more than 50,000 data rows; split it' },
  missing_column: { status: 400, message: 'A required column is missing from the header row (row 1)' },
  duplicate_column: { status: 400, message: 'Two columns of the header row mean the same field' },
  preview_not_found: { status: 404, message: 'No such preview: it expired (previews last one hour) or never existed; upload the file again' },
  preview_already_imported: { status: 409, message: 'This preview was imported already; upload the file again for another import' },
  import_running: { status: 409, message: 'An import is already running here; wait for it to finish (details.job_id)' },
  job_not_found: { status: 404, message: 'No such import job' },
})
