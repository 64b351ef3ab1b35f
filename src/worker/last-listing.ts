/**
 * The input listing a worker read last, remembered across its restarts, so a
 * new worker process checks that listing's blobs while it waits for work.
 *
 * A worker trusts a stored blob only once it has hashed it in this process
 * (store.ts). The kept local mesh's workers are new processes on stores that
 * earlier ones filled, and the first action of the first build on a new mesh
 * stages the project's whole source tree: each of its ~600 blobs was hashed on
 * that build's critical path (~45 ms of its ~0.7 s, bench/ninja's incremental
 * row). The next build's tree is nearly the last one's (one source changed),
 * so the new worker makes the same checks before they are needed, a slice at
 * a time. Nothing is trusted that was not hashed here: a blob found corrupt
 * is removed by the check, as at its use, and fetched again when needed.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import type { Logger } from 'pino'
import { BlobNotFoundError, DigestMismatchError } from '../errors.js'
import type { Digest } from '../cas/hasher.js'
import type { CasStore } from '../cas/store.js'
import { parseInputListing } from './action-payload.js'

/** Longest run of checks without letting I/O in (an action that comes meanwhile is not held up). */
const SLICE_MS = 2

export class LastListing {
  private last: Digest | undefined

  constructor(
    /** Where the digest is kept, e.g. `<data dir>/last-listing`. */
    readonly file: string,
    private readonly log?: Logger,
  ) {}

  /** A listing was read: remembered for the next process (only a new one is written). */
  note(digest: Digest): void {
    if (digest === this.last) return
    this.last = digest
    try {
      writeFileSync(this.file, `${digest}\n`)
    } catch (err) {
      // Only a head start for the next process.
      this.log?.debug({ err, file: this.file }, 'could not remember the last input listing')
    }
  }

  /**
   * Check every blob the listing an earlier process noted names (the listing
   * itself first), stopping once `signal` is aborted; the number checked.
   * Blobs missing or corrupt are skipped (a corrupt one is removed).
   */
  async verify(cas: CasStore, opts: { signal?: AbortSignal } = {}): Promise<number> {
    let digest: string
    try {
      digest = readFileSync(this.file, 'utf8').trim()
    } catch {
      return 0 // none noted yet
    }
    if (!/^[0-9a-f]{64}$/.test(digest)) {
      this.log?.debug({ file: this.file }, 'the last input listing noted is not a digest; not checking it')
      return 0
    }
    const known = cas.isKnown(digest)
    if (!(await this.check(cas, digest))) return 0
    const entries = parseInputListing((await cas.getBytes(digest)).toString('utf8'))
    if (typeof entries === 'string') return 0
    let checked = known ? 0 : 1
    let sliceStart = performance.now()
    for (const e of entries) {
      if (opts.signal?.aborted) break
      if (performance.now() - sliceStart > SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve))
        sliceStart = performance.now()
      }
      if (!cas.isKnown(e.digest) && (await this.check(cas, e.digest))) checked++
    }
    return checked
  }

  private async check(cas: CasStore, digest: Digest): Promise<boolean> {
    try {
      await cas.verify(digest)
      return true
    } catch (err) {
      if (err instanceof BlobNotFoundError) return false
      if (err instanceof DigestMismatchError) {
        this.log?.warn({ err }, 'a stored blob is corrupt; removed (it is fetched again when an action needs it)')
        return false
      }
      throw err
    }
  }
}
