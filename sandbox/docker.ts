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
 * Warm containers (warm-pool.ts): starting a container costs ~250 ms here, so
 * each container stays up with a small runner in it that takes one action at a
 * time over its attached stdin; `maxUses: 1` gives every action a fresh
 * container ("cold", for comparison). The runner's stdin closes when bldr's
 * attachment does, so a container outlives a bldr that died only until then;
 * containers left behind anyway are removed at the next start.
 *
 * Rejected: `docker exec` per action (~50 ms over a plain spawn here), and a
 * shell loop reading commands (no separate stdout/stderr, no clean timeout).
 */
import { existsSync } from 'node:fs'
import { hostname } from 'node:os'
import { PassThrough, Readable, type Duplex } from 'node:stream'
import type Docker from 'dockerode'
import type { Logger } from 'pino'
import { isAlive } from '../src/cas/fs-util.js'
import type { Scratch } from './scratch.js'
import { NETWORK_ETC_FILES, toolchainPaths } from './toolchain.js'
import { SandboxError, type Sandbox } from './types.js'
import { createWarmPool, RUNNER_DIR, RUNNER_NODE, RUNNER_MEMORY_BYTES, WARM_EXEC_ROOT, WARM_HOME, type Profile, type WarmChannel, type WarmPoolInit } from './warm-pool.js'

export const DOCKER_ISOLATION_NOTE = 'sandbox docker: each action in a container with only its declared inputs, the toolchain read-only, no network, a read-only root'

/** Where the action's folders appear inside the container (as in bwrap, so outputs match). */
export const DOCKER_EXEC_ROOT = WARM_EXEC_ROOT
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
/** The unprivileged user actions run as when bldr runs as root. */
const SANDBOX_UID = 1000
/** Labels on every container this backend makes, to find ones left by a bldr that died. */
const LABEL_SANDBOX = 'dev.bldr.sandbox'
const LABEL_OWNER = 'dev.bldr.owner'

export interface DockerSandboxInit extends WarmPoolInit {
  /** The daemon (default: from DOCKER_HOST, else /var/run/docker.sock). */
  docker?: Docker
  /** The image (default DEFAULT_DOCKER_IMAGE, made here when missing; another must exist locally). */
  image?: string
}

/** A client of the daemon named by DOCKER_HOST, else /var/run/docker.sock (dockerode loads only when needed: ~130 ms). */
async function newDocker(): Promise<Docker> {
  const { default: DockerClient } = await import('dockerode')
  return new DockerClient()
}

/** Ping the daemon; a SandboxError saying where it looked and what to do when it does not answer. */
export async function connectDocker(given?: Docker, timeoutMs = 5_000): Promise<Docker> {
  let docker: Docker
  try {
    docker = given ?? (await newDocker())
  } catch (err) {
    // dockerode reads DOCKER_CERT_PATH's certificates when it is made.
    throw new SandboxError('docker', '-', `cannot make a Docker client for ${process.env['DOCKER_HOST'] ?? '/var/run/docker.sock'}: ${(err as Error).message} (check DOCKER_HOST and DOCKER_CERT_PATH)`, { cause: err })
  }
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
    await checkDockerDaemon(timeoutMs)
    return true
  } catch {
    return false
  }
}

/**
 * Fail with a SandboxError saying where it looked and what to do unless the
 * daemon DOCKER_HOST names (else /var/run/docker.sock) answers its ping. A
 * socket or plain-TCP daemon is pinged with node's own http client, so a
 * worker that only checks (and may never run a docker action) does not load
 * dockerode: that kept ~5 MB in every idle worker offering docker
 * (bench/live-mesh idle RSS: 85.2 MB before, 80.7 MB after). A daemon over TLS or ssh is pinged
 * by dockerode, which knows those.
 */
export async function checkDockerDaemon(timeoutMs = 5_000): Promise<void> {
  const target = plainDaemonAddress(process.env['DOCKER_HOST'])
  if (!target) {
    await connectDocker(undefined, timeoutMs)
    return
  }
  const where = describeAddress(target)
  try {
    await httpPing(target, timeoutMs)
  } catch (err) {
    throw new SandboxError('docker', '-', `cannot reach the Docker daemon at ${where}: ${(err as Error).message} (start dockerd, or point DOCKER_HOST at one)`, { cause: err })
  }
}

type DaemonAddress = { socketPath: string } | { host: string; port: number }

/** Where a daemon without TLS listens, as DOCKER_HOST says (docker-modem's reading of it); undefined for TLS, ssh or anything else. */
function plainDaemonAddress(dockerHost: string | undefined): DaemonAddress | undefined {
  if (!dockerHost) return { socketPath: '/var/run/docker.sock' }
  if (dockerHost.startsWith('unix://')) return { socketPath: dockerHost.slice('unix://'.length) }
  const tcp = /^(?:tcp|http):\/\/([^:/]+):(\d+)\/?$/.exec(dockerHost)
  const tls = (process.env['DOCKER_TLS_VERIFY'] ?? '') !== '' || process.env['DOCKER_CERT_PATH'] !== undefined
  if (tcp && !tls && tcp[2] !== '2376') return { host: tcp[1]!, port: Number(tcp[2]) }
  return undefined
}

