/**
 * Who may do what on the admin API (/api/v1/admin/*). A full admin (role ADMIN) holds every
 * right everywhere. Anyone else holds grants: each grant is a set of rights over a scope, and
 * a caller's power is the union of their grants (ArkID's sub-admins: a person's power is the
 * union of their admin groups). A grant does not lend its rights to another grant's scope.
 */
export const RIGHTS = [
  'users.read',
  'users.write',
  'mappings.write',
  'apps.manage',
  'permissions.grant',
  'groups.manage',
  'webhooks.manage',
  'audit.read',
] as const
export type Right = (typeof RIGHTS)[number]

/**
 * What a grant reaches. A group reaches its whole subtree and the users who are members of
 * any group in it; users and apps are listed by id.
 */
export interface Scope {
  groups: string[]
  users: string[]
  apps: string[]
}

export interface Grant {
  rights: Right[]
  scope: Scope
  /** where the grant comes from, for the audit row: an admin group's id, or an API client's own grant */
  source: { type: 'admin_group' | 'api_client'; id: string }
}

/** The caller of an admin route, set on the context by the admin guard. */
export type Principal =
  | { kind: 'admin'; userId: string }
  | { kind: 'subadmin'; userId: string; grants: Grant[] }
  | { kind: 'client'; clientId: string; clientKey: string; grants: Grant[] }
