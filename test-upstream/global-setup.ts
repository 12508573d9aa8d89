// vitest globalSetup of the workers suite: the real upstreams the federation tests sign in
// against, on 127.0.0.1 (ports UAP_TEST_PORT_BASE+41 and +42): oidc-provider as an OpenID
// Provider and the GitHub-shaped server. Their addresses and client credentials reach the
// tests as the TEST_UPSTREAMS binding (vitest.config.mts).
import type { TestProject } from 'vitest/node'
import { startOidcOp } from './oidc-op'
import { startFakeGitHub } from './github'
import { WORKERS_UPSTREAMS, type UpstreamsConfig } from './fixtures'

declare module 'vitest' {
  export interface ProvidedContext {
    upstreams: string
  }
}

export default async function setup(project: TestProject) {
  const base = Number(process.env.UAP_TEST_PORT_BASE ?? 8800)
  const f = WORKERS_UPSTREAMS
  const op = await startOidcOp({ port: base + 41, clients: f.opClients })
  const gh = await startFakeGitHub({ port: base + 42, apps: f.githubApps })
  const config: UpstreamsConfig = { oidcIssuer: op.issuer, githubUrl: gh.url, ...f }
  project.provide('upstreams', JSON.stringify(config))
  return async () => {
    await Promise.all([op.stop(), gh.stop()])
  }
}
