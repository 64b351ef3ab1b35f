/**
 * Starts action commands from a small helper process instead of from bldr.
 *
 * Why: libuv starts a child with fork(), whose cost grows with the parent's
 * memory (page tables are copied). From bldr (~120 MB resident with a loaded
 * graph) one spawn cost ~4 ms of system time, serialized on the event loop;
 * from a bare Node process (~45 MB) it costs about a third of that, and it no
 * longer blocks bldr's event loop.
 *
 * The runner also owns the `-j` limit: staged commands wait in its queue and
 * the next starts the moment one ends. With the limit in bldr, every handoff
 * waited for bldr's event loop (busy storing the last action's outputs), and
 * slots stood empty for several milliseconds per action.
 *
 * Two runners keep this contract. The native one (bldr-spawn, built from
 * spawn-helper.c by `npm run build` when a C compiler is there) is the default:
 * from a process of a few hundred KiB a fork costs tens of microseconds, while
 * from a bare Node process it cost ~1.5 ms of CPU per command (the child's
 * copy-on-write faults and its address space torn down at exec), plus ~1.5 ms
 * of the runner's own JavaScript; for 200 compiles on 2 cores that was ~0.75 s
 * of CPU taken from the compilers (bench/local-build). The Node runner
 * (runner-main.ts) serves where bldr-spawn was not built.
 *
 * One runner serves a sandbox; it is started when an action is about to run
 * (warmUp: while its sources are stored and staged) or on first use; if it dies, the
 * commands in flight fail as sandbox (infrastructure) failures and the next
 * request starts a new one.
 *
 * Run by root, the runner (and so every command it starts) has no
 * capabilities: it starts under `setpriv` with empty bounding and inheritable
 * sets. It is still uid 0 and owns what root owns, but it cannot override file
 * permissions. A blob given away by the store (BLOB_OWNER, read-only: the
 * sources a build stores, store.ts) cannot then be written to, chmod-ed or
 * touched by an action, so its staged links need no check after each run
 * (`withoutCapabilities`, scratch.ts): for compiles that declare 200 headers that
 * check was a sixth of bldr's own CPU in a cold build (bench/local-build). Where
 * setpriv is missing or cannot drop capabilities, the runner keeps them and
 * every staged input is checked.
 */
