/**
 * A worker's store within a size: a standing worker fetches the inputs and
 * keeps the outputs of every action it runs, so without a bound its
 * `--data-dir` fills the disk.
 *
 * Every blob is a cache here: inputs can be fetched again (from their producer
 * or the client, which has every input), and outputs reach the client before
 * an action reports. So when the store is over `maxBytes`, the least recently
 * used blobs go until it is under 90% of it, except the inputs of actions
 * running here (pinned). Recency is what this process touched; blobs
 * from before it started count as older than any, oldest file first.
 */
import { statSync } from 'node:fs'
import type { Logger } from 'pino'
import type { Digest } from '../cas/hasher.js'
import { storedBlobs, type CasStore } from '../cas/store.js'

/** Evict down to this share of the budget, so one action over it does not evict on every action after. */
const LOW_WATER = 0.9

export class StoreBudget {
  /** Blob → size, least recently used first (a Map keeps insertion order). */
  private readonly lru = new Map<Digest, number>()
  private readonly pins = new Map<Digest, number>()
  private total = 0
  /** Blobs and bytes evicted so far. */
  readonly evicted = { blobs: 0, bytes: 0 }

  constructor(
    private readonly cas: CasStore,
    readonly maxBytes: number,
    private readonly log?: Logger,
  ) {
    const found: { digest: Digest; size: number; mtimeMs: number }[] = []
    for (const { digest, path } of storedBlobs(cas.root)) {
      const st = statSync(path, { throwIfNoEntry: false })
      if (st?.isFile()) found.push({ digest, size: st.size, mtimeMs: st.mtimeMs })
    }
    for (const f of found.sort((a, b) => a.mtimeMs - b.mtimeMs)) this.add(f.digest, f.size)
  }

  /** Bytes of blobs known to be in the store. */
  get bytes(): number {
    return this.total
  }

  /** An action needs these: they are not evicted until unpinned (counted: two actions may pin one blob). */
  pin(digests: readonly Digest[]): void {
    for (const d of digests) this.pins.set(d, (this.pins.get(d) ?? 0) + 1)
  }

  unpin(digests: readonly Digest[]): void {
    for (const d of digests) {
      const n = (this.pins.get(d) ?? 0) - 1
      if (n > 0) this.pins.set(d, n)
      else this.pins.delete(d)
    }
  }

  /**
   * These were just used (fetched, staged, made): most recent now. A blob
   * already known keeps its size (a blob's bytes never change); a new one is
   * measured, and one not in the store is ignored.
   */
  touch(digests: readonly Digest[]): void {
    for (const d of digests) {
      let size = this.lru.get(d)
      if (size === undefined) size = statSync(this.cas.pathOf(d), { throwIfNoEntry: false })?.size
      if (size === undefined) continue
      this.remove(d)
      this.add(d, size)
    }
  }

  /** Over the budget: remove the least recently used unpinned blobs until under LOW_WATER of it. */
  async enforce(): Promise<void> {
    if (this.total <= this.maxBytes) return
    const target = this.maxBytes * LOW_WATER
    let blobs = 0
    let bytes = 0
    for (const [d, size] of this.lru) {
      if (this.total <= target) break
      if (this.pins.has(d)) continue
      await this.cas.remove(d)
      this.remove(d)
      blobs++
      bytes += size
    }
    this.evicted.blobs += blobs
    this.evicted.bytes += bytes
    this.log?.info({ blobs, bytes, storeBytes: this.total, maxBytes: this.maxBytes }, 'the store was over its budget; removed the least recently used blobs')
  }

  private add(d: Digest, size: number): void {
    this.lru.set(d, size)
    this.total += size
  }

  private remove(d: Digest): void {
    const size = this.lru.get(d)
    if (size === undefined) return
    this.lru.delete(d)
    this.total -= size
  }
}
