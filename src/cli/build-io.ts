/**
 * Where a build's output goes, what environment it sees and what interrupts
 * it: this process's, or, for a build the kept local mesh runs in its own
 * process, the thin client's (hosted-build.ts, mesh-daemon-serve.ts).
 */
import type { Writable } from 'node:stream'

export interface BuildIo {
  /** Progress and the summary; `isTTY` and `columns` as a terminal's. */
  stdout: Writable & { isTTY?: boolean; columns?: number }
  /** Notes, errors, logs. */
  stderr: Writable
  env: NodeJS.ProcessEnv
  /** Call `handler` when the build is to stop (SIGINT, SIGTERM); returns how to stop listening. */
  onInterrupt(handler: () => void): () => void
}

/** This process's streams, environment and signals. */
export function processIo(): BuildIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    onInterrupt: (handler) => {
      process.once('SIGINT', handler)
      process.once('SIGTERM', handler)
      return () => {
        process.off('SIGINT', handler)
        process.off('SIGTERM', handler)
      }
    },
  }
}
