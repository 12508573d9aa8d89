import { PATH_SEPARATOR, type MembershipPaths } from '../directory/service'
import type { GrantEffect, SubjectType } from './schema'

/*
 * The resolution rule, in one place (docs/permissions.md has it as a table, and
 * test/permissions.test.ts tests that table row by row). For a user, a permission and
 * an optional scope, among the grants that apply:
 *
 *   1. nearer subject first: the user's own grant (distance -1), then the groups on the
 *      user's membership paths by distance (0 = a group the user is directly in, 1 = its
 *      parent ...), so a subgroup's grant overrides its ancestors';
 *   2. at the same distance, a grant for the asked scope before an unscoped one;
 *   3. then deny before allow (equally near groups in conflict: deny wins).
 *
 * The first grant in that order decides; no grant applies: not granted. An unscoped grant
 * applies to every scope; a scoped grant only when that scope is asked about.
 */

export interface Scope {
  type: string
  id: string
}

/** A grant that applies to the user, as the reads return it (src/permissions/service.ts grantsJson). */
export interface Candidate {
  grantId: string
  key: string
  /** '' for an unscoped grant */
  scopeType: string
  scopeId: string
  effect: GrantEffect
  subjectType: SubjectType
  subjectId: string
  /** -1: the user's own grant; n ≥ 0: a group at that distance on the user's membership paths */
  distance: number
}

export interface Decision {
  allowed: boolean
  /** the grant that decided, null when none applies */
  winner: Candidate | null
}

type Row = [string, string, string, string, GrantEffect, SubjectType, string, number | null]

/** Reads the JSON of grantsJson(): `[[grant_id, key, scope_type, scope_id, effect, subject_type, subject_id, distance], ...]`. */
export function parseCandidates(json: string | null | undefined): Candidate[] {
  if (!json) return []
  return (JSON.parse(json) as Row[])
    .filter((r) => r[7] !== null)
    .map(([grantId, key, scopeType, scopeId, effect, subjectType, subjectId, distance]) => ({ grantId, key, scopeType, scopeId, effect, subjectType, subjectId, distance: distance! }))
}

const rank = (c: Candidate): [number, number, number] => [c.distance, c.scopeType === '' ? 1 : 0, c.effect === 'deny' ? 0 : 1]

function before(a: Candidate, b: Candidate): number {
  const x = rank(a)
  const y = rank(b)
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2]
}

export function applies(c: Candidate, key: string, scope?: Scope | null): boolean {
  if (c.key !== key) return false
  if (c.scopeType === '') return true
  return !!scope && c.scopeType === scope.type && c.scopeId === scope.id
}

/** The rule above. */
export function decide(candidates: Candidate[], key: string, scope?: Scope | null): Decision {
  let winner: Candidate | null = null
  for (const c of candidates) if (applies(c, key, scope) && (!winner || before(c, winner) < 0)) winner = c
  return { allowed: winner?.effect === 'allow', winner }
}

/** The scopes some grant of `key` names: where a scoped answer can differ from the unscoped one. */
export function scopesOf(candidates: Candidate[], key: string): Scope[] {
  const seen = new Map<string, Scope>()
  for (const c of candidates) if (c.key === key && c.scopeType !== '') seen.set(`${c.scopeType}\u0000${c.scopeId}`, { type: c.scopeType, id: c.scopeId })
  return [...seen.values()].sort((a, b) => a.type.localeCompare(b.type) || a.id.localeCompare(b.id))
}

/** Why an answer is what it is. */
export type Source =
  | { type: 'none'; label: string }
  | { type: 'direct'; label: string; grant_id: string; effect: GrantEffect; scope: Scope | null }
  | { type: 'group'; label: string; grant_id: string; effect: GrantEffect; scope: Scope | null; group_id: string; group_path: string[]; distance: number }

/** `paths` names the groups (every group on the user's membership paths, src/directory/service.ts). */
export function sourceOf(d: Decision, paths: Pick<MembershipPaths, 'names'> | ((groupId: string) => string[])): Source {
  const w = d.winner
  if (!w) return { type: 'none', label: 'not granted' }
  const scope = w.scopeType === '' ? null : { type: w.scopeType, id: w.scopeId }
  if (w.subjectType === 'user') return { type: 'direct', label: 'direct', grant_id: w.grantId, effect: w.effect, scope }
  const path = typeof paths === 'function' ? paths(w.subjectId) : paths.names(w.subjectId)
  return { type: 'group', label: `via group ${path.join(PATH_SEPARATOR)}`, grant_id: w.grantId, effect: w.effect, scope, group_id: w.subjectId, group_path: path, distance: w.distance }
}
