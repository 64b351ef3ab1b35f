/**
 * Warm sandboxes: what the docker and bwrap backends share.
 *
 * Setting a sandbox up costs far more than a small action: a container start
 * ~250 ms here, a bubblewrap start (namespaces, mounts) ~6 ms, against ~2 ms
 * for a plain spawn of a compiler. So a sandbox is not set up per action: it
 * runs a small runner (container-runner.ts) that stays up and runs one action
 * at a time, sent over its stdin, and the pool keeps at most `slots` of them,
 * each with its own scratch folder bound at /bldr/root.
 *
 * An action takes an idle sandbox whose configuration (network, mounts,
 * limits: its "profile") matches its own, or replaces an idle one that does
 * not. Between actions the scratch folder is reconciled to exactly the next
 * action's inputs (scratch.ts), and the runner kills whatever the last action
 * left running and empties /tmp, so no action sees another's files. A sandbox
 * is replaced after a failure of its action (a non-zero exit, a timeout, a
 * crash) and after `maxUses` actions; `maxUses: 1` gives every action a fresh
 * one ("cold", for comparison). A sandbox that died before the action's
 * command started (killed while idle, its death not yet seen) is replaced and
 * the action tried once more: nothing of it ran.
 *
 * A backend supplies how to start one sandbox for a profile around a scratch
 * folder (a `WarmChannel`: the runner's stdin and stdout, and how to end it).
 *
 * The runner is bldr-spawn (`--in-sandbox`, spawn-helper.c) where it was
 * built, else the Node one (container-runner.ts). The Node one took ~0.1 s to
 * start before a sandbox's first command could (an incremental build waits
 * for that), and each command it started cost a fork of a Node process; the
 * native one starts in about a millisecond. A native runner that cannot
 * start in a sandbox (a binary foreign to the toolchain it finds there) is
 * replaced by the Node one for the rest of the pool's life, with a warning.
 */
import { chownSync, copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Readable, Writable } from 'node:stream'
import type { Logger } from 'pino'
import type { ContainerReply } from './container-runner.js'
import { decodeNativeReply, defaultRunnerKind, encodeKill, encodeRun, FrameReader, NATIVE_RUNNER, type RunnerKind } from './process-runner.js'
import { MAX_CAPTURE_BYTES, type ProcessRequest } from './run-process.js'
import { SANDBOX_DIST_DIR } from './dist-dir.js'
import { collectResult, type ScratchBackendInit } from './scratch-backend.js'
import { ScratchPool, type Scratch } from './scratch.js'
import { refuseExecRoot, SandboxError, type RunOptions, type Sandbox, type SandboxName, type SandboxResult, type SandboxSpec } from './types.js'

/** Where the action's folders appear inside a warm sandbox (as in every backend that isolates, so outputs match). */
export const WARM_EXEC_ROOT = '/bldr/root'
export const WARM_HOME = '/bldr/home'
/** Where the runner's files and the node binary that runs it are bound. */
export const RUNNER_DIR = '/bldr/runner'
export const RUNNER_NODE = '/bldr/node'
/** The runner's command line inside the sandbox: the Node runner, or bldr-spawn. */
export const RUNNER_ARGV = [RUNNER_NODE, '--max-semi-space-size=1', `${RUNNER_DIR}/container-runner.js`]
export const NATIVE_RUNNER_ARGV = [`${RUNNER_DIR}/bldr-spawn`, '--in-sandbox', String(MAX_CAPTURE_BYTES)]
/** Memory added to an action's `maxMemory` for the runner beside it in its sandbox. */
export const RUNNER_MEMORY_BYTES = 48 * 1024 * 1024
/** Actions a sandbox runs before it is replaced. */
const DEFAULT_MAX_USES = 200
/** How long a new sandbox may take to say it is ready. */
const START_TIMEOUT_MS = 30_000
/** How long past its timeout an action's sandbox may stay silent before it is ended. */
const WATCHDOG_GRACE_MS = 30_000

/** Everything about an action that its sandbox must be made for; actions with equal profiles share sandboxes. */
export interface Profile {
  network: boolean
  writeHome: boolean
  writeTmp: boolean
  readPaths: readonly string[]
  writePaths: readonly string[]
  memoryBytes?: number
  /** Cores. */
  cpu?: number
  /** Where the action's folder is shown: WARM_EXEC_ROOT, or the client's project path (`execRoot`). */
  execRootPath: string
}

