/** The `bldr` command: dispatch to a subcommand; expected errors as one line, bugs with a stack. */
import { readFileSync } from 'node:fs'
import { errorReport, ExitCode, UsageError } from '../errors.js'
import { didYouMean } from '../graph/suggest.js'

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<number> }> = {
  // Each command is loaded when it runs: the mesh's libp2p stack alone takes ~0.4 s to load.
  // A distributed build first asks the folder's kept local mesh to run it (hosted-build.ts).
  build: { summary: 'build targets of the BUILD file in this folder, here or on a mesh', run: async (a) => (await (await import('./hosted-build.js')).hostedBuild(a)) ?? (await import('./build-command.js')).buildCommand(a) },
  graph: { summary: 'list the actions a build would run (as ninja -t commands)', run: async (a) => (await import('./graph-command.js')).graphCommand(a) },
  gc: { summary: 'remove what no cached action needs from .bldr (--max-size bounds it)', run: async (a) => (await import('./gc-command.js')).gcCommand(a) },
  mesh: { summary: 'the local mesh bldr build --distributed keeps between builds: status, stop', run: async (a) => (await import('./mesh-command.js')).meshCommand(a) },
  worker: { summary: 'join a build mesh as a worker', run: async (a) => (await import('./worker-command.js')).workerCommand(a) },
  coordinator: { summary: 'run a build mesh\'s coordinator', run: async (a) => (await import('./coordinator-command.js')).coordinatorCommand(a) },
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

const HELP = `Usage: bldr <command> [options]

A hermetic, content-addressed, parallel build tool, on one machine or a work-stealing mesh.

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`)
  .join('\n')}

Run 'bldr <command> --help' for a command's options.
  -h, --help     show this help
  -V, --version  print the version`

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  try {
    if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
      if (first === 'help' && rest[0] && COMMANDS[rest[0]]) return await COMMANDS[rest[0]]!.run(['--help'])
      process.stdout.write(`${HELP}\n`)
      return ExitCode.ok
    }
    if (first === '-V' || first === '--version') {
      process.stdout.write(`bldr ${version()}\n`)
      return ExitCode.ok
    }
    const command = COMMANDS[first]
    if (!command) throw new UsageError(`unknown command "${first}"${didYouMean(first, Object.keys(COMMANDS))}; see bldr --help`)
    return await command.run(rest)
  } catch (err) {
    const { text, exitCode } = errorReport(err)
    process.stderr.write(text)
    return exitCode
  }
}
