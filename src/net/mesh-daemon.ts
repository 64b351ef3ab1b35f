/**
 * The local mesh kept between builds (client side). `bldr build --distributed`
 * with no coordinator needs a coordinator and worker processes on this machine;
 * starting them took ~0.3-0.9 s of an incremental build (bench/ninja). A build
 * that finds none running (or one of other settings, which it stops) builds on
 * a mesh of its own, in its process, and at its end starts one in a background
 * process (`bldr mesh serve`, see mesh-daemon-serve.ts) for the builds after it,
 * as Gradle's daemon or Bazel's server are kept: the first build does not wait
 * for it, later builds in the folder reach it. It stops `idle` seconds after
 * its last build, when its folder (`.bldr/mesh`) is removed, on `bldr mesh
 * stop` or `bldr gc`, and with a build that was interrupted or killed or whose
 * worker was lost (what that build's actions left running on the workers ends
 * with them).
 *
 * Builds talk to it over a Unix socket in that folder, one JSON object per
 * line: `hello` (the mesh the build wants) is answered with `ready` (the
 * coordinator's address, once its workers have registered), `restarting`
 * (a mesh of other settings that will stop) or `busy` (other settings, and
 * another build is using it). While a build is connected it is sent
 * `worker-exited` events. `bye` or `interrupted` ends the build's use of it;
 * the reply says whether the mesh stops now, and the socket closes once it has.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { createInterface } from 'node:readline'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isAlive } from '../cas/fs-util.js'
import { dockerOverNetwork, nodeChildEnv } from '../node-child-env.js'
import type { DistributedBuildOptions } from '../build/distributed.js'
import type { Liveness } from './liveness.js'
import type { KeptBuildNode } from './build-client.js'

/** Seconds a local mesh is kept after its last build when the build does not say (`--mesh-idle`, BLDR_MESH_IDLE). */
export const DEFAULT_MESH_IDLE_S = 600

/** What a local mesh is: a build that wants another one gets a new mesh. */
export interface MeshSettings {
  /** The bldr code that runs it (a rebuilt bldr starts a new mesh). */
  version: string
  slots: number[]
  strategy: string
  sandbox: string
  logLevel: string
  liveness: Liveness | null
  /** What the workers see of the environment that changes what they do: PATH, TMPDIR, DOCKER_*, BLDR_FAULT_*. */
  env: Record<string, string>
}

export interface MeshDaemonInfo {
  pid: number
  addr: string
  workers: number[]
  startedAt: number
  settings: MeshSettings
  idleS: number
  builds: number
}

/**
 * A build the daemon is asked to run in its own process for a thin client
 * (hosted-build.ts): the client's command line, folder, environment and bldr
 * code, and whether its output goes to a terminal.
 */
export interface HostedBuildRequest {
  op: 'build'
  argv: string[]
  cwd: string
  env: Record<string, string>
  version: string
  /** The client's stdout is a terminal of this many columns (0: not a terminal). */
  columns: number
  stdoutTty: boolean
}

/** Messages from a build or `bldr mesh` to the daemon. */
export type ToDaemon = { op: 'hello'; settings: MeshSettings; idleS: number } | { op: 'bye' } | { op: 'interrupted' } | { op: 'status' } | { op: 'stop' } | HostedBuildRequest | { op: 'signal' }
/** Messages from the daemon. */
export type FromDaemon =
  | ({ op: 'ready' } & MeshDaemonInfo)
  | { op: 'restarting'; why: string; pid: number }
  | { op: 'busy'; settings: MeshSettings }
  | { op: 'failed'; error: string }
  | { op: 'worker-exited'; text: string; remaining: number }
  | { op: 'bye'; stopping: string | null }
  | ({ op: 'status' } & MeshDaemonInfo)
  | { op: 'stopping'; why: string }
  // A hosted build: not run here (the client builds as without one), its output, its exit status.
  | { op: 'declined'; why: string }
  | { op: 'out'; fd: 1 | 2; text: string }
  // `stopping`: the daemon's pid when it stops after this build (the client waits for it to exit, as a build that said bye does).
  | { op: 'exit'; code: number; stopping: number | null }

/** Longest wait for a stopping daemon to close its socket. */
const STOP_TIMEOUT_MS = 30_000
/** A daemon log longer than this is started afresh by the next daemon. */
const LOG_LIMIT_BYTES = 4 << 20

const BLDR_BIN = fileURLToPath(new URL('../../../bin/bldr.mjs', import.meta.url))

