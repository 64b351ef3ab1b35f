/**
 * Scratch folders for sandboxes that run actions on this machine's file system,
 * reused from one action to the next.
 *
 * Every action must start in a folder that holds exactly its declared inputs
 * (and the empty folders its inputs and outputs live in), nothing else. Making
 * that folder from nothing each time costs one hard link per input plus about
 * ten folder creations, and removing it one unlink per input plus the folders:
 * for compiles that declare hundreds of headers this dominated a build. Most
 * actions that run one after another declare nearly the same inputs (the
 * compiles of one target differ by one source file), so a used scratch folder
 * is instead reconciled to the next action's input set: files not wanted (or
 * with another digest) are removed, missing ones are linked, folders added or
 * removed. The result is indistinguishable to the action from a fresh staging:
 * the same paths, the same bytes (the same verified blobs), the same modes.
 *
 * That holds only if nothing of the previous action survives, so after each
 * action the folder is walked: a staged file whose inode, size or mtime changed
 * is removed (and reported when the stored blob itself was written to), every
 * other file or folder the action made is removed, and tmp and home are
 * emptied. If anything goes wrong while cleaning or preparing, the folder is
 * thrown away and a new one made.
 *
 * The walk skips listing a folder nobody added to or removed from: one whose
 * mtime is what it was when staging ended, whose staged files all checked
 * intact, and that had not changed for `SETTLED_MS` before the action (file
 * times come from a coarse clock, so a change within a few milliseconds of
 * staging could leave the same mtime; one that old cannot). Its known
 * sub-folders are still visited. For compiles that stage a few hundred headers
 * in one folder this replaces a listing per action with one stat
 * (bench/local-build).
 *
 * Where the action cannot write a staged file at all, it is not checked
 * after the run: a hard link to a blob that the action's user does not own
 * and that has no write bit (`actionUid`: the uid a backend's actions run as,
 * without capabilities; a sealed store's blobs and the sources a client
 * run by root stores, see store.ts, or any blob under docker). If the
 * action removed or replaced one, its folder's mtime
 * moved and the folder is listed and its files checked, as above. On a
 * worker building a 200-file CMake project that is ~420 lstat calls fewer
 * per action (no CPU change showed above the machine's noise).
 *
 * Rejected alternative: one shared read-only tree per set of headers behind a
 * symlink. Cheaper still, but `..` inside a symlinked folder resolves from the
 * shared tree, so `#include "../other/x.h"` would break.
 */
