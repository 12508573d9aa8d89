/**
 * New passwords, everywhere one is set (registration, reset, admin, bootstrap): at least 12
 * characters (OWASP ASVS 5.0 §6.2.1; NIST SP 800-63B §3.1.1.2 allows 8 only with MFA), at
 * most 256 (the hash input stays bounded).
 */
export const PASSWORD_MIN_LENGTH = 12
export const PASSWORD_MAX_LENGTH = 256
