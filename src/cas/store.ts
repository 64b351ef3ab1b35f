/**
 * The on-disk content-addressed store.
 *
 * Layout under the store root (normally `<project>/.bldr/cas`):
 *   `<d0>/<digest>`     one file per blob, sharded by the first hex digit
 *   `tmp/`              partial writes; a blob appears under its name only by rename
 *
 * Sixteen folders, not 256 as by two digits (stores before 2026-12 were; their
 * blobs are moved when the store opens): a fresh store made 256 folders on its
 * first build, and the client's and every local worker's store is fresh after
 * a clean. On ext4 without a journal, as on the benchmark machine, the inode
 * allocator skips inodes freed in the last minute, so right after a clean each
 * new folder cost ~1 ms (256 took 216-329 ms right after 5,000 files were
 * removed; 500 new files, 235-311 ms, against 94-99 ms otherwise). A store of
 * a million blobs has ~62,000 in a shard, which ext4 finds by its directory index.
 *
 * Rules: a blob is written once under its own name and never changed; a blob is
 * never handed out without checking it against its name (a mismatch is a
 * `DigestMismatchError` naming both digests); every write is atomic (temporary
 * file + rename).
 *
 * Small files (most of a build: sources, headers, objects) are read and written
 * with synchronous calls. A build makes tens of thousands of them, and one
 * promise-based call costs several thread-pool round trips (open, fstat, read,
 * close, each a futex handoff and a wake-up of the event loop): about ten times
 * the work of the call itself. Files over SYNC_MAX_BYTES go through the thread
 * pool, and over STREAM_MIN_BYTES are streamed, so the event loop never stalls long.
 *
 * A sealed store (a worker's, when it runs as root) gives every blob to
 * `BLOB_OWNER`, an id that no account and no sandbox runs as. Read-only and
 * not theirs, a blob then cannot be changed by a sandboxed action: not through
 * the hard link staged in its scratch folder, not by chmod, since bwrap maps
 * the worker's root to the action's user without capabilities and docker runs
 * actions as an unprivileged user (checked in a test for both). The local
 * sandbox run by root could, were its process runner not started without
 * capabilities (process-runner.ts; without setpriv it keeps them and every
 * staged input is checked after each run). So staged links to sealed blobs
 * need no check after a run (scratch.ts): on a 200-file CMake project every
 * action stages ~420 inputs.
 * `verify` still looks at the file before every use: a writer outside bldr
 * (root, a failing disk that rewrites a block) must be caught there. A
 * client's store is not sealed: its blobs are also the user's outputs (hard
 * links in the project), which should look like the user's own files. Only
 * the sources it stores are sealed, when run by root (`putFile`'s `seal`):
 * a blob never placed in the project as a link (`placeOutput` copies one
 * that is given away, should an output have a source's bytes).
 */
