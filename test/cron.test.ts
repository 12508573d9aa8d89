import { describe, expect, it } from 'vitest'
import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from 'cloudflare:test'
import worker from '../src/index'
import { REFRESH_GRACE_MS } from '../src/auth/tokens'
import { api, createUser, login } from './support/api'

/** The Worker's own `scheduled` export, as the cron trigger calls it. */
async function runCron() {
  const ctx = createExecutionContext()
  await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: '*/5 * * * *' }), env, ctx)
  await waitOnExecutionContext(ctx)
}

describe('scheduled handler (cron)', () => {
  it('deletes sessions and refresh tokens a day past expiry or revocation, drops stale successor copies and the denylist rows of expired access tokens', async () => {
    const u = await createUser()
    const live = await login(u.mobile, u.password)
    const now = Date.now()
    const day = 86400_000
    // rows that expired or were revoked days ago: no API makes them without a clock
    const insertSession = (id: string, expiresAt: number, revokedAt: number | null) =>
      env.DB.prepare('INSERT INTO sessions (id, user_id, auth_time, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)').bind(id, u.id, now - 40 * day, now - 40 * day, expiresAt, revokedAt).run()
    const insertToken = (id: string, sessionId: string, expiresAt: number) =>
      env.DB.prepare("INSERT INTO refresh_tokens (id, token_hash, family_id, session_id, user_id, audience, status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, 'uap-edge', 'ACTIVE', ?, ?)")
        .bind(id, crypto.randomUUID(), crypto.randomUUID(), sessionId, u.id, now - 40 * day, expiresAt)
        .run()
    const expired = crypto.randomUUID()
    const revoked = crypto.randomUUID()
    const recentlyRevoked = crypto.randomUUID()
    await insertSession(expired, now - 2 * day, null)
    await insertSession(revoked, now + 10 * day, now - 2 * day)
    await insertSession(recentlyRevoked, now + 10 * day, now - 3600_000)
    const oldToken = crypto.randomUUID()
    await insertToken(oldToken, recentlyRevoked, now - 2 * day)
    // a rotation long past the grace window still holding the successor copy
    const rotated = await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: live.refresh_token } })
    expect(rotated.status).toBe(200)
    // ... rotated long ago (the clock again)
    await env.DB.prepare('UPDATE refresh_tokens SET rotated_at = ? WHERE user_id = ? AND successor_enc IS NOT NULL').bind(now - REFRESH_GRACE_MS - 60_000, u.id).run()

    // access-token denylist rows: one whose token has expired, one still needed
    const goneJti = crypto.randomUUID()
    const keptJti = crypto.randomUUID()
    const deny = (jti: string, expiresAt: number) => env.DB.prepare('INSERT INTO revoked_access_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?)').bind(jti, expiresAt, now - 3600_000).run()
    await deny(goneJti, now - 60_000)
    await deny(keptJti, now + 600_000)

    await runCron() // throws if any cron task failed

    const denied = (await env.DB.prepare('SELECT jti FROM revoked_access_tokens WHERE jti IN (?, ?)').bind(goneJti, keptJti).all<{ jti: string }>()).results.map((r) => r.jti)
    expect(denied).toEqual([keptJti])

    // what is left in D1 (no API lists a user's sessions or refresh tokens)
    const sessionIds = (await env.DB.prepare('SELECT id FROM sessions WHERE user_id = ?').bind(u.id).all<{ id: string }>()).results.map((r) => r.id)
    expect(sessionIds).not.toContain(expired)
    expect(sessionIds).not.toContain(revoked)
    expect(sessionIds).toContain(recentlyRevoked)
    expect(sessionIds.length).toBe(2) // the live login session + recentlyRevoked
    expect(await env.DB.prepare('SELECT id FROM refresh_tokens WHERE id = ?').bind(oldToken).first()).toBeNull()
    const withCopy = await env.DB.prepare('SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ? AND successor_enc IS NOT NULL').bind(u.id).first<{ n: number }>()
    expect(withCopy!.n).toBe(0)
    // the live session keeps working
    expect((await api('/api/v1/auth/refresh', { method: 'POST', json: { refresh_token: rotated.body.refresh_token } })).status).toBe(200)
  })
})