import { fork, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { existsSync } from 'node:fs'
import { constants } from 'node:os'
import { join } from 'node:path'
import { nodeChildEnv } from '../src/node-child-env.js'
import { SANDBOX_DIST_DIR } from './dist-dir.js'
import type { RunnerReply, RunnerRequest } from './runner-main.js'
import type { Logger } from 'pino'
import { cannotRunMessage, droppedNote, MAX_CAPTURE_BYTES, notFoundOnPath, type ProcessRequest, type ProcessResult } from './run-process.js'

const RUNNER_MAIN = join(SANDBOX_DIST_DIR, 'runner-main.js')
/** The native runner, built by `npm run build` (package.json's `native` script) where a C compiler is. */
export const NATIVE_RUNNER = join(SANDBOX_DIST_DIR, 'bldr-spawn')

/** Which runner starts the commands: `native` (bldr-spawn) or `node` (runner-main.js). */
export type RunnerKind = 'native' | 'node'

/** The native runner where it was built, else the Node one. */
export function defaultRunnerKind(): RunnerKind {
  return existsSync(NATIVE_RUNNER) ? 'native' : 'node'
}

interface Pending {
  resolve: (r: ProcessResult) => void
  reject: (e: Error) => void
  onStart: (() => void) | undefined
  /** The request, for the message of a command that could not start. */
  req: ProcessRequest
  /** The runner it was sent to (when that one ends, so does the command). */
  link: RunnerLink
}

/** setpriv's arguments that drop every capability for good (the bounding set too, so no exec regains one). */
const NO_CAPABILITIES = ['--inh-caps=-all', '--bounding-set=-all', '--']

let setprivWorks: boolean | undefined
/** Whether this process is root and `setpriv` can start a program without capabilities here (tried once). */
export function canDropCapabilities(): boolean {
  if (setprivWorks === undefined) {
    setprivWorks = process.getuid?.() === 0 && spawnSync('setpriv', [...NO_CAPABILITIES, 'true'], { stdio: 'ignore', timeout: 10_000 }).status === 0
  }
  return setprivWorks
}

/** The wire to one runner process: send a request, hear its replies (`onReply`). */
interface RunnerLink {
  child: ChildProcess
  /** Whether it has replied at all (a native runner that never did, did not start). */
  heard: boolean
  /** Closed by us: its end is not a failure to start. */
  closed?: boolean
  run(id: number, req: ProcessRequest): void
  kill(id: number): void
  close(): void
}

export interface ProcessRunnerOptions {
  /** Where the native runner is (default NATIVE_RUNNER; tests point it elsewhere). */
  nativeProgram?: string
  log?: Logger
}

export class ProcessRunner {
  private link: RunnerLink | undefined
  private readonly pending = new Map<number, Pending>()
  private nextId = 0
  private current: RunnerKind
  private readonly nativeProgram: string
  private readonly log: Logger | undefined
  /**
   * @param maxRunning most commands running at once; more wait in the runner's queue
   * @param kind which runner (default: the native one where it was built). A
   *   native runner that cannot start at all (a binary built for another
   *   machine, say) is replaced by the Node one, with a warning, and the
   *   commands sent to it (none had started) go to the Node one.
   */
  constructor(
    private readonly maxRunning: number,
    kind: RunnerKind = defaultRunnerKind(),
    opts: ProcessRunnerOptions = {},
  ) {
    this.current = kind
    this.nativeProgram = opts.nativeProgram ?? NATIVE_RUNNER
    this.log = opts.log
  }

  /** The runner in use. */
  get kind(): RunnerKind {
    return this.current
  }

  /** Commands run as root without capabilities: they cannot change a file that is neither theirs nor writable (see the top). Known once asked (a worker that runs nothing does not try setpriv; a local build asks for its isolation note). */
  get withoutCapabilities(): boolean {
    return canDropCapabilities()
  }

  /** Run a command when a slot is free; `onStart` is called when it starts. */
  run(req: ProcessRequest, opts: { signal?: AbortSignal; onStart?: () => void } = {}): Promise<ProcessResult> {
    const { signal } = opts
    const link = this.ensureLink()
    const id = ++this.nextId
    return new Promise<ProcessResult>((resolve, reject) => {
      const onAbort = (): void => this.pending.get(id)?.link.kill(id)
      if (signal?.aborted) {
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
        return
      }
      this.pending.set(id, {
        req,
        link,
        onStart: opts.onStart,
        resolve: (r) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(r)
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort)
          reject(e)
        },
      })
      signal?.addEventListener('abort', onAbort, { once: true })
      try {
        link.run(id, req)
      } catch (err) {
        this.pending.get(id)?.reject(err as Error)
        this.pending.delete(id)
      }
    })
  }

  /** Start the runner now, so its start-up overlaps other work (it is also started on first use). */
  warmUp(): void {
    this.ensureLink()
  }

  /** Stop the runner (it kills whatever it still runs). */
  close(): void {
    const link = this.link
    this.link = undefined
    if (!link) return
    link.closed = true
    link.close()
  }

  private ensureLink(): RunnerLink {
    if (this.link && this.link.child.exitCode === null && this.link.child.signalCode === null) return this.link
    const kind = this.current
    const link = kind === 'native' ? this.nativeLink() : this.nodeLink()
    const lose = (why: string): void => {
      if (this.link === link) this.link = undefined
      const lost = [...this.pending].filter(([, p]) => p.link === link)
      if (kind === 'native' && !link.heard && !link.closed && lost.length > 0) {
        // It never answered: it did not start (a missing or foreign binary; setpriv's exec failing). Nothing it was sent has started.
        this.log?.warn({ program: this.nativeProgram, why }, 'the native process runner could not start; the Node one runs the commands')
        this.current = 'node'
        for (const [id, p] of lost) {
          p.link = this.ensureLink()
          p.link.run(id, p.req)
        }
        return
      }
      const err = new Error(`${why} with ${lost.length} command(s) in flight`)
      for (const [id, p] of lost) {
        this.pending.delete(id)
        p.reject(err)
      }
    }
    link.child.on('exit', (code, sig) => lose(`the ${kind} process runner exited (${sig ?? `code ${code}`})`))
    link.child.on('error', (err) => lose(`the ${kind} process runner could not start (${err.message})`))
    this.link = link
    return link
  }

  /** A reply about command `id`: it started, ended, was cancelled or could not start. */
  private onReply(id: number, reply: { type: 'started' } | { type: 'done'; result: ProcessResult } | { type: 'cancelled' } | { type: 'error'; message: string }): void {
    const p = this.pending.get(id)
    if (!p) return
    if (reply.type === 'started') {
      p.onStart?.()
      return
    }
    this.pending.delete(id)
    if (reply.type === 'cancelled') p.reject(new Error('cancelled before it started'))
    else if (reply.type === 'done') p.resolve(reply.result)
    else p.reject(new Error(reply.message))
  }

  /** Start `program args` as the runner, without capabilities when that works (see the top). */
  private startRunner(program: string, args: string[], opts: SpawnOptions): ChildProcess {
    return this.withoutCapabilities ? spawn('setpriv', [...NO_CAPABILITIES, program, ...args], opts) : spawn(program, args, opts)
  }

  private nodeLink(): RunnerLink {
    const opts: SpawnOptions = { serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: nodeChildEnv() }
    const child = this.withoutCapabilities ? this.startRunner(process.execPath, [RUNNER_MAIN, String(this.maxRunning)], opts) : fork(RUNNER_MAIN, [String(this.maxRunning)], { ...opts, execArgv: [] })
    child.on('message', (msg: RunnerReply) => {
      if (msg.type === 'done') {
        // Buffers arrive as Uint8Array through the structured clone.
        this.onReply(msg.id, { type: 'done', result: { ...msg.result, stdout: Buffer.from(msg.result.stdout), stderr: Buffer.from(msg.result.stderr) } })
      } else {
        this.onReply(msg.id, msg)
      }
    })
    const send = (msg: RunnerRequest): void => {
      if (child.connected) child.send(msg)
    }
    return {
      child,
      heard: true,
      run: (id, req) => send({ type: 'run', id, req }),
      kill: (id) => send({ type: 'kill', id }),
      close: () => {
        if (child.connected) child.disconnect()
      },
    }
  }

  private nativeLink(): RunnerLink {
    // Its own environment is only PATH, to find setpriv where the probe found it: every command gets exactly the environment it asks for.
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' }
    const child = this.startRunner(this.nativeProgram, [String(this.maxRunning), String(MAX_CAPTURE_BYTES)], { stdio: ['pipe', 'pipe', 'inherit'], env })
    const stdin = child.stdin!
    // A runner that died is reported by its exit (ensureLink); a write after that is dropped, not thrown.
    stdin.on('error', () => {})
    const frames = new FrameReader((f) => this.onNativeReply(f))
    const link: RunnerLink = {
      child,
      heard: false,
      run: (id, req) => stdin.write(encodeRun(id, req)),
      kill: (id) => stdin.write(encodeKill(id)),
      close: () => stdin.end(),
    }
    child.stdout!.on('data', (chunk: Buffer) => {
      link.heard = true
      frames.push(chunk)
    })
    return link
  }

  private onNativeReply(f: Buffer): void {
    const reply = decodeNativeReply(f, (id) => this.pending.get(id)?.req)
    if (reply && reply.type !== 'ready') this.onReply(reply.id, reply)
  }
}

