/**
 * Run one command to its end: its own process group (so a timeout or abort ends
 * everything it started), stdout and stderr captured up to a cap, a timeout
 * that kills the group, and a clear result when the program cannot start.
 */
import { spawn } from 'node:child_process'

/** How long output is still read after the command ended, from processes it left outside its group. */
const PIPE_GRACE_MS = 200

/** Most bytes of stdout (and of stderr) kept per action; the rest is dropped with a note. */
export const MAX_CAPTURE_BYTES = 4 * 1024 * 1024

export interface ProcessRequest {
  argv: readonly string[]
  env: Record<string, string>
  cwd: string
  timeoutMs: number
  /** A folder the runner must not empty with /tmp (the action's folder, when it is shown under /tmp). */
  keep?: string
}

export interface ProcessResult {
  /** The exit code; null when the process was ended by a signal. */
  exitCode: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  stdout: Buffer
  stderr: Buffer
  durationMs: number
}

/** Start `req`; `kill()` ends its whole process group; `pid` is undefined when it could not start. */
export function startProcess(req: ProcessRequest): { done: Promise<ProcessResult>; kill: () => void; pid: number | undefined } {
  const started = performance.now()
  const out = new Capture()
  const err = new Capture()
  let timedOut = false
  const [cmd, ...args] = req.argv as [string, ...string[]]
  const child = spawn(cmd, args, { cwd: req.cwd, env: req.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  const kill = (): void => {
    if (child.pid === undefined) return
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  const timer = setTimeout(() => {
    timedOut = true
    kill()
  }, req.timeoutMs)
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  let spawnError: NodeJS.ErrnoException | undefined
  child.on('error', (e: NodeJS.ErrnoException) => {
    spawnError = e
  })
  let pipeGrace: NodeJS.Timeout | undefined
  child.on('exit', () => {
    clearTimeout(timer)
    kill() // anything the command left running in its group
    // A process that left the group (setsid) may hold stdout or stderr open for
    // ever: read what is there, then stop waiting for it.
    pipeGrace = setTimeout(() => {
      child.stdout.destroy()
      child.stderr.destroy()
    }, PIPE_GRACE_MS)
  })
  const done = new Promise<ProcessResult>((resolve) => {
    child.on('close', (code, sig) => {
      clearTimeout(timer)
      clearTimeout(pipeGrace)
      const durationMs = performance.now() - started
      if (spawnError) {
        const why = spawnError.code === 'ENOENT' ? notFoundOnPath(req) : spawnError.message
        resolve({ exitCode: 127, signal: null, timedOut: false, stdout: out.bytes(), stderr: cannotRunMessage(req, why), durationMs })
        return
      }
      resolve({ exitCode: code, signal: sig, timedOut, stdout: out.bytes(), stderr: err.bytes(), durationMs })
    })
  })
  return { done, kill, pid: child.pid }
}

/** What a command that could not start has as its stderr (both runners say it so). */
export function cannotRunMessage(req: ProcessRequest, why: string): Buffer {
  return Buffer.from(`bldr: cannot run ${JSON.stringify(req.argv[0])}: ${why}\n`)
}

/** Why, for a program that is not on the command's PATH. */
export function notFoundOnPath(req: ProcessRequest): string {
  return `not found (PATH=${req.env['PATH'] ?? ''})`
}

/** The note after captured output when `dropped` more bytes were not kept. */
export function droppedNote(dropped: number): string {
  return `\n[bldr: ${dropped} more bytes not kept]\n`
}

/** Collects a stream's bytes up to MAX_CAPTURE_BYTES. */
class Capture {
  private chunks: Buffer[] = []
  private size = 0
  private dropped = 0
  push(b: Buffer): void {
    const room = Math.max(0, MAX_CAPTURE_BYTES - this.size)
    if (b.length > room) {
      if (room > 0) this.chunks.push(b.subarray(0, room))
      this.size += room
      this.dropped += b.length - room
      return
    }
    this.chunks.push(b)
    this.size += b.length
  }
  bytes(): Buffer {
    const all = Buffer.concat(this.chunks)
    return this.dropped > 0 ? Buffer.concat([all, Buffer.from(droppedNote(this.dropped))]) : all
  }
}