/** The daemon's files in the mesh folder; the socket goes to the temporary folder when its path would be too long for a Unix socket (108 bytes). */
export function daemonFiles(meshDir: string): { socket: string; info: string; log: string; starting: string } {
  const socket = join(meshDir, 'daemon.sock')
  return {
    socket: Buffer.byteLength(socket) < 100 ? socket : join(tmpdir(), `bldr-mesh-${createHash('sha256').update(meshDir).digest('hex').slice(0, 20)}.sock`),
    info: join(meshDir, 'daemon.json'),
    log: join(meshDir, 'daemon.log'),
    starting: join(meshDir, 'daemon.starting'),
  }
}

/**
 * The version a daemon records: this code's package version and when it was
 * built: the bundle's entry (this file is one of its chunks, written with it),
 * or this file when tsc's output runs. The native thin client (thin-client.c)
 * computes the bundle's the same way.
 */
export function codeVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
  const here = fileURLToPath(import.meta.url)
  const built = basename(dirname(here)) === 'bundle' ? join(dirname(here), 'main.js') : here
  return `${pkg.version}+${Math.round(statSync(built).mtimeMs)}`
}

/** The settings of the local mesh a build with these options asks for: this code, and the environment it runs in. */
export function localMeshSettings(opts: Pick<DistributedBuildOptions, 'localSlots' | 'strategy' | 'sandbox' | 'workerLogLevel' | 'liveness' | 'env'>): MeshSettings {
  return {
    version: codeVersion(),
    slots: [...opts.localSlots],
    strategy: opts.strategy,
    sandbox: opts.sandbox ?? 'local',
    logLevel: opts.workerLogLevel ?? 'warn',
    liveness: opts.liveness ?? null,
    env: settingsEnv(opts.env),
  }
}

const ENV_KEYS = /^(PATH|TMPDIR|DOCKER_[A-Z_]+|BLDR_FAULT_[A-Z_]+)$/

/** The environment a mesh's settings record (see MeshSettings.env). */
export function settingsEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {}
  for (const k of Object.keys(env).sort()) if (ENV_KEYS.test(k) && env[k] !== undefined) out[k] = env[k]!
  return out
}

/** How two settings differ, for a note ("slots 1+1 → 2+1"); empty when they are the same. */
export function settingsDiff(a: MeshSettings, b: MeshSettings): string {
  const parts: string[] = []
  const show = (v: unknown): string => (Array.isArray(v) ? v.join('+') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))
  for (const k of ['version', 'slots', 'strategy', 'sandbox', 'logLevel', 'liveness', 'env'] as const) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) parts.push(k === 'env' ? 'environment' : `${k} ${show(a[k])} → ${show(b[k])}`)
  }
  return parts.join(', ')
}

/** One connection to a daemon: messages in order, `worker-exited` events to `onEvent`. */
export class DaemonChannel {
  readonly closed: Promise<void>
  private readonly queue: FromDaemon[] = []
  private waiting: { resolve: (m: FromDaemon) => void; reject: (e: Error) => void } | undefined
  private ended = false
  /** Where `worker-exited` events go. */
  onEvent: (m: Extract<FromDaemon, { op: 'worker-exited' }>) => void = () => {}

  constructor(private readonly socket: Socket) {
    createInterface({ input: socket, crlfDelay: Infinity }).on('line', (line) => {
      let m: FromDaemon
      try {
        m = JSON.parse(line) as FromDaemon
      } catch {
        return
      }
      if (m.op === 'worker-exited') this.onEvent(m)
      else if (this.waiting) {
        const w = this.waiting
        this.waiting = undefined
        w.resolve(m)
      } else this.queue.push(m)
    })
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true
        this.waiting?.reject(new Error('the local mesh closed the connection'))
        this.waiting = undefined
        resolve()
      }),
    )
    socket.on('error', () => {}) // a close follows
  }

  send(m: ToDaemon): void {
    if (!this.ended) this.socket.write(`${JSON.stringify(m)}\n`)
  }

  /** The next message that is not an event. */
  next(): Promise<FromDaemon> {
    const m = this.queue.shift()
    if (m) return Promise.resolve(m)
    if (this.ended) return Promise.reject(new Error('the local mesh closed the connection'))
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }))
  }

  close(): void {
    this.socket.end()
  }

  /** Wait for the daemon to close the socket, at most `ms`. */
  async waitClosed(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined
    const done = await Promise.race([this.closed.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))])
    clearTimeout(timer)
    return done
  }
}

