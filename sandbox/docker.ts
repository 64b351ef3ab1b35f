/**
 * The Docker backend, on dockerode against a real daemon. Each action runs in
 * a container with no network (unless `network`), a read-only root, the
 * toolchain of the host bound read-only (toolchain.ts, as bwrap shows it), its
 * declared inputs in a folder at /bldr/root, a private tmpfs /tmp, no new
 * privileges, every capability dropped, as an unprivileged user, and the
 * limits the action asks for (`Memory`, `NanoCpus`; `PidsLimit` always).
 *
 * Nothing is pulled (no registry is assumed): the image is an empty one made
 * here by importing an empty tarball, since everything an action runs comes
 * from the bound toolchain.
 *
 * Warm containers. Starting a container costs hundreds of milliseconds, so a
 * container is not started per action: each one runs a small runner
 * (container-runner.ts) that stays up and runs one action at a time, sent over
 * its attached stdin. There are at most `slots` containers, each with its own
 * scratch folder bound at /bldr/root; an action takes an idle container whose
 * configuration (network, mounts, limits: its "profile") matches its own, or
 * replaces an idle one that does not. Between actions the scratch folder is
 * reconciled to exactly the next action's inputs (scratch.ts), and the runner
 * kills whatever the last action left running and empties /tmp, so no action
 * sees another's files. A container is replaced after a failure of its action
 * (a non-zero exit, a timeout, a crash) and after `maxUses` actions; with
 * `maxUses: 1` every action gets a fresh container ("cold", for comparison).
 *
 * Rejected: `docker exec` per action (~50 ms over a plain spawn here), and a
 * shell loop reading commands (no separate stdout/stderr, no clean timeout).
 */
import { chownSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname, isAbsolute, join } from 'node:path'
import { PassThrough, Readable, type Duplex } from 'node:stream'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type Docker from 'dockerode'
import type { Logger } from 'pino'
import type { ContainerReply, ContainerRequest } from './container-runner.js'
import type { ProcessRequest } from './run-process.js'
import { collectResult, type ScratchBackendInit } from './scratch-backend.js'
import { isAlive, ScratchPool, type Scratch } from './scratch.js'
import { NETWORK_ETC_FILES, toolchainPaths } from './toolchain.js'
import { SandboxError, type RunOptions, type Sandbox, type SandboxResult, type SandboxSpec } from './types.js'

export const DOCKER_ISOLATION_NOTE = 'sandbox docker: each action in a container with only its declared inputs, the toolchain read-only, no network, a read-only root'

/** Where the action's folders appear inside the container (as in bwrap, so outputs match). */
export const DOCKER_EXEC_ROOT = '/bldr/root'
const DOCKER_HOME = '/bldr/home'
const RUNNER_DIR = '/bldr/runner'
const RUNNER_NODE = '/bldr/node'
const RUNNER_INIT = '/bldr/init'
/**
 * An init for the container (tini, which Docker ships as docker-init): it reaps
 * what actions leave behind. Docker's own `Init` option mounts it under /sbin,
 * which here is the host's (read-only), so it is bound and started by hand.
 */
const INIT_CANDIDATES = ['/usr/bin/docker-init', '/usr/libexec/docker/docker-init', '/usr/local/bin/docker-init', '/usr/bin/tini']
/** The image made here when missing: empty (everything comes from the bound toolchain). */
export const DEFAULT_DOCKER_IMAGE = 'bldr-sandbox:empty'
/** Processes one container may hold: stops a fork bomb, leaves a parallel make plenty. */
const PIDS_LIMIT = 4096
/** Actions a container runs before it is replaced. */
const DEFAULT_MAX_USES = 200
/** Memory added to an action's `maxMemory` for the runner beside it in the container. */
export const RUNNER_MEMORY_BYTES = 48 * 1024 * 1024
/** The unprivileged user actions run as when bldr runs as root. */
const SANDBOX_UID = 1000
/** How long a new container may take to say it is ready. */
const START_TIMEOUT_MS = 30_000
/** How long past its timeout an action's container may stay silent before it is removed. */
const WATCHDOG_GRACE_MS = 30_000
/** Labels on every container this backend makes, to find ones left by a bldr that died. */
const LABEL_SANDBOX = 'dev.bldr.sandbox'
const LABEL_OWNER = 'dev.bldr.owner'

export interface DockerSandboxInit extends ScratchBackendInit {
  /** The daemon (default: from DOCKER_HOST, else /var/run/docker.sock). */
  docker?: Docker
  /** The image (default DEFAULT_DOCKER_IMAGE, made here when missing; another must exist locally). */
  image?: string
  /** Actions per container before it is replaced; 1 gives every action a fresh container. Default 200. */
  maxUses?: number
}

