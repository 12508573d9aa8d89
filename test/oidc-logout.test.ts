import { afterEach, describe, expect, it, vi } from 'vitest'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { createExecutionContext, createMessageBatch, env, getQueueResult } from 'cloudflare:test'
import type { Env } from '../src/env'
import { dispatchQueueBatch } from '../src/queue/dispatcher'
import { queueJobs } from '../src/wiring'
import { BACKCHANNEL_JOB, cleanupCodes, deliverBackchannelLogout, signOutClients } from '../src/oidc/logout'
import { ISSUER, api, auditLog, createUser, login } from './support/api'
import { createApplicationAsAdmin, updateApplicationAsAdmin } from '../src/apps/admin'
import { createOidcApp, mapUser } from './support/apps'
import { Browser } from './support/browser'
import { codeFlow, oauthPost } from './support/oidc'

const BACKCHANNEL = 'https://rp.example.com/backchannel'

/** env whose queue records what is sent instead of delivering it. */
function capturingEnv() {
  const sent: unknown[] = []
  const queue = {
    send: async (body: unknown) => void sent.push(body),
    sendBatch: async (msgs: Iterable<{ body: unknown }>) => {
      for (const m of msgs) sent.push(m.body)
    },
  }
  return { sent, env: { ...env, WEBHOOK_QUEUE: queue } as unknown as Env }
}

afterEach(() => vi.restoreAllMocks())

