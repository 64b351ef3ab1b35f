/** `bldr graph`: the actions a build would run, for inspection (as `ninja -t commands`), as commands or JSON. */
import { ExitCode } from '../errors.js'
import { readProjectGraph, resolveTargets } from '../build/project.js'
import type { Action } from '../graph/action.js'
import type { BuildGraph } from '../graph/dag.js'
import { parseChoiceFlag, parseCommandArgs } from './args.js'
import { shellQuote } from './progress.js'

export const GRAPH_HELP = `Usage: bldr graph [targets…] [options]

List the actions that build the named targets (default: as bldr build would
pick them), each after the actions it depends on. Nothing is built or written.

Options:
  -C, --directory DIR   run as if started in DIR (default: .)
  -f, --file FILE       the build file, relative to DIR (default: BUILD.yaml; a file ending
                        in .ninja is read as a ninja file)
      --format F        commands: one command a line, as ninja -t commands (default);
                        json: every action with its command, folder, inputs, outputs and
                        dependencies
  -h, --help            show this help

Exit status: 0 listed, 2 bad input (build file, flags or target).`

export async function graphCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('graph', argv, {
    directory: { type: 'string', short: 'C' },
    file: { type: 'string', short: 'f' },
    format: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${GRAPH_HELP}\n`)
    return ExitCode.ok
  }
  const format = parseChoiceFlag('--format', values.format, ['commands', 'json'] as const, 'commands')
  const project = await readProjectGraph({ dir: values.directory, file: values.file })
  const order = project.graph.topologicalOrder(project.graph.closure(resolveTargets(project.graph, positionals)))
  process.stdout.write(format === 'json' ? `${JSON.stringify(describeActions(project.graph, order), null, 2)}\n` : order.map((id) => `${commandLine(project.graph.get(id))}\n`).join(''))
  return ExitCode.ok
}

/** The command as a shell line: a `sh -c` command as written, else each argument quoted as needed. */
export function commandLine(a: Action): string {
  if (a.argv.length === 3 && a.argv[0] === '/bin/sh' && a.argv[1] === '-c') return a.argv[2] as string
  return a.argv.map(shellQuote).join(' ')
}

function describeActions(graph: BuildGraph, order: readonly string[]): unknown[] {
  return order.map((id) => {
    const a = graph.get(id)
    return {
      id,
      description: a.description,
      argv: a.argv,
      ...(a.execRoot !== undefined ? { execRoot: a.execRoot } : {}),
      cwd: a.cwd ?? '',
      inputs: a.inputs,
      ...(a.orderOnly ? { orderOnly: a.orderOnly } : {}),
      outputs: a.outputs,
      deps: graph.depsOf(id),
      ...(a.depfile ? { depfile: a.depfile } : {}),
      ...(a.pool ? { pool: a.pool } : {}),
      origin: a.origin,
    }
  })
}