/** A client of the daemon named by DOCKER_HOST, else /var/run/docker.sock (dockerode loads only when needed: ~130 ms). */
async function newDocker(): Promise<Docker> {
  const { default: DockerClient } = await import('dockerode')
  return new DockerClient()
}

/** Ping the daemon; a SandboxError saying where it looked and what to do when it does not answer. */
export async function connectDocker(given?: Docker, timeoutMs = 5_000): Promise<Docker> {
  const docker = given ?? (await newDocker())
  const where = describeDaemon(docker)
  try {
    // dockerode takes an abort signal here; its types do not say so.
    await (docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, { abortSignal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    throw new SandboxError('docker', '-', `cannot reach the Docker daemon at ${where}: ${(err as Error).message} (start dockerd, or point DOCKER_HOST at one)`, { cause: err })
  }
  return docker
}

/** Whether a Docker daemon answers here (for picking the default sandbox). */
export async function dockerReachable(timeoutMs = 2_000): Promise<boolean> {
  try {
    await connectDocker(undefined, timeoutMs)
    return true
  } catch {
    return false
  }
}

function describeDaemon(docker: Docker): string {
  const m = docker.modem as unknown as { socketPath?: string; host?: string; port?: number }
  return m.socketPath ? String(m.socketPath) : `${m.host ?? '?'}:${m.port ?? '?'}`
}

/** Make sure `image` exists locally: the default one is made (from an empty tarball), another must be there. */
export async function ensureImage(docker: Docker, image: string): Promise<void> {
  try {
    await docker.getImage(image).inspect()
    return
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err
  }
  if (image !== DEFAULT_DOCKER_IMAGE) {
    throw new SandboxError('docker', '-', `image ${image} is not on this Docker daemon (bldr pulls nothing: build or load it here first)`)
  }
  const [repo, tag] = image.split(':') as [string, string]
  // An empty tar archive is two 512-byte blocks of zeros.
  const progress = await docker.importImage(Readable.from([Buffer.alloc(1024)]), { repo, tag })
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(progress, (err) => (err ? reject(err) : resolve())))
}

/** Everything about an action that its container must be made for; actions with equal profiles share containers. */
interface Profile {
  network: boolean
  writeHome: boolean
  writeTmp: boolean
  readPaths: readonly string[]
  writePaths: readonly string[]
  memoryBytes?: number
  nanoCpus?: number
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
    ...(c.maxCpu !== undefined ? { nanoCpus: Math.round(c.maxCpu * 1e9) } : {}),
  }
}

/** Why this backend cannot run `spec` as asked, or undefined. */
function refuse(spec: SandboxSpec): string | undefined {
  const c = spec.capabilities
  const relative = [...c.readPaths, ...c.writePaths].find((p) => !isAbsolute(p))
  if (relative !== undefined) return `capability path ${JSON.stringify(relative)} must be absolute`
  if (c.maxCpu !== undefined && !(c.maxCpu >= 0.01)) return `maxCpu must be at least 0.01 (got ${c.maxCpu})`
  return undefined
}

export function createDockerSandbox(init: DockerSandboxInit): Sandbox {
  return new DockerSandbox(init)
}

class DockerSandbox implements Sandbox {
  readonly name = 'docker' as const
  readonly slots: number
  readonly isolationNote = DOCKER_ISOLATION_NOTE
  /** Set once the daemon answered (see prepare). */
  private client: Docker | undefined
  private readonly image: string
  private readonly maxUses: number
  private readonly log: Logger | undefined
  private readonly pool: ScratchPool
  /** Who actions run as, and who owns their folders (see scratch.ts). */
  private readonly user: { uid: number; gid: number }
  private readonly slotGate: Gate
  /** Containers ready for an action. */
  private readonly idle: WarmContainer[] = []
  /** Containers that exist or are being made (idle, busy, starting). */
  private live = 0
  /** Removals under way, awaited by close(). */
  private readonly removing = new Set<Promise<void>>()
  private ready: Promise<string> | undefined
  private closed = false

  constructor(private readonly init: DockerSandboxInit) {
    this.slots = init.slots
    this.image = init.image ?? DEFAULT_DOCKER_IMAGE
    this.maxUses = Math.max(1, init.maxUses ?? DEFAULT_MAX_USES)
    this.log = init.log?.child({ component: 'sandbox-docker' })
    const root = process.getuid?.() === 0
    this.user = root ? { uid: SANDBOX_UID, gid: SANDBOX_UID } : { uid: process.getuid?.() ?? SANDBOX_UID, gid: process.getgid?.() ?? SANDBOX_UID }
    this.pool = new ScratchPool(init.cas, init.scratchRoot, { ...(init.log ? { log: init.log } : {}), ...(root ? { owner: this.user } : {}) })
    this.slotGate = new Gate(init.slots)
  }

