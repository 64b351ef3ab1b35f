/** `bldr build`: flags → a local or distributed build → progress, summary, stats, exit code. */
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { writeFileAtomic } from '../cas/fs-util.js'
import type { DistributedBuildResult, FaultReport, WorkerFigures } from '../build/distributed.js'
import type { BuildSummary } from '../build/engine.js'
import { buildLocally, openProject } from '../build/project.js'
import { holdStateDir } from '../cas/gc.js'
import { DEFAULT_SEED_POLICY, DEFAULT_SEED_WINDOW, SEED_POLICIES, SINGLE_WITH_WINDOW, type SeedWindow } from '../net/seed-policy.js'
import { DEFAULT_STRATEGY, STRATEGIES, type StrategyName } from '../../strategies/index.js'
import { ExitCode, UsageError } from '../errors.js'
import { percentile } from '../percentile.js'
import { createLogger, LOG_LEVELS } from '../log.js'
import { BUILD_OPTIONS, livenessHelp, parseChoiceFlag, parseCommandArgs, parseIntFlag, parseLivenessFlags } from './args.js'
import { checkSandbox, isolationNote, SANDBOX_NAMES } from '../../sandbox/create.js'
import { ProgressReporter } from './progress.js'
import { DEFAULT_MESH_IDLE_S, localMeshSettings, type MeshHost } from '../net/mesh-daemon.js'
import { processIo, type BuildIo } from './build-io.js'

export const BUILD_HELP = `Usage: bldr build [targets…] [options]

Build the named targets (default: every target and action in the BUILD file;
for a ninja file, its \`default\` targets, else every target nothing else uses)
and everything they depend on, in parallel. Each action runs in a fresh folder
that holds only its declared inputs; results are cached by content, so a
rebuild with nothing changed runs nothing.

Options:
  -C, --directory DIR   run as if started in DIR (default: .)
  -f, --file FILE       the build file, relative to DIR (default: BUILD.yaml); a file ending
                        in .ninja (as cmake -G Ninja or meson write) is read as a ninja file:
                        commands run in its folder, the source tree is staged for each, and
                        depfiles say what each read (use --sandbox bwrap or docker for
                        outputs identical to ninja's when they record source paths)
  -j, --jobs N          actions run at once (default: ${availableParallelism()}, the number of cores)
  -k, --keep-going      after a failure, keep building what does not depend on it
      --sandbox NAME    where actions run: ${SANDBOX_NAMES.join(', ')} (default: local); run by root,
                        local actions have no capabilities (setpriv), so they cannot override
                        file permissions
      --stats FILE      write the build's figures as JSON to FILE
      --keep-failed     keep the folders of failed actions (under .bldr/scratch, until the next build)
      --log-level LEVEL ${LOG_LEVELS.join(', ')}, silent (default: warn); logs go to stderr as JSON
  -h, --help            show this help

Distributed builds (actions run on a mesh of worker processes that share no
disk with this one; inputs and outputs move between them by BLAKE3 digest):
      --distributed     build on a mesh; without --coordinator, on a local one: a coordinator and
                        --local-workers worker processes on 127.0.0.1, their stores under .bldr/mesh.
                        The one an earlier build kept is used, and runs the build in its process
                        (this one relays its output and Ctrl-C); without one, the build runs its
                        own and, as it ends, starts one in the background for the next builds (see
                        --mesh-idle and bldr mesh)
      --mesh-idle S     keep the local mesh S seconds after the last build (default:
                        $BLDR_MESH_IDLE, else ${DEFAULT_MESH_IDLE_S}); 0 keeps none (each build runs its own). A
                        build with other mesh settings (-j, --local-workers, --sandbox,
                        --strategy, heartbeats) replaces it; one with a --log-level other than
                        warn runs its own, so the workers' logs come to its stderr
      --coordinator ADDR
                        build on the mesh of the coordinator at this multiaddr (implies --distributed)
      --listen ADDR     with --coordinator: where this client listens for the workers, which fetch
                        inputs from it and send outputs to it (default: /ip4/0.0.0.0/tcp/0)
      --local-workers N worker processes of the local mesh (default: ${availableParallelism()}, the number of cores,
                        at most -j); -j's slots are split among them (-j3 on 2: 2 and 1)
      --seed-policy P   how ready actions are first placed: ${SEED_POLICIES.join(', ')} (default: ${DEFAULT_SEED_POLICY});
                        single puts them all on one worker and leaves the rest to stealing
      --seed-window W   N, auto or none: seed a worker at most N queued actions per slot beyond
                        those it runs; the rest wait at the coordinator until results free room.
                        0 seeds free slots only; none seeds up to a worker's whole queue, as
                        --seed-policy single always does; auto (the default) holds 1 per slot
                        while actions are short and 0 once they run 50 times longer than a seed
                        takes to start one
      --strategy NAME   the local workers' victim selection: ${Object.keys(STRATEGIES).join(', ')}
                        (default: ${DEFAULT_STRATEGY})
${livenessHelp(24)}
                        (the local mesh's; a standing mesh has its own)

When a worker is lost, an action is retried, or a result comes late, the build
says so after its summary, and --stats lists it under mesh.faults.

Exit status: 0 built, 1 an action failed, 2 bad input (build file or flags), 130 interrupted.`

