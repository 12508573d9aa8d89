import type { Context } from 'hono'
import type { AppEnv } from '../context'
import type { Principal } from '../delegation/model'
import { CommonErrors } from '../lib/errors'

/**
 * Authenticates an API client (X-Client-Key + X-API-Key) for the admin guard. Stands in until
 * API clients are built: every client key is refused.
 */
export async function authenticateApiClient(_c: Context<AppEnv>): Promise<Principal & { kind: 'client' }> {
  throw CommonErrors.unauthorized({ message: 'API client keys are not accepted yet' })
}
