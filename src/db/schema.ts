// Every table, for drizzle-kit and for typed queries. Each feature owns its schema file.
export * from '../users/schema'
export * from '../auth/schema'
export * from '../keys/schema'
export * from '../audit/schema'
export * from '../apps/schema'
export * from '../oidc/schema'
export * from '../mappings/schema'
export * from '../federation/schema'
