/**
 * A distributed build: the same engine as a local build, with the mesh as its
 * executor. With no coordinator given, the build uses the folder's local mesh
 * (a coordinator and worker processes on 127.0.0.1) kept running by an earlier
 * build (mesh-daemon.ts); without one, a mesh of its own, in this process and
 * stopped after the build, which then starts a kept one in the background for
 * the next builds (unless `meshIdleS` is 0, the build was interrupted, or the
 * mesh lost a worker).
 */
import { join } from 'node:path'
import type { Logger } from 'pino'
import { openMeshBuild, type KeptBuildNode, type MeshBuild } from '../net/build-client.js'
import { startLocalMesh, type LocalMesh } from '../net/local-mesh.js'
import { localMeshSettings, MeshBusyError, reachLocalMesh, startLocalMeshDaemon, type LocalMeshLease, type MeshHost, type MeshSettings } from '../net/mesh-daemon.js'
import type { FaultAccount, SeedPolicy, WorkerStatsWire } from '../net/protocols.js'
import type { SeedWindow } from '../net/seed-policy.js'
import type { Liveness } from '../net/liveness.js'
import type { StrategyName } from '../../strategies/index.js'
import type { AvailableSandbox } from '../../sandbox/create.js'
import { runBuild, type BuildEvent, type BuildSummary } from './engine.js'
import { createMeshExecutor } from './mesh-executor.js'
import { servedSourcesOf } from './served-sources.js'
import { PLATFORM, resolveTargets, type Project } from './project.js'
import { MeshUnavailableError } from '../errors.js'
import { SourceDigests } from './source-digests.js'

export interface DistributedBuildOptions {
  targets?: readonly string[]
  /** A running coordinator's multiaddr; without it a local mesh is started. */
  coordinator?: string
  /** Slots of each local worker process, one entry per worker (build-command.ts splitSlots). */
  localSlots: readonly number[]
  strategy: StrategyName
  seedPolicy: SeedPolicy
  /** Seed a worker at most this many queued actions per slot beyond what it runs, or 'auto' (default: up to its queue; the CLI's default is DEFAULT_SEED_WINDOW). */
  seedWindow?: SeedWindow
  /** The sandbox actions must run in; only workers that offer it take them. Default local. */
  sandbox?: AvailableSandbox
  /** Log level of local workers. */
  workerLogLevel?: string
  /** Where this client listens for workers (default: 127.0.0.1 for a local mesh, every interface for a standing one). */
  listen?: string
  /** Heartbeats of the local mesh and of this client (a standing mesh has its own). */
  liveness?: Liveness
  /** Seconds the local mesh is kept after this build for the next one (0: it is this build's only, stopped with it). Default 0. */
  meshIdleS?: number
  /** The kept local mesh this build runs in the process of (for a thin client): used instead of reaching one. */
  host?: MeshHost
  /** The environment the build runs in (default: this process's): its mesh settings record part of it. */
  env?: NodeJS.ProcessEnv
  keepGoing?: boolean
  signal?: AbortSignal
  onEvent?: (e: BuildEvent) => void
  /** A line about the mesh for the user: what it is when it starts ("local mesh: 2 workers × 1 slot"), a worker lost. */
  onMeshNote?: (line: string) => void
  log?: Logger
}

export interface WorkerFigures {
  /** Actions this build ran there (as the client saw results). */
  actionsRun: number
  /** The worker's own counters over this build (null if it did not answer). */
  stats: WorkerStatsWire | null
}

/** What went wrong during a distributed build and what was done about it. */
export interface FaultReport {
  /** The coordinator's account (null if it could not be had: the coordinator was lost). */
  coordinator: FaultAccount | null
  /** Attempts of an action run again after an infrastructure failure. */
  retries: { action: string; reason: string; attempt: number }[]
  /** Local worker processes that ended during the build. */
  localWorkersExited: string[]
  /** This client's store: blobs found corrupt (removed) and blobs received with the wrong bytes (rejected). */
  client: { corruptBlobsRemoved: number; blobsRejected: number }
}

export interface DistributedBuildResult {
  summary: BuildSummary
  workers: Record<string, WorkerFigures>
  faults: FaultReport
  seedPolicy: SeedPolicy
  /** Queued actions per slot seeded beyond those running, or 'auto' (null: no window). */
  seedWindow: SeedWindow | null
  strategy: StrategyName | 'per worker'
  /** When the mesh was started or reached: with the build (nothing was cached), at the first action to run, or never (null: all cached). */
  meshStart: MeshStart | null
}

