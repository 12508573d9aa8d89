import { defineConfig } from 'vitest/config'
import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-pool-workers'
import path from 'node:path'

// Tests run inside workerd with the bindings of wrangler.toml (real D1, KV, Queue, DO),
// the D1 migrations applied by test/setup.ts, and test-only secrets below.
export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, 'migrations'))
  return {
    plugins: [
      cloudflareTest({
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
            TEST_MIGRATIONS: migrations,
          },
        },
      }),
    ],
    test: {
      setupFiles: ['./test/setup.ts'],
      include: ['test/**/*.test.ts'],
      testTimeout: 30_000,
      // the per-request access log is noise in test output; warnings and errors still show
      onConsoleLog: (log: string) => !log.includes('"msg":"request"'),
    },
  }
})
