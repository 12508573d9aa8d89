import { defineErrors } from '../lib/errors'

/** Group types, groups and memberships (docs/permissions.md). */
export const DirectoryErrors = defineErrors({
  group_type_not_found: { status: 404, message: 'No group type with this id' },
  group_type_exists: { status: 409, message: 'A group type with this id already exists' },
  group_type_built_in: { status: 409, message: 'The built-in group types (department, role, label) cannot be renamed or deleted' },
  group_type_in_use: { status: 409, message: 'The group type still has groups; delete them first' },
  group_not_found: { status: 404, message: 'No group with this id' },
  parent_not_found: { status: 404, message: 'The parent group does not exist' },
  parent_type_mismatch: { status: 400, message: 'A group and its parent must be of the same group type' },
  group_name_taken: { status: 409, message: 'A sibling group already has this name' },
  move_into_own_subtree: { status: 409, message: 'A group cannot move under itself or one of its descendants' },
  tree_too_deep: { status: 400, message: 'The tree would be deeper than the limit' },
  group_has_children: { status: 409, message: 'The group has subgroups; move or delete them first' },
  group_has_members: { status: 409, message: 'The group has members; remove them first' },
  users_not_found: { status: 404, message: 'Some user ids name no user; nothing was changed' },
  concurrent_modification: { status: 409, message: 'The directory was changed concurrently; retry' },
})
