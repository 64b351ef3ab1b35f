/** `bldr mesh`: the local mesh `bldr build --distributed` keeps running between builds (src/net/mesh-daemon.ts). */
import { dirname, join, resolve } from 'node:path'
import { errorReport, ExitCode, UsageError } from '../errors.js'
import { STATE_DIR } from '../graph/paths.js'
import { createLogger, LOG_LEVELS } from '../log.js'
import { localMeshStatus, stopLocalMesh, type MeshHost, type MeshSettings } from '../net/mesh-daemon.js'
import type { BuildIo } from './build-io.js'
import { parseChoiceFlag, parseCommandArgs, parseIntFlag, requireFlag } from './args.js'

export const MESH_HELP = `Usage: bldr mesh <status|stop> [options]

The local mesh of a folder: the coordinator and worker processes that
\`bldr build --distributed\` (with no --coordinator) keeps in the background for
the next builds: a build that finds none running builds on a mesh of its own
and starts one as it ends. It stops --mesh-idle seconds after the last build
(default 600), when .bldr is removed, before \`bldr gc\`, and with a build that
was interrupted or lost a worker. Its log and its workers' are in
.bldr/mesh/daemon.log.

Commands:
  status                say whether it runs: its pid, workers, settings, idle time
  stop                  stop it (its workers leave; their stores stay for the next mesh)

Options:
  -C, --directory DIR   the folder holding .bldr: a BUILD.yaml project, or a ninja
                        build folder (default: .)
  -h, --help            show this help

Exit status: 0 done (status: it runs), 1 status: no local mesh runs there, 2 bad input.`

export async function meshCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === 'serve') return serve(rest)
  const { values, positionals } = parseCommandArgs('mesh', rest, {
    directory: { type: 'string', short: 'C' },
    help: { type: 'boolean', short: 'h' },
  })
  if (sub === undefined) throw new UsageError('bldr mesh: a command is needed (status or stop); see bldr mesh --help')
  if (values.help || sub === '-h' || sub === '--help') {
    process.stdout.write(`${MESH_HELP}\n`)
    return ExitCode.ok
  }
  if (positionals.length > 0) throw new UsageError(`bldr mesh ${sub}: unexpected argument "${positionals[0]}"; see bldr mesh --help`)
  const folder = resolve(values.directory ?? '.')
  const meshDir = join(folder, STATE_DIR, 'mesh')
  if (sub === 'status') {
    const s = await localMeshStatus(meshDir)
    if (!s) {
      process.stdout.write(`bldr mesh: no local mesh runs for ${folder}\n`)
      return ExitCode.buildFailed
    }
    const upS = Math.round((Date.now() - s.startedAt) / 1000)
    process.stdout.write(
      `bldr mesh: pid ${s.pid}, up ${upS} s, ${s.builds} build${s.builds === 1 ? '' : 's'} connected; stops ${s.idleS} s after the last build\n` +
        `  coordinator ${s.addr}\n` +
        `  ${s.workers.length} worker process${s.workers.length === 1 ? '' : 'es'} (pids ${s.workers.join(', ')}; slots ${s.settings.slots.join(' + ')}), sandbox ${s.settings.sandbox}, strategy ${s.settings.strategy}\n`,
    )
    return ExitCode.ok
  }
  if (sub === 'stop') {
    const pid = await stopLocalMesh(meshDir)
    process.stdout.write(pid === undefined ? `bldr mesh: no local mesh runs for ${folder}\n` : `bldr mesh: stopped the local mesh (pid ${pid})\n`)
    return ExitCode.ok
  }
  throw new UsageError(`bldr mesh: unknown command "${sub}" (status or stop); see bldr mesh --help`)
}

/** `bldr mesh serve`: the background process itself, started by `bldr build` (not for direct use). */
async function serve(argv: string[]): Promise<number> {
  const { values } = parseCommandArgs('mesh serve', argv, {
    'mesh-dir': { type: 'string' },
    'folder-id': { type: 'string' },
    settings: { type: 'string' },
    idle: { type: 'string' },
    'log-level': { type: 'string' },
    prime: { type: 'string' },
    'prime-cwd': { type: 'string' },
  })
  const settings = JSON.parse(requireFlag('mesh serve', '--settings', values.settings)) as MeshSettings
  // Its own start and stop are logged at info (the log is a file, not the user's terminal), the workers' at the build's level.
  const asked = parseChoiceFlag('--log-level', values['log-level'] ?? settings.logLevel, [...LOG_LEVELS, 'silent'] as const, 'warn')
  const log = createLogger(LOG_LEVELS.indexOf(asked as (typeof LOG_LEVELS)[number]) > LOG_LEVELS.indexOf('info') ? asked : 'info')
  const { serveLocalMesh } = await import('../net/mesh-daemon-serve.js')
  // The build's code is loaded while the workers start, not when the first build comes.
  const building = import('./build-command.js').then(async (m) => (await import('../build/distributed.js'), m))
  building.catch(() => {}) // reported by the first build it fails
  const hostBuild = async (argv: string[], io: BuildIo, host: MeshHost): Promise<number | { declined: string }> => {
    const { buildCommand, HostDeclined } = await building
    try {
      return await buildCommand(argv, io, host)
    } catch (err) {
      if (err instanceof HostDeclined) return { declined: err.message }
      const { text, exitCode } = errorReport(err)
      io.stderr.write(text)
      return exitCode
    }
  }
  const meshDir = resolve(requireFlag('mesh serve', '--mesh-dir', values['mesh-dir']))
  const prime = values.prime ? { buildFile: resolve(values.prime), cwd: resolve(values['prime-cwd'] ?? dirname(values.prime)) } : undefined
  const warmUp = async (host: MeshHost, idleS: number, signal: AbortSignal, buildCame: AbortSignal): Promise<void> => {
    await building
    const { warmUpMesh } = await import('../build/warm-up.js')
    const started = performance.now()
    const actions = await warmUpMesh({ host, settings, idleS, dir: join(meshDir, 'warm-up'), signal, log })
    log.info({ actions, ms: Math.round(performance.now() - started) }, 'warm-up build done')
    if (!prime || signal.aborted || buildCame.aborted) return
    const { primeProject } = await import('../build/prime-project.js')
    const primeStarted = performance.now()
    try {
      // Where the build that started the mesh ran (a hosted build enters its own folder too).
      process.chdir(prime.cwd)
      const primed = await primeProject({ buildFile: prime.buildFile, signal: AbortSignal.any([signal, buildCame]), log })
      log.info({ ...primed, buildFile: prime.buildFile, ms: Math.round(performance.now() - primeStarted) }, 'primed the project for its next build')
    } catch (err) {
      // Only a head start: the first build reads the project as it would have.
      log.info({ err, buildFile: prime.buildFile }, 'could not prime the project; its first build reads it')
    }
  }
  return serveLocalMesh({ meshDir, ...(values['folder-id'] ? { folderId: values['folder-id'] } : {}), settings, idleS: parseIntFlag('--idle', values.idle, 1, 600), hostBuild, warmUp, log })
}