/** One started sandbox, as the pool sees it. */
export interface WarmChannel {
  /** A short name for logs and errors (a container id, a pid). */
  readonly id: string
  /** The runner's stdin. */
  readonly input: Writable
  /** The runner's stdout (protocol lines only). */
  readonly output: Readable
  /** Called once when the sandbox has ended (the runner's stdout closed). */
  onEnd(cb: () => void): void
  /** End the sandbox and release what it holds. */
  destroy(): Promise<void>
  /** After it ended: was it killed for memory, and what else is known. */
  deathCause(): Promise<{ oomKilled: boolean; detail: string }>
}

export interface WarmBackend {
  readonly name: SandboxName
  readonly isolationNote: string
  /** Once, before the first sandbox: check what the backend needs (a daemon, an image). */
  prepare(): Promise<void>
  /** Why this backend cannot run `spec` as asked (besides what every warm backend checks), or undefined. */
  refuse?(spec: SandboxSpec): string | undefined
  /** Start one sandbox for `profile` around `scratch`, its runner's files in `runnerDir`, running `runnerArgv` (RUNNER_ARGV or NATIVE_RUNNER_ARGV). */
  start(profile: Profile, scratch: Scratch, runnerDir: string, runnerArgv: readonly string[]): Promise<WarmChannel>
  /** Who owns the scratch folders, when actions run as another user than bldr (see scratch.ts). */
  readonly folderOwner?: { uid: number; gid: number }
  /** The uid (outside any user namespace) its actions run as, without capabilities (see scratch.ts). */
  readonly actionUid?: number
}

export interface WarmPoolInit extends ScratchBackendInit {
  /** Actions per sandbox before it is replaced; 1 gives every action a fresh one. Default 200. */
  maxUses?: number
  /** The runner in its sandboxes (default: the native one where it was built). */
  runner?: RunnerKind
  /** Where bldr-spawn is (default NATIVE_RUNNER; tests point it elsewhere). */
  nativeProgram?: string
}

function profileOf(spec: SandboxSpec): Profile {
  const c = spec.capabilities
  return {
    network: c.network,
    writeHome: c.writeHome,
    writeTmp: c.writeTmp,
    readPaths: c.readPaths,
    writePaths: c.writePaths,
    ...(c.maxMemoryBytes !== undefined ? { memoryBytes: c.maxMemoryBytes } : {}),
    ...(c.maxCpu !== undefined ? { cpu: c.maxCpu } : {}),
    execRootPath: spec.execRoot ?? WARM_EXEC_ROOT,
  }
}

/** What no warm backend can do. */
function refuseCommon(spec: SandboxSpec): string | undefined {
  const c = spec.capabilities
  const relative = [...c.readPaths, ...c.writePaths].find((p) => !isAbsolute(p))
  if (relative !== undefined) return `capability path ${JSON.stringify(relative)} must be absolute`
  if (c.maxCpu !== undefined && !(c.maxCpu >= 0.01)) return `maxCpu must be at least 0.01 (got ${c.maxCpu})`
  return refuseExecRoot(spec.execRoot)
}

export function createWarmPool(init: WarmPoolInit, backend: WarmBackend): Sandbox {
  return new WarmPool(init, backend)
}

class WarmPool implements Sandbox {
  readonly name: SandboxName
  readonly slots: number
  readonly isolationNote: string
  private readonly maxUses: number
  private readonly log: Logger | undefined
  private readonly pool: ScratchPool
  private readonly slotGate: Gate
  /** Sandboxes ready for an action. */
  private readonly idle: WarmRunner[] = []
  /** Sandboxes that exist or are being made (idle, busy, starting). */
  private live = 0
  /** Removals under way, awaited by close(). */
  private readonly removing = new Set<Promise<void>>()
  private ready: Promise<string> | undefined
  /** Sandboxes started ahead of their action (warm()), by profile: an action of that profile waits for it instead of starting another. */
  private readonly warming = new Map<string, Promise<void>>()
  /** The runner's files, bound read-only into every sandbox. */
  private readonly runnerDir: string
  /** The runner its sandboxes start. */
  private runnerKind: RunnerKind
  private closed = false

