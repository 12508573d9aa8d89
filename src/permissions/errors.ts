import { defineErrors } from '../lib/errors'

/** App permissions, grants, snapshots and checks (docs/permissions.md). */
export const PermissionErrors = defineErrors({
  permission_not_found: { status: 404, message: 'The app has no permission with this key' },
  permission_exists: { status: 409, message: 'The app already has a permission with this key' },
  permission_built_in: { status: 409, message: 'access is the built-in permission of every app; it cannot be created, changed or deleted' },
  grant_not_found: { status: 404, message: 'No grant with this id in this app' },
  subject_not_found: { status: 404, message: 'The subject (user or group) of the grant does not exist' },
  access_not_scoped: { status: 400, code: 'invalid_request', message: 'scope: the access permission is never scoped' },
  user_not_found: { status: 404, message: 'No user of this app has this mobile number or mapped_key' },
  app_not_found: { status: 404, message: 'Application not found' },
})