/** A connection to the daemon at `socketPath`, or undefined when none answers there. */
export function connectDaemon(socketPath: string): Promise<DaemonChannel | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection(socketPath)
    const fail = (): void => resolve(undefined)
    socket.once('error', fail)
    socket.once('connect', () => {
      socket.off('error', fail)
      resolve(new DaemonChannel(socket))
    })
  })
}

/** Another build uses a local mesh of other settings in this folder. */
export class MeshBusyError extends Error {
  override readonly name = 'MeshBusyError'
}

export interface LocalMeshLease {
  addr: string
  daemonPid: number
  startedAt: number
  /** Let it go: after a build (`done`) it stays for its idle time unless it must stop; after an interruption it stops unless another build uses it. Resolves once it has stopped, if it does. */
  release(how: 'done' | 'interrupted'): Promise<{ stopping: string | null }>
}

/** What a build running in the daemon's process (for a thin client) is given of its mesh. */
export interface MeshHost {
  /** Why this mesh must not run a build that asks for `settings` (other settings, a worker lost, stopping), or undefined. */
  refuses(settings: MeshSettings): string | undefined
  /** The mesh for this build, kept `idleS` after it; `onWorkerExited` hears of a worker process that ends meanwhile. */
  lease(idleS: number, onWorkerExited: (text: string, remaining: number) => void): Promise<LocalMeshLease & { clientNode: KeptBuildNode }>
}

export interface ReachOptions {
  meshDir: string
  settings: MeshSettings
  idleS: number
  /** A worker process of the mesh ended while this build was connected. */
  onWorkerExited: (text: string, remaining: number) => void
}

/**
 * The kept local mesh of this folder if one with these settings runs (waiting
 * for it to be ready if it is starting); undefined when none runs, or when the
 * one running had other settings and was stopped for it.
 */
export async function reachLocalMesh(opts: ReachOptions): Promise<LocalMeshLease | undefined> {
  const files = daemonFiles(opts.meshDir)
  const channel = await connectDaemon(files.socket)
  if (!channel) return undefined
  channel.onEvent = (m) => opts.onWorkerExited(m.text, m.remaining)
  channel.send({ op: 'hello', settings: opts.settings, idleS: opts.idleS })
  let reply: FromDaemon
  try {
    reply = await channel.next()
  } catch {
    return undefined // it stopped meanwhile (its idle time ran out as this build came)
  }
  if (reply.op === 'ready') {
    const pid = reply.pid
    return {
      addr: reply.addr,
      daemonPid: pid,
      startedAt: reply.startedAt,
      release: async (how) => {
        channel.send({ op: how === 'done' ? 'bye' : 'interrupted' })
        const answer = await channel.next().catch(() => ({ op: 'bye' as const, stopping: null }))
        const stopping = answer.op === 'bye' ? answer.stopping : null
        if (stopping) {
          // Its workers are gone once it closes the socket; it exits just after.
          await stoppedWith(channel, pid)
        } else channel.close()
        return { stopping }
      },
    }
  }
  if (reply.op === 'restarting') {
    // Its workers use the stores this build's will: it is gone first.
    await stoppedWith(channel, reply.pid)
    return undefined
  }
  channel.close()
  if (reply.op === 'busy') throw new MeshBusyError(`the local mesh of ${opts.meshDir} is in use by another build with other settings (${settingsDiff(reply.settings, opts.settings)})`)
  if (reply.op === 'failed') throw new Error(`the local mesh did not start: ${reply.error}${logTail(files.log)}`)
  throw new Error(`the local mesh answered ${JSON.stringify(reply)}`)
}

/**
 * Start `bldr mesh serve` for this folder in the background (its own session,
 * its output to the log) and return its pid without waiting for it: it is for
 * the next builds. Two started at once: the first to listen serves, the other exits.
 */
