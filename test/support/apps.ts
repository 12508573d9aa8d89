// Applications and their users' mappings, set up through the admin API as an admin would.
import { env } from 'cloudflare:test'
import { eq } from 'drizzle-orm'
import { getDb } from '../../src/db'
import { applications, type Application, type GrantType } from '../../src/apps/schema'
import { adminApi } from './api'
import { POST_LOGOUT, REDIRECT } from './oidc'

/** The body of POST /api/v1/admin/apps (docs/apps.md); here every field is optional. */
export interface AppSettings {
  app_name?: string
  protocol_type?: 'OIDC' | 'SIMPLE_API'
  icon_url?: string | null
  redirect_uris?: string[]
  post_logout_redirect_uris?: string[]
  grant_types?: GrantType[]
  response_types?: 'code'[]
  token_endpoint_auth_method?: 'client_secret_basic' | 'client_secret_post' | 'none'
  id_token_claim?: 'email' | 'preferred_username'
  notification_url?: string | null
  backchannel_logout_uri?: string | null
  first_party?: boolean
  require_pkce?: boolean
  access_policy?: 'mapping' | 'permission'
  partner_api_enabled?: boolean
  sso_targets?: string[]
}

/** The create answer: the admin view and the credentials shown only this once. */
export interface TestApp {
  app: { app_id: string; grant_types: string[]; [field: string]: unknown }
  app_id: string
  app_secret: string
  access_token: string
}

/** Registers an application through the admin API (a SIMPLE_API app with one callback unless told otherwise). */
export async function createApp(settings: AppSettings = {}): Promise<TestApp> {
  const body = { app_name: 'Test app', protocol_type: 'SIMPLE_API', redirect_uris: ['https://app.example.com/callback'], ...settings }
  return (await adminApi('POST', '/api/v1/admin/apps', body)) as TestApp
}

/**
 * Writes application settings straight to D1. Only for values the admin API refuses
 * (a fragment in a callback, a non-https icon, an SSO target that is not a SIMPLE_API app),
 * to test the code behind its checks; everything else goes through createApp and PATCH.
 */
export async function setAppColumnsInD1(appId: string, columns: Partial<Pick<Application, 'grantTypes' | 'iconUrl' | 'redirectUris' | 'ssoTargets'>>) {
  await getDb(env.DB).update(applications).set(columns).where(eq(applications.appId, appId))
}

/** An OIDC client of the Reporting Portal kind: REDIRECT and POST_LOGOUT registered, the mapped key as `email`. */
export async function createOidcApp(settings: AppSettings = {}): Promise<TestApp> {
  return createApp({
    app_name: 'Reporting Portal',
    protocol_type: 'OIDC',
    redirect_uris: [REDIRECT],
    post_logout_redirect_uris: [POST_LOGOUT],
    id_token_claim: 'email',
    icon_url: 'https://rp.example.com/icon.png',
    ...settings,
  })
}

let partner: Promise<TestApp> | undefined
/** One SIMPLE_API app per test file that calls the partner routes (SMS, password reset) for its users. */
export function partnerApp(): Promise<TestApp> {
  partner ??= createApp({ app_name: 'Partner UI' })
  return partner
}

/**
 * Gives the user an account in the app through the admin mapping API (POST .../mappings,
 * then .../disable for an inactive one). Returns the mapping's id and key.
 */
export async function mapUser(appId: string, user: { mobile: string }, opts: { mappedKey?: string; isActive?: boolean } = {}) {
  const mappedKey = opts.mappedKey ?? `user-${crypto.randomUUID().slice(0, 8)}`
  const base = `/api/v1/admin/apps/${appId}/mappings`
  const created = await adminApi('POST', base, { mobile: user.mobile, mapped_key: mappedKey })
  if (opts.isActive === false) await adminApi('POST', `${base}/${created.mapping_id}/disable`)
  return { mappingId: created.mapping_id as string, mappedKey }
}

/** Changes a mapping through the admin API (PATCH .../mappings/{id}: mapped_key, name, is_active). */
export async function updateMapping(appId: string, mappingId: string, patch: { mapped_key?: string; name?: string | null; is_active?: boolean }) {
  await adminApi('PATCH', `/api/v1/admin/apps/${appId}/mappings/${mappingId}`, patch)
}

/** Disables an application through the admin API (POST /api/v1/admin/apps/{app_id}/disable). */
export async function disableApp(appId: string) {
  await adminApi('POST', `/api/v1/admin/apps/${appId}/disable`)
}
