/**
 * An action: one command with declared inputs and outputs, the unit that is
 * cached, scheduled and (later) stolen between workers.
 */
import type { SourceLocation } from '../errors.js'

/**
 * What an action is allowed to do and use, as in the Builder seed's Capabilities.
 * A backend that cannot enforce one it is asked for must refuse the action.
 */
export interface Capabilities {
  /** Network access. Default false. */
  network: boolean
  /** May write under $HOME. Default false. */
  writeHome: boolean
  /** Has a private writable /tmp. Default true. */
  writeTmp: boolean
  /** Extra absolute paths visible read-only (besides the toolchain). */
  readPaths: string[]
  /** Extra absolute paths writable. */
  writePaths: string[]
  /** CPU cores the action may use; undefined: no limit. */
  maxCpu?: number
  /** Memory limit in bytes; undefined: no limit. */
  maxMemoryBytes?: number
}

export const DEFAULT_CAPABILITIES: Readonly<Capabilities> = Object.freeze({
  network: false,
  writeHome: false,
  writeTmp: true,
  readPaths: [],
  writePaths: [],
})

/** The default time limit of one action (the Builder seed's 600 s). */
export const DEFAULT_ACTION_TIMEOUT_MS = 600_000

/** What kind of work an action does; shown in progress lines. */
export type Mnemonic = 'Action' | 'CcCompile' | 'CcArchive' | 'CcLink' | 'Ninja'

export interface Action {
  /** Unique name: a generic action's key, or `<target>/<role>[/<src>]` for rule expansions. */
  readonly id: string
  /** The `actions` or `targets` entry this action came from. */
  readonly owner: string
  readonly mnemonic: Mnemonic
  /** One short line for progress output, e.g. `CC src/main.c`. */
  readonly description: string
  /** The command; argv[0] is looked up on the action's PATH. */
  readonly argv: readonly string[]
  /** The whole environment the command sees (bldr's hermetic defaults plus the BUILD file's `env`). */
  readonly env: Readonly<Record<string, string>>
  /** Declared input files, relative to the project root, sorted, unique. */
  readonly inputs: readonly string[]
  /** Declared output files, relative to the project root, sorted, unique. */
  readonly outputs: readonly string[]
  readonly timeoutMs: number
  readonly capabilities: Readonly<Capabilities>
  /** Marked flaky in the BUILD file: a run that exits non-zero is run again (up to FLAKY_RUNS runs); not part of the action key. */
  readonly flaky?: boolean
  /** Where the action was declared, for error messages. */
  readonly origin: SourceLocation
  /**
   * The absolute path at which the command expects the project root (ninja
   * commands name files by absolute path). Sandboxes that can show the action's
   * folder there do (bwrap, docker); the local one rewrites the command. Unset:
   * the command uses project-relative paths and runs anywhere.
   */
  readonly execRoot?: string
  /** The command's working folder, project-relative (ninja: the build folder). Default: the project root. */
  readonly cwd?: string
  /** Order-only inputs: built first and staged, but not part of the key (the depfile names those actually read). */
  readonly orderOnly?: readonly string[]
  /**
   * Files staged for the command beside its inputs but not part of its key:
   * what it may read without the build file saying so (ninja: the source tree).
   * Which of them it did read comes from its depfile. One array shared by many actions.
   */
  readonly staged?: readonly string[]
  /**
   * The dependency file the command writes (gcc's -MD): the files it read,
   * which join its key from then on. `keep`: leave it in the project (ninja
   * keeps it unless the rule says `deps = gcc`). The path is also in `outputs`.
   */
  readonly depfile?: { readonly path: string; readonly keep: boolean }
  /** An output the command did not make is not a failure (ninja does not check; CMake's `.util` outputs are never made). */
  readonly outputsMayBeMissing?: boolean
  /** A ninja pool: at most `depth` actions of the pool run at once. */
  readonly pool?: { readonly name: string; readonly depth: number }
}

/** The environment every action starts from: fixed, so the user's shell does not leak into results. */
export const HERMETIC_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: '/usr/local/bin:/usr/bin:/bin',
  LANG: 'C',
  LC_ALL: 'C',
  TZ: 'UTC',
  SOURCE_DATE_EPOCH: '0',
})