export function startLocalMeshDaemon(opts: Omit<ReachOptions, 'onWorkerExited'> & { prime?: { buildFile: string; cwd: string } }): number | undefined {
  const files = daemonFiles(opts.meshDir)
  mkdirSync(opts.meshDir, { recursive: true })
  const tooLong = (statSync(files.log, { throwIfNoEntry: false })?.size ?? 0) > LOG_LIMIT_BYTES
  const logFd = openSync(files.log, tooLong ? 'w' : 'a')
  try {
    const args = ['mesh', 'serve', '--mesh-dir', opts.meshDir, '--folder-id', folderId(opts.meshDir) ?? '', '--idle', String(opts.idleS), '--settings', JSON.stringify(opts.settings)]
    if (opts.prime) args.push('--prime', opts.prime.buildFile, '--prime-cwd', opts.prime.cwd)
    const child = spawn(process.execPath, [BLDR_BIN, ...args], {
      detached: true,
      stdio: ['ignore', logFd, logFd],
      cwd: '/',
      env: nodeChildEnv({ keepCaCerts: opts.settings.sandbox === 'docker' && dockerOverNetwork() }),
    })
    child.once('error', () => {}) // then it has no pid
    child.unref()
    // Until it listens (~0.2 s), `bldr mesh status|stop` and gc find it by this.
    if (child.pid !== undefined) writeFileSync(files.starting, `${child.pid}\n`)
    return child.pid
  } finally {
    closeSync(logFd)
  }
}

/** Which folder is at `path` (device and inode): one removed and made again is another. Undefined when none is there. */
export function folderId(path: string): string | undefined {
  const st = statSync(path, { throwIfNoEntry: false })
  return st ? `${st.dev}:${st.ino}` : undefined
}

/** Wait for a daemon that said it stops (pid `pid`) to close `channel` and exit. */
export async function stoppedWith(channel: DaemonChannel, pid: number): Promise<void> {
  if (await channel.waitClosed(STOP_TIMEOUT_MS)) await exitOf(pid, 5_000)
}

/** Wait (at most `ms`) for a process to exit. */
async function exitOf(pid: number, ms: number): Promise<void> {
  const end = Date.now() + ms
  while (isAlive(pid) && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 10))
}

/** The end of the daemon's log, for an error that says what it said. */
function logTail(log: string): string {
  let text: string
  try {
    text = readFileSync(log, 'utf8')
  } catch {
    return ''
  }
  const lines = text.trimEnd().split('\n').slice(-8)
  return lines.length && lines[0] ? `; the end of ${log}:\n${lines.join('\n')}` : ''
}

/**
 * A connection to the folder's daemon; one still starting (named in
 * `daemon.starting`, alive, not yet listening) is waited for, at most 15 s.
 */
async function connectOrWait(meshDir: string): Promise<DaemonChannel | undefined> {
  const files = daemonFiles(meshDir)
  const end = Date.now() + 15_000
  for (;;) {
    // Read before the socket is tried: a daemon removes the file once it listens, so one that began to listen
    // after a try failed is found by the next try. (Read after it, the file could be gone already, and a
    // starting mesh was taken for none: bldr gc then collected its workers' stores while it started.)
    const pid = startingPid(files.starting)
    const channel = await connectDaemon(files.socket)
    if (channel) return channel
    if (pid === undefined || !isAlive(pid) || !isMeshServe(pid) || Date.now() > end) return undefined
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** The pid in a `daemon.starting` file, if there is one. */
function startingPid(file: string): number | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  const pid = Number(text.trim() || NaN)
  return Number.isInteger(pid) ? pid : undefined
}

/** Whether process `pid` is a `bldr mesh serve` (a pid in a stale file may be another program's now). */
function isMeshServe(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').includes(' mesh serve ')
  } catch {
    return false
  }
}

/** The running daemon's account, or undefined when none runs for this folder. */
export async function localMeshStatus(meshDir: string): Promise<MeshDaemonInfo | undefined> {
  const channel = await connectOrWait(meshDir).catch(() => undefined)
  if (!channel) return undefined
  channel.send({ op: 'status' })
  try {
    const m = await channel.next()
    return m.op === 'status' ? m : undefined
  } catch {
    return undefined
  } finally {
    channel.close()
  }
}

/** Stop the daemon of this folder if one runs; its pid, once it has stopped its workers. */
export async function stopLocalMesh(meshDir: string): Promise<number | undefined> {
  const channel = await connectOrWait(meshDir).catch(() => undefined)
  if (!channel) return undefined
  channel.send({ op: 'status' })
  let pid: number | undefined
  try {
    const m = await channel.next()
    if (m.op === 'status') pid = m.pid
    channel.send({ op: 'stop' })
    await channel.next().catch(() => undefined)
  } catch {
    // It stopped by itself meanwhile.
  }
  if (pid === undefined) await channel.waitClosed(STOP_TIMEOUT_MS)
  else await stoppedWith(channel, pid)
  return pid
}