  async run(spec: SandboxSpec, opts: RunOptions = {}): Promise<SandboxResult> {
    const refusal = refuse(spec)
    if (refusal) throw new SandboxError('docker', spec.actionId, refusal)
    const runnerDir = await this.prepare(spec.actionId)
    await this.slotGate.enter(opts.signal)
    let warm: WarmContainer | undefined
    let healthy = false
    let keep = false
    try {
      let proc: ProcessOutcome | undefined
      let scratch: Scratch | undefined
      for (let attempt = 1; !proc; attempt++) {
        warm = await this.take(profileOf(spec), runnerDir, spec.actionId)
        try {
          scratch = await this.pool.acquire(spec, warm.scratch)
        } catch (err) {
          throw new SandboxError('docker', spec.actionId, `staging inputs failed: ${(err as Error).message}`, { cause: err })
        }
        if (attempt === 1) opts.onStart?.()
        try {
          proc = await warm.run(processRequest(spec), spec, opts.signal)
        } catch (err) {
          // A container that died before the action started (killed while idle, its
          // death not yet seen): the action is run once more, in a new container.
          if (!(err instanceof NotStartedError) || attempt > 1) throw err
          this.log?.info({ container: warm.id, action: spec.actionId }, 'a container died before the action started in it; trying a new one')
          this.giveBack(warm, false, false)
          warm = undefined
        }
      }
      const owned = this.user.uid !== process.getuid?.()
      const result = await collectResult(this.init, this.pool, 'docker', spec, scratch!, proc, {
        // Outputs are made by the sandbox user: the store's blobs must be bldr's.
        beforeStore: owned ? (abs) => chownSync(abs, process.getuid!(), process.getgid!()) : undefined,
      })
      keep = result.keptAt !== undefined
      healthy = result.exitCode === 0 && !result.timedOut
      return result
    } finally {
      if (warm) this.giveBack(warm, healthy, keep)
      this.slotGate.leave()
    }
  }

  async close(): Promise<void> {
    this.closed = true
    const all = this.idle.splice(0)
    for (const w of all) this.remove(w)
    await Promise.all([...this.removing])
    this.pool.close()
  }

  /** Once: reach the daemon, make the image, sweep containers of dead bldr processes, lay out the runner's files. */
  private prepare(actionId: string): Promise<string> {
    this.ready ??= (async () => {
      this.client = await connectDocker(this.init.docker)
      await ensureImage(this.client, this.image)
      await this.sweepStale()
      return writeRunnerFiles(join(this.init.scratchRoot, `docker-runner-${process.pid}`))
    })()
    return this.ready.catch((err: unknown) => {
      this.ready = undefined // try again for the next action: the daemon may come back
      if (err instanceof SandboxError) throw new SandboxError('docker', actionId, err.reason, { cause: err })
      throw new SandboxError('docker', actionId, (err as Error).message, { cause: err })
    })
  }

  private get docker(): Docker {
    if (!this.client) throw new Error('the Docker client is used before the daemon answered')
    return this.client
  }

  /** An idle container for `profile`, or a new one (replacing an idle one of another profile when all slots have one). */
  private async take(profile: Profile, runnerDir: string, actionId: string): Promise<WarmContainer> {
    const key = JSON.stringify(profile)
    // Containers that died while idle (killed, daemon restarted) are replaced.
    for (const w of this.idle.filter((w) => w.dead)) this.remove(this.idle.splice(this.idle.indexOf(w), 1)[0]!)
    const i = this.idle.findIndex((w) => w.key === key)
    if (i >= 0) return this.idle.splice(i, 1)[0]!
    if (this.live >= this.slots && this.idle.length > 0) this.remove(this.idle.shift()!)
    const scratch = this.pool.create()
    this.live++
    try {
      return await WarmContainer.start(this.docker, key, this.containerConfig(profile, scratch, runnerDir), scratch, this.log)
    } catch (err) {
      this.live--
      this.pool.discard(scratch)
      throw new SandboxError('docker', actionId, `could not start a container: ${(err as Error).message}`, { cause: err })
    }
  }