describe('single sign-out', () => {
  it('ending a session revokes the refresh tokens apps hold and queues one back-channel logout per app that asked for it', async () => {
    const withUri = await createOidcApp({ first_party: true, backchannel_logout_uri: BACKCHANNEL })
    const without = await createOidcApp({ first_party: true })
    const user = await createUser()
    await mapUser(withUri.app_id, user, { mappedKey: `a-${user.id.slice(0, 8)}` })
    await mapUser(without.app_id, user, { mappedKey: `b-${user.id.slice(0, 8)}` })
    const b = new Browser()
    const { sessionId } = await b.loginOnPage(user)
    const t1 = await codeFlow(b, withUri)
    const t2 = await codeFlow(b, without)

    const cap = capturingEnv()
    await signOutClients(cap.env, { userId: user.id, sessionIds: [sessionId], reason: 'logout' })
    expect(cap.sent).toEqual([{ kind: BACKCHANNEL_JOB, client_id: withUri.app_id, user_id: user.id, session_id: sessionId }])
    for (const [app, t] of [[withUri, t1], [without, t2]] as const) {
      const r = await oauthPost('/oauth2/introspect', { token: t.refresh_token! }, app)
      expect(r.body.active).toBe(false)
    }
    // each session↔app pair is notified once, however many hooks run
    await signOutClients(cap.env, { userId: user.id, reason: 'logout_all' })
    expect(cap.sent.length).toBe(1)
  })

  it('a failed enqueue gives the pairs back, so a later sign-out notifies them', async () => {
    const app = await createOidcApp({ first_party: true, backchannel_logout_uri: BACKCHANNEL })
    const user = await createUser()
    await mapUser(app.app_id, user, { mappedKey: `f-${user.id.slice(0, 8)}` })
    const b = new Browser()
    const { sessionId } = await b.loginOnPage(user)
    await codeFlow(b, app)
    const broken = { ...env, WEBHOOK_QUEUE: { sendBatch: async () => Promise.reject(new Error('queue down')) } } as unknown as Env
    await expect(signOutClients(broken, { userId: user.id, sessionIds: [sessionId], reason: 'logout' })).rejects.toThrow('queue down')
    const cap = capturingEnv()
    await signOutClients(cap.env, { userId: user.id, sessionIds: [sessionId], reason: 'logout' })
    expect(cap.sent.length).toBe(1)
  })

  it('delivers a logout token (Back-Channel Logout 1.0 §2.4) as the form field logout_token', async () => {
    const app = await createOidcApp({ backchannel_logout_uri: BACKCHANNEL })
    const user = await createUser()
    const job = { kind: BACKCHANNEL_JOB, client_id: app.app_id, user_id: user.id, session_id: crypto.randomUUID() }
    const calls: { url: string; init: RequestInit }[] = []
    await deliverBackchannelLogout(job, env, 1, async (url, init) => {
      calls.push({ url: String(url), init: init! })
      return new Response(null, { status: 200 })
    })
    expect(calls.length).toBe(1)
    expect(calls[0].url).toBe(BACKCHANNEL)
    expect(calls[0].init.method).toBe('POST')
    expect(new Headers(calls[0].init.headers).get('Content-Type')).toBe('application/x-www-form-urlencoded')
    const token = new URLSearchParams(String(calls[0].init.body)).get('logout_token')!
    const jwks = (await api('/.well-known/jwks.json')).body
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: ISSUER, audience: app.app_id, typ: 'logout+jwt' })
    expect(protectedHeader.alg).toBe('ES256')
    expect(payload).toMatchObject({ sub: user.id, sid: job.session_id, events: { 'http://schemas.openid.net/event/backchannel-logout': {} } })
    expect(typeof payload.jti).toBe('string')
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(120)
    expect(payload.nonce).toBeUndefined()
    expect(await auditLog({ action: 'oidc.backchannel_logout.delivered', target_id: app.app_id })).toHaveLength(1)
  })

  it('a failing receiver makes the queue retry with backoff; success acks', async () => {
    const app = await createOidcApp({ backchannel_logout_uri: BACKCHANNEL })
    const body = { kind: BACKCHANNEL_JOB, client_id: app.app_id, user_id: (await createUser()).id, session_id: crypto.randomUUID() }
    const spy = vi.spyOn(globalThis, 'fetch').mockResolvedValue(new Response('nope', { status: 503 }))
    const failing = createMessageBatch('uap-edge-webhooks', [{ id: 'bcl-1', timestamp: new Date(), attempts: 2, body }])
    const ctx1 = createExecutionContext()
    await dispatchQueueBatch(queueJobs, failing, env)
    const r1 = await getQueueResult(failing, ctx1)
    expect(r1.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(['bcl-1'])
    expect(r1.explicitAcks).toEqual([])
    expect(spy.mock.calls[0][0]).toBe(BACKCHANNEL)

    spy.mockResolvedValue(new Response(null, { status: 204 }))
    const ok = createMessageBatch('uap-edge-webhooks', [{ id: 'bcl-2', timestamp: new Date(), attempts: 3, body }])
    const ctx2 = createExecutionContext()
    await dispatchQueueBatch(queueJobs, ok, env)
    const r2 = await getQueueResult(ok, ctx2)
    expect(r2.explicitAcks).toEqual(['bcl-2'])
    expect(r2.retryMessages).toEqual([])
  })

  it('in production the back-channel URI follows the notification_url rule: https to a public host, when set and again when delivering', async () => {
    const prod = { ...env, ENVIRONMENT: 'production', ISSUER: 'https://id.example.com', MASTER_KEY: btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))), BOOTSTRAP_ADMIN_PASSWORD: 'a-real-long-admin-password', PASSWORD_HASH_PROFILE: undefined, SMS_PROVIDER: 'webhook', SMS_WEBHOOK_URL: 'https://sms.example.com/send', SMS_WEBHOOK_SECRET: 'a-long-sms-webhook-secret', QUEUE_RETRY_BASE_S: undefined } as unknown as Env
    const actor = { actorType: 'admin' as const, actorId: 'test' }
    const oidc = { appName: 'BCL', protocolType: 'OIDC' as const, redirectUris: ['https://rp.example.com/cb'] }
    for (const uri of ['https://169.254.169.254/x', 'http://127.0.0.1:8080/admin', 'https://localhost./x', 'http://rp.example.com/bcl']) {
      await expect(createApplicationAsAdmin(prod, { ...oidc, backchannelLogoutUri: uri }, actor), uri).rejects.toMatchObject({ status: 400, code: 'backchannel_logout_uri_not_allowed' })
    }
    const { row } = await createApplicationAsAdmin(prod, { ...oidc, backchannelLogoutUri: BACKCHANNEL }, actor)
    await expect(updateApplicationAsAdmin(prod, row.appId, { backchannelLogoutUri: 'https://10.0.0.5/bcl' }, actor)).rejects.toMatchObject({ code: 'backchannel_logout_uri_not_allowed' })
    // one stored before the rule is not fetched
    await env.DB.prepare('UPDATE applications SET backchannel_logout_uri = ? WHERE app_id = ?').bind('https://169.254.169.254/latest', row.appId).run()
    let fetched = false
    await deliverBackchannelLogout({ kind: BACKCHANNEL_JOB, client_id: row.appId, user_id: 'u', session_id: 's' }, prod, 1, async () => {
      fetched = true
      return new Response(null, { status: 200 })
    })
    expect(fetched).toBe(false)
  })

  it('an app that dropped its back-channel URI is skipped, not retried', async () => {
    const app = await createOidcApp()
    const spy = vi.spyOn(globalThis, 'fetch')
    await deliverBackchannelLogout({ kind: BACKCHANNEL_JOB, client_id: app.app_id, user_id: 'u', session_id: 's' }, env, 1)
    expect(spy).not.toHaveBeenCalled()
  })

  it('end_session and logout-all mark the apps of the ended sessions as notified', async () => {
    // An address nothing listens on: the real queue consumer fails fast and retries later.
    const app = await createOidcApp({ first_party: true, backchannel_logout_uri: 'http://127.0.0.1:9/backchannel' })
    const user = await createUser()
    await mapUser(app.app_id, user, { mappedKey: `e-${user.id.slice(0, 8)}` })
    const notified = (sid: string) => env.DB.prepare('SELECT notified_at FROM oidc_session_clients WHERE session_id = ?').bind(sid).first<{ notified_at: number | null }>()

    const b1 = new Browser()
    const s1 = await b1.loginOnPage(user)
    const t1 = await codeFlow(b1, app)
    expect((await notified(s1.sessionId))!.notified_at).toBeNull()
    const end = await b1.get(`/oauth2/end_session?id_token_hint=${t1.id_token}`)
    expect(end.status).toBe(200)
    expect((await notified(s1.sessionId))!.notified_at).not.toBeNull()

    const b2 = new Browser()
    const s2 = await b2.loginOnPage(user)
    const t2 = await codeFlow(b2, app)
    const apiTokens = await login(user.mobile, user.password)
    expect((await api('/api/v1/auth/logout-all', { method: 'POST', token: apiTokens.access_token })).status).toBe(200)
    expect((await notified(s2.sessionId))!.notified_at).not.toBeNull()
    const r = await oauthPost('/oauth2/token', { grant_type: 'refresh_token', refresh_token: t2.refresh_token! }, app)
    expect(r.body.error).toBe('invalid_grant')
  })
})

describe('cleanup', () => {
  it('the cron task deletes codes a day past expiry and keeps recent ones for replay detection', async () => {
    const app = await createOidcApp({ first_party: true })
    const user = await createUser()
    await mapUser(app.app_id, user, { mappedKey: `c-${user.id.slice(0, 8)}` })
    const b = new Browser()
    await b.loginOnPage(user)
    await codeFlow(b, app)
    await codeFlow(b, app)
    const rows = await env.DB.prepare('SELECT code_hash FROM oidc_codes WHERE user_id = ? ORDER BY created_at').bind(user.id).all<{ code_hash: string }>()
    expect(rows.results.length).toBe(2)
    // a code a day past its expiry, without waiting
    await env.DB.prepare('UPDATE oidc_codes SET expires_at = ? WHERE code_hash = ?').bind(Date.now() - 2 * 86400_000, rows.results[0].code_hash).run()
    await cleanupCodes(env, Date.now())
    const left = await env.DB.prepare('SELECT code_hash FROM oidc_codes WHERE user_id = ?').bind(user.id).all<{ code_hash: string }>()
    expect(left.results.map((r) => r.code_hash)).toEqual([rows.results[1].code_hash])
  })
})
