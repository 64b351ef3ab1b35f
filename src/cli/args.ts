/** Command line parsing on `node:util` parseArgs, with errors that say what and how to fix. */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { UsageError } from '../errors.js'
import { didYouMean } from '../graph/suggest.js'
import { DEFAULT_LIVENESS, type Liveness } from '../net/liveness.js'
import { sizeToBytes } from '../size.js'

type Options = NonNullable<ParseArgsConfig['options']>

/** Parsed flags: booleans for `type: 'boolean'`, strings otherwise; absent flags are undefined. */
export type ParsedFlags<O extends Options> = { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string }

export function parseCommandArgs<O extends Options>(command: string, argv: string[], options: O): { values: ParsedFlags<O>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
    return { values: values as ParsedFlags<O>, positionals }
  } catch (err) {
    const e = err as Error & { code?: string }
    if (typeof e.code === 'string' && e.code.startsWith('ERR_PARSE_ARGS')) {
      const unknown = /Unknown option '([^']+)'/.exec(e.message)?.[1]
      if (unknown) {
        const names = Object.keys(options).map((n) => `--${n}`)
        throw new UsageError(`${command}: unknown option ${unknown}${didYouMean(unknown, names)}; see bldr ${command} --help`)
      }
      throw new UsageError(`bldr ${command}: ${e.message.split('\n')[0]}; see bldr ${command} --help`)
    }
    throw err
  }
}

/** An integer flag value within bounds: `invalid --jobs: must be an integer >= 1 (got "x")`. */
export function parseIntFlag(flag: string, value: string | undefined, min: number, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < min) throw new UsageError(`invalid ${flag}: must be an integer >= ${min} (got ${JSON.stringify(value)})`)
  return n
}

/** A size flag (`20GiB`, `500M`, a number of bytes) of at least `min` bytes: `--max-store: not a size: "lots" (…)`. */
export function parseSizeFlag(flag: string, value: string, min = 0): number {
  let bytes: number
  try {
    bytes = sizeToBytes(value)
  } catch {
    throw new UsageError(`${flag}: not a size: ${JSON.stringify(value)} (a number of bytes, or like 512MiB, 20G)`)
  }
  if (bytes < min) throw new UsageError(`${flag}: must be at least ${min} (got ${JSON.stringify(value)})`)
  return bytes
}

export function parseChoiceFlag<T extends string>(flag: string, value: string | undefined, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`invalid ${flag}: must be one of ${choices.join(', ')} (got ${JSON.stringify(value)})${didYouMean(value, choices)}`)
  }
  return value as T
}

/** A flag the command cannot run without: `bldr worker: --coordinator is required`. */
export function requireFlag(command: string, flag: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new UsageError(`bldr ${command}: ${flag} is required; see bldr ${command} --help`)
  return value
}

/** Where a daemon keeps its state unless told: `$XDG_CACHE_HOME/bldr/<name>` (default `~/.cache/bldr/<name>`). */
export function defaultDataDir(name: string): string {
  return join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'bldr', name)
}

/** The heartbeat flags every mesh command takes (coordinator, worker, build with a local mesh). */
export const LIVENESS_OPTIONS = {
  'heartbeat-interval': { type: 'string' },
  'worker-timeout': { type: 'string' },
} as const

/** `bldr build`'s flags (build-command.ts; hosted-build.ts reads the same ones to find the folder's kept mesh). */
export const BUILD_OPTIONS = {
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
  'mesh-idle': { type: 'string' },
  'seed-policy': { type: 'string' },
  'seed-window': { type: 'string' },
  strategy: { type: 'string' },
  ...LIVENESS_OPTIONS,
  listen: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

/** Help lines for the heartbeat flags, with descriptions starting at column `col` (as the command's other options). */
export function livenessHelp(col: number): string {
  const pad = ''.padEnd(col)
  // A flag too long for its column gets its description on the next line.
  const option = (flag: string, lines: string[]): string[] =>
    flag.length < col - 1 ? [`${flag.padEnd(col)}${lines[0]}`, ...lines.slice(1).map((l) => pad + l)] : [flag, ...lines.map((l) => pad + l)]
  return [
    ...option('      --heartbeat-interval MS', [`ping every peer this often (default: ${DEFAULT_LIVENESS.heartbeatIntervalMs})`]),
    ...option('      --worker-timeout MS', [
      'a peer whose ping is not answered within MS is disconnected;',
      'a worker disconnected for min(2 s, MS) is declared lost and its',
      `actions are seeded elsewhere (default: ${DEFAULT_LIVENESS.workerTimeoutMs})`,
    ]),
  ].join('\n')
}

export function parseLivenessFlags(values: { 'heartbeat-interval'?: string | undefined; 'worker-timeout'?: string | undefined }): Liveness {
  return {
    heartbeatIntervalMs: parseIntFlag('--heartbeat-interval', values['heartbeat-interval'], 100, DEFAULT_LIVENESS.heartbeatIntervalMs),
    workerTimeoutMs: parseIntFlag('--worker-timeout', values['worker-timeout'], 100, DEFAULT_LIVENESS.workerTimeoutMs),
  }
}
