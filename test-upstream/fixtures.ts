// Clients registered at the test upstreams for the workers suite (ISSUER http://localhost).
import type { OpClient } from './oidc-op'
import type { GitHubApp } from './github'

/** Provider ids the workers tests may create, each with its callback registered upstream. */
export const WORKERS_PROVIDER_IDS = Array.from({ length: 16 }, (_, i) => `wk-${i + 1}`)
export const SPA_REDIRECT = 'https://spa.example.test/federation/callback'

export const WORKERS_UPSTREAMS = {
  opClients: [
    {
      client_id: 'uap-edge-workers',
      client_secret: 'op-secret-for-the-workers-suite',
      redirect_uris: [...WORKERS_PROVIDER_IDS.map((id) => `http://localhost/page/federation/${id}/callback`), SPA_REDIRECT],
    },
    {
      client_id: 'uap-edge-workers-post',
      client_secret: 'op-secret-post-for-the-workers-suite',
      token_endpoint_auth_method: 'client_secret_post',
      redirect_uris: WORKERS_PROVIDER_IDS.map((id) => `http://localhost/page/federation/${id}/callback`),
    },
  ] satisfies OpClient[],
  githubApps: [
    { client_id: 'Iv1.workerspages00001', client_secret: 'gh-secret-for-the-workers-suite', callback_url: 'http://localhost/page/federation' },
    { client_id: 'Iv1.workersspa0000001', client_secret: 'gh-secret-spa-for-the-workers-suite', callback_url: 'https://spa.example.test/federation' },
  ] satisfies GitHubApp[],
  spaRedirect: SPA_REDIRECT,
}

export type UpstreamsConfig = typeof WORKERS_UPSTREAMS & { oidcIssuer: string; githubUrl: string }
