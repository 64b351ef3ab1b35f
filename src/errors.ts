/**
 * Every error bldr expects to happen, one class per condition.
 *
 * An expected error carries a message that says what went wrong, where, and
 * (when there is one) how to fix it; the CLI prints it as one line and exits
 * with `exitCode`. Anything that is not a `BldrError` is a bug and is printed
 * with its stack as "unexpected error, please report".
 */

/** Exit codes of the `bldr` command. */
export const ExitCode = {
  ok: 0,
  /** The build ran and at least one action failed. */
  buildFailed: 1,
  /** Bad input: BUILD file, command line flags, config. Nothing was built. */
  badInput: 2,
  /** A bug in bldr (sysexits EX_SOFTWARE). */
  internal: 70,
} as const

export abstract class BldrError extends Error {
  abstract readonly exitCode: number
}

/** Where in a BUILD file something was written. */
export interface SourceLocation {
  file: string
  /** 1-based; undefined when the problem has no single line (e.g. a cycle across files). */
  line?: number
  column?: number
  /** Dotted key path, e.g. `targets.app.srcs[1]`. */
  keyPath?: string
}

export function formatLocation(loc: SourceLocation): string {
  let s = loc.file
  if (loc.line !== undefined) s += `:${loc.line}`
  if (loc.line !== undefined && loc.column !== undefined) s += `:${loc.column}`
  if (loc.keyPath) s += ` (${loc.keyPath})`
  return s
}

/** A BUILD file breaks a rule: the message names the file, line or key, and the rule. */
export class BuildFileError extends BldrError {
  override readonly name = 'BuildFileError'
  readonly exitCode = ExitCode.badInput
  constructor(
    readonly location: SourceLocation,
    readonly rule: string,
  ) {
    super(`${formatLocation(location)}: ${rule}`)
  }
}

/** Several BUILD file problems found in one pass, reported together. */
export class BuildFileErrors extends BldrError {
  override readonly name = 'BuildFileErrors'
  readonly exitCode = ExitCode.badInput
  constructor(readonly errors: BuildFileError[]) {
    super(errors.map((e) => e.message).join('\n'))
  }
}

/** A command line flag or argument is invalid. */
export class UsageError extends BldrError {
  override readonly name = 'UsageError'
  readonly exitCode = ExitCode.badInput
}

/** Bytes do not match the digest they are named by. */
export class DigestMismatchError extends BldrError {
  override readonly name = 'DigestMismatchError'
  readonly exitCode = ExitCode.buildFailed
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly where: string,
  ) {
    super(`digest mismatch for ${where}: expected blake3 ${expected}, got blake3 ${actual}`)
  }
}

/** A blob that should be in the content-addressed store is not. */
export class BlobNotFoundError extends BldrError {
  override readonly name = 'BlobNotFoundError'
  readonly exitCode = ExitCode.buildFailed
  constructor(
    readonly digest: string,
    readonly where: string,
  ) {
    super(`blob blake3 ${digest} not found in ${where}`)
  }
}

/** A source file changed or vanished while the build ran. */
export class SourceChangedError extends BldrError {
  override readonly name = 'SourceChangedError'
  readonly exitCode = ExitCode.buildFailed
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`source file ${path} ${detail} during the build; run the build again`)
  }
}

export function isBldrError(err: unknown): err is BldrError {
  return err instanceof BldrError
}

/** How the CLI reports an error a command threw: an expected one as `bldr: ` lines, a bug with its stack; and the exit status. */
export function errorReport(err: unknown): { text: string; exitCode: number } {
  if (isBldrError(err)) return { text: `bldr: ${err.message.split('\n').join('\nbldr: ')}\n`, exitCode: err.exitCode }
  return { text: `bldr: unexpected error, please report:\n${(err as Error)?.stack ?? String(err)}\n`, exitCode: ExitCode.internal }
}

/** The mesh could not be started or reached, so the build could not run there. */
export class MeshUnavailableError extends BldrError {
  override readonly name = 'MeshUnavailableError'
  readonly exitCode = ExitCode.buildFailed
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

/** A worker could not run an action (an infrastructure failure, not the action's). */
export class RemoteExecutionError extends BldrError {
  override readonly name = 'RemoteExecutionError'
  readonly exitCode = ExitCode.buildFailed
  constructor(
    readonly actionId: string,
    readonly worker: string,
    readonly reason: string,
  ) {
    super(`worker ${worker.slice(-8)} could not run ${actionId}: ${reason}`)
  }
}

/** The first error of class `cls` in `err`'s cause chain. */
export function causeOf<T extends Error>(err: unknown, cls: new (...args: never[]) => T): T | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (e instanceof cls) return e
  return undefined
}
