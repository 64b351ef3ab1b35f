/**
 * BLAKE3 behind a small interface, so the implementation can change (a native
 * addon, a worker thread) without touching the store or the action cache.
 *
 * The implementation is hash-wasm: WebAssembly, streams, and installs on Node 20
 * without a native build (the `blake3` npm package does not install cleanly as
 * published).
 */
import { createRequire } from 'node:module'
import type { IHasher } from 'hash-wasm'

// hash-wasm's BLAKE3-only build: the package's main bundle embeds every
// algorithm's WebAssembly and takes ~45 ms longer to load, which is a tenth of
// a no-op build.
const { createBLAKE3 } = createRequire(import.meta.url)('hash-wasm/dist/blake3.umd.min.js') as typeof import('hash-wasm')

/** Lower-case hex BLAKE3-256 digest, 64 characters. */
export type Digest = string

const DIGEST_RE = /^[0-9a-f]{64}$/

export function isDigest(s: unknown): s is Digest {
  return typeof s === 'string' && DIGEST_RE.test(s)
}

/** An incremental hash over a sequence of chunks. */
export interface HashStream {
  update(chunk: Uint8Array | string): void
  digest(): Digest
}

export interface Hasher {
  readonly algorithm: 'blake3'
  /** Hash bytes (or UTF-8 text) in one call. Synchronous; safe to interleave with other calls. */
  hash(data: Uint8Array | string): Digest
  /** An independent incremental hasher, for data that arrives in chunks. */
  createStream(): Promise<HashStream>
}

class Blake3Hasher implements Hasher {
  readonly algorithm = 'blake3' as const
  // One instance serves every one-shot hash: init/update/digest run without an
  // await in between, so calls cannot interleave on the single JS thread.
  constructor(private readonly oneShot: IHasher) {}

  hash(data: Uint8Array | string): Digest {
    this.oneShot.init()
    this.oneShot.update(data)
    return this.oneShot.digest('hex')
  }

  async createStream(): Promise<HashStream> {
    const h = await createBLAKE3()
    h.init()
    return {
      update: (chunk) => {
        h.update(chunk)
      },
      digest: () => h.digest('hex'),
    }
  }
}

let shared: Promise<Hasher> | undefined

/** The process-wide BLAKE3 hasher (the WebAssembly module is compiled once). */
export function createBlake3Hasher(): Promise<Hasher> {
  shared ??= createBLAKE3().then((h) => new Blake3Hasher(h))
  return shared
}
