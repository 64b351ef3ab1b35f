/** Command line parsing on `node:util` parseArgs, with errors that say what and how to fix. */
import { homedir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { UsageError } from '../errors.js'
import { didYouMean } from '../graph/suggest.js'

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
        throw new UsageError(`bldr ${command}: unknown option ${unknown}${didYouMean(unknown, names)}; see bldr ${command} --help`)
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
