import { compactVerify, importJWK, jwtVerify, SignJWT, type CompactVerifyResult, type JWK, type JWTPayload, type JWTVerifyResult, createLocalJWKSet } from 'jose'
import { desc, eq } from 'drizzle-orm'
import type { BatchItem } from 'drizzle-orm/batch'
import { getDb } from '../db'
import { signingKeys } from './schema'
import { decryptSecret, encryptSecret, randomToken } from '../lib/crypto'
import { getConfig, masterKeyRing, type Env } from '../env'
import { auditStatement, type AuditActor } from '../audit/service'
import { serialized, type Serialized } from '../lib/openapi'

export const SIGNING_ALG = 'ES256'
/** How long clients may cache the JWKS (Cache-Control on /.well-known/jwks.json). */
export const JWKS_MAX_AGE_S = 300
/**
 * A new key is published this long before it signs, so every verifier that caches the
 * JWKS for up to JWKS_MAX_AGE_S has seen it first (twice the cache lifetime, for margin).
 */
export const PUBLISH_AHEAD_MS = 2 * JWKS_MAX_AGE_S * 1000
/** Keys sign for this long before the cron job rotates them. */
export const ROTATE_AFTER_MS = 30 * 86400_000
/** Longest-lived token a key signs at the default settings (ID tokens 1 h, access tokens 15 min). */
export const MAX_SIGNED_LIFETIME_MS = 3600_000

/** How long a retired key must stay published: ACCESS_TOKEN_TTL may be set up to 24 h. */
function signedLifetimeMs(env: Env): number {
  return Math.max(MAX_SIGNED_LIFETIME_MS, getConfig(env).accessTokenTtl * 1000)
}

type KeyRow = typeof signingKeys.$inferSelect

interface KeyCache {
  rows: KeyRow[]
  loadedAt: number
  signer?: { kid: string; key: CryptoKey }
  /**
   * What `rows` publish, until the first of those keys expires: the JWKS, and the same keys
   * as one jose key set, which keeps each key it imported, so a verification costs no EC key
   * import. Shared by every caller in this isolate, so read-only.
   */
  published?: { jwks: Serialized<{ keys: JWK[] }>; set: ReturnType<typeof createLocalJWKSet>; until: number }
}

const ISOLATE_CACHE_MS = 60_000
const caches = new WeakMap<D1Database, KeyCache>()

async function loadKeys(env: Env, force = false): Promise<KeyCache> {
  const now = Date.now()
  const hit = caches.get(env.DB)
  if (hit && !force && now - hit.loadedAt < ISOLATE_CACHE_MS) return hit
  const rows = await getDb(env.DB).select().from(signingKeys).orderBy(desc(signingKeys.activateAt))
  const fresh: KeyCache = { rows, loadedAt: now }
  caches.set(env.DB, fresh)
  return fresh
}

export function invalidateKeyCache(env: Env) {
  caches.delete(env.DB)
}

async function newKeyRow(env: Env, activateAt: number, now: number): Promise<KeyRow> {
  const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair
  const kid = randomToken(12)
  const pub = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as JsonWebKey
  const priv = (await crypto.subtle.exportKey('jwk', pair.privateKey)) as JsonWebKey
  const publicJwk = { kty: pub.kty, crv: pub.crv, x: pub.x, y: pub.y, kid, alg: SIGNING_ALG, use: 'sig' }
  const { masterKey } = getConfig(env)
  return {
    kid,
    alg: SIGNING_ALG,
    publicJwk: JSON.stringify(publicJwk),
    privateJwkEnc: await encryptSecret(masterKey, JSON.stringify({ ...priv, kid }), `signing-key:${kid}`),
    createdAt: now,
    activateAt,
    retiredAt: null,
    expiresAt: null,
  }
}

/** The key that signs now: the most recently activated one whose activation has passed. */
function currentSigner(rows: KeyRow[], now: number): KeyRow | undefined {
  return rows.find((r) => r.activateAt <= now && (r.expiresAt === null || r.expiresAt > now))
}

/**
 * Key rotation, run by the cron trigger (and on first use). Steps:
 * 1. no key can sign: create one that signs at once (first start);
 * 2. the signing key is older than ROTATE_AFTER_MS and nothing is pending: publish a
 *    successor that activates PUBLISH_AHEAD_MS from now;
 * 3. keys superseded by a newer active key get retired_at = the successor's activation
 *    and expires_at = retired_at + the longest token lifetime; expired keys are deleted.
 * `force` publishes a successor regardless of age (admin-triggered rotation).
 */