/**
 * `jobs` slots split among `workers` local worker processes, as evenly as they
 * go: -j3 on 2 workers is 2 and 1, so the mesh runs at most -j actions at once
 * (each worker taking ceil(jobs / workers) ran up to 4). Never more workers
 * than slots.
 */
export function splitSlots(jobs: number, workers: number): number[] {
  const n = Math.max(1, Math.min(workers, jobs))
  return Array.from({ length: n }, (_, w) => Math.floor(jobs / n) + (w < jobs % n ? 1 : 0))
}

/** The kept local mesh was asked to run a build it does not take (another mesh, another kind of build): the client runs it. */
export class HostDeclined extends Error {
  override readonly name = 'HostDeclined'
}

/**
 * `bldr build`. With `host`, the build runs in the process of the folder's
 * kept local mesh for a thin client (`io` is the client's); one that would not
 * use that mesh as it is throws HostDeclined before it does anything.
 */
export async function buildCommand(argv: string[], io: BuildIo = processIo(), host?: MeshHost): Promise<number> {
  const { values, positionals } = parseCommandArgs('build', argv, BUILD_OPTIONS)
  if (values.help) {
    io.stdout.write(`${BUILD_HELP}\n`)
    return ExitCode.ok
  }
  const jobs = parseIntFlag('--jobs', values.jobs, 1, availableParallelism())
  const sandboxName = parseChoiceFlag('--sandbox', values.sandbox, SANDBOX_NAMES, 'local')
  const level = parseChoiceFlag('--log-level', values['log-level'], [...LOG_LEVELS, 'silent'] as const, 'warn')
  const log = createLogger(level, io.stderr === process.stderr ? undefined : io.stderr)
  const statsFile = values.stats !== undefined ? resolve(values.stats) : undefined
  const distributed = values.distributed === true || values.coordinator !== undefined
  const localWorkers = parseIntFlag('--local-workers', values['local-workers'], 1, availableParallelism())
  const seedPolicy = parseChoiceFlag('--seed-policy', values['seed-policy'], SEED_POLICIES, DEFAULT_SEED_POLICY)
  // `none`: no window (a worker is seeded up to its whole queue); `single` always seeds so.
  const windowFlag = values['seed-window']
  if (windowFlag !== undefined && windowFlag !== 'none' && windowFlag !== 'auto' && !/^\d+$/.test(windowFlag)) throw new UsageError(`invalid --seed-window: must be an integer >= 0, auto or none (got ${JSON.stringify(windowFlag)})`)
  if (seedPolicy === 'single' && windowFlag !== undefined && windowFlag !== 'none') throw new UsageError(`--seed-window: ${SINGLE_WITH_WINDOW}`)
  const seedWindow: SeedWindow | undefined = windowFlag === 'none' || seedPolicy === 'single' ? undefined : windowFlag === 'auto' || windowFlag === undefined ? DEFAULT_SEED_WINDOW : Number(windowFlag)
  const strategy = parseChoiceFlag('--strategy', values.strategy, Object.keys(STRATEGIES) as StrategyName[], DEFAULT_STRATEGY)
  if (!distributed) {
    for (const flag of ['local-workers', 'seed-policy', 'seed-window', 'strategy'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --distributed or --coordinator`)
    }
  }
  if (!distributed) {
    for (const flag of ['heartbeat-interval', 'worker-timeout'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --distributed`)
    }
  }
  if (!distributed && values['mesh-idle'] !== undefined) throw new UsageError('--mesh-idle needs --distributed')
  for (const flag of ['local-workers', 'mesh-idle', 'heartbeat-interval', 'worker-timeout'] as const) {
    if (values.coordinator !== undefined && values[flag] !== undefined) throw new UsageError(`--${flag} applies to the local mesh; it cannot be used with --coordinator`)
  }
  if (values.listen !== undefined && values.coordinator === undefined) throw new UsageError('--listen needs --coordinator (a local mesh listens on 127.0.0.1)')
  // Each worker needs a slot: asked for more than -j, that is an error; by default, as many as -j allows.
  if (values['local-workers'] !== undefined && localWorkers > jobs) throw new UsageError(`invalid --local-workers: must be at most -j (${jobs}), each worker needs a slot (got ${localWorkers})`)
  const liveness = parseLivenessFlags(values)
  const meshIdleS = values['mesh-idle'] !== undefined ? parseIntFlag('--mesh-idle', values['mesh-idle'], 0, 0) : distributed && values.coordinator === undefined ? envIdle(io.env) : 0

  const slots = splitSlots(jobs, localWorkers)
  if (host) {
    const keeps = distributed && values.coordinator === undefined && meshIdleS > 0 && level === 'warn'
    const why = keeps ? host.refuses(localMeshSettings({ localSlots: slots, strategy, sandbox: sandboxName, workerLogLevel: level, liveness, env: io.env })) : 'it does not use the kept local mesh'
    if (why) throw new HostDeclined(why)
  }

  // Actions run on this machine (locally or on the embedded mesh's workers): a backend that cannot work here fails now, not once per action.
  // Its check (bwrap's probe, docker's ping) runs while the build file is read; its error comes first.
  const sandboxChecked = values.coordinator === undefined ? checkSandbox(sandboxName) : Promise.resolve()
  const opening = openProject({ dir: values.directory, file: values.file, log })
  opening.catch(() => {}) // awaited below, after the sandbox check
  await sandboxChecked
  const project = await opening
  // Marked as running (bldr gc waits for it), unless a collection runs there now.
  const releaseState = holdStateDir(project.stateDir, 'build')
  const live = io.stdout.isTTY === true && io.env['TERM'] !== 'dumb'
  const progress = new ProgressReporter(io.stdout, live)
  io.stderr.write(`bldr: ${isolationNote(sandboxName, { here: values.coordinator === undefined })}\n`)
  if (sandboxName === 'local' && [...project.graph.actions.values()].some((a) => a.execRoot !== undefined)) {
    io.stderr.write(`bldr: sandbox local: these commands name files under ${project.root} by absolute path; they run with those paths rewritten to their scratch folders, so outputs that record source paths (assert, debug information) differ from an in-place build (--sandbox bwrap or docker keeps them identical)\n`)
  }

  const interrupt = new AbortController()
  const onSigint = (): void => interrupt.abort(new Error('interrupted'))
  const stopListening = io.onInterrupt(onSigint)
  let summary: BuildSummary
  let mesh: DistributedBuildResult | undefined
  try {
    if (distributed) {
      // Loaded only for a distributed build (libp2p takes ~0.4 s to load).
      const { buildDistributed } = await import('../build/distributed.js')
      mesh = await buildDistributed(project, {
        targets: positionals,
        ...(values.coordinator !== undefined ? { coordinator: values.coordinator } : {}),
        localSlots: slots,
        strategy,
        seedPolicy,
        ...(seedWindow !== undefined ? { seedWindow } : {}),
        sandbox: sandboxName,
        workerLogLevel: level,
        liveness,
        meshIdleS,
        ...(host ? { host } : {}),
        env: io.env,
        ...(values.listen !== undefined ? { listen: values.listen } : {}),
        keepGoing: values['keep-going'] ?? false,
        signal: interrupt.signal,
        onEvent: progress.onEvent,
        onMeshNote: (line) => io.stderr.write(`bldr: ${line}\n`),
        log,
      })
      summary = mesh.summary
    } else {
      summary = await buildLocally(project, {
        targets: positionals,
        jobs,
        sandbox: sandboxName,
        keepGoing: values['keep-going'] ?? false,
        keepFailed: values['keep-failed'] ?? false,
        signal: interrupt.signal,
        onEvent: progress.onEvent,
        log,
      })
    }
  } finally {
    stopListening()
    releaseState()
  }
  progress.finish(summary)
  if (mesh) for (const line of faultLines(mesh.faults, Object.values(mesh.workers))) io.stderr.write(`bldr: ${line}\n`)
  if (statsFile) writeFileAtomic(statsFile, `${JSON.stringify({ ...statsJson(summary, jobs, sandboxName), ...(mesh ? { mesh: meshStatsJson(mesh) } : {}) }, null, 2)}\n`)
  if (interrupt.signal.aborted) return 130
  return summary.ok ? ExitCode.ok : ExitCode.buildFailed
}

