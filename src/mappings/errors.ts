import { defineErrors } from '../lib/errors'

/**
 * Mapping errors. The same codes are the per-item `code` of a sync result (with status
 * `error`); the single-mapping admin routes answer them with the status here.
 */
export const MappingErrors = defineErrors({
  invalid_mobile: { status: 400, message: 'mobile must be E.164 (+8613800138000) or an 11-digit mainland number' },
  user_not_found: { status: 404, message: 'No UAP user has this mobile number' },
  mapping_not_found: { status: 404, message: 'The user has no mapping in this app' },
  mapping_exists: { status: 409, message: 'The user already has a mapping in this app' },
  mapped_key_taken: { status: 409, message: 'This mapped_key is already used by another user of this app' },
  mapped_key_mismatch: { status: 409, message: 'The user is mapped to another mapped_key; nothing disabled' },
  concurrent_modification: { status: 409, message: 'The mapping was changed concurrently; retry' },
  not_found: { status: 404, message: 'Mapping not found' },
})

export type MappingErrorCode = Exclude<keyof typeof MappingErrors, 'not_found' | symbol>
