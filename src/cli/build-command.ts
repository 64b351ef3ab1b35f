/** `bldr build`: flags → a local or distributed build → progress, summary, stats, exit code. */
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { writeFileAtomic } from '../cas/fs-util.js'
import type { DistributedBuildResult } from '../build/distributed.js'
import type { BuildSummary } from '../build/engine.js'
import { buildLocally, openProject } from '../build/project.js'
import { SEED_POLICIES } from '../net/seed-policy.js'
import { DEFAULT_STRATEGY, STRATEGIES, type StrategyName } from '../../strategies/index.js'
import { ExitCode, UsageError } from '../errors.js'
import { percentile } from '../percentile.js'
import { createLogger, LOG_LEVELS } from '../log.js'
import { parseChoiceFlag, parseCommandArgs, parseIntFlag } from './args.js'
import { checkSandbox, isolationNote, SANDBOX_NAMES } from '../../sandbox/create.js'
import { ProgressReporter } from './progress.js'


export const BUILD_HELP = `Usage: bldr build [targets…] [options]

Build the named targets (default: every target and action in the BUILD file)
and everything they depend on, in parallel. Each action runs in a fresh folder
that holds only its declared inputs; results are cached by content, so a
rebuild with nothing changed runs nothing.

Options:
  -C, --directory DIR   run as if started in DIR (default: .)
  -f, --file FILE       the build file, relative to DIR (default: BUILD.yaml)
  -j, --jobs N          actions run at once (default: ${availableParallelism()}, the number of cores)
  -k, --keep-going      after a failure, keep building what does not depend on it
      --sandbox NAME    where actions run: ${SANDBOX_NAMES.join(', ')} (default: local)
      --stats FILE      write the build's figures as JSON to FILE
      --keep-failed     keep the folders of failed actions (under .bldr/scratch, until the next build)
      --log-level LEVEL ${LOG_LEVELS.join(', ')}, silent (default: warn); logs go to stderr as JSON
  -h, --help            show this help

Distributed builds (actions run on a mesh of worker processes that share no
disk with this one; inputs and outputs move between them by BLAKE3 digest):
      --distributed     build on a mesh; without --coordinator, start a local one for this
                        build: a coordinator here and --local-workers worker processes
      --coordinator ADDR
                        build on the mesh of the coordinator at this multiaddr (implies --distributed)
      --local-workers N worker processes of the local mesh (default: ${availableParallelism()}, the number of cores);
                        each runs ceil(jobs / N) actions at once
      --seed-policy P   how ready actions are first placed: ${SEED_POLICIES.join(', ')} (default: round-robin);
                        single puts them all on one worker and leaves the rest to stealing
      --strategy NAME   the local workers' victim selection: ${Object.keys(STRATEGIES).join(', ')}
                        (default: ${DEFAULT_STRATEGY})

Exit status: 0 built, 1 an action failed, 2 bad input (build file or flags), 130 interrupted.`

export async function buildCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('build', argv, {
    directory: { type: 'string', short: 'C' },
    file: { type: 'string', short: 'f' },
    jobs: { type: 'string', short: 'j' },
    'keep-going': { type: 'boolean', short: 'k' },
    sandbox: { type: 'string' },
    stats: { type: 'string' },
    'keep-failed': { type: 'boolean' },
    'log-level': { type: 'string' },
    distributed: { type: 'boolean' },
    coordinator: { type: 'string' },
    'local-workers': { type: 'string' },
    'seed-policy': { type: 'string' },
    strategy: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${BUILD_HELP}\n`)
    return ExitCode.ok
  }
  const jobs = parseIntFlag('--jobs', values.jobs, 1, availableParallelism())
  const sandboxName = parseChoiceFlag('--sandbox', values.sandbox, SANDBOX_NAMES, 'local')
  const level = parseChoiceFlag('--log-level', values['log-level'], [...LOG_LEVELS, 'silent'] as const, 'warn')
  const log = createLogger(level)
  const statsFile = values.stats !== undefined ? resolve(values.stats) : undefined
  const distributed = values.distributed === true || values.coordinator !== undefined
  const localWorkers = parseIntFlag('--local-workers', values['local-workers'], 1, availableParallelism())
  const seedPolicy = parseChoiceFlag('--seed-policy', values['seed-policy'], SEED_POLICIES, 'round-robin')
  const strategy = parseChoiceFlag('--strategy', values.strategy, Object.keys(STRATEGIES) as StrategyName[], DEFAULT_STRATEGY)
  if (!distributed) {
    for (const flag of ['local-workers', 'seed-policy', 'strategy'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --distributed or --coordinator`)
    }
  }
  if (values.coordinator !== undefined && values['local-workers'] !== undefined) throw new UsageError('--local-workers applies to the local mesh; it cannot be used with --coordinator')

  // Actions run on this machine (locally or on the embedded mesh's workers): a backend that cannot work here fails now, not once per action.
  if (values.coordinator === undefined) await checkSandbox(sandboxName)
  const project = await openProject({ dir: values.directory, file: values.file, log })
  const live = process.stdout.isTTY === true && process.env['TERM'] !== 'dumb'
  const progress = new ProgressReporter(process.stdout, live)
  process.stderr.write(`bldr: ${isolationNote(sandboxName)}\n`)

  const interrupt = new AbortController()
  const onSigint = (): void => interrupt.abort(new Error('interrupted'))
  process.once('SIGINT', onSigint)
  process.once('SIGTERM', onSigint)
  let summary: BuildSummary
  let mesh: DistributedBuildResult | undefined
  try {
    if (distributed) {
      // Loaded only for a distributed build (libp2p takes ~0.4 s to load).
      const { buildDistributed } = await import('../build/distributed.js')
      mesh = await buildDistributed(project, {
        targets: positionals,
        ...(values.coordinator !== undefined ? { coordinator: values.coordinator } : {}),
        localWorkers,
        parallelism: Math.ceil(jobs / localWorkers),
        strategy,
        seedPolicy,
        sandbox: sandboxName,
        workerLogLevel: level,
        keepGoing: values['keep-going'] ?? false,
        signal: interrupt.signal,
        onEvent: progress.onEvent,
        onMeshNote: (line) => process.stderr.write(`bldr: ${line}\n`),
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
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigint)
  }
  progress.finish(summary)
  if (statsFile) writeFileAtomic(statsFile, `${JSON.stringify({ ...statsJson(summary, jobs, sandboxName), ...(mesh ? { mesh: meshStatsJson(mesh) } : {}) }, null, 2)}\n`)
  if (interrupt.signal.aborted) return 130
  return summary.ok ? ExitCode.ok : ExitCode.buildFailed
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
  return {
    seedPolicy: m.seedPolicy,
    strategy: m.strategy,
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
              actionsStolen: w.stats.actionsStolen,
              roundTripMs: { p50: quantileMs(w.stats.stealRoundTripsMs, 0.5), p99: quantileMs(w.stats.stealRoundTripsMs, 0.99), n: w.stats.stealRoundTripsMs.length },
            },
            asVictim: { offers: w.stats.offers, actionsOffered: w.stats.actionsOffered, actionsTakenBack: w.stats.actionsTakenBack },
            notStarted: w.stats.notStarted,
            queueDepthSamples: w.stats.queueDepthSamples,
          }
        : { stats: null }),
    })),
  }
}

/** A percentile of round-trip samples for the stats file: rounded, null when there are none. */
function quantileMs(samples: readonly number[], q: number): number | null {
  const v = percentile(samples, q)
  return v === undefined ? null : round(v)
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}