import {
  chmodSync,
  chownSync,
  copyFileSync,
  lstatSync,
  createReadStream,
  createWriteStream,
  linkSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  rmdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
  constants,
} from 'node:fs'
import { copyFile, readFile, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { BlobNotFoundError, DigestMismatchError } from '../errors.js'
import { tempNameFor, isErrnoException, withParentDir } from './fs-util.js'
import type { Digest, Hasher } from './hasher.js'

/** A blob's name and size. */
export interface BlobRef {
  digest: Digest
  size: number
}

/** Files up to this size are handled with synchronous calls. */
const SYNC_MAX_BYTES = 1024 * 1024
/** Files larger than this are hashed and copied in chunks instead of read whole. */
const STREAM_MIN_BYTES = 32 * 1024 * 1024

/**
 * Stored blobs are read-only, so a slip (an editor, a stray `>`) cannot change
 * one in place; a blob first stored from an executable file is also executable,
 * so it can be hard-linked where an executable is wanted.
 */
const BLOB_MODE = 0o444
const BLOB_MODE_EXECUTABLE = 0o555

/** Who owns the blobs of a sealed store: an id no account has (2^31 - 2), so no sandboxed action is their owner. */
export const BLOB_OWNER = { uid: 0x7ffffffe, gid: 0x7ffffffe }

export interface CasStoreOptions {
  /** Seal the store (only as root, see the top): blobs are given to BLOB_OWNER, so no sandboxed action can change them. */
  sealed?: boolean
}

/** Where a store rooted at `root` keeps a blob: sharded by its first hex digit. */
export function blobPathIn(root: string, digest: Digest): string {
  return blobPathsIn(root)(digest)
}

/** `blobPathIn(root, d)` for every d: the root normalized once, then concatenation (a worker asks for ~400 paths per action; `join` normalizes each). */
function blobPathsIn(root: string): (digest: Digest) => string {
  const base = join(root, '.')
  const prefix = base.endsWith('/') ? base : `${base}/`
  return (digest) => `${prefix}${digest[0]}/${digest}`
}

/** A shard folder of the layout before 2026-12 (two hex digits); its blobs are moved when the store opens. */
const LEGACY_SHARD = /^[0-9a-f]{2}$/

/** Move the blobs of two-digit shards into one-digit ones (another process may be doing it too). */
function migrateLegacyShards(root: string): void {
  let names: string[]
  try {
    names = readdirSync(root)
  } catch {
    return
  }
  for (const shard of names) {
    if (!LEGACY_SHARD.test(shard)) continue
    const dir = join(root, shard)
    let blobs: string[] = []
    try {
      blobs = readdirSync(dir)
    } catch {
      continue
    }
    if (blobs.length > 0) mkdirSync(join(root, shard.slice(0, 1)), { recursive: true })
    for (const digest of blobs) {
      try {
        renameSync(join(dir, digest), blobPathIn(root, digest))
      } catch (err) {
        if (!isErrnoException(err, 'ENOENT')) throw err
      }
    }
    try {
      rmdirSync(dir)
    } catch (err) {
      if (!isErrnoException(err, 'ENOENT') && !isErrnoException(err, 'ENOTEMPTY')) throw err
    }
  }
}

/** Every blob file in a store rooted at `root` (a missing store has none), shard by shard; temporary files are not blobs. */
export function storedBlobs(root: string): { digest: Digest; path: string }[] {
  const list = (dir: string): string[] => {
    try {
      return readdirSync(dir)
    } catch {
      return []
    }
  }
  const blobs: { digest: Digest; path: string }[] = []
  for (const shard of list(root)) {
    if (!/^[0-9a-f]{1,2}$/.test(shard)) continue
    for (const digest of list(join(root, shard))) blobs.push({ digest, path: join(root, shard, digest) })
  }
  return blobs
}

/** What identifies one version of a file's contents without reading it. */
export function blobIdentity(st: { ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `${st.ino}:${st.size}:${st.mtimeNs}`
}

/**
 * Blobs hashed in this process → the identity of the file when its hash
 * matched (inode, size, mtime), and back. A blob whose file still has that
 * identity is not hashed again; any write to it changes the identity and
 * forces a new check.
 */
class VerifiedRecord {
  private readonly byDigest = new Map<Digest, string>()
  private readonly byIdentity = new Map<string, Digest>()

  get(digest: Digest): string | undefined {
    return this.byDigest.get(digest)
  }

  has(digest: Digest): boolean {
    return this.byDigest.has(digest)
  }

  set(digest: Digest, identity: string): void {
    this.delete(digest)
    this.byDigest.set(digest, identity)
    this.byIdentity.set(identity, digest)
  }

  delete(digest: Digest): void {
    const identity = this.byDigest.get(digest)
    if (identity === undefined) return
    this.byDigest.delete(digest)
    if (this.byIdentity.get(identity) === digest) this.byIdentity.delete(identity)
  }

  /** The blob whose file had this identity when it last matched. */
  digestWith(identity: string): Digest | undefined {
    return this.byIdentity.get(identity)
  }
}

/**
 * The record of each store root this process opened, shared by every
 * CasStore on that root: a process that opens a store again (the kept local
 * mesh opens the project's once per build it runs) does not hash its blobs
 * again. Each build on a kept mesh hashed ~200 outputs in place before.
 */
const verifiedRecords = new Map<string, VerifiedRecord>()

function verifiedRecordOf(root: string): VerifiedRecord {
  const key = resolve(root)
  let record = verifiedRecords.get(key)
  if (!record) verifiedRecords.set(key, (record = new VerifiedRecord()))
  return record
}

export class CasStore {
  private readonly tmpDir: string
  /** Blobs hashed in this process (VerifiedRecord), shared with every store opened on this root. */
  private readonly verified: VerifiedRecord
  /** Where a blob's file is (blobPathIn for this root). */
  private readonly blobPath: (digest: Digest) => string
  /** Whether blobs are sealed (see the top). */
  readonly sealed: boolean
  /** This process is root, so it can give blobs to BLOB_OWNER (a sealed store's, or sources stored with `seal`). */
  private readonly canSeal: boolean
  /**
   * Corruption found: stored blobs that no longer matched their name (removed
   * when found, so they are fetched again or rebuilt, never used), and blobs
   * received that did not match the digest asked for (not kept).
   */
  readonly corruption = { storedRemoved: 0, receivedRejected: 0 }

  constructor(
    /** The store's root folder. */
    readonly root: string,
    /** The hasher that names blobs; shared so callers hash the same way. */
    readonly hasher: Hasher,
    opts: CasStoreOptions = {},
  ) {
    this.canSeal = process.getuid?.() === 0
    if (opts.sealed && !this.canSeal) throw new Error('only a store opened by root can be sealed (its blobs are given to another user)')
    this.sealed = opts.sealed ?? false
    this.tmpDir = join(root, 'tmp')
    this.blobPath = blobPathsIn(root)
    this.verified = verifiedRecordOf(root)
    mkdirSync(this.tmpDir, { recursive: true })
    migrateLegacyShards(root)
  }

  /** The file that holds (or would hold) a blob. */
  pathOf(digest: Digest): string {
    return this.blobPath(digest)
  }

  /**
   * Whether the blob matched its digest in this process and nothing since
   * made this store forget it (a write seen through a staged link, a removal
   * by this store, a failed check). No stat: whoever uses the blob's file
   * still checks it (stage, verify), so a blob removed or changed behind this
   * process's back is found there.
   */
  isKnown(digest: Digest): boolean {
    return this.verified.has(digest)
  }

  /** A stored blob's size, or undefined if it is not here. */
  async getSize(digest: Digest): Promise<number | undefined> {
    return statSync(this.pathOf(digest), { throwIfNoEntry: false })?.size
  }

  async has(digest: Digest): Promise<boolean> {
    return this.holds(digest)
  }

  /** `has`, answered at once (a stat): for callers checking many blobs in a row. */
  holds(digest: Digest): boolean {
    return statSync(this.pathOf(digest), { throwIfNoEntry: false }) !== undefined
  }

  /** Store bytes; returns their name. Storing a blob that exists is a no-op. `seal`: see putFile. */
  async putBytes(data: Uint8Array | string, opts: { seal?: boolean } = {}): Promise<BlobRef> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    return this.putHashed(bytes, this.hasher.hash(bytes), opts)
  }

  /** Store bytes already hashed to `digest`. */
  private async putHashed(bytes: Uint8Array, digest: Digest, opts: { seal?: boolean } = {}): Promise<BlobRef> {
    if (!(await this.has(digest))) {
      const tmp = this.newTemp()
      try {
        writeFileSync(tmp, bytes)
        this.publish(tmp, digest, { written: true, ...opts })
      } catch (err) {
        rmSync(tmp, { force: true })
        throw err
      }
    }
    return { digest, size: bytes.byteLength }
  }

  /**
   * Store the contents of a file. With `move`, the file is renamed into the store
   * when possible instead of copied (the caller gives it up: use it for outputs
   * in a scratch folder that is about to be cleaned). With `seal` (a source
   * file), a new blob is sealed as a sealed store's are when this process is
   * root (see the top); a blob already stored is left as it is, since it may
   * be an output's too.
   */
  async putFile(path: string, opts: { move?: boolean; executable?: boolean; seal?: boolean } = {}): Promise<BlobRef> {
    const size = statSync(path).size
    if (opts.move) {
      const digest = await this.hashFile(path, size)
      if (await this.has(digest)) unlinkSync(path)
      else this.publish(path, digest, opts.executable ? { executable: true } : {})
      return { digest, size }
    }
    // Hash exactly the bytes that are stored, even if the source changes meanwhile.
    const seal = { seal: opts.seal === true }
    if (size <= SYNC_MAX_BYTES) return this.putBytes(readFileSync(path), seal)
    const tmp = this.newTemp()
    try {
      await copyFile(path, tmp, constants.COPYFILE_FICLONE)
      const digest = await this.hashFile(tmp, size)
      if (!(await this.has(digest))) this.publish(tmp, digest, { written: true, ...seal })
      return { digest, size }
    } finally {
      await rm(tmp, { force: true })
    }
  }

  /**
   * Store a blob that arrives in chunks (from the network), under the name the
   * sender claimed: hashed while written to a temporary file, published only if
   * the digest matches, else a DigestMismatchError naming both and nothing kept.
   */
  async putStream(expected: Digest, chunks: AsyncIterable<Uint8Array>, opts: { maxBytes: number; where: string }): Promise<BlobRef> {
    if (opts.maxBytes <= SYNC_MAX_BYTES) return this.putSmallStream(expected, chunks, opts)
    const stream = await this.hasher.createStream()
    const tmp = this.newTemp()
    const out = createWriteStream(tmp)
    let size = 0
    try {
      for await (const chunk of chunks) {
        size += chunk.byteLength
        if (size > opts.maxBytes) throw new RangeError(`blob from ${opts.where} is over the ${opts.maxBytes}-byte limit`)
        stream.update(chunk)
        if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()))
      }
      await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())))
      const actual = stream.digest()
      if (actual !== expected) {
        this.corruption.receivedRejected++
        throw new DigestMismatchError(expected, actual, `blob received from ${opts.where}`)
      }
      if (!(await this.has(actual))) this.publish(tmp, actual, { written: true })
      return { digest: actual, size }
    } finally {
      out.destroy()
      rmSync(tmp, { force: true })
    }
  }

  /**
   * putStream for a blob no larger than SYNC_MAX_BYTES: gathered in memory
   * and written in one call, as putBytes does. Most blobs a build moves are
   * sources and objects of a few KiB, for which a write stream's open, write
   * and close cost more than the bytes.
   */
  private async putSmallStream(expected: Digest, chunks: AsyncIterable<Uint8Array>, opts: { maxBytes: number; where: string }): Promise<BlobRef> {
    const parts: Uint8Array[] = []
    let size = 0
    for await (const chunk of chunks) {
      size += chunk.byteLength
      if (size > opts.maxBytes) throw new RangeError(`blob from ${opts.where} is over the ${opts.maxBytes}-byte limit`)
      parts.push(chunk)
    }
    const bytes = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts)
    const actual = this.hasher.hash(bytes)
    if (actual !== expected) {
      this.corruption.receivedRejected++
      throw new DigestMismatchError(expected, actual, `blob received from ${opts.where}`)
    }
    return this.putHashed(bytes, actual)
  }

  /**
   * The bytes of a stored blob in chunks, for sending; the digest of what was
   * read is checked, and DigestMismatchError thrown if the blob is corrupt:
   * for a blob over SYNC_MAX_BYTES after its bytes were yielded, for a smaller
   * one (read whole) before. The receiver verifies independently.
   */
  async *readChunks(digest: Digest, chunkBytes = 64 * 1024): AsyncGenerator<Uint8Array> {
    const path = this.pathOf(digest)
    const st = statSync(path, { throwIfNoEntry: false })
    if (!st) throw new BlobNotFoundError(digest, this.root)
    if (st.size <= SYNC_MAX_BYTES) {
      // Read and checked in one go, before anything is yielded: for a blob of a few KiB a read stream's
      // open, reads and close through the thread pool cost ~0.5 ms, most of serving it (bench/ninja).
      const bytes = await this.getBytes(digest)
      for (let at = 0; at < bytes.byteLength; at += chunkBytes) yield bytes.subarray(at, at + chunkBytes)
      return
    }
    const stream = await this.hasher.createStream()
    for await (const chunk of createReadStream(path, { highWaterMark: chunkBytes })) {
      stream.update(chunk as Buffer)
      yield chunk as Buffer
    }
    const actual = stream.digest()
    if (actual !== digest) throw this.corrupt(digest, actual)
  }

  /**
   * For sending: the bytes of a blob no larger than SYNC_MAX_BYTES, or
   * undefined for a larger one (stream it with readChunks). They are hashed
   * unless the file is the one that last matched in this process (its
   * identity unchanged); the receiver checks them either way. A
   * blob found corrupt is removed (DigestMismatchError); a missing one is a
   * BlobNotFoundError.
   */
  smallBlob(digest: Digest): Buffer | undefined {
    const path = this.pathOf(digest)
    const st = statSync(path, { bigint: true, throwIfNoEntry: false })
    if (!st) throw new BlobNotFoundError(digest, this.root)
    if (st.size > BigInt(SYNC_MAX_BYTES)) return undefined
    const bytes = readFileSync(path)
    const id = blobIdentity(st)
    if (this.verified.get(digest) === id) return bytes
    const actual = this.hasher.hash(bytes)
    if (actual !== digest) throw this.corrupt(digest, actual)
    this.verified.set(digest, id)
    if (this.sealed) seal(path, st)
    return bytes
  }

  /** The bytes of a blob, verified against its digest. */
  async getBytes(digest: Digest): Promise<Buffer> {
    const path = this.pathOf(digest)
    const st = statSync(path, { throwIfNoEntry: false })
    if (!st) throw new BlobNotFoundError(digest, this.root)
    const bytes = st.size <= SYNC_MAX_BYTES ? readFileSync(path) : await readFile(path)
    const actual = this.hasher.hash(bytes)
    if (actual !== digest) throw this.corrupt(digest, actual)
    return bytes
  }

  /**
   * Write a blob to `dest` (atomically, creating folders), verifying it on the
   * way. `dest` gets mode 0755 when `executable`, else 0644.
   */
  async materialize(digest: Digest, dest: string, opts: { executable?: boolean } = {}): Promise<void> {
    const mode = opts.executable ? 0o755 : 0o644
    const src = this.pathOf(digest)
    const st = statSync(src, { throwIfNoEntry: false })
    if (!st) throw new BlobNotFoundError(digest, this.root)
    const tmp = tempNameFor(dest)
    try {
      if (st.size <= STREAM_MIN_BYTES) {
        await this.verify(digest)
        if (st.size <= SYNC_MAX_BYTES) withParentDir(tmp, () => copyFileSync(src, tmp, constants.COPYFILE_FICLONE))
        else {
          withParentDir(tmp, () => writeFileSync(tmp, ''))
          await copyFile(src, tmp, constants.COPYFILE_FICLONE)
        }
      } else {
        const stream = await this.hasher.createStream()
        withParentDir(tmp, () => writeFileSync(tmp, ''))
        await pipeline(
          createReadStream(src),
          async function* (source: AsyncIterable<Buffer>) {
            for await (const chunk of source) {
              stream.update(chunk)
              yield chunk
            }
          },
          createWriteStream(tmp),
        )
        const actual = stream.digest()
        if (actual !== digest) throw this.corrupt(digest, actual)
      }
      chmodSync(tmp, mode)
      renameSync(tmp, dest)
    } catch (err) {
      rmSync(tmp, { force: true })
      throw err
    }
  }

  /**
   * Check a stored blob against its name, hashing it only if it changed since
   * it last matched in this process. Throws DigestMismatchError or BlobNotFoundError.
   */
  async verify(digest: Digest): Promise<void> {
    const path = this.pathOf(digest)
    const st = statSync(path, { bigint: true, throwIfNoEntry: false })
    if (!st) throw new BlobNotFoundError(digest, this.root)
    const id = blobIdentity(st)
    if (this.verified.get(digest) !== id) {
      const actual = await this.hashFile(path, Number(st.size))
      if (actual !== digest) throw this.corrupt(digest, actual)
      this.verified.set(digest, id)
    }
    if (this.sealed) seal(path, st)
  }

  /**
   * A file in the project that is a hard link to a stored blob (an output put
   * there by placeOutput), hashed: its blob counts as verified if the file is
   * still that blob's inode and did not change while it was read. The blob
   * it is, or undefined (not a blob of this store, or it changed).
   */
  async verifyPlaced(file: string): Promise<Digest | undefined> {
    const before = lstatSync(file, { bigint: true, throwIfNoEntry: false })
    if (!before?.isFile() || before.nlink < 2n) return undefined
    const digest = await this.hashFile(file, Number(before.size))
    const blob = statSync(this.pathOf(digest), { bigint: true, throwIfNoEntry: false })
    if (!blob || blob.ino !== before.ino || blob.dev !== before.dev || blobIdentity(blob) !== blobIdentity(before)) return undefined
    this.verified.set(digest, blobIdentity(blob))
    return digest
  }

  /** Forget that a blob was verified (it may have been written to); the next use hashes it again. */
  forget(digest: Digest): void {
    this.verified.delete(digest)
  }

  /**
   * Is the blob's file unchanged since it last matched its digest in this
   * process? One stat.
   */
  isVerified(digest: Digest): boolean {
    const known = this.verified.get(digest)
    if (known === undefined) return false
    const st = statSync(this.pathOf(digest), { bigint: true, throwIfNoEntry: false })
    return st !== undefined && blobIdentity(st) === known
  }

  /**
   * Make a verified blob appear at `dest` as cheaply as possible: a hard link
   * (read-only, shares the stored inode) when the blob need not be executable
   * and the file system allows it, else a verified copy. The folder of `dest`
   * must exist. Returns how it was done. A caller that links must check
   * afterwards that the file was not written to (its `blobIdentity` is
   * unchanged), since a hard link is the stored blob itself.
   */
  async stage(digest: Digest, dest: string, opts: { executable?: boolean } = {}): Promise<'link' | 'copy'> {
    // One stat answers both: is it still as verified, and is it executable.
    const st = statSync(this.pathOf(digest), { bigint: true, throwIfNoEntry: false })
    if (!st) {
      // Removed behind this process's back (a `bldr gc`): the next use fetches it again.
      this.forget(digest)
      throw new BlobNotFoundError(digest, this.root)
    }
    // (Every blob this process verified or wrote in a sealed store is sealed already.)
    if (this.verified.get(digest) !== blobIdentity(st)) await this.verify(digest)
    if (((st.mode & 0o111n) !== 0n) === (opts.executable ?? false)) {
      try {
        linkSync(this.pathOf(digest), dest)
        return 'link'
      } catch (err) {
        if (!isErrnoException(err, 'EXDEV') && !isErrnoException(err, 'EMLINK') && !isErrnoException(err, 'EPERM')) throw err
      }
    }
    await this.materialize(digest, dest, opts)
    return 'copy'
  }

  /**
   * Put a blob at `dest` in the project folder as a read-only hard link
   * (atomically replacing what is there), or as a copy where a link cannot
   * serve (another device, another mode). What is already there is kept when
   * it is this blob (same inode, and the blob still verifies) or an identical
   * file, so an unchanged output keeps its mtime. A link is the blob itself:
   * if it is edited in place, the blob no longer verifies on its next use, and
   * it is rebuilt, never used.
   */
  async placeOutput(digest: Digest, dest: string, opts: { executable: boolean }): Promise<'kept' | 'link' | 'copy'> {
    const blob = statSync(this.pathOf(digest), { bigint: true, throwIfNoEntry: false })
    if (!blob) throw new BlobNotFoundError(digest, this.root)
    const current = lstatSync(dest, { bigint: true, throwIfNoEntry: false })
    if (current?.isDirectory()) throw new Error(`cannot write output ${dest}: a folder is in the way`)
    if (current?.isFile()) {
      if (current.ino === blob.ino && current.dev === blob.dev) {
        await this.verify(digest)
        if (((current.mode & 0o111n) !== 0n) === opts.executable) return 'kept'
      } else if (current.size === blob.size && ((current.mode & 0o111n) !== 0n) === opts.executable && !this.holdsOther(current, digest) && (await this.hashFile(dest, Number(current.size))) === digest) {
        return 'kept'
      }
    }
    if (!this.isVerified(digest)) await this.verify(digest)
    // A sealed blob (a source's bytes) is not the user's to have in the project: a copy is.
    if (((blob.mode & 0o111n) !== 0n) === opts.executable && blob.uid !== BigInt(BLOB_OWNER.uid)) {
      const tmp = tempNameFor(dest)
      try {
        withParentDir(tmp, () => linkSync(this.pathOf(digest), tmp))
        renameSync(tmp, dest)
        return 'link'
      } catch (err) {
        rmSync(tmp, { force: true })
        if (!isErrnoException(err, 'EXDEV') && !isErrnoException(err, 'EMLINK') && !isErrnoException(err, 'EPERM')) throw err
      }
    }
    await this.materialize(digest, dest, opts)
    return 'copy'
  }

  /**
   * Whether `file` (its stat) is a link to a blob other than `digest` that is
   * as it was when it matched in this process: an output placed before, now
   * replaced by a new version of the same size, need not be read to tell.
   */
  private holdsOther(file: { ino: bigint; dev: bigint; size: bigint; mtimeNs: bigint }, digest: Digest): boolean {
    const identity = blobIdentity(file)
    const other = this.verified.digestWith(identity)
    if (other === undefined || other === digest) return false
    const st = statSync(this.pathOf(other), { bigint: true, throwIfNoEntry: false })
    return st !== undefined && st.ino === file.ino && st.dev === file.dev && blobIdentity(st) === identity
  }

  /** Hash a file on disk (any file, not only blobs). */
  async hashFile(path: string, knownSize?: number): Promise<Digest> {
    const size = knownSize ?? statSync(path).size
    if (size <= SYNC_MAX_BYTES) return this.hasher.hash(readFileSync(path))
    if (size <= STREAM_MIN_BYTES) return this.hasher.hash(await readFile(path))
    const stream = await this.hasher.createStream()
    for await (const chunk of createReadStream(path)) stream.update(chunk as Buffer)
    return stream.digest()
  }

  /**
   * A stored blob whose bytes no longer match its name: removed at once (a
   * later write of the right bytes then stores it again, where keeping it would
   * make "already stored" skip the write), counted, and the error to throw.
   */
  private corrupt(digest: Digest, actual: Digest): DigestMismatchError {
    const path = this.pathOf(digest)
    this.forget(digest)
    rmSync(path, { force: true })
    this.corruption.storedRemoved++
    return new DigestMismatchError(digest, actual, `${path} (removed from the store)`)
  }

  /** Remove a blob (used to drop one found corrupt, so it is fetched or rebuilt). */
  async remove(digest: Digest): Promise<void> {
    this.forget(digest)
    rmSync(this.pathOf(digest), { force: true })
  }

  private newTemp(): string {
    return tempNameFor(join(this.tmpDir, 'blob'))
  }

  /** Give a finished file its name. Rename is atomic; a racing writer of the same blob is harmless. */
  /**
   * With `written`, this process wrote `file` itself from the bytes it hashed,
   * so the blob is known to match its name as it stands (the next use need not
   * hash it again); a file someone else wrote (an action's output) is not.
   */
  private publish(file: string, digest: Digest, opts: { executable?: boolean; written?: boolean; seal?: boolean } = {}): void {
    const dest = this.pathOf(digest)
    const executable = opts.executable ?? false
    const sealed = this.sealed || (opts.seal === true && this.canSeal)
    chmodSync(file, executable ? BLOB_MODE_EXECUTABLE : BLOB_MODE)
    if (sealed) chownSync(file, BLOB_OWNER.uid, BLOB_OWNER.gid)
    try {
      withParentDir(dest, () => renameSync(file, dest))
      if (opts.written) this.verified.set(digest, blobIdentity(statSync(dest, { bigint: true })))
    } catch (err) {
      // Scratch folders live beside the store, but a caller may pass a file on another device.
      if (!isErrnoException(err, 'EXDEV')) throw err
      const copy = this.newTemp()
      copyFileSync(file, copy)
      chmodSync(copy, executable ? BLOB_MODE_EXECUTABLE : BLOB_MODE)
      if (sealed) chownSync(copy, BLOB_OWNER.uid, BLOB_OWNER.gid)
      renameSync(copy, dest)
      rmSync(file, { force: true })
    }
  }
}

/**
 * A blob of a sealed store given to BLOB_OWNER and made read-only if it is
 * not yet (one stored before the store was sealed). Neither moves its mtime.
 */
function seal(path: string, st: { uid: bigint; gid: bigint; mode: bigint }): void {
  if (st.uid !== BigInt(BLOB_OWNER.uid) || st.gid !== BigInt(BLOB_OWNER.gid)) chownSync(path, BLOB_OWNER.uid, BLOB_OWNER.gid)
  if ((st.mode & 0o222n) !== 0n) chmodSync(path, (st.mode & 0o111n) !== 0n ? BLOB_MODE_EXECUTABLE : BLOB_MODE)
}

export async function openCasStore(root: string, hasher: Hasher, opts: CasStoreOptions = {}): Promise<CasStore> {
  return new CasStore(root, hasher, opts)
}

