import argon2Wasm from '@phi-ag/argon2/argon2.wasm'
import { HASH_LIMITS } from './formats'
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
 * One instance per isolate, reused by every hash. WebAssembly memory grows but never
 * shrinks, and the module's allocator does not reuse a freed block for a larger request: left
 * alone, hashes of varying sizes would push one instance to the sum of the sizes it has seen
 * (112 MiB in a test mixing 19, 30 and 64 MiB). So an instance reserves its whole budget
 * once, up front (one malloc and free, leaving a free region every later hash fits in), and
 * never grows after: about 20 MiB for hashes up to ours, 65 MiB for the largest imported
 * argon2id formats.ts accepts. The first larger hash replaces the 20 MiB instance by a 65 MiB
 * one (the old one goes to the garbage collector, once per isolate at most).
 */
interface Instance {
  exports: Argon2Exports
  /** KiB of argon2 memory the instance has room for */
  roomKiB: number
}
let shared: Instance | undefined

/** What the hash's own allocations need beyond its m KiB of blocks, with room to spare. */
const SLACK_BYTES = 2 ** 20

function instantiate(roomKiB: number): Instance {
  const exports = new WebAssembly.Instance(argon2Wasm, {}).exports as unknown as Argon2Exports
  exports._initialize()
  const reservation = exports.malloc(roomKiB * 1024 + SLACK_BYTES)
  if (!reservation) throw new Error('argon2id: out of memory')
  exports.free(reservation)
  return { exports, roomKiB }
}

function instanceFor(mKiB: number): Argon2Exports {
  if (mKiB > HASH_LIMITS.argon2id.maxM) throw new Error('argon2id: memory above the accepted maximum')
  const room = mKiB <= PRODUCTION_PARAMS.m ? PRODUCTION_PARAMS.m : HASH_LIMITS.argon2id.maxM
  if (!shared || shared.roomKiB < room) shared = instantiate(room)
  return shared.exports
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
  const exports = instanceFor(params.m)
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
  return shared?.exports.memory.buffer.byteLength ?? 0
}
