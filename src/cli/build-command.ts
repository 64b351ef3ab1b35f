/** `bldr build`: flags → a local build → progress, summary, stats, exit code. */
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { writeFileAtomic } from '../cas/fs-util.js'
import type { BuildSummary } from '../build/engine.js'
import { buildLocally, openProject } from '../build/project.js'
import { ExitCode } from '../errors.js'
import { createLogger, LOG_LEVELS } from '../log.js'
import { parseChoiceFlag, parseCommandArgs, parseIntFlag } from './args.js'
import { ProgressReporter } from './progress.js'
import { LOCAL_ISOLATION_NOTE } from '../../sandbox/local.js'

export const SANDBOXES = ['local'] as const

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
      --sandbox NAME    where actions run: ${SANDBOXES.join(', ')} (default: local)
      --stats FILE      write the build's figures as JSON to FILE
      --keep-failed     keep the folders of failed actions (under .bldr/scratch, until the next build)
      --log-level LEVEL ${LOG_LEVELS.join(', ')}, silent (default: warn); logs go to stderr as JSON
  -h, --help            show this help

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
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${BUILD_HELP}\n`)
    return ExitCode.ok
  }
  const jobs = parseIntFlag('--jobs', values.jobs, 1, availableParallelism())
  parseChoiceFlag('--sandbox', values.sandbox, SANDBOXES, 'local')
  const level = parseChoiceFlag('--log-level', values['log-level'], [...LOG_LEVELS, 'silent'] as const, 'warn')
  const log = createLogger(level)
  const statsFile = values.stats !== undefined ? resolve(values.stats) : undefined

  const project = await openProject({ dir: values.directory, file: values.file, log })
  const live = process.stdout.isTTY === true && process.env['TERM'] !== 'dumb'
  const progress = new ProgressReporter(process.stdout, live)
  process.stderr.write(`bldr: ${LOCAL_ISOLATION_NOTE}\n`)

  const interrupt = new AbortController()
  const onSigint = (): void => interrupt.abort(new Error('interrupted'))
  process.once('SIGINT', onSigint)
  process.once('SIGTERM', onSigint)
  let summary: BuildSummary
  try {
    summary = await buildLocally(project, {
      targets: positionals,
      jobs,
      keepGoing: values['keep-going'] ?? false,
      keepFailed: values['keep-failed'] ?? false,
      signal: interrupt.signal,
      onEvent: progress.onEvent,
      log,
    })
  } finally {
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigint)
  }
  progress.finish(summary)
  if (statsFile) writeFileAtomic(statsFile, `${JSON.stringify(statsJson(summary, jobs), null, 2)}\n`)
  if (interrupt.signal.aborted) return 130
  return summary.ok ? ExitCode.ok : ExitCode.buildFailed
}

/** The `--stats` document. Field names are stable: other tools read them. */
export function statsJson(s: BuildSummary, jobs: number): object {
  return {
    version: 1,
    ok: s.ok,
    jobs,
    sandbox: 'local',
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

function round(ms: number): number {
  return Math.round(ms * 10) / 10
}