export type MeshStart = 'build start' | 'first action'

export async function buildDistributed(project: Project, opts: DistributedBuildOptions): Promise<DistributedBuildResult> {
  let local: LocalMesh | undefined
  /** The kept mesh's; a hosted build's has the node that mesh keeps for the builds it runs. */
  let lease: (LocalMeshLease & { clientNode?: KeptBuildNode }) | undefined
  let session: MeshBuild | undefined
  /** The workers' counters as the session opened (a mesh started for this build has them at 0). */
  let before: Promise<Record<string, WorkerStatsWire | null>> = Promise.resolve({})
  const ranBy = new Map<string, number>()
  const faults: FaultReport = { coordinator: null, retries: [], localWorkersExited: [], client: { corruptBlobsRemoved: 0, blobsRejected: 0 } }
  const corruptionBefore = { ...project.cas.corruption }
  // Without a mesh no action can run: stop the whole build with one error, not one failure per action.
  const meshDown = new AbortController()
  let meshError: MeshUnavailableError | undefined
  let starting: Promise<MeshBuild> | undefined
  let meshStart: MeshStart | null = null
  const connect = (when: MeshStart = 'first action'): Promise<MeshBuild> =>
    (starting ??= ((meshStart = when), startMesh()).catch((err: unknown) => {
      meshError ??= new MeshUnavailableError(opts.coordinator ? (err as Error).message : `could not start the local mesh: ${(err as Error).message}`, { cause: err })
      meshDown.abort(meshError)
      throw meshError
    }))
  const meshDir = join(project.stateDir, 'mesh')
  // At another log level than the default, the workers' logs are wanted here: on a kept mesh they would go to its log file.
  const keepS = opts.coordinator || (opts.workerLogLevel ?? 'warn') !== 'warn' ? 0 : (opts.meshIdleS ?? 0)
  let keepAfter = false
  let settings: MeshSettings | undefined
  const meshSettings = (): MeshSettings => (settings ??= localMeshSettings(opts))
  /** The sources this client serves to workers without storing them (served-sources.ts). */
  const sources = servedSourcesOf(project.root, project.cas.hasher, opts.log)
  /**
   * The mesh is started (or reached) when the first action must run: a build
   * the cache covers needs none. With nothing cached at all (a first build, or
   * after a clean) every action runs, so it is started at once, while the
   * client reads and stores the sources: a local mesh's workers took ~0.75 s
   * to start, and the client ~0.75 s to reach its first action (bench/ninja).
   */
  const startMesh = async (): Promise<MeshBuild> => {
    // The coordinator hands what a lost worker held to the others; only with none left does the build stop.
    const onWorkerLost = (text: string, remaining: number): void => {
      faults.localWorkersExited.push(text)
      if (remaining > 0) {
        opts.onMeshNote?.(`${text}; its actions go to the ${remaining} other worker${remaining === 1 ? '' : 's'}`)
        return
      }
      meshError ??= new MeshUnavailableError(`${text}; no local worker is left to finish the build`)
      meshDown.abort(meshError)
    }
    if (!opts.coordinator && keepS > 0 && opts.host) lease = await opts.host.lease(keepS, onWorkerLost)
    else if (!opts.coordinator && keepS > 0) {
      try {
        lease = await reachLocalMesh({ meshDir, settings: meshSettings(), idleS: keepS, onWorkerExited: onWorkerLost })
        // None runs (or one of other settings, stopped for this build): this build's own mesh, and one kept for the next.
        keepAfter = !lease
      } catch (err) {
        if (!(err instanceof MeshBusyError)) throw err
        opts.onMeshNote?.(`${err.message}: this build starts a mesh of its own`)
      }
    }
    if (!opts.coordinator && !lease) {
      local = await startLocalMesh({
        slots: opts.localSlots,
        strategy: opts.strategy,
        sandbox: opts.sandbox ?? 'local',
        workersDir: meshDir,
        logLevel: opts.workerLogLevel ?? 'warn',
        ...(opts.liveness ? { liveness: opts.liveness } : {}),
        onWorkerLost: (err, remaining) => onWorkerLost(err.message, remaining),
        ...(opts.log ? { log: opts.log } : {}),
      })
    }
    session = await openMeshBuild({
      coordinator: opts.coordinator ?? lease?.addr ?? local!.addr,
      cas: project.cas,
      sources,
      policy: opts.seedPolicy,
      ...(opts.seedWindow !== undefined ? { seedWindow: opts.seedWindow } : {}),
      sandbox: opts.sandbox ?? 'local',
      platform: PLATFORM,
      // Workers of a standing mesh may be on other machines: they must reach this client for inputs and outputs.
      listen: [opts.listen ?? (opts.coordinator ? '/ip4/0.0.0.0/tcp/0' : '/ip4/127.0.0.1/tcp/0')],
      ...(opts.liveness ? { liveness: opts.liveness } : {}),
      ...(lease?.clientNode ? { node: lease.clientNode } : {}),
      // The coordinator of this build's own mesh runs in this process.
      ...(local ? { inProcess: local.coordinator.inProcess } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    })
    const seeding = `seeding ${opts.seedPolicy}${opts.seedWindow !== undefined ? ` (window ${opts.seedWindow})` : ''}`
    const kept = lease ? `; kept from an earlier build (pid ${lease.daemonPid}, up ${upText(Math.round((Date.now() - lease.startedAt) / 1000))})${opts.host ? ', which runs this build' : ''}` : ''
    opts.onMeshNote?.(
      opts.coordinator
        ? `mesh at ${opts.coordinator}: ${session.workersAtOpen} worker${session.workersAtOpen === 1 ? '' : 's'}, ${seeding}`
        : `local mesh: ${describeSlots(opts.localSlots)}, strategy ${opts.strategy}, ${seeding}${kept}`,
    )
    // A mesh started in this process for this build has counters at 0; any other's are read first. Not waited
    // for (~9 ms of each build on the kept mesh, for figures the summary shows): the coordinator asks the workers
    // now, before it can seed them any of this build's actions, and each answers what it counted until then.
    if (!local) before = statsOf(session, opts.log)
    return session
  }
  if (project.actionCache.size === 0 && project.graph.actions.size > 0) connect('build start').catch(() => {}) // its failure stops the build (meshDown)
  try {
    const summary = await runBuild({
      graph: project.graph,
      roots: resolveTargets(project.graph, opts.targets ?? []),
      root: project.root,
      cas: project.cas,
      actionCache: project.actionCache,
      sourceDigests: SourceDigests.ofProject(project.stateDir),
      // The kept mesh of a hosted build is up: its session opens in a few ms, unless the checks hold this thread meanwhile.
      ...(opts.host ? { holdChecks: () => (starting && !session ? starting : undefined) } : {}),
      executor: createMeshExecutor({
        connect,
        cas: project.cas,
        sources,
        sandbox: opts.sandbox ?? 'local',
        slots: opts.coordinator ? 1 : opts.localSlots.reduce((a, b) => a + b, 0),
        onRan: (_id, worker) => ranBy.set(worker, (ranBy.get(worker) ?? 0) + 1),
        onRetry: (actionId, reason, next, max) => {
          faults.retries.push({ action: actionId, reason, attempt: next })
          opts.onMeshNote?.(`${actionId}: ${reason}; trying again (attempt ${next} of ${max})`)
        },
        onStalled: (reason) => {
          meshError ??= new MeshUnavailableError(`the mesh can no longer run this build: ${reason}`)
          meshDown.abort(meshError)
        },
      }),
      platform: PLATFORM,
      keepGoing: opts.keepGoing ?? false,
      signal: opts.signal ? AbortSignal.any([opts.signal, meshDown.signal]) : meshDown.signal,
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    })
    if (meshError) throw meshError
    faults.client = { corruptBlobsRemoved: project.cas.corruption.storedRemoved - corruptionBefore.storedRemoved, blobsRejected: project.cas.corruption.receivedRejected - corruptionBefore.receivedRejected }
    const workers: Record<string, WorkerFigures> = {}
    if (session) {
      const [earlier, after] = await Promise.all([before, statsOf(session, opts.log)])
      // Workers still in the mesh, and any that ran actions of this build and left.
      for (const id of new Set([...Object.keys(after), ...ranBy.keys()])) {
        const s = after[id]
        workers[id] = { actionsRun: ranBy.get(id) ?? 0, stats: s ? statsSince(earlier[id] ?? null, s) : null }
      }
    }
    if (session) {
      const open = session
      session = undefined
      faults.coordinator = (await open.close()) ?? null
    }
    return { summary, workers, faults, seedPolicy: opts.seedPolicy, seedWindow: opts.seedWindow ?? null, strategy: opts.coordinator ? 'per worker' : opts.strategy, meshStart }
  } finally {
    project.actionCache.close()
    // A mesh still starting (the build ended before its first action needed it) is stopped once up.
    await starting?.catch(() => {})
    await session?.close({ meshGone: meshError !== undefined })
    await local?.stop()
    // A mesh kept for the next builds, started now (this build does not wait for it), if this one's was whole to the end.
    const whole = !opts.signal?.aborted && !meshError && faults.localWorkersExited.length === 0 && (faults.coordinator?.workersLost.length ?? 0) === 0
    if (keepAfter && local && whole) {
      const pid = startLocalMeshDaemon({ meshDir, settings: meshSettings(), idleS: keepS, prime: { buildFile: project.buildFile, cwd: process.cwd() } })
      if (pid !== undefined) opts.onMeshNote?.(`local mesh: started in the background for the next builds (pid ${pid}), kept for ${idleText(keepS)} after the last one (bldr mesh stop ends it)`)
    }
    if (lease) {
      const { stopping } = await lease.release(opts.signal?.aborted ? 'interrupted' : 'done')
      if (stopping) opts.onMeshNote?.(`local mesh stopped: ${stopping}`)
    }
  }
}

/** The workers' counters, or none when the mesh cannot say (it stopped meanwhile): they are figures for --stats, not the build. */
async function statsOf(session: MeshBuild, log: Logger | undefined): Promise<Record<string, WorkerStatsWire | null>> {
  try {
    return await session.workerStats()
  } catch (err) {
    log?.warn({ err }, "could not read the workers' counters from the coordinator")
    return {}
  }
}

/** "10 min", "90 s": a setting in seconds as a note says it. */
function idleText(s: number): string {
  return s >= 120 && s % 60 === 0 ? `${s / 60} min` : `${s} s`
}

/** "45 s", "12 min": how long something has been up, rounded. */
function upText(s: number): string {
  return s < 120 ? `${s} s` : `${Math.round(s / 60)} min`
}

/** "2 worker processes × 1 slot", or "2 worker processes (2 + 1 slots)" when they differ. */
export function describeSlots(slots: readonly number[]): string {
  const workers = `${slots.length} worker process${slots.length === 1 ? '' : 'es'}`
  const each = slots[0] ?? 0
  if (slots.every((n) => n === each)) return `${workers} × ${each} slot${each === 1 ? '' : 's'}`
  return `${workers} (${slots.join(' + ')} slots)`
}

/** A worker's counters over one build: the difference of two readings. */
function statsSince(before: WorkerStatsWire | null, after: WorkerStatsWire): WorkerStatsWire {
  if (!before) return after
  // Counters a worker of an older version may not send count as 0.
  const d = (k: keyof WorkerStatsWire): number => ((after[k] as number | undefined) ?? 0) - ((before[k] as number | undefined) ?? 0)
  return {
    executed: d('executed'),
    notStarted: d('notStarted'),
    stealsAttempted: d('stealsAttempted'),
    stealsGranted: d('stealsGranted'),
    stealsRefused: d('stealsRefused'),
    stealsFailed: d('stealsFailed'),
    stealsLate: d('stealsLate'),
    actionsStolen: d('actionsStolen'),
    offers: d('offers'),
    actionsOffered: d('actionsOffered'),
    actionsTakenBack: d('actionsTakenBack'),
    announcements: d('announcements'),
    reportFailures: d('reportFailures'),
    // Samples are kept in order (the oldest dropped past a cap): the new ones are the tail.
    stealRoundTripsMs: after.stealRoundTripsMs.slice(Math.min(before.stealRoundTripsMs.length, after.stealRoundTripsMs.length)),
    startRoundTripsMs: (after.startRoundTripsMs ?? []).slice(Math.min(before.startRoundTripsMs?.length ?? 0, after.startRoundTripsMs?.length ?? 0)),
    queueDepthSamples: after.queueDepthSamples.slice(Math.min(before.queueDepthSamples.length, after.queueDepthSamples.length)),
    corruptBlobsRemoved: d('corruptBlobsRemoved'),
    blobsRejected: d('blobsRejected'),
    blobsFetched: d('blobsFetched'),
    bytesFetched: d('bytesFetched'),
  }
}