export async function rotateKeys(
  env: Env,
  opts: { now?: number; force?: boolean; /** a statement (the audit row) written in the same batch as the rotation */ with?: (created: { kid: string; activateAt: number }[]) => BatchItem<'sqlite'> } = {},
) {
  const now = opts.now ?? Date.now()
  const db = getDb(env.DB)
  const { rows } = await loadKeys(env, true)
  const inserts: KeyRow[] = []
  let signer = currentSigner(rows, now)
  if (!signer) {
    signer = await newKeyRow(env, now, now)
    inserts.push(signer)
  }
  const pending = rows.find((r) => r.activateAt > now)
  if (!pending && (opts.force || now - signer.activateAt >= ROTATE_AFTER_MS) && inserts.length === 0) {
    inserts.push(await newKeyRow(env, now + PUBLISH_AHEAD_MS, now))
  }
  const all = [...inserts, ...rows].sort((a, b) => b.activateAt - a.activateAt)
  const statements: BatchItem<'sqlite'>[] = []
  for (const row of inserts) statements.push(db.insert(signingKeys).values(row))
  // retire every active key older than the current signer
  const active = all.filter((r) => r.activateAt <= now)
  for (let i = 1; i < active.length; i++) {
    const older = active[i]
    const successor = active[i - 1]
    if (older.retiredAt === null) {
      const retiredAt = successor.activateAt
      statements.push(
        db.update(signingKeys).set({ retiredAt, expiresAt: retiredAt + signedLifetimeMs(env) }).where(eqKid(older.kid)),
      )
    }
  }
  for (const r of rows) if (r.expiresAt !== null && r.expiresAt <= now) statements.push(db.delete(signingKeys).where(eqKid(r.kid)))
  if (opts.with) statements.push(opts.with(inserts.map((r) => ({ kid: r.kid, activateAt: r.activateAt }))))
  if (statements.length) await db.batch(statements as [any, ...any[]])
  invalidateKeyCache(env)
  return { created: inserts.map((r) => ({ kid: r.kid, activateAt: r.activateAt })) }
}

const eqKid = (kid: string) => eq(signingKeys.kid, kid)

/** Admin-triggered rotation; the audit row goes in the rotation's own batch, so both land or neither. */
export function rotateKeysAsAdmin(env: Env, actor: AuditActor) {
  const db = getDb(env.DB)
  return rotateKeys(env, { force: true, with: (created) => auditStatement(db, { ...actor, action: 'admin.keys.rotate', targetType: 'signing_key', targetId: created[0]?.kid ?? null }) })
}

async function signer(env: Env): Promise<{ kid: string; key: CryptoKey }> {
  const now = Date.now()
  let cache = await loadKeys(env)
  let row = currentSigner(cache.rows, now)
  if (!row) {
    await rotateKeys(env, { now })
    cache = await loadKeys(env, true)
    row = currentSigner(cache.rows, now)
    if (!row) throw new Error('no signing key available')
  }
  if (cache.signer?.kid === row.kid) return cache.signer
  const jwk = JSON.parse(await decryptSecret(masterKeyRing(env), row.privateJwkEnc, `signing-key:${row.kid}`)) as JWK
  const key = (await importJWK(jwk, SIGNING_ALG)) as CryptoKey
  cache.signer = { kid: row.kid, key }
  return cache.signer
}

export async function signJwt(env: Env, payload: JWTPayload, opts: { typ?: string; expiresInS: number }): Promise<string> {
  const { kid, key } = await signer(env)
  const { issuer } = getConfig(env)
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT(payload)
    .setProtectedHeader({ alg: SIGNING_ALG, kid, typ: opts.typ ?? 'JWT' })
    .setIssuer(issuer)
    .setIssuedAt(now)
    .setExpirationTime(now + opts.expiresInS)
    .sign(key)
}

/**
 * The keys published now (pending, active and retired, not yet expired), derived once per
 * loaded key list and again when the first of them expires, so an expired key is neither
 * published nor verifies.
 */
async function publishedKeys(env: Env): Promise<NonNullable<KeyCache['published']>> {
  const now = Date.now()
  let cache = await loadKeys(env)
  if (!currentSigner(cache.rows, now)) {
    await rotateKeys(env, { now })
    cache = await loadKeys(env, true)
  }
  if (!cache.published || cache.published.until <= now) {
    const rows = cache.rows.filter((r) => r.expiresAt === null || r.expiresAt > now)
    const jwks = { keys: rows.map((r) => JSON.parse(r.publicJwk) as JWK) }
    cache.published = { jwks: serialized(jwks), set: createLocalJWKSet(jwks), until: Math.min(...rows.map((r) => r.expiresAt ?? Infinity)) }
  }
  return cache.published
}

/** The public keys to publish, as the JWKS's JSON text: every key not yet expired (pending, active and retired). */
export async function getJwks(env: Env): Promise<Serialized<{ keys: JWK[] }>> {
  return (await publishedKeys(env)).jwks
}

/** The published keys as a key set to verify with (see publishedKeys). */
export async function verificationKeys(env: Env): Promise<ReturnType<typeof createLocalJWKSet>> {
  return (await publishedKeys(env)).set
}

/**
 * A compact JWS signed by one of the published keys, whatever its claims say (an ID token
 * hint may be long expired). An unknown kid forces one reload, as in verifyJwt; after that
 * the error's code is ERR_JWKS_NO_MATCHING_KEY.
 */
export async function verifyCompactJws(env: Env, token: string): Promise<CompactVerifyResult> {
  const attempt = async () => compactVerify(token, await verificationKeys(env), { algorithms: [SIGNING_ALG] })
  try {
    return await attempt()
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY') throw err
    await loadKeys(env, true)
    return attempt()
  }
}

/**
 * Stateless verification against the JWKS cached in this isolate. An unknown kid forces
 * one reload (a key published by another isolate), then fails.
 */
export async function verifyJwt(env: Env, token: string, opts: { audience?: string | string[]; typ?: string } = {}): Promise<JWTVerifyResult> {
  const { issuer } = getConfig(env)
  const attempt = async () => {
    return jwtVerify(token, await verificationKeys(env), { issuer, audience: opts.audience, algorithms: [SIGNING_ALG], typ: opts.typ })
  }
  try {
    return await attempt()
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_JWKS_NO_MATCHING_KEY') {
      await loadKeys(env, true)
      return attempt()
    }
    throw err
  }
}