import { chownSync, lstatSync, mkdirSync, readdirSync, rmdirSync, rmSync, statSync, unlinkSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { isAlive } from '../src/cas/fs-util.js'
import type { Digest } from '../src/cas/hasher.js'
import { blobIdentity, type CasStore } from '../src/cas/store.js'
import type { SandboxInput } from './types.js'

interface StagedFile {
  /** Absolute path of the staged file. */
  abs: string
  digest: Digest
  executable: boolean
  /** `blobIdentity` of the staged file right after staging. */
  identity: string
  /** A hard link to the stored blob (else a private copy). */
  linked: boolean
  /** The action cannot write it (see the top): not checked after the run. */
  sealed: boolean
}

export class Scratch {
  /** Project-relative path → what is staged there. */
  readonly files = new Map<string, StagedFile>()
  /** Project-relative folders that exist under the exec root. */
  readonly dirs = new Set<string>()
  /** Staged files found unchanged right after the last run (see `inputsWrittenTo`); sealed ones are not checked, so not here. */
  readonly intact = new Set<string>()
  /** Folders (project-relative, '' for the root) whose listing was settled when staging ended → their mtime then. */
  readonly settled = new Map<string, bigint>()
  readonly execRoot: string
  readonly tmp: string
  readonly home: string

  constructor(readonly dir: string) {
    this.execRoot = join(dir, 'root')
    this.tmp = join(dir, 'tmp')
    this.home = join(dir, 'home')
  }
}

export interface ScratchLayout {
  inputs: readonly SandboxInput[]
  outputs: readonly string[]
}

let scratchCounter = 0

/** A folder whose mtime is at least this old when staging ends is trusted to show any later change (see the top). */
const SETTLED_MS = 50

export interface ScratchPoolOptions {
  log?: Logger
  /**
   * Who owns the folders (not the staged files, which stay the store's): set
   * when actions run as another user than bldr (docker runs them as an
   * unprivileged uid), so they can create their outputs.
   */
  owner?: { uid: number; gid: number }
  /**
   * The uid actions run as, when they run without capabilities (bwrap,
   * docker, the local sandbox's runner started by root): a staged blob this
   * uid does not own and cannot write is not checked after the run. Absent:
   * every staged file is checked (the local sandbox where its actions may
   * hold capabilities).
   */
  actionUid?: number
}

export class ScratchPool {
  private readonly free: Scratch[] = []
  private readonly all = new Set<Scratch>()
  private sweptStale = false

  private readonly log: Logger | undefined
  private readonly owner: { uid: number; gid: number } | undefined
  private readonly actionUid: bigint | undefined

  constructor(
    private readonly cas: CasStore,
    /** Folder that holds the scratch folders, e.g. `<project>/.bldr/scratch`. */
    readonly root: string,
    opts: ScratchPoolOptions = {},
  ) {
    this.log = opts.log
    this.owner = opts.owner
    this.actionUid = opts.actionUid === undefined ? undefined : BigInt(opts.actionUid)
  }

  /**
   * A scratch folder holding exactly `layout`'s inputs and the folders of its
   * outputs: a free one, or `own` (one the caller keeps, see `create` and
   * `release`'s `retain`). If preparing fails, the folder is thrown away.
   */
  async acquire(layout: ScratchLayout, own?: Scratch): Promise<Scratch> {
    if (!this.sweptStale) await this.sweepStale()
    const scratch = own ?? this.free.pop() ?? this.create()
    try {
      await this.prepare(scratch, layout)
    } catch (err) {
      this.discard(scratch)
      throw err
    }
    return scratch
  }

  /**
   * Inputs whose stored blob was written through a hard link during the run.
   * Each is marked for a fresh check, so it is repaired or rebuilt, never used.
   */
  inputsWrittenTo(scratch: Scratch): string[] {
    const written: string[] = []
    scratch.intact.clear()
    for (const [path, f] of scratch.files) {
      if (f.sealed) continue
      // One lstat answers the common case: a hard link shares the blob's inode,
      // so an unchanged identity means both the staged file and the blob are intact.
      const st = lstatSync(f.abs, { bigint: true, throwIfNoEntry: false })
      if (st && blobIdentity(st) === f.identity) {
        scratch.intact.add(path)
        continue
      }
      if (!f.linked) continue
      // Replaced or changed: was the stored blob itself written to?
      const blob = statSync(this.cas.pathOf(f.digest), { bigint: true, throwIfNoEntry: false })
      if (!blob || blobIdentity(blob) !== f.identity) {
        this.cas.forget(f.digest)
        written.push(path)
      }
    }
    return written
  }

  /**
   * Give a folder back after its action. With `keep`, it is left on disk as it
   * is, for inspection. With `retain`, it is cleaned but stays the caller's
   * (not handed to another acquire). Returns false when the folder is gone
   * (kept, or thrown away because it could not be cleaned).
   */
  release(scratch: Scratch, opts: { keep?: boolean; retain?: boolean } = {}): boolean {
    if (opts.keep) {
      this.all.delete(scratch)
      return false
    }
    try {
      this.clean(scratch)
      if (!opts.retain) this.free.push(scratch)
      return true
    } catch (err) {
      this.log?.warn({ err, dir: scratch.dir }, 'could not clean a scratch folder; removing it')
      this.discard(scratch)
      return false
    }
  }

  /** Remove a folder now (one whose user is gone). */
  discard(s: Scratch): void {
    this.all.delete(s)
    rmSync(s.dir, { recursive: true, force: true })
  }

  /** Remove every scratch folder this pool made (kept ones excepted). */
  close(): void {
    for (const s of this.all) rmSync(s.dir, { recursive: true, force: true })
    this.all.clear()
    this.free.length = 0
  }

  /** A new empty folder (its exec root, tmp and home exist), not yet prepared for an action. */
  create(): Scratch {
    const s = new Scratch(join(this.root, `${process.pid}-${++scratchCounter}`))
    rmSync(s.dir, { recursive: true, force: true })
    for (const d of [s.execRoot, s.tmp, s.home]) this.mkdir(d)
    this.all.add(s)
    return s
  }

  private mkdir(abs: string): void {
    mkdirSync(abs, { recursive: true })
    if (this.owner) chownSync(abs, this.owner.uid, this.owner.gid)
  }

  /** Remove scratch folders left by bldr processes that no longer run. */
  private async sweepStale(): Promise<void> {
    this.sweptStale = true
    const entries = await readdir(this.root).catch(() => [] as string[])
    for (const name of entries) {
      const pid = Number(/^(\d+)-/.exec(name)?.[1])
      if (!pid || pid === process.pid || isAlive(pid)) continue
      rmSync(join(this.root, name), { recursive: true, force: true })
    }
  }

  private async prepare(s: Scratch, layout: ScratchLayout): Promise<void> {
    const wanted = new Map<string, SandboxInput>()
    for (const i of layout.inputs) wanted.set(i.path, i)
    const wantedDirs = new Set<string>()
    for (const p of [...wanted.keys(), ...layout.outputs]) {
      for (let d = dirname(p); d !== '.' && !wantedDirs.has(d); d = dirname(d)) wantedDirs.add(d)
    }

    for (const [path, f] of s.files) {
      const w = wanted.get(path)
      if (w && w.digest === f.digest && w.executable === f.executable) continue
      unlinkSync(f.abs)
      s.files.delete(path)
    }
    // Deepest first, so a folder is empty when its turn comes.
    for (const d of [...s.dirs].filter((d) => !wantedDirs.has(d)).sort((a, b) => b.length - a.length)) {
      rmdirSync(join(s.execRoot, d))
      s.dirs.delete(d)
    }
    for (const d of [...wantedDirs].filter((d) => !s.dirs.has(d)).sort()) {
      this.mkdir(join(s.execRoot, d))
      s.dirs.add(d)
    }
    for (const i of wanted.values()) {
      if (s.files.has(i.path)) continue
      const abs = join(s.execRoot, i.path)
      const how = await this.cas.stage(i.digest, abs, { executable: i.executable })
      const st = lstatSync(abs, { bigint: true })
      s.files.set(i.path, {
        abs,
        digest: i.digest,
        executable: i.executable,
        identity: blobIdentity(st),
        linked: how === 'link',
        sealed: how === 'link' && this.actionUid !== undefined && st.uid !== this.actionUid && (st.mode & 0o222n) === 0n,
      })
    }
    s.settled.clear()
    const settledBefore = BigInt(Date.now() - SETTLED_MS) * 1_000_000n
    for (const d of ['', ...s.dirs]) {
      const mtimeNs = lstatSync(d ? join(s.execRoot, d) : s.execRoot, { bigint: true }).mtimeNs
      if (mtimeNs < settledBefore) s.settled.set(d, mtimeNs)
    }
  }

  /** Back to exactly the staged inputs: everything else the action left is removed. */
  private clean(s: Scratch): void {
    const seenFiles = new Set<string>()
    const seenDirs = new Set<string>()
    // A folder's listing can be trusted unchanged only if every staged file checked intact (or cannot have changed).
    let allIntact = true
    for (const [path, f] of s.files) {
      if (!f.sealed && !s.intact.has(path)) {
        allIntact = false
        break
      }
    }
    const subDirs = new Map<string, string[]>()
    /** Folders not listed: their staged files are all there, intact. */
    const unlisted = new Set<string>()
    if (allIntact) {
      for (const d of s.dirs) {
        const parent = dirOf(d)
        const list = subDirs.get(parent)
        if (list) list.push(d)
        else subDirs.set(parent, [d])
      }
    }
    const visit = (rel: string): void => {
      const abs = rel ? join(s.execRoot, rel) : s.execRoot
      const stamp = allIntact ? s.settled.get(rel) : undefined
      if (stamp !== undefined && lstatSync(abs, { bigint: true }).mtimeNs === stamp) {
        unlisted.add(rel)
        for (const d of subDirs.get(rel) ?? []) {
          seenDirs.add(d)
          visit(d)
        }
        return
      }
      for (const e of readdirSync(abs, { withFileTypes: true })) {
        const path = rel ? `${rel}/${e.name}` : e.name
        const entry = join(s.execRoot, path)
        if (e.isDirectory()) {
          if (s.dirs.has(path)) {
            seenDirs.add(path)
            visit(path)
          } else {
            rmSync(entry, { recursive: true, force: true })
          }
          continue
        }
        const staged = s.files.get(path)
        if (staged && e.isFile() && (s.intact.has(path) || blobIdentity(lstatSync(entry, { bigint: true })) === staged.identity)) {
          seenFiles.add(path)
        } else {
          unlinkSync(entry)
        }
      }
    }
    visit('')
    s.intact.clear()
    for (const path of s.files.keys()) if (!seenFiles.has(path) && !unlisted.has(dirOf(path))) s.files.delete(path)
    for (const d of s.dirs) if (!seenDirs.has(d)) s.dirs.delete(d)
    for (const d of [s.tmp, s.home]) {
      for (const e of readdirSync(d)) rmSync(join(d, e), { recursive: true, force: true })
    }
  }
}

/** The folder part of a project-relative path ('' at the top). */
function dirOf(path: string): string {
  const i = path.lastIndexOf('/')
  return i < 0 ? '' : path.slice(0, i)
}