async function httpPing(target: DaemonAddress, timeoutMs: number): Promise<void> {
  const { request } = await import('node:http')
  await new Promise<void>((resolve, reject) => {
    const req = request({ ...target, path: '/_ping', method: 'GET', signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`ping answered ${res.statusCode}: ${body.trim().slice(0, 200)}`))))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function describeDaemon(docker: Docker): string {
  return describeAddress(docker.modem as unknown as { socketPath?: string; host?: string; port?: number })
}

/** A daemon's socket path, or host:port, as errors name it. */
function describeAddress(a: { socketPath?: string; host?: string; port?: number }): string {
  return a.socketPath ? String(a.socketPath) : `${a.host ?? '?'}:${a.port ?? '?'}`
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

export function createDockerSandbox(init: DockerSandboxInit): Sandbox {
  const image = init.image ?? DEFAULT_DOCKER_IMAGE
  const log = init.log?.child({ component: 'sandbox-docker' })
  const root = process.getuid?.() === 0
  // As root, actions run as an unprivileged uid (and their folders are made its);
  // otherwise as bldr's own user, which already owns the folders.
  const user = root ? { uid: SANDBOX_UID, gid: SANDBOX_UID } : { uid: process.getuid?.() ?? SANDBOX_UID, gid: process.getgid?.() ?? SANDBOX_UID }
  let client: Docker | undefined
  return createWarmPool(init, {
    name: 'docker',
    isolationNote: DOCKER_ISOLATION_NOTE,
    ...(root ? { folderOwner: user } : {}),
    // A process of a user other than root has no capabilities in the container.
    actionUid: user.uid,
    prepare: async () => {
      client = await connectDocker(init.docker)
      await ensureImage(client, image)
      await sweepStale(client, log)
    },
    start: (profile, scratch, runnerDir, runnerArgv) => startContainer(client!, containerConfig(image, user, profile, scratch, runnerDir, runnerArgv), log),
  })
}

function containerConfig(image: string, user: { uid: number; gid: number }, p: Profile, scratch: Scratch, runnerDir: string, runnerArgv: readonly string[]): Docker.ContainerCreateOptions {
  const binds = toolchainPaths().map((t) => `${t.path}:${t.path}:ro`)
  if (p.network) for (const f of NETWORK_ETC_FILES) binds.push(`${f}:${f}:ro`)
  binds.push(`${runnerDir}:${RUNNER_DIR}:ro`, `${process.execPath}:${RUNNER_NODE}:ro`)
  const init = INIT_CANDIDATES.find((c) => existsSync(c))
  if (init) binds.push(`${init}:${RUNNER_INIT}:ro`)
  binds.push(`${scratch.execRoot}:${p.execRootPath}`, `${scratch.home}:${WARM_HOME}${p.writeHome ? '' : ':ro'}`)
  for (const r of p.readPaths) binds.push(`${r}:${r}:ro`)
  for (const w of p.writePaths) binds.push(`${w}:${w}`)
  const memory = p.memoryBytes !== undefined ? p.memoryBytes + RUNNER_MEMORY_BYTES : undefined
  return {
    Image: image,
    Cmd: [...(init ? [RUNNER_INIT, '--'] : []), ...runnerArgv],
    User: `${user.uid}:${user.gid}`,
    WorkingDir: p.execRootPath,
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
      ...(memory !== undefined ? { Memory: memory, MemorySwap: memory } : {}),
      ...(p.cpu !== undefined ? { NanoCpus: Math.round(p.cpu * 1e9) } : {}),
    },
  }
}

/** Create, attach to and start a container; its runner's stdout, demultiplexed from the attachment, carries the protocol. */
async function startContainer(docker: Docker, config: Docker.ContainerCreateOptions, log: Logger | undefined): Promise<WarmChannel> {
  const container = await docker.createContainer(config)
  const id = container.id.slice(0, 12)
  try {
    const stream = (await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as unknown as Duplex
    const out = new PassThrough()
    const err = new PassThrough()
    docker.modem.demuxStream(stream, out, err)
    err.on('data', (b: Buffer) => log?.warn({ container: id, output: b.toString().slice(0, 2000) }, 'container runner said'))
    let ended = false
    const endCallbacks: (() => void)[] = []
    const end = (): void => {
      if (ended) return
      ended = true
      out.end()
      for (const cb of endCallbacks) cb()
    }
    stream.on('end', end).on('close', end).on('error', end)
    await container.start()
    return {
      id,
      input: stream,
      output: out,
      onEnd: (cb) => (ended ? cb() : endCallbacks.push(cb)),
      destroy: async () => {
        stream.destroy()
        await container.remove({ force: true })
      },
      deathCause: async () => {
        const state = (await container.inspect()).State
        return { oomKilled: state.OOMKilled, detail: `container ${state.Status}, exit code ${state.ExitCode}${state.OOMKilled ? ', killed for memory' : ''}` }
      },
    }
  } catch (err) {
    await container.remove({ force: true }).catch(() => undefined)
    throw err
  }
}

/** Remove containers made by bldr processes on this machine that no longer run. */
async function sweepStale(docker: Docker, log: Logger | undefined): Promise<void> {
  const found = await docker.listContainers({ all: true, filters: { label: [LABEL_SANDBOX] } })
  for (const c of found) {
    const [host, pid] = (c.Labels[LABEL_OWNER] ?? '').split(':')
    if (host !== hostname() || !(Number(pid) > 0) || Number(pid) === process.pid || isAlive(Number(pid))) continue
    log?.info({ container: c.Id.slice(0, 12) }, 'removing a container left by a bldr process that is gone')
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)
  }
}