/** A reply of bldr-spawn, decoded (the frame layout is at the top of spawn-helper.c); `extra`: what --in-sandbox adds to `done`. */
export type NativeReply =
  | { type: 'started'; id: number }
  | { type: 'cancelled'; id: number }
  | { type: 'ready'; id: number }
  | { type: 'error'; id: number; message: string }
  | { type: 'done'; id: number; result: ProcessResult; extra: Buffer }

/** Decode one reply frame; `requestOf` gives the request of a command, to say why it could not start. Undefined: not a known reply. */
export function decodeNativeReply(f: Buffer, requestOf: (id: number) => ProcessRequest | undefined): NativeReply | undefined {
  const type = f.readUInt8(0)
  const id = f.readUInt32LE(1)
  if (type === 1) return { type: 'started', id }
  if (type === 3) return { type: 'cancelled', id }
  if (type === 5) return { type: 'ready', id }
  if (type === 4) return { type: 'error', id, message: f.subarray(5).toString() }
  if (type !== 2) return undefined
  const code = f.readInt32LE(5)
  const signo = f.readInt32LE(9)
  const timedOut = f.readUInt8(13) === 1
  const startFailed = f.readUInt8(14)
  const errno = f.readInt32LE(15)
  const durationMs = f.readDoubleLE(19)
  const outLen = f.readUInt32LE(27)
  const outDropped = f.readUInt32LE(31)
  const errLen = f.readUInt32LE(35)
  const errDropped = f.readUInt32LE(39)
  const stdout = withDropNote(f.subarray(43, 43 + outLen), outDropped)
  let stderr = withDropNote(f.subarray(43 + outLen, 43 + outLen + errLen), errDropped)
  const req = requestOf(id)
  if (startFailed !== 0 && req) stderr = cannotRunMessage(req, startFailure(req, startFailed, errno))
  const signal = signo === 0 ? null : ((Object.entries(constants.signals).find(([, n]) => n === signo)?.[0] as NodeJS.Signals | undefined) ?? null)
  return { type: 'done', id, result: { exitCode: code < 0 ? null : code, signal, timedOut, stdout, stderr, durationMs }, extra: f.subarray(43 + outLen + errLen) }
}

