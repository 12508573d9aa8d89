import { defineErrors } from '../lib/errors'

/** Delegated administration: rights, scopes and admin groups (docs/admin-rights.md). */
export const DelegationErrors = defineErrors({
  right_missing: { status: 403, message: 'None of your admin grants holds the right this route needs' },
  admin_only: { status: 403, message: 'Only full admins (role ADMIN) may use this route' },
  out_of_scope: { status: 403, message: 'The object is outside the scope of your grants for the right this route needs' },
  target_is_admin: { status: 403, message: 'This account holds admin power (role ADMIN or an admin group); only a full admin may change it' },
  admin_group_not_found: { status: 404, message: 'No such admin group' },
  admin_group_name_taken: { status: 409, message: 'Another admin group has this name' },
  scope_not_found: { status: 400, message: "The scope names groups, users or apps that do not exist; details lists them" },
  members_not_found: { status: 404, message: 'Some user ids name no user; details lists them' },
})
