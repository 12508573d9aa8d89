import { defineConfig } from 'vitest/config'

// Browser tests: headless Chromium (Debian package) driven by playwright-core against a
// `wrangler dev` the test starts itself (ports 8801-8802, its own --persist-to dir).
// Node environment, not workerd. Screenshots land in test-artifacts/ (git-ignored).
export default defineConfig({
  test: {
    include: ['test-browser/**/*.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
})