/** Why a command could not start, as the Node runner says it (run-process.ts). */
function startFailure(req: ProcessRequest, stage: number, errno: number): string {
  const code = Object.entries(constants.errno).find(([, n]) => n === errno)?.[0] ?? `errno ${errno}`
  if (stage === 1) return `cannot enter its folder ${req.cwd} (${code})`
  return code === 'ENOENT' ? notFoundOnPath(req) : `spawn ${req.argv[0]} ${code}`
}

/** Captured bytes, with the note run-process.ts's Capture adds when some were not kept. */
function withDropNote(kept: Buffer, dropped: number): Buffer {
  const own = Buffer.from(kept) // not a view of the frame, which is dropped
  return dropped > 0 ? Buffer.concat([own, Buffer.from(droppedNote(dropped))]) : own
}

/** A kill request for bldr-spawn. */
export function encodeKill(id: number): Buffer {
  const b = Buffer.alloc(9)
  b.writeUInt32LE(5, 0)
  b.writeUInt8(2, 4)
  b.writeUInt32LE(id, 5)
  return b
}

/** A run request for bldr-spawn (the frame layout is at the top of spawn-helper.c); `inSandbox`: with the folder to keep, for `--in-sandbox`. */
export function encodeRun(id: number, req: ProcessRequest, inSandbox = false): Buffer {
  const env = Object.entries(req.env).map(([k, v]) => `${k}=${v}`)
  const strings = [req.cwd, ...req.argv, ...env, ...(inSandbox ? [req.keep ?? ''] : [])]
  for (const s of strings) if (s.includes('\0')) throw new Error(`a NUL byte in ${JSON.stringify(s)}: a command's arguments, environment and folder cannot hold one`)
  if (req.argv.length === 0) throw new Error('an empty command')
  let size = 0
  for (const s of strings) size += Buffer.byteLength(s) + 1
  const b = Buffer.allocUnsafe(4 + 17 + size)
  b.writeUInt32LE(17 + size, 0)
  b.writeUInt8(1, 4)
  b.writeUInt32LE(id, 5)
  b.writeUInt32LE(Math.max(0, Math.min(0xffffffff, Math.round(req.timeoutMs))), 9)
  b.writeUInt32LE(req.argv.length, 13)
  b.writeUInt32LE(env.length, 17)
  let off = 21
  for (const s of strings) {
    off += b.write(s, off)
    b.writeUInt8(0, off++)
  }
  return b
}

/** Splits a byte stream into frames: a little-endian u32 length, then that many bytes. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0)
  constructor(private readonly onFrame: (f: Buffer) => void) {}
  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    let off = 0
    while (this.buf.length - off >= 4) {
      const len = this.buf.readUInt32LE(off)
      if (this.buf.length - off - 4 < len) break
      this.onFrame(this.buf.subarray(off + 4, off + 4 + len))
      off += 4 + len
    }
    this.buf = off === 0 ? this.buf : this.buf.subarray(off)
  }
}
