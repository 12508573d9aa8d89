import { describe, expect, it, vi } from 'vitest'
import { createExecutionContext, env } from 'cloudflare:test'
import { buildApp, MISCONFIGURED_MESSAGE } from '../src/app'
import { ConfigError, getConfig, type Env } from '../src/env'

const realKey = () => btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))

/** A production configuration that passes; each test breaks one thing. */
const production = (over: Partial<Env> = {}): Env => ({
  ...env,
  ENVIRONMENT: 'production',
  ISSUER: 'https://id.example.com',
  MASTER_KEY: realKey(),
  BOOTSTRAP_ADMIN_MOBILE: '+8613800000000',
  BOOTSTRAP_ADMIN_PASSWORD: 'a-real-long-admin-password',
  PASSWORD_HASH_PROFILE: undefined,
  SMS_PROVIDER: 'webhook',
  SMS_WEBHOOK_URL: 'https://sms-gateway.example.com/send',
  SMS_WEBHOOK_SECRET: 'a-long-sms-webhook-secret',
  // the suite's instant queue retries (vitest.config.mts) are refused in production
  QUEUE_RETRY_BASE_S: undefined,
  ...over,
})

const configError = (e: Env) => {
  try {
    getConfig(e)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as Error).message
  }
  throw new Error('getConfig accepted the configuration')
}

describe('getConfig', () => {
  it('accepts a proper production configuration, with defaults for the TTLs', () => {
    const cfg = getConfig(production())
    expect(cfg).toMatchObject({ environment: 'production', accessTokenTtl: 900, refreshTokenTtl: 30 * 86400, passwordHashProfile: 'production' })
  })

  it('refuses dev-grade secrets in production, naming each one and how to fix it', () => {
    const msg = configError(production({ MASTER_KEY: 'dev-' + realKey().replace(/=+$/, ''), BOOTSTRAP_ADMIN_PASSWORD: 'dev-abcdefghijklmnop' }))
    expect(msg).toMatch(/refuses to start in production/)
    expect(msg).toContain('MASTER_KEY is a dev value')
    expect(msg).toContain('wrangler secret put MASTER_KEY')
    expect(msg).toContain('BOOTSTRAP_ADMIN_PASSWORD is a dev value')
  })

  it('refuses the cheap test password-hash profile and a non-https issuer in production', () => {
    expect(configError(production({ PASSWORD_HASH_PROFILE: 'test' }))).toContain('PASSWORD_HASH_PROFILE must be "production"')
    expect(configError(production({ ISSUER: 'http://id.example.com' }))).toContain('ISSUER must be an https URL')
    expect(configError(production({ QUEUE_RETRY_BASE_S: '1' }))).toContain('QUEUE_RETRY_BASE_S must be at least 10 in production')
    expect(getConfig(production({ QUEUE_RETRY_BASE_S: '30' })).queueRetryBaseS).toBe(30)
  })

  it('refuses missing secrets in any environment, naming the fields but never their values', () => {
    const msg = configError(production({ MASTER_KEY: undefined, BOOTSTRAP_ADMIN_PASSWORD: undefined }))
    expect(msg).toMatch(/invalid configuration/)
    expect(msg).toContain('MASTER_KEY is not set')
    expect(msg).toContain('BOOTSTRAP_ADMIN_PASSWORD is not set')
    const dev = configError({ ...env, ENVIRONMENT: 'development', MASTER_KEY: undefined } as Env)
    expect(dev).toContain('MASTER_KEY is not set')
  })

  it('refuses a master key that is not 32 bytes, a short admin password, an unknown environment and out-of-range TTLs', () => {
    const secret = 'x'.repeat(8)
    const short = configError(production({ MASTER_KEY: btoa('too short'), BOOTSTRAP_ADMIN_PASSWORD: secret }))
    expect(short).toContain('MASTER_KEY: must be 32 random bytes')
    expect(short).toContain('BOOTSTRAP_ADMIN_PASSWORD: ')
    expect(short).not.toContain(secret)
    expect(configError(production({ ENVIRONMENT: 'staging' }))).toContain('ENVIRONMENT: ')
    expect(configError(production({ ACCESS_TOKEN_TTL: '5' }))).toContain('ACCESS_TOKEN_TTL: ')
    expect(configError(production({ REFRESH_TOKEN_TTL: 'forever' }))).toContain('REFRESH_TOKEN_TTL: ')
  })
})

describe('a misconfigured Worker', () => {
  it('answers every request with 503 misconfigured in the standard error body', async () => {
    const app = buildApp()
    for (const bad of [production({ MASTER_KEY: 'dev-' + realKey().replace(/=+$/, '') }), production({ MASTER_KEY: undefined }), production({ PASSWORD_HASH_PROFILE: 'test' })]) {
      for (const path of ['/healthz', '/api/v1/auth/login', '/.well-known/jwks.json']) {
        const errors: string[] = []
        const spy = vi.spyOn(console, 'error').mockImplementation((l: string) => void errors.push(l))
        let res: Response
        try {
          res = await app.fetch(new Request(`http://localhost${path}`), bad, createExecutionContext())
        } finally {
          spy.mockRestore()
        }
        expect(res.status, path).toBe(503)
        const body = (await res.json()) as { error: { code: string; message: string; request_id: string } }
        expect(body.error.code).toBe('misconfigured')
        // the caller learns nothing about the configuration; the log line under the request id says what is wrong
        expect(body.error.message).toBe(MISCONFIGURED_MESSAGE)
        expect(JSON.stringify(body)).not.toMatch(/MASTER_KEY|PASSWORD_HASH_PROFILE|refuses/)
        expect(body.error.request_id).toBe(res.headers.get('X-Request-Id'))
        const line = errors.map((l) => JSON.parse(l)).find((l) => l.request_id === body.error.request_id)
        expect(line).toMatchObject({ msg: 'config' })
        expect(line.error).toMatch(/^UAP Edge refuses to start/)
      }
    }
  })

  it('the same Worker with the test configuration serves normally', async () => {
    const res = await buildApp().fetch(new Request('http://localhost/livez'), env, createExecutionContext())
    expect(res.status).toBe(200)
  })
})