/** BLDR_MESH_IDLE, the default of --mesh-idle (seconds). */
function envIdle(env: NodeJS.ProcessEnv): number {
  const v = env['BLDR_MESH_IDLE']
  if (v === undefined || v === '') return DEFAULT_MESH_IDLE_S
  if (!/^\d+$/.test(v)) throw new UsageError(`invalid BLDR_MESH_IDLE: must be an integer >= 0 (seconds; got ${JSON.stringify(v)})`)
  return Number(v)
}

/** The `--stats` document. Field names are stable: other tools read them. */
export function statsJson(s: BuildSummary, jobs: number, sandbox: string): object {
  return {
    version: 1,
    ok: s.ok,
    jobs,
    sandbox,
    wallTimeMs: round(s.wallTimeMs),
    total: s.total,
    executed: s.executed,
    cached: s.cached,
    failed: s.failed.length,
    skipped: s.skipped,
    notStarted: s.notStarted,
    interrupted: s.interrupted,
    failedActions: s.failed,
    criticalPath: { totalMs: round(s.criticalPath.totalMs), actions: s.criticalPath.actions },
    actions: [...s.actions].map(([id, a]) => ({ id, status: a.status, durationMs: round(a.durationMs) })),
  }
}

/** The `mesh` section of `--stats`: per worker, what it ran and how its steals went. */
export function meshStatsJson(m: DistributedBuildResult): object {
  const c = m.faults.coordinator
  return {
    seedPolicy: m.seedPolicy,
    seedWindow: m.seedWindow,
    strategy: m.strategy,
    meshStart: m.meshStart,
    faults: {
      workersLost: c?.workersLost ?? null,
      workersBack: c?.workersBack ?? null,
      workersLeft: c?.workersLeft ?? null,
      workersQuarantined: c?.workersQuarantined ?? null,
      lateResults: c?.lateResults ?? null,
      duplicatesIgnored: c?.duplicatesIgnored ?? null,
      conflicts: c?.conflicts ?? null,
      staleFailures: c?.staleFailures ?? null,
      retries: m.faults.retries,
      client: m.faults.client,
      localWorkersExited: m.faults.localWorkersExited,
      ledger: c ? { submitted: c.submitted, recorded: c.recorded, open: c.open } : null,
    },
    workers: Object.entries(m.workers).map(([id, w]) => ({
      id,
      actionsRun: w.actionsRun,
      ...(w.stats
        ? {
            executed: w.stats.executed,
            steals: {
              attempted: w.stats.stealsAttempted,
              granted: w.stats.stealsGranted,
              refused: w.stats.stealsRefused,
              failed: w.stats.stealsFailed,
              late: w.stats.stealsLate ?? 0,
              actionsStolen: w.stats.actionsStolen,
              roundTripMs: { p50: quantileMs(w.stats.stealRoundTripsMs, 0.5), p99: quantileMs(w.stats.stealRoundTripsMs, 0.99), n: w.stats.stealRoundTripsMs.length },
            },
            asVictim: { offers: w.stats.offers, actionsOffered: w.stats.actionsOffered, actionsTakenBack: w.stats.actionsTakenBack },
            notStarted: w.stats.notStarted,
            startRoundTripMs: { p50: quantileMs(w.stats.startRoundTripsMs ?? [], 0.5), p99: quantileMs(w.stats.startRoundTripsMs ?? [], 0.99), n: w.stats.startRoundTripsMs?.length ?? 0 },
            corruption: { storedRemoved: w.stats.corruptBlobsRemoved ?? 0, receivedRejected: w.stats.blobsRejected ?? 0 },
            fetched: { blobs: w.stats.blobsFetched ?? 0, bytes: w.stats.bytesFetched ?? 0 },
            queueDepthSamples: w.stats.queueDepthSamples,
          }
        : { stats: null }),
    })),
  }
}