  constructor(
    private readonly init: WarmPoolInit,
    private readonly backend: WarmBackend,
  ) {
    this.name = backend.name
    this.isolationNote = backend.isolationNote
    this.slots = init.slots
    this.maxUses = Math.max(1, init.maxUses ?? DEFAULT_MAX_USES)
    this.log = init.log?.child({ component: `sandbox-${backend.name}` })
    this.pool = new ScratchPool(init.cas, init.scratchRoot, {
      ...(init.log ? { log: init.log } : {}),
      ...(backend.folderOwner ? { owner: backend.folderOwner } : {}),
      ...(backend.actionUid !== undefined ? { actionUid: backend.actionUid } : {}),
    })
    this.slotGate = new Gate(init.slots)
    this.runnerDir = join(init.scratchRoot, `${process.pid}-runner`)
    this.runnerKind = init.runner ?? (init.nativeProgram !== undefined ? 'native' : defaultRunnerKind())
  }

  async run(spec: SandboxSpec, opts: RunOptions = {}): Promise<SandboxResult> {
    const refusal = refuseCommon(spec) ?? this.backend.refuse?.(spec)
    if (refusal) throw new SandboxError(this.name, spec.actionId, refusal)
    const runnerDir = await this.prepare(spec.actionId)
    await this.slotGate.enter(opts.signal)
    let warm: WarmRunner | undefined
    let healthy = false
    let keep = false
    try {
      let proc: ProcessOutcome | undefined
      for (let attempt = 1; !proc; attempt++) {
        warm = await this.take(profileOf(spec), runnerDir, spec.actionId)
        try {
          await this.pool.acquire(spec, warm.scratch)
        } catch (err) {
          throw new SandboxError(this.name, spec.actionId, `staging inputs failed: ${(err as Error).message}`, { cause: err })
        }
        if (attempt === 1) opts.onStart?.()
        try {
          proc = await warm.run(processRequest(spec), spec, opts.signal)
        } catch (err) {
          if (!(err instanceof NotStartedError) || attempt > 1) throw err
          this.log?.info({ sandbox: warm.id, action: spec.actionId }, 'a sandbox died before the action started in it; trying a new one')
          this.giveBack(warm, false, false)
          warm = undefined
        }
      }
      const owner = this.backend.folderOwner
      const result = await collectResult(this.init, this.pool, this.name, spec, warm!.scratch, proc, {
        // Outputs made by the sandbox's user: the store's blobs must be bldr's.
        beforeStore: owner && owner.uid !== process.getuid?.() ? (_output, abs) => chownSync(abs, process.getuid!(), process.getgid!()) : undefined,
      })
      keep = result.keptAt !== undefined
      healthy = result.exitCode === 0 && !result.timedOut
      return result
    } finally {
      if (warm) this.giveBack(warm, healthy, keep)
      this.slotGate.leave()
    }
  }

  /**
   * Start a sandbox for `spec`'s profile ahead of its action, unless one is
   * idle or starting for it, or every slot has one. A worker calls this while
   * it fetches an action's inputs: its first action of a build then does not
   * wait for the sandbox's start (~150 ms for bwrap on 2 cores) after the
   * fetch. A failure is left for the action's own start to report.
   */
  warm(spec: SandboxSpec): void {
    if (this.closed || (refuseCommon(spec) ?? this.backend.refuse?.(spec)) !== undefined) return
    const profile = profileOf(spec)
    const key = JSON.stringify(profile)
    if (this.warming.has(key) || this.live >= this.slots || this.idle.some((w) => w.key === key && !w.dead)) return
    const started = (async () => {
      const runner = await this.startRunner(profile, key, await this.prepare(spec.actionId), spec.actionId)
      if (this.closed) this.remove(runner)
      else this.idle.push(runner)
    })()
      .catch((err: unknown) => this.log?.debug({ err, action: spec.actionId }, 'a sandbox started ahead of its action failed; the action starts its own'))
      .finally(() => this.warming.delete(key))
    this.warming.set(key, started)
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.all([...this.warming.values()])
    for (const w of this.idle.splice(0)) this.remove(w)
    await Promise.all([...this.removing])
    this.pool.close()
    rmSync(this.runnerDir, { recursive: true, force: true })
  }

