/**
 * Digests of source files remembered between builds, by file identity, so a
 * build with nothing changed does not read and hash every source again (on
 * the 200-file benchmark project that was ~80 ms of a ~0.45 s no-op build).
 * The programs actions start are remembered the same way, by absolute path
 * (src/cas/tools.ts), in the project's file and in each worker's.
 *
 * An entry is trusted only while the file's identity is the same: device,
 * inode, size, mode, mtime and ctime, to the nanosecond. Any write to a file
 * moves its ctime (which no program can set back), and a file replaced by
 * another gets a new ctime too. One gap remains: timestamps come from a coarse
 * clock, so a second write in the same tick as the first leaves them unchanged.
 * So an entry is recorded only for a file whose mtime and ctime were already
 * `SETTLED_MS` old when hashing began: a write after that (the only kind that
 * could go unseen) would carry a later time. (Git's index has the same rule
 * for "racily clean" files.)
 *
 * The file (`.bldr/source-digests.json`) is only a cache, written atomically
 * at the end of a build: a missing or corrupt one costs hashing again, and an
 * entry for a file that changed no longer matches its identity. (A forged
 * digest makes a new action key, and storing the source finds the truth.)
 */
import { readFileSync, type BigIntStats } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from '../cas/fs-util.js'
import { isDigest, type Digest } from '../cas/hasher.js'

/** A file's times must be at least this old when it is hashed for its digest to be remembered. */
export const SETTLED_MS = 2_000

/** Most entries kept (the ones seen in the latest build first). */
const MAX_ENTRIES = 200_000

export class SourceDigests {
  private readonly seen = new Map<string, { id: string; digest: Digest }>()
  private changed = false

  private constructor(
    private readonly file: string,
    private readonly known: Map<string, { id: string; digest: Digest }>,
  ) {}

  /** The digests remembered in a project's state folder (`.bldr`). */
  static ofProject(stateDir: string): SourceDigests {
    return SourceDigests.load(join(stateDir, 'source-digests.json'))
  }

  /** The remembered digests in `file` (none if it is missing or unreadable). */
  static load(file: string): SourceDigests {
    const known = new Map<string, { id: string; digest: Digest }>()
    try {
      const data = JSON.parse(readFileSync(file, 'utf8')) as unknown
      if (data && typeof data === 'object' && (data as { v?: unknown }).v === 1) {
        const entries = (data as { entries?: unknown }).entries
        if (entries && typeof entries === 'object') {
          for (const [path, e] of Object.entries(entries as Record<string, unknown>)) {
            if (Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && isDigest(e[1])) known.set(path, { id: e[0], digest: e[1] })
          }
        }
      }
    } catch {
      // Missing or unreadable: start empty.
    }
    return new SourceDigests(file, known)
  }

  /** The digest remembered for `path` if the file is still exactly as it was then. */
  get(path: string, st: BigIntStats): Digest | undefined {
    const id = identity(st)
    const e = this.known.get(path)
    if (!e || e.id !== id) return undefined
    this.seen.set(path, e)
    return e.digest
  }

  /** Remember `digest` for `path` as it was at `st`, if its times were settled when hashing began (`hashStartMs`, epoch ms). */
  set(path: string, st: BigIntStats, digest: Digest, hashStartMs: number): void {
    const horizonNs = BigInt(Math.floor(hashStartMs - SETTLED_MS)) * 1_000_000n
    if (st.mtimeNs >= horizonNs || st.ctimeNs >= horizonNs) return
    this.seen.set(path, { id: identity(st), digest })
    this.changed = true
  }

  /** Write what this build saw (and the older entries, up to the cap), if anything is new. */
  save(): void {
    if (!this.changed) return
    const entries: Record<string, [string, Digest]> = {}
    let n = 0
    for (const [path, e] of this.seen) {
      entries[path] = [e.id, e.digest]
      n++
    }
    for (const [path, e] of this.known) {
      if (n >= MAX_ENTRIES) break
      if (this.seen.has(path)) continue
      entries[path] = [e.id, e.digest]
      n++
    }
    writeFileAtomic(this.file, JSON.stringify({ v: 1, entries }))
    this.changed = false
  }
}

function identity(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mode}:${st.mtimeNs}:${st.ctimeNs}`
}
