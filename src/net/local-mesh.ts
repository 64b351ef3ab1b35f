/**
 * A mesh on this machine for `bldr build --distributed` with no coordinator
 * given: a coordinator in this process, listening on 127.0.0.1, and N worker
 * processes (`bldr worker`), each with its own data folder (they share no
 * disk with each other or with the client). It runs in the background process
 * that keeps it between builds (mesh-daemon-serve.ts), or in the client for
 * one build (`--mesh-idle 0`, or when another build uses the kept one with
 * other settings), until `stop`.
 *
 * The data folders are the project's (`workersDir`, e.g. `.bldr/mesh/worker-1`)
 * and stay after the mesh stops, so the next mesh's workers start with the blobs
 * they had: an incremental build sends the files that changed, not the whole
 * source tree again (bench/ninja). Two meshes at once in one project may share
 * them: each worker's store takes concurrent writers (blobs appear by rename
 * and are verified on use), its scratch folders are per process, and the two
 * meshes never meet (each has its own coordinator). Without `workersDir` they
 * are temporary and removed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { StrategyName } from '../../strategies/index.js'
import { dockerOverNetwork, nodeChildEnv } from '../node-child-env.js'
import { startCoordinatorService, type CoordinatorService } from './coordinator-service.js'
import type { Liveness } from './liveness.js'

export interface LocalMeshOptions {
  /** Slots of each worker process, one entry per worker (`bldr build` splits -j among them: build-command.ts splitSlots). */
  slots: readonly number[]
  strategy: StrategyName
  /** The sandbox the workers run actions in. */
  sandbox: string
  /** Where the workers' data folders are kept between builds; default: a temporary folder, removed at the end. */
  workersDir?: string
  /** The workers' log level (their logs go to this process's stderr: the daemon's log, or the build's stderr). */
  logLevel: string
  /** Heartbeats of the coordinator and the workers. */
  liveness?: Liveness
  /** A worker process ended while the mesh was up (not by `stop`). */
  onWorkerLost?: (err: Error, remaining: number) => void
  log?: Logger
}

export interface LocalMesh {
  coordinator: CoordinatorService
  /** The coordinator's multiaddr. */
  addr: string
  /** Worker process ids. */
  pids: number[]
  stop(): Promise<void>
}

/** Longest wait for every worker to start and register. */
const START_TIMEOUT_MS = 60_000
/** Longest wait for a worker to exit after its stdin closes, before it is killed. */
const STOP_TIMEOUT_MS = 10_000

const BLDR_BIN = fileURLToPath(new URL('../../../bin/bldr.mjs', import.meta.url))

/**
 * Node flags of local worker processes: one V8 platform thread (default: one
 * per core) keeps an idle worker's resident memory lower (bench/live-mesh,
 * idle RSS); a worker's CPU goes to the commands it runs, not to V8's
 * background compilation. A 1 MB young generation (`--max-semi-space-size=1`)
 * saved a few MB more but cost a worker ~10% more CPU in scavenges on a
 * 200-file CMake build (5.6-5.7 s against 6.2-6.6 s, one worker, -j1), CPU
 * taken from the compilers beside it. `bldr worker` started by hand takes
 * flags from NODE_OPTIONS.
 */
export const WORKER_NODE_FLAGS = ['--v8-pool-size=1']

/** Whether a process is stopped by a signal (state T in /proc). */
export function isStopped(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return /^[Tt]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3))
  } catch {
    return false
  }
}

export async function startLocalMesh(opts: LocalMeshOptions): Promise<LocalMesh> {
  const coordinator = await startCoordinatorService({ listen: ['/ip4/127.0.0.1/tcp/0'], ...(opts.liveness ? { liveness: opts.liveness } : {}), ...(opts.log ? { log: opts.log } : {}) })
  const addr = `${coordinator.addrs[0]!}`
  const root = opts.workersDir ?? mkdtempSync(join(tmpdir(), 'bldr-mesh-'))
  const procs: ChildProcess[] = []
  const exited = new Map<ChildProcess, Promise<void>>()

  let stopping = false
  let ready = false
  const stop = async (): Promise<void> => {
    stopping = true
    // Closing a worker's stdin tells it to leave the mesh and exit.
    await Promise.all(
      procs.map(async (p) => {
        p.stdin?.end()
        // A stopped (SIGSTOP) worker cannot leave; the coordinator has handed its work on already.
        if (p.pid !== undefined && isStopped(p.pid)) p.kill('SIGKILL')
        let timer: NodeJS.Timeout | undefined
        const killed = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            p.kill('SIGKILL')
            resolve()
          }, STOP_TIMEOUT_MS)
        })
        await Promise.race([exited.get(p), killed])
        clearTimeout(timer)
      }),
    )
    await coordinator.stop()
    if (!opts.workersDir) rmSync(root, { recursive: true, force: true })
  }

  try {
    let failure: ((err: Error) => void) | undefined
    const failed = new Promise<never>((_, reject) => (failure = reject))
    failed.catch(() => {})
    for (let w = 0; w < opts.slots.length; w++) {
      const dataDir = join(root, `worker-${w + 1}`)
      const p = spawn(
        process.execPath,
        [
          ...WORKER_NODE_FLAGS,
          BLDR_BIN,
          'worker',
          '--coordinator',
          addr,
          '--listen',
          '/ip4/127.0.0.1/tcp/0',
          '--data-dir',
          dataDir,
          '--parallelism',
          String(opts.slots[w]),
          '--strategy',
          opts.strategy,
          '--sandbox',
          opts.sandbox,
          '--seed',
          String(w + 1),
          '--log-level',
          opts.logLevel,
          '--stop-when-stdin-closes',
          ...(opts.liveness ? ['--heartbeat-interval', String(opts.liveness.heartbeatIntervalMs), '--worker-timeout', String(opts.liveness.workerTimeoutMs)] : []),
        ],
        { stdio: ['pipe', 'ignore', 'inherit'], env: nodeChildEnv({ keepCaCerts: opts.sandbox === 'docker' && dockerOverNetwork() }) },
      )
      procs.push(p)
      exited.set(
        p,
        new Promise((resolve) =>
          p.once('exit', (code, signal) => {
            const how = signal ?? `code ${code}`
            failure?.(new Error(`local worker ${w + 1} (pid ${p.pid}) exited with ${how} before the mesh was ready`))
            if (ready && !stopping) {
              const remaining = procs.filter((q) => q.exitCode === null && q.signalCode === null).length
              opts.onWorkerLost?.(new Error(`local worker ${w + 1} (pid ${p.pid}) exited with ${how} during the build`), remaining)
            }
            resolve()
          }),
        ),
      )
    }
    await Promise.race([coordinator.waitForWorkers(opts.slots.length, START_TIMEOUT_MS), failed])
    failure = undefined
    ready = true
  } catch (err) {
    await stop()
    throw err
  }
  return { coordinator, addr, pids: procs.map((p) => p.pid!), stop }
}
