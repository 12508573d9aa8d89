/** Argon2id cost parameters, named as in the PHC string `$argon2id$v=19$m=<m>,t=<t>,p=<p>$…`. */
export interface Argon2idParams {
  /** memory in KiB */
  m: number
  /** passes over the memory */
  t: number
  /** lanes */
  p: number
}

/**
 * OWASP Password Storage Cheat Sheet, Argon2id first option: "m=19456 (19 MiB), t=2, p=1".
 * About 20 ms of CPU per hash in workerd (docs/passwords.md).
 */
export const PRODUCTION_PARAMS: Argon2idParams = { m: 19_456, t: 2, p: 1 }
/** Cheap parameters for the test suite only; refused in production by getConfig. */
export const TEST_PARAMS: Argon2idParams = { m: 1_024, t: 1, p: 1 }

export function paramsForProfile(profile: 'production' | 'test'): Argon2idParams {
  return profile === 'test' ? TEST_PARAMS : PRODUCTION_PARAMS
}
