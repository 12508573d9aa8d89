// Module shapes the password code relies on, typed here because the Worker's tsconfig does
// not load @types/node (it would bring Node's globals into Worker code).

// A .wasm import is a compiled module: wrangler's default CompiledWasm rule, and the vitest pool.
declare module '@phi-ag/argon2/argon2.wasm' {
  const module: WebAssembly.Module
  export default module
}

// workerd's nodejs_compat scrypt (BoringSSL), the subset used.
declare module 'node:crypto' {
  export function scryptSync(password: Uint8Array, salt: Uint8Array, keylen: number, options: { N: number; r: number; p: number; maxmem: number }): Uint8Array
}
