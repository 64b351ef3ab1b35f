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
import { join } from 'node:path'
import { nodeChildEnv } from '../src/node-child-env.js'
import { SANDBOX_DIST_DIR } from './dist-dir.js'
import type { RunnerReply, RunnerRequest } from './runner-main.js'
import type { ProcessRequest, ProcessResult } from './run-process.js'

const RUNNER_MAIN = join(SANDBOX_DIST_DIR, 'runner-main.js')

interface Pending {
  resolve: (r: ProcessResult) => void
  reject: (e: Error) => void
  onStart: (() => void) | undefined
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

export class ProcessRunner {
  private child: ChildProcess | undefined
  private readonly pending = new Map<number, Pending>()
  private nextId = 0
  /** @param maxRunning most commands running at once; more wait in the runner's queue */
  constructor(private readonly maxRunning: number) {}

  /** Commands run as root without capabilities: they cannot change a file that is neither theirs nor writable (see the top). Known once asked (a build that runs nothing does not try setpriv). */
  get withoutCapabilities(): boolean {
    return canDropCapabilities()
  }

  /** Run a command when a slot is free; `onStart` is called when it starts. */
  run(req: ProcessRequest, opts: { signal?: AbortSignal; onStart?: () => void } = {}): Promise<ProcessResult> {
    const { signal } = opts
    const child = this.ensureChild()
    const id = ++this.nextId
    return new Promise<ProcessResult>((resolve, reject) => {
      const onAbort = (): void => {
        child.send({ type: 'kill', id } satisfies RunnerRequest)
      }
      if (signal?.aborted) {
        reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
        return
      }
      this.pending.set(id, {
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
      child.send({ type: 'run', id, req } satisfies RunnerRequest)
    })
  }

  /** Start the runner now, so its start-up overlaps other work (it is also started on first use). */
  warmUp(): void {
    this.ensureChild()
  }

  /** Stop the runner (it kills whatever it still runs). */
  close(): void {
    const child = this.child
    this.child = undefined
    if (child?.connected) child.disconnect()
  }

  private ensureChild(): ChildProcess {
    if (this.child?.connected) return this.child
    const opts: SpawnOptions = { serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: nodeChildEnv() }
    const child = this.withoutCapabilities
      ? spawn('setpriv', [...NO_CAPABILITIES, process.execPath, RUNNER_MAIN, String(this.maxRunning)], opts)
      : fork(RUNNER_MAIN, [String(this.maxRunning)], { ...opts, execArgv: [] })
    child.on('message', (msg: RunnerReply) => {
      const p = this.pending.get(msg.id)
      if (!p) return
      if (msg.type === 'started') {
        p.onStart?.()
        return
      }
      this.pending.delete(msg.id)
      if (msg.type === 'cancelled') {
        p.reject(new Error('cancelled before it started'))
      } else if (msg.type === 'done') {
        // Buffers arrive as Uint8Array through the structured clone.
        p.resolve({ ...msg.result, stdout: Buffer.from(msg.result.stdout), stderr: Buffer.from(msg.result.stderr) })
      } else {
        p.reject(new Error(msg.message))
      }
    })
    child.on('exit', (code, sig) => {
      if (this.child === child) this.child = undefined
      const err = new Error(`the process runner exited (${sig ?? `code ${code}`}) with ${this.pending.size} command(s) in flight`)
      for (const p of this.pending.values()) p.reject(err)
      this.pending.clear()
    })
    this.child = child
    return child
  }
}
