/**
 * One interface for running one action hermetically. A backend stages the
 * action's declared inputs (by digest, from the CAS) into a fresh folder, runs
 * the command there, and stores the declared outputs back into the CAS.
 *
 * A backend decides nothing about where an action runs; it only runs it.
 */
import { BldrError, ExitCode } from '../src/errors.js'
import { TOOLCHAIN_FOLDERS } from './toolchain.js'
import type { Capabilities } from '../src/graph/action.js'
import type { Digest } from '../src/cas/hasher.js'
import type { OutputRecord } from '../src/cas/action-cache.js'

export type SandboxName = 'local' | 'bwrap' | 'docker'

export interface SandboxInput {
  /** Project-relative path where the action sees the file. */
  path: string
  digest: Digest
  executable: boolean
}

export interface SandboxSpec {
  actionId: string
  argv: readonly string[]
  env: Readonly<Record<string, string>>
  inputs: readonly SandboxInput[]
  /** Project-relative paths the action must create. Their folders exist when it starts. */
  outputs: readonly string[]
  timeoutMs: number
  capabilities: Readonly<Capabilities>
  /**
   * The absolute path where the command expects its folder (the project root
   * on the client; ninja commands name files by absolute path). bwrap and
   * docker show the folder there; local rewrites the command instead. Unset:
   * the backend's own place (`/bldr/root`, or the scratch folder).
   */
  execRoot?: string
  /** The command's working folder, relative to its folder. Default: the folder itself. */
  cwd?: string
  /** A declared output that is a dependency file (gcc -MD): local writes its paths back as `execRoot` paths. */
  depfile?: string
  /**
   * The depfile is read and dropped (ninja's `deps = gcc`): its text comes
   * back as `SandboxResult.depfileText` instead of as a stored output, if it is
   * at most DEPFILE_TEXT_MAX_BYTES (a larger one is stored as usual). On a
   * worker that spares a blob in its store and in the client's, and a push,
   * for every compile.
   */
  readDepfile?: true
}

/** Largest depfile returned as text (`readDepfile`); a compile's lists a few hundred headers at most, ~100 bytes each. */
export const DEPFILE_TEXT_MAX_BYTES = 32 * 1024

/** The set ones of a spec's placement fields (`execRoot`, `cwd`, `depfile`, `readDepfile`), for building a spec from an action or a payload. */
export function placementOf(p: { execRoot?: string | undefined; cwd?: string | undefined; depfile?: string | undefined; readDepfile?: boolean | undefined }): Pick<SandboxSpec, 'execRoot' | 'cwd' | 'depfile'> & { readDepfile?: true } {
  return {
    ...(p.execRoot !== undefined ? { execRoot: p.execRoot } : {}),
    ...(p.cwd ? { cwd: p.cwd } : {}),
    ...(p.depfile !== undefined ? { depfile: p.depfile } : {}),
    ...(p.depfile !== undefined && p.readDepfile ? { readDepfile: true } : {}),
  }
}

/** An action's placement fields for a spec or a payload: a depfile ninja drops (`deps = gcc`) is read, not stored. */
export function actionPlacement(action: { execRoot?: string | undefined; cwd?: string | undefined; depfile?: { path: string; keep: boolean } | undefined }): Pick<SandboxSpec, 'execRoot' | 'cwd' | 'depfile'> & { readDepfile?: true } {
  return placementOf({ execRoot: action.execRoot, cwd: action.cwd, depfile: action.depfile?.path, readDepfile: action.depfile !== undefined && !action.depfile.keep })
}

/** Why `execRoot` cannot be used by a backend that shows the folder at that path, or undefined. */
export function refuseExecRoot(execRoot: string | undefined): string | undefined {
  if (execRoot === undefined) return undefined
  if (!execRoot.startsWith('/') || execRoot === '/' || execRoot.split('/').includes('..')) return `the project folder ${JSON.stringify(execRoot)} must be an absolute path below /`
  const clash = [...TOOLCHAIN_FOLDERS, '/etc', '/proc', '/dev', '/bldr'].find((p) => execRoot === p || execRoot.startsWith(`${p}/`))
  return clash ? `the project folder ${execRoot} is inside ${clash}, which the sandbox reserves for the toolchain or itself; move the project` : undefined
}

export interface SandboxResult {
  /** The exit code; null when the process was ended by a signal. */
  exitCode: number | null
  /** The signal that ended the process, e.g. `SIGKILL`. */
  signal: NodeJS.Signals | null
  /** Killed because it ran past `timeoutMs`. */
  timedOut: boolean
  /** Killed by the kernel for going past its memory limit (`maxMemory`); only backends that enforce one set it. */
  oomKilled?: boolean
  stdout: Buffer
  stderr: Buffer
  /** Declared outputs found after a zero exit, stored in the CAS. Empty otherwise. */
  outputs: OutputRecord[]
  /** The depfile's text, read instead of stored (`SandboxSpec.readDepfile`), after a zero exit. */
  depfileText?: string
  /** Declared outputs the action did not create (after a zero exit). */
  missingOutputs: string[]
  /** Wall time of the command itself, excluding staging. */
  durationMs: number
  /**
   * CPU time (user + system) of the command and the processes it waited for,
   * in 10 ms steps; set by the backends that run one action at a time in a
   * runner (docker, bwrap).
   */
  cpuMs?: number
  /** Where the action's folder was kept for inspection (after a failure, when asked to keep it). */
  keptAt?: string
}

/**
 * The sandbox itself failed (could not stage inputs, could not start), as
 * opposed to the action failing. An infrastructure failure: may be retried.
 */
export class SandboxError extends BldrError {
  override readonly name = 'SandboxError'
  readonly exitCode = ExitCode.buildFailed
  constructor(
    readonly sandbox: SandboxName,
    readonly actionId: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`sandbox ${sandbox} could not run ${actionId}: ${reason}`, options)
  }
}

export interface RunOptions {
  signal?: AbortSignal
  /** Called when the command starts (it may wait for a free slot after staging). */
  onStart?: () => void
}

/**
 * A backend runs at most `slots` commands at once (set when it is made); more
 * calls to `run` may be in flight, staging inputs or storing outputs while
 * they wait, so the slots never wait for that work.
 */
export interface Sandbox {
  readonly name: SandboxName
  /** Most commands running at once. */
  readonly slots: number
  /** One line for the user about what this backend isolates, or does not. */
  readonly isolationNote: string
  run(spec: SandboxSpec, opts?: RunOptions): Promise<SandboxResult>
  /**
   * A hint that an action like `spec` is about to run (its inputs are being
   * fetched): a backend whose sandboxes take long to start may start one now,
   * for run() to take. Nothing is reported; run() says what goes wrong.
   */
  warm?(spec: SandboxSpec): void
  /** Release what the backend holds (containers, folders). */
  close(): Promise<void>
}
