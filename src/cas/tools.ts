/**
 * The programs an action starts, by content: part of its cache key.
 *
 * An action's inputs are hashed, but the compiler it runs lives outside the
 * project (/usr/bin/cc): without its identity in the key, upgrading the
 * toolchain would restore objects the old compiler made, and a worker with
 * another compiler would fill the cache with outputs a local build would not
 * make. So each program the command names, found on the action's PATH as the
 * sandbox finds it, enters the key as its resolved path and BLAKE3 digest
 * (as ccache checks the compiler it runs).
 *
 * The programs named: argv[0], and for `sh -c SCRIPT` (every ninja command)
 * the first word of each command in SCRIPT (after `&&`, `||`, `;`, `|`), which
 * is how CMake and Meson write compiler, archiver and linker calls. Programs
 * inside the project are inputs already; shell builtins and words that are not
 * found are left out. Not covered: programs a tool starts itself (gcc's cc1,
 * as, ld), which a toolchain upgrade changes together with its driver.
 *
 * Digests are kept per process by the file's identity (inode, size, mtime),
 * so a build hashes each program once; given a `RememberedDigests` (the
 * project's, or a worker's), they are also remembered between processes by
 * the stricter identity it checks, so a build does not hash the compiler
 * again (~45 ms per build for gcc's driver, ar and sh here).
 */
import { readFileSync, realpathSync, statSync, type BigIntStats } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import type { Digest, Hasher } from './hasher.js'
import { HERMETIC_ENV } from '../graph/action.js'
import { blobIdentity } from './store.js'

/** Digests remembered between processes by file identity (src/build/source-digests.ts). */
export interface RememberedDigests {
  get(path: string, st: BigIntStats): Digest | undefined
  set(path: string, st: BigIntStats, digest: Digest, hashStartMs: number): void
}

/** A program an action runs: the name its command uses, the file it resolves to, and that file's digest. */
export interface ToolRef {
  name: string
  path: string
  digest: Digest
}

const SHELLS = new Set(['sh', 'bash', 'dash', '/bin/sh', '/bin/bash', '/bin/dash', '/usr/bin/sh', '/usr/bin/bash', '/usr/bin/dash'])
/** Words that start a command but name no program file. */
const BUILTINS = new Set(['cd', 'echo', 'printf', 'test', '[', 'true', 'false', 'exit', 'export', 'set', 'exec', 'command', ':', '.', 'eval', 'if', 'then', 'else', 'fi', 'for', 'do', 'done', 'while', 'case', 'esac'])

/** The program names an argv starts: argv[0], and the first word of each command of an `sh -c` script. */
export function programNames(argv: readonly string[]): string[] {
  const names: string[] = []
  const first = argv[0]
  if (first === undefined) return names
  names.push(first)
  if (SHELLS.has(first) && argv[1] === '-c' && argv[2] !== undefined) {
    for (const command of argv[2].split(/&&|\|\||[;|\n]/)) {
      const words = command.trim().split(/\s+/)
      // Leading assignments (`FOO=bar cc …`) set the environment, the next word is the program.
      let w = 0
      while (w < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[w]!)) w++
      const word = words[w]
      if (word && !BUILTINS.has(word) && /^[\w./+-]+$/.test(word) && !names.includes(word)) names.push(word)
    }
  }
  return names
}

/** Programs by content, for action keys; one per build (or per process). */
export class ToolIndex {
  /** A name on a PATH → the file it resolves to (absent: not found, or inside the project). */
  private readonly resolved = new Map<string, string | null>()
  /** A file → its identity when hashed, and the digest. */
  private readonly digests = new Map<string, { identity: string; digest: Digest }>()

  constructor(
    private readonly hasher: Hasher,
    /** The project root: programs under it are inputs, not tools. */
    private readonly projectRoot: string,
    /** Digests remembered between processes, by absolute path. */
    private readonly remembered?: RememberedDigests,
  ) {}

  /** The tools `argv` starts under `env`'s PATH (the hermetic one if it has none), in the order named (those found outside the project). */
  toolsOf(argv: readonly string[], env: Readonly<Record<string, string>>): ToolRef[] {
    const path = env['PATH'] ?? HERMETIC_ENV['PATH']!
    const tools: ToolRef[] = []
    for (const name of programNames(argv)) {
      const file = this.resolve(name, path)
      if (file) tools.push({ name, path: file, digest: this.digestOf(file) })
    }
    return tools
  }

  private resolve(name: string, path: string): string | null {
    const cacheKey = `${path}\0${name}`
    const known = this.resolved.get(cacheKey)
    if (known !== undefined) return known
    let found: string | null = null
    const candidates = name.includes('/') ? (isAbsolute(name) ? [name] : []) : path.split(':').filter(Boolean).map((d) => join(d, name))
    for (const c of candidates) {
      const st = statSync(c, { throwIfNoEntry: false })
      if (st?.isFile() && (st.mode & 0o111) !== 0) {
        found = realpathSync(c)
        break
      }
    }
    if (found !== null && (found === this.projectRoot || found.startsWith(`${this.projectRoot}/`))) found = null
    this.resolved.set(cacheKey, found)
    return found
  }

  private digestOf(file: string): Digest {
    const st = statSync(file, { bigint: true })
    const identity = blobIdentity(st)
    const known = this.digests.get(file)
    if (known && known.identity === identity) return known.digest
    const hashStartMs = Date.now()
    let digest = this.remembered?.get(file, st)
    if (digest === undefined) {
      digest = this.hasher.hash(readFileSync(file))
      this.remembered?.set(file, st, digest, hashStartMs)
    }
    this.digests.set(file, { identity, digest })
    return digest
  }
}
