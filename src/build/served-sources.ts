/**
 * The sources a mesh client serves to its workers without copying them into
 * the project's store.
 *
 * A build that runs its actions on workers never stages a source itself: the
 * store's copy of each one was only ever read back to be sent. On the 200-file
 * CMake benchmark project that copy was ~480 new files per cold build (the
 * source tree every ninja action stages), and a new file is the dearest thing
 * a build does to a file system (~0.5-1 ms of kernel time each on the
 * benchmark machine's ext4, against ~20 µs to link one). So the engine hands
 * each small source it has hashed here instead (Executor.sources), and the
 * client's CAS server answers for it from here when its store lacks it.
 *
 * The bytes are kept as they were hashed, up to `maxKeptBytes` in all: they
 * are what the build's keys were computed from, exactly as a stored copy
 * would be. Past that, only the path is kept, and the file is read again and
 * hashed each time it is served: a file that no longer has those bytes is not
 * served (a worker that lacks it reports the action's inputs unavailable, and
 * the build fails naming the blob), never served wrong (DESIGN.md, invariant 3).
 */
import { readFileSync } from 'node:fs'
import type { Logger } from 'pino'
import type { Digest, Hasher } from '../cas/hasher.js'

/**
 * The sources a process serves for a project, kept from one build to the next:
 * a process that runs many builds (the kept local mesh, for thin clients)
 * then knows the next build's unchanged sources by digest, and neither reads
 * nor hashes them again (~400 files, ~10 ms of each hosted build of the
 * 200-file CMake project). What it serves for a digest is still those bytes.
 */
const kept = new Map<string, ServedSources>()
export function servedSourcesOf(root: string, hasher: Hasher, log?: Logger): ServedSources {
  let s = kept.get(root)
  if (!s) kept.set(root, (s = new ServedSources(hasher, log ? { log } : {})))
  return s
}

/** Default cap on the bytes kept in memory for serving. */
export const DEFAULT_MAX_KEPT_BYTES = 256 * 1024 * 1024

export class ServedSources {
  private readonly byDigest = new Map<Digest, { abs: string; bytes?: Buffer }>()
  private kept = 0
  private readonly warned = new Set<string>()

  constructor(
    private readonly hasher: Hasher,
    private readonly opts: { maxKeptBytes?: number; log?: Logger } = {},
  ) {}

  /** `bytes` (the contents of `abs` that hashed to `digest`) may be served as `digest`. */
  add(digest: Digest, abs: string, bytes: Buffer): void {
    // One served from its file takes the path that has the bytes now.
    if (this.byDigest.get(digest)?.bytes) return
    if (this.kept + bytes.byteLength <= (this.opts.maxKeptBytes ?? DEFAULT_MAX_KEPT_BYTES)) {
      this.kept += bytes.byteLength
      this.byDigest.set(digest, { abs, bytes })
    } else this.byDigest.set(digest, { abs })
  }

  has(digest: Digest): boolean {
    return this.byDigest.has(digest)
  }

  /**
   * Whether `digest` is served from bytes held here. One past the cap is served
   * from its file, which may have changed since an earlier build (its bytes may
   * be another path's now): a build hands such a source over again.
   */
  holds(digest: Digest): boolean {
    return this.byDigest.get(digest)?.bytes !== undefined
  }

  /** The bytes of `digest`: kept ones, or its file's if they still hash to it; undefined otherwise. */
  bytesOf(digest: Digest): Buffer | undefined {
    const e = this.byDigest.get(digest)
    if (!e) return undefined
    if (e.bytes) return e.bytes
    let bytes: Buffer
    try {
      bytes = readFileSync(e.abs)
    } catch (err) {
      this.warnOnce(e.abs, 'is gone', err)
      return undefined
    }
    if (this.hasher.hash(bytes) === digest) return bytes
    this.warnOnce(e.abs, `no longer has the bytes this build hashed (blake3 ${digest})`)
    return undefined
  }

  /** Bytes kept in memory. */
  get keptBytes(): number {
    return this.kept
  }

  private warnOnce(abs: string, what: string, err?: unknown): void {
    if (this.warned.has(abs)) return
    this.warned.add(abs)
    this.opts.log?.warn({ path: abs, ...(err ? { err } : {}) }, `source ${abs} ${what}; it is not served to workers`)
  }
}
