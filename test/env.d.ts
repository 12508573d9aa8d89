import type { D1Migration } from 'cloudflare:test'
import type { Env as WorkerEnv } from '../src/env'

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {
      TEST_MIGRATIONS: D1Migration[]
      ISOLATED_DB: D1Database
      /** JSON: the local upstreams of test-upstream/global-setup.ts */
      TEST_UPSTREAMS: string
    }
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** the local webhook receiver (vitest.webhook-receiver.mts) and a URL on which nothing listens */
    webhookReceiver: { url: string; downUrl: string }
  }
}