/** What went wrong in a distributed build and what was done, one line each; nothing when nothing did. */
export function faultLines(f: FaultReport, workers: readonly WorkerFigures[]): string[] {
  const c = f.coordinator
  const lines: string[] = []
  for (const l of c?.workersLost ?? []) lines.push(`  worker ${short(l.worker)} was lost (${l.why}); ${l.handedBack} of this build's actions went to other workers`)
  for (const w of c?.workersBack ?? []) lines.push(`  lost worker ${short(w)} came back and took work again`)
  for (const q of c?.workersQuarantined ?? [])
    lines.push(`  worker ${short(q.worker)} was quarantined for ${Math.round(q.forMs / 1000)} s: it could not run ${q.failures} actions in a row (last: ${q.why}); ${q.handedBack} of this build's queued actions went to other workers`)
  for (const l of c?.workersLeft ?? []) lines.push(`  worker ${short(l.worker)} left the mesh; it handed back ${l.handedBack} queued action${l.handedBack === 1 ? '' : 's'}`)
  for (const e of f.localWorkersExited) lines.push(`  ${e}`)
  for (const r of f.retries) lines.push(`  ${r.action}: attempt ${r.attempt}, because ${r.reason}`)
  const removed = f.client.corruptBlobsRemoved + workers.reduce((n, w) => n + (w.stats?.corruptBlobsRemoved ?? 0), 0)
  const rejected = f.client.blobsRejected + workers.reduce((n, w) => n + (w.stats?.blobsRejected ?? 0), 0)
  if (removed > 0) lines.push(`  ${removed} stored blob${removed === 1 ? ' was' : 's were'} found corrupt and removed (fetched again or rebuilt, never used)`)
  if (rejected > 0) lines.push(`  ${rejected} blob${rejected === 1 ? ' was' : 's were'} received with bytes that did not match the digest and rejected (fetched again)`)
  if (c && c.lateResults > 0) lines.push(`  ${c.lateResults} result${c.lateResults === 1 ? '' : 's'} came late from a lost worker and ${c.lateResults === 1 ? 'was' : 'were'} used (first result wins)`)
  if (c && c.duplicatesIgnored > 0) lines.push(`  ${c.duplicatesIgnored} repeated result${c.duplicatesIgnored === 1 ? '' : 's'} ignored (same action, same outputs)`)
  if (c && c.conflicts > 0) lines.push(`  ${c.conflicts} result${c.conflicts === 1 ? '' : 's'} with other outputs than the first were ignored (the action is not deterministic)`)
  if (c && c.staleFailures > 0) lines.push(`  ${c.staleFailures} report${c.staleFailures === 1 ? '' : 's'} of a failure to run from a worker that no longer held the action ${c.staleFailures === 1 ? 'was' : 'were'} ignored (another worker had it)`)
  if (lines.length === 0) return []
  const ledger = c ? `; the coordinator recorded ${c.recorded} of ${c.submitted} submitted attempts once each, ${c.open} left open` : '; the coordinator gave no account (it was lost)'
  return [`faults during this build${ledger}:`, ...lines]
}

function short(peer: string): string {
  return `…${peer.slice(-8)}`
}

/** A percentile of round-trip samples for the stats file: rounded, null when there are none. */
function quantileMs(samples: readonly number[], q: number): number | null {
  const v = percentile(samples, q)
  return v === undefined ? null : round(v)
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}