  private giveBack(warm: WarmContainer, healthy: boolean, keep: boolean): void {
    const usable = this.pool.release(warm.scratch, { keep, retain: true })
    if (!healthy || !usable || warm.dead || this.closed || ++warm.uses >= this.maxUses) this.remove(warm, { keepFolder: keep })
    else this.idle.push(warm)
  }

  private remove(warm: WarmContainer, opts: { keepFolder?: boolean } = {}): void {
    this.live--
    const p = warm
      .destroy()
      .catch((err: unknown) => this.log?.warn({ err, container: warm.id }, 'could not remove a container'))
      .finally(() => {
        if (!opts.keepFolder) this.pool.discard(warm.scratch)
        this.removing.delete(p)
      })
    this.removing.add(p)
  }

  private containerConfig(p: Profile, scratch: Scratch, runnerDir: string): Docker.ContainerCreateOptions {
    const binds = toolchainPaths().map((t) => `${t.path}:${t.path}:ro`)
    if (p.network) for (const f of NETWORK_ETC_FILES) binds.push(`${f}:${f}:ro`)
    binds.push(`${runnerDir}:${RUNNER_DIR}:ro`, `${process.execPath}:${RUNNER_NODE}:ro`)
    const init = INIT_CANDIDATES.find((p) => existsSync(p))
    if (init) binds.push(`${init}:${RUNNER_INIT}:ro`)
    binds.push(`${scratch.execRoot}:${DOCKER_EXEC_ROOT}`, `${scratch.home}:${DOCKER_HOME}${p.writeHome ? '' : ':ro'}`)
    for (const r of p.readPaths) binds.push(`${r}:${r}:ro`)
    for (const w of p.writePaths) binds.push(`${w}:${w}`)
    return {
      Image: this.image,
      Cmd: [...(init ? [RUNNER_INIT, '--'] : []), RUNNER_NODE, '--max-semi-space-size=1', `${RUNNER_DIR}/container-runner.js`],
      User: `${this.user.uid}:${this.user.gid}`,
      WorkingDir: DOCKER_EXEC_ROOT,
      Env: [],
      Labels: { [LABEL_SANDBOX]: 'docker', [LABEL_OWNER]: `${hostname()}:${process.pid}` },
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      OpenStdin: true,
      // When bldr goes away its attachment closes, the runner sees the end of its stdin and exits.
      StdinOnce: true,
      Tty: false,
      NetworkDisabled: !p.network,
      HostConfig: {
        // `network` shares the host's network, as bwrap does.
        NetworkMode: p.network ? 'host' : 'none',
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Binds: binds,
        ...(p.writeTmp ? { Tmpfs: { '/tmp': 'rw,nosuid,nodev,mode=1777' } } : {}),
        PidsLimit: PIDS_LIMIT,
        ...(p.memoryBytes !== undefined ? { Memory: p.memoryBytes + RUNNER_MEMORY_BYTES, MemorySwap: p.memoryBytes + RUNNER_MEMORY_BYTES } : {}),
        ...(p.nanoCpus !== undefined ? { NanoCpus: p.nanoCpus } : {}),
      },
    }
  }

  /** Remove containers made by bldr processes on this machine that no longer run. */
  private async sweepStale(): Promise<void> {
    const found = await this.docker.listContainers({ all: true, filters: { label: [LABEL_SANDBOX] } })
    for (const c of found) {
      const [host, pid] = (c.Labels[LABEL_OWNER] ?? '').split(':')
      if (host !== hostname() || !(Number(pid) > 0) || Number(pid) === process.pid || isAlive(Number(pid))) continue
      this.log?.info({ container: c.Id.slice(0, 12) }, 'removing a container left by a bldr process that is gone')
      await this.docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)
    }
  }
}

function processRequest(spec: SandboxSpec): ProcessRequest {
  const env: Record<string, string> = { ...spec.env, HOME: DOCKER_HOME, PWD: DOCKER_EXEC_ROOT }
  if (spec.capabilities.writeTmp) env['TMPDIR'] = '/tmp'
  return { argv: spec.argv, env, cwd: DOCKER_EXEC_ROOT, timeoutMs: spec.timeoutMs }
}

/** The runner's files, where a container can bind them: the runner, the one module it uses, and a package.json saying they are ES modules. */
function writeRunnerFiles(dir: string): string {
  mkdirSync(dir, { recursive: true })
  const here = dirname(fileURLToPath(import.meta.url))
  for (const f of ['container-runner.js', 'run-process.js']) copyFileSync(join(here, f), join(dir, f))
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n')
  return dir
}

type ProcessOutcome = Omit<SandboxResult, 'outputs' | 'missingOutputs' | 'keptAt'>