  /** Once: the backend's checks, then the runner's files where sandboxes can bind them. */
  private prepare(actionId: string): Promise<string> {
    this.ready ??= (async () => {
      await this.backend.prepare()
      // Named like the scratch folders (`<pid>-…`), so a bldr that died leaves it for the next one's sweep.
      return writeRunnerFiles(this.runnerDir, this.runnerKind === 'native' ? (this.init.nativeProgram ?? NATIVE_RUNNER) : undefined)
    })()
    return this.ready.catch((err: unknown) => {
      this.ready = undefined // try again for the next action: a daemon may come back
      const reason = err instanceof SandboxError ? err.reason : (err as Error).message
      throw new SandboxError(this.name, actionId, reason, { cause: err })
    })
  }

  /** An idle sandbox for `profile`, or a new one (replacing an idle one of another profile when all slots have one). */
  private async take(profile: Profile, runnerDir: string, actionId: string): Promise<WarmRunner> {
    const key = JSON.stringify(profile)
    await this.warming.get(key)
    for (const w of this.idle.filter((w) => w.dead)) this.remove(this.idle.splice(this.idle.indexOf(w), 1)[0]!)
    const i = this.idle.findIndex((w) => w.key === key)
    if (i >= 0) return this.idle.splice(i, 1)[0]!
    if (this.live >= this.slots && this.idle.length > 0) this.remove(this.idle.shift()!)
    return this.startRunner(profile, key, runnerDir, actionId)
  }

  /** A new sandbox for `profile` around a new scratch folder, counted live. */
  private async startRunner(profile: Profile, key: string, runnerDir: string, actionId: string): Promise<WarmRunner> {
    const scratch = this.pool.create()
    this.live++
    let kind = this.runnerKind
    try {
      for (;;) {
        const channel = await this.backend.start(profile, scratch, runnerDir, kind === 'native' ? NATIVE_RUNNER_ARGV : RUNNER_ARGV)
        try {
          return await WarmRunner.start(this.name, key, channel, scratch, kind, this.log)
        } catch (err) {
          if (kind !== 'native' || !(err instanceof RunnerStartError)) throw err
          // The sandbox started but bldr-spawn did not run in it: the Node runner does, from now on.
          this.log?.warn({ err: err.message }, 'the native runner could not start in a sandbox; sandboxes run the Node one')
          this.runnerKind = kind = 'node'
        }
      }
    } catch (err) {
      this.live--
      this.pool.discard(scratch)
      const reason = err instanceof SandboxError ? err.reason : (err as Error).message
      throw new SandboxError(this.name, actionId, `could not start a sandbox: ${reason}`, { cause: err })
    }
  }

  private giveBack(warm: WarmRunner, healthy: boolean, keep: boolean): void {
    const usable = this.pool.release(warm.scratch, { keep, retain: true })
    if (!healthy || !usable || warm.dead || this.closed || ++warm.uses >= this.maxUses) this.remove(warm, { keepFolder: keep })
    else this.idle.push(warm)
  }

  private remove(warm: WarmRunner, opts: { keepFolder?: boolean } = {}): void {
    this.live--
    const p = warm
      .destroy()
      .catch((err: unknown) => this.log?.warn({ err, sandbox: warm.id }, 'could not end a sandbox'))
      .finally(() => {
        if (!opts.keepFolder) this.pool.discard(warm.scratch)
        this.removing.delete(p)
      })
    this.removing.add(p)
  }
}

function processRequest(spec: SandboxSpec): ProcessRequest {
  const root = spec.execRoot ?? WARM_EXEC_ROOT
  const cwd = spec.cwd ? join(root, spec.cwd) : root
  const env: Record<string, string> = { ...spec.env, HOME: WARM_HOME, PWD: cwd }
  if (spec.capabilities.writeTmp) env['TMPDIR'] = '/tmp'
  return { argv: spec.argv, env, cwd, timeoutMs: spec.timeoutMs, keep: root }
}

/** The runner's files, where a sandbox can bind them: the Node runner, the one module it uses, a package.json saying they are ES modules, and bldr-spawn (`native`). */
function writeRunnerFiles(dir: string, native: string | undefined): string {
  mkdirSync(dir, { recursive: true })
  for (const f of ['container-runner.js', 'run-process.js']) copyFileSync(join(SANDBOX_DIST_DIR, f), join(dir, f))
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n')
  // Copied with its mode, so the sandbox's user may run it.
  if (native && existsSync(native)) copyFileSync(native, join(dir, 'bldr-spawn'))
  return dir
}

