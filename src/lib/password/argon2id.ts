import argon2Wasm from '@phi-ag/argon2/argon2.wasm'
import { PRODUCTION_PARAMS, type Argon2idParams } from './params'

/**
 * Argon2id (RFC 9106) from the reference C implementation (phc-winner-argon2), compiled to
 * WebAssembly with SIMD by @phi-ag/argon2. Only its .wasm is used: wrangler and the vitest
 * pool load it as a WebAssembly.Module (workerd refuses to compile WebAssembly from bytes at
 * run time), and this file calls the C API directly. The package's own JS wrapper passes the
 * password's UTF-16 length where the C code expects its UTF-8 byte length, so a non-ASCII
 * password would be hashed truncated; here the caller's bytes go in with their exact length.
 * Why this build over the alternatives: docs/passwords.md.
 */
interface Argon2Exports {
  memory: WebAssembly.Memory
  _initialize(): void
  malloc(size: number): number
  free(ptr: number): void
  argon2_hash(
    t: number, m: number, p: number, pwd: number, pwdLen: number, salt: number, saltLen: number,
    hash: number, hashLen: number, encoded: number, encodedLen: number, type: number, version: number,
  ): number
  argon2_error_message(code: number): number
}

const ARGON2_ID = 2
const ARGON2_VERSION_13 = 0x13

/**
 * One instance per isolate, reused by every hash. WebAssembly memory grows but never shrinks:
 * with our parameters the instance settles at the module's own 16 MiB plus the hash's memory
 * (about 20 MiB) and stays there. A hash needing more than this (an imported argon2id with
 * more memory than ours) grows the instance once and the instance is then dropped, so the
 * garbage collector returns that memory instead of the isolate keeping it for its lifetime;
 * the next hash starts a fresh one.
 */
let shared: Argon2Exports | undefined

function instantiate(): Argon2Exports {
  const exports = new WebAssembly.Instance(argon2Wasm, {}).exports as unknown as Argon2Exports
  exports._initialize()
  return exports
}

function cString(exports: Argon2Exports, ptr: number): string {
  const heap = new Uint8Array(exports.memory.buffer)
  let end = ptr
  while (heap[end]) end++
  return new TextDecoder().decode(heap.subarray(ptr, end))
}

/**
 * The raw Argon2id tag. Synchronous: the whole computation runs inside one call into the
 * module, so requests sharing the isolate never interleave on its memory, and no promise is
 * shared between requests (workerd cancels a request that waits on another request's promise).
 */
export function argon2idRaw(password: Uint8Array, salt: Uint8Array, params: Argon2idParams, dkLen: number): Uint8Array {
  const exports = (shared ??= instantiate())
  if (params.m > PRODUCTION_PARAMS.m) shared = undefined
  const size = password.length + salt.length + dkLen
  const base = exports.malloc(size || 1)
  if (!base) throw new Error('argon2id: out of memory')
  const saltAt = base + password.length
  const hashAt = saltAt + salt.length
  try {
    // a fresh view each time: growing the memory during the hash detaches the old buffer
    new Uint8Array(exports.memory.buffer).set(password, base)
    new Uint8Array(exports.memory.buffer).set(salt, saltAt)
    const rc = exports.argon2_hash(params.t, params.m, params.p, base, password.length, saltAt, salt.length, hashAt, dkLen, 0, 0, ARGON2_ID, ARGON2_VERSION_13)
    if (rc !== 0) throw new Error(`argon2id: ${cString(exports, exports.argon2_error_message(rc))}`)
    return new Uint8Array(exports.memory.buffer).slice(hashAt, hashAt + dkLen)
  } finally {
    // the C code wipes its own work memory; the password copy is ours to wipe
    new Uint8Array(exports.memory.buffer).fill(0, base, base + size)
    exports.free(base)
  }
}

/** Bytes of WebAssembly memory held by the isolate's shared instance (0 before the first hash). */
export function sharedInstanceBytes(): number {
  return shared?.memory.buffer.byteLength ?? 0
}