/** One long-lived container and the runner in it. */
class WarmContainer {
  /** Actions run in it so far. */
  uses = 0
  /** Why it can no longer be used (its runner ended), if so. */
  dead: string | undefined
  private nextId = 0
  private waiting: { id: number; resolve: (r: ContainerReply) => void; reject: (e: Error) => void } | undefined
  /** The runner said the current action's command is running. */
  private started = false

  private constructor(
    readonly key: string,
    readonly scratch: Scratch,
    private readonly container: Docker.Container,
    private readonly stream: Duplex,
  ) {}

  get id(): string {
    return this.container.id.slice(0, 12)
  }

  static async start(docker: Docker, key: string, config: Docker.ContainerCreateOptions, scratch: Scratch, log: Logger | undefined): Promise<WarmContainer> {
    const container = await docker.createContainer(config)
    try {
      const stream = (await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as unknown as Duplex
      const out = new PassThrough()
      const err = new PassThrough()
      docker.modem.demuxStream(stream, out, err)
      const warm = new WarmContainer(key, scratch, container, stream)
      const ready = new Promise<void>((resolve, reject) => {
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
      })
      ready.catch(() => undefined) // awaited below, after the start
      createInterface({ input: out }).on('line', (line) => warm.onLine(line))
      createInterface({ input: err }).on('line', (line) => log?.warn({ container: warm.id, line }, 'container runner said'))
      stream.on('end', () => warm.onEnd()).on('close', () => warm.onEnd()).on('error', () => warm.onEnd())
      await container.start()
      await ready
      log?.debug({ container: warm.id }, 'container ready')
      return warm
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined)
      throw err
    }
  }

  /** Run one action; resolves with how it ended (an OOM kill of the whole container included). */
  async run(req: ProcessRequest, spec: SandboxSpec, signal?: AbortSignal): Promise<ProcessOutcome> {
    if (this.dead) throw new NotStartedError(spec.actionId, `container ${this.id} ${this.dead}`)
    const id = ++this.nextId
    this.started = false
    const onAbort = (): void => this.send({ type: 'kill', id })
    signal?.addEventListener('abort', onAbort, { once: true })
    let watchdog: NodeJS.Timeout | undefined
    try {
      const reply = await new Promise<ContainerReply>((resolve, reject) => {
        this.waiting = { id, resolve, reject }
        watchdog = setTimeout(() => {
          this.dead = `did not answer within ${((spec.timeoutMs + WATCHDOG_GRACE_MS) / 1000).toFixed(0)} s`
          reject(new Error(this.dead))
        }, spec.timeoutMs + WATCHDOG_GRACE_MS)
        this.send({ type: 'run', id, req })
      })
      if (reply.type === 'error') throw new SandboxError('docker', spec.actionId, `container ${this.id}: ${reply.message}`)
      if (reply.type !== 'done') throw new SandboxError('docker', spec.actionId, `container ${this.id} answered out of turn`)
      const r = reply.result
      return { exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, ...(r.oomKilled ? { oomKilled: true } : {}), stdout: Buffer.from(r.stdout, 'base64'), stderr: Buffer.from(r.stderr, 'base64'), durationMs: r.durationMs }
    } catch (err) {
      if (err instanceof SandboxError) throw err
      // The runner is gone: if the kernel killed it for memory, the action did that.
      const state = await this.container.inspect().then((i) => i.State, () => undefined)
      if (state?.OOMKilled && this.started) return { exitCode: null, signal: 'SIGKILL', timedOut: false, oomKilled: true, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), durationMs: 0 }
      const reason = `container ${this.id} ${(err as Error).message}${state ? ` (container ${state.Status}, exit code ${state.ExitCode})` : ''}`
      throw this.started ? new SandboxError('docker', spec.actionId, reason, { cause: err }) : new NotStartedError(spec.actionId, reason, { cause: err })
    } finally {
      clearTimeout(watchdog)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Stop and remove the container. */
  async destroy(): Promise<void> {
    this.dead ??= 'was removed'
    this.stream.destroy()
    await this.container.remove({ force: true })
  }

  private send(req: ContainerRequest): void {
    this.stream.write(`${JSON.stringify(req)}\n`)
  }

  private onLine(line: string): void {
    let reply: ContainerReply
    try {
      reply = JSON.parse(line) as ContainerReply
    } catch {
      return
    }
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

/** The container was gone before the action's command started: nothing of the action ran. */
class NotStartedError extends SandboxError {
  constructor(actionId: string, reason: string, options?: { cause?: unknown }) {
    super('docker', actionId, reason, options)
  }
}

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