type ProcessOutcome = Omit<SandboxResult, 'outputs' | 'missingOutputs' | 'keptAt'>

/** What a runner says, decoded from either protocol. */
type WarmReply = { type: 'ready' } | { type: 'started'; id: number } | { type: 'done'; id: number; outcome: ProcessOutcome } | { type: 'error'; id: number; message: string }

/** How requests are written to a runner and its replies read: JSON lines (container-runner.ts) or bldr-spawn's frames. */
interface RunnerCodec {
  run(id: number, req: ProcessRequest): string | Buffer
  kill(id: number): string | Buffer
  listen(output: Readable, onReply: (r: WarmReply) => void, requestOf: (id: number) => ProcessRequest | undefined): void
}

const jsonCodec: RunnerCodec = {
  run: (id, req) => `${JSON.stringify({ type: 'run', id, req })}\n`,
  kill: (id) => `${JSON.stringify({ type: 'kill', id })}\n`,
  listen: (output, onReply) => {
    createInterface({ input: output }).on('line', (line) => {
      let reply: ContainerReply
      try {
        reply = JSON.parse(line) as ContainerReply
      } catch {
        return
      }
      if (reply.type !== 'done') return onReply(reply)
      const r = reply.result
      const outcome: ProcessOutcome = { exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, ...(r.oomKilled ? { oomKilled: true } : {}), ...(r.cpuMs !== undefined ? { cpuMs: r.cpuMs } : {}), stdout: Buffer.from(r.stdout, 'base64'), stderr: Buffer.from(r.stderr, 'base64'), durationMs: r.durationMs }
      onReply({ type: 'done', id: reply.id, outcome })
    })
  },
}

const nativeCodec: RunnerCodec = {
  run: (id, req) => encodeRun(id, req, true),
  kill: encodeKill,
  listen: (output, onReply, requestOf) => {
    const frames = new FrameReader((f) => {
      const reply = decodeNativeReply(f, requestOf)
      if (!reply || reply.type === 'cancelled') return
      if (reply.type !== 'done') return onReply(reply)
      // --in-sandbox adds whether the cgroup killed it for memory, and its CPU time.
      const oomKilled = reply.extra.length >= 9 && reply.extra.readUInt8(0) === 1
      const cpuMs = reply.extra.length >= 9 ? Math.round(reply.extra.readDoubleLE(1)) : undefined
      onReply({ type: 'done', id: reply.id, outcome: { ...reply.result, ...(oomKilled ? { oomKilled: true } : {}), ...(cpuMs !== undefined ? { cpuMs } : {}) } })
    })
    output.on('data', (chunk: Buffer) => frames.push(chunk))
  },
}

/** One started sandbox and the runner in it. */
class WarmRunner {
  /** Actions run in it so far. */
  uses = 0
  /** Why it can no longer be used (its runner ended), if so. */
  dead: string | undefined
  private nextId = 0
  private waiting: { id: number; req?: ProcessRequest; resolve: (r: WarmReply) => void; reject: (e: Error) => void } | undefined
  /** The runner said the current action's command is running. */
  private started = false

  private constructor(
    private readonly sandbox: SandboxName,
    readonly key: string,
    private readonly channel: WarmChannel,
    readonly scratch: Scratch,
    private readonly codec: RunnerCodec,
  ) {}

  get id(): string {
    return this.channel.id
  }

