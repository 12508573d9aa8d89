import { defineConfig } from 'vitest/config'
import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers'
import path from 'node:path'

// Tests run inside workerd with the bindings of wrangler.toml (real D1, KV, Queue, DO),
// the D1 migrations applied by test/setup.ts, and test-only secrets below.
export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, 'migrations'))
  return {
    plugins: [
      // options as a function: TEST_UPSTREAMS comes from the globalSetup (test-upstream/global-setup.ts)
      cloudflareTest(({ inject }) => ({
        main: './src/index.ts',
        wrangler: { configPath: './wrangler.toml' },
        miniflare: {
          // A second, empty database for tests that change global state (signing keys):
          // test files run concurrently against DB, so they must not rotate its keys.
          d1Databases: ['ISOLATED_DB'],
          bindings: {
            ENVIRONMENT: 'test',
            ISSUER: 'http://localhost',
            MASTER_KEY: 'dev-' + 'A'.repeat(43),
            BOOTSTRAP_ADMIN_MOBILE: '+8613900000000',
            BOOTSTRAP_ADMIN_PASSWORD: 'dev-bootstrap-admin-password',
            PASSWORD_HASH_PROFILE: 'test',
            SMS_PROVIDER: 'console',
            REGISTRATION_OPEN: 'true',
            TEST_MIGRATIONS: migrations,
            // every test request comes from 127.0.0.1: lift the per-IP partner and OAuth limits
            // so the suite's volume cannot trip them (test/ratelimit.test.ts and
            // test/anti-automation.test.ts set their own limits)
            RATE_LIMITS: JSON.stringify({ partner_ip: { limit: 1_000_000, windowS: 60 }, oauth_ip: { limit: 1_000_000, windowS: 60 } }),
            // queue retries at once instead of after 10 s, 20 s …, so retry and dead-letter
            // paths run through the real queue within a test's time (test/webhooks.test.ts)
            QUEUE_RETRY_BASE_S: '0',
            // the local OpenID Provider and GitHub-shaped server the federation tests sign in with
            TEST_UPSTREAMS: inject('upstreams'),
          },
        },
      })),
    ],
    test: {
      // the local identity providers of the federation tests, and a local HTTP receiver for
      // webhook deliveries (test/webhooks.test.ts)
      globalSetup: ['./test-upstream/global-setup.ts', './vitest.webhook-receiver.mts'],
      setupFiles: ['./test/setup.ts'],
      include: ['test/**/*.test.ts'],
      testTimeout: 30_000,
      // the per-request access log is noise in test output; warnings and errors still show
      onConsoleLog: (log: string) => !log.includes('"msg":"request"'),
    },
  }
})