  /** Wait for the runner (`kind`) in `channel` to say it is ready; a RunnerStartError if it does not. */
  static async start(sandbox: SandboxName, key: string, channel: WarmChannel, scratch: Scratch, kind: RunnerKind, log: Logger | undefined): Promise<WarmRunner> {
    const warm = new WarmRunner(sandbox, key, channel, scratch, kind === 'native' ? nativeCodec : jsonCodec)
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`its runner did not start within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS)
        warm.waiting = {
          id: -1,
          resolve: () => {
            clearTimeout(timer)
            resolve()
          },
          reject: (e) => {
            clearTimeout(timer)
            reject(e)
          },
        }
        warm.codec.listen(channel.output, (r) => warm.onReply(r), (id) => (warm.waiting?.id === id ? warm.waiting.req : undefined))
        channel.onEnd(() => warm.onEnd())
      })
    } catch (err) {
      const cause = await channel.deathCause().catch(() => undefined)
      await channel.destroy().catch(() => undefined)
      throw new RunnerStartError(`${(err as Error).message}${cause?.detail ? ` (${cause.detail})` : ''}`, { cause: err })
    }
    log?.debug({ sandbox: warm.id, runner: kind }, 'sandbox ready')
    return warm
  }

  /** Run one action; resolves with how it ended (a memory kill of the whole sandbox included). */
  async run(req: ProcessRequest, spec: SandboxSpec, signal?: AbortSignal): Promise<ProcessOutcome> {
    if (this.dead) throw new NotStartedError(this.sandbox, spec.actionId, `sandbox ${this.id} ${this.dead}`)
    const id = ++this.nextId
    this.started = false
    const onAbort = (): void => this.send(this.codec.kill(id))
    signal?.addEventListener('abort', onAbort, { once: true })
    let watchdog: NodeJS.Timeout | undefined
    try {
      const reply = await new Promise<WarmReply>((resolve, reject) => {
        this.waiting = { id, req, resolve, reject }
        watchdog = setTimeout(() => {
          this.dead = `did not answer within ${((spec.timeoutMs + WATCHDOG_GRACE_MS) / 1000).toFixed(0)} s`
          reject(new Error(this.dead))
        }, spec.timeoutMs + WATCHDOG_GRACE_MS)
        this.send(this.codec.run(id, req))
      })
      if (reply.type === 'error') throw new SandboxError(this.sandbox, spec.actionId, `sandbox ${this.id}: ${reply.message}`)
      if (reply.type !== 'done') throw new SandboxError(this.sandbox, spec.actionId, `sandbox ${this.id} answered out of turn`)
      return reply.outcome
    } catch (err) {
      if (err instanceof SandboxError) throw err
      // The runner is gone: if the kernel killed it for memory, the action did that.
      const cause = await this.channel.deathCause().catch(() => undefined)
      if (cause?.oomKilled && this.started) return { exitCode: null, signal: 'SIGKILL', timedOut: false, oomKilled: true, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), durationMs: 0 }
      const reason = `sandbox ${this.id} ${(err as Error).message}${cause?.detail ? ` (${cause.detail})` : ''}`
      throw this.started ? new SandboxError(this.sandbox, spec.actionId, reason, { cause: err }) : new NotStartedError(this.sandbox, spec.actionId, reason, { cause: err })
    } finally {
      clearTimeout(watchdog)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** End the sandbox. */
  async destroy(): Promise<void> {
    this.dead ??= 'was removed'
    await this.channel.destroy()
  }

  private send(bytes: string | Buffer): void {
    this.channel.input.write(bytes)
  }

  private onReply(reply: WarmReply): void {
    const w = this.waiting
    if (!w) return
    if (reply.type === 'ready' ? w.id !== -1 : reply.id !== w.id) return
    if (reply.type === 'started') {
      this.started = true
      return
    }
    this.waiting = undefined
    w.resolve(reply)
  }

  private onEnd(): void {
    this.dead ??= 'stopped (its runner exited)'
    const w = this.waiting
    this.waiting = undefined
    w?.reject(new Error(this.dead))
  }
}

/** A sandbox's runner never said it was ready. */
class RunnerStartError extends Error {}

/** The sandbox was gone before the action's command started: nothing of the action ran. */
class NotStartedError extends SandboxError {}

/** At most `n` holders at once; the others wait in order. */
class Gate {
  private held = 0
  private readonly queue: (() => void)[] = []
  constructor(private readonly n: number) {}

  async enter(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted()
    if (this.held < this.n) {
      this.held++
      return
    }
    await new Promise<void>((resolve, reject) => {
      const go = (): void => {
        signal?.removeEventListener('abort', onAbort)
        resolve()
      }
      const onAbort = (): void => {
        const i = this.queue.indexOf(go)
        if (i >= 0) this.queue.splice(i, 1)
        reject(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.queue.push(go)
    })
  }

  leave(): void {
    const next = this.queue.shift()
    if (next) next() // the slot passes straight to the next holder
    else this.held--
  }
}
