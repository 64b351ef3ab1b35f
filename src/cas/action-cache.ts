/**
 * The action cache: action key → the recorded result of running that action.
 *
 * The key is the BLAKE3 of a canonical encoding of everything that can change
 * what the action produces: argv, environment, each input path with its digest
 * and executable bit, the output paths, the sandbox and platform it runs on,
 * and the programs it starts by content (src/cas/tools.ts).
 * The value names every output by digest; the blobs live in the CAS.
 *
 * Only successful results are recorded, so a failed action runs again next time.
 *
 * Storage: one append-only log, `<key> <json>` per line, the last line for a
 * key wins (as ninja's .ninja_log). A build appends one line per executed
 * action instead of creating a file, and reads one file at start instead of one
 * per action. Without fsync, a crash can lose the last lines, or tear the last
 * one: a lost line is a cache miss, a torn line fails its schema and is
 * skipped. Concurrent builds append whole lines (one write each, O_APPEND).
 * When the log holds more than COMPACT_RATIO times as many lines as live keys,
 * it is rewritten (temporary file + rename); a line another process appends
 * meanwhile can be lost, which again only costs a miss.
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import { z } from 'zod'
import type { Logger } from 'pino'
import { writeFileAtomic, isErrnoException, withParentDir } from './fs-util.js'
import type { Digest, Hasher } from './hasher.js'

const ENCODING_VERSION = 'bldr-action-key-v2'

/** One input as it enters the key. */
export interface KeyedInput {
  path: string
  digest: Digest
  executable: boolean
}

export interface ActionKeyParts {
  argv: readonly string[]
  env: Readonly<Record<string, string>>
  inputs: readonly KeyedInput[]
  outputs: readonly string[]
  /** Sandbox backend name, e.g. `local`, `docker`. */
  sandbox: string
  /** `os-arch`, e.g. `linux-x64`. */
  platform: string
  /** The programs the command starts, outside the project: name, resolved file, digest (src/cas/tools.ts). */
  tools?: readonly { name: string; path: string; digest: Digest }[]
}

/**
 * The canonical encoding: a JSON array (arrays keep order; object key order is
 * never relied on), with env entries and inputs sorted by name. Exactly
 * `JSON.stringify([version, argv, env, inputs, outputs, sandbox, platform, tools])`,
 * assembled from per-input fragments that are computed once per input object:
 * a compile declaring hundreds of headers would otherwise rebuild the same
 * arrays for every action.
 */
export function encodeActionKey(parts: ActionKeyParts): string {
  const env = Object.keys(parts.env)
    .sort()
    .map((k) => [k, parts.env[k]])
  const inputs = isSortedByPath(parts.inputs) ? parts.inputs : [...parts.inputs].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
  let encodedInputs = ''
  for (const i of inputs) {
    let f = fragments.get(i)
    if (f === undefined) {
      f = JSON.stringify([i.path, i.digest, i.executable ? 1 : 0])
      fragments.set(i, f)
    }
    encodedInputs += encodedInputs ? `,${f}` : f
  }
  const outputs = [...parts.outputs].sort()
  const tools = (parts.tools ?? []).map((t) => [t.name, t.path, t.digest])
  return `[${JSON.stringify(ENCODING_VERSION)},${JSON.stringify(parts.argv)},${JSON.stringify(env)},[${encodedInputs}],${JSON.stringify(outputs)},${JSON.stringify(parts.sandbox)},${JSON.stringify(parts.platform)},${JSON.stringify(tools)}]`
}

/** Encoded `[path, digest, executable]` per input object (inputs are treated as immutable). */
const fragments = new WeakMap<KeyedInput, string>()

function isSortedByPath(inputs: readonly KeyedInput[]): boolean {
  for (let i = 1; i < inputs.length; i++) if ((inputs[i - 1] as KeyedInput).path >= (inputs[i] as KeyedInput).path) return false
  return true
}

export function computeActionKey(hasher: Hasher, parts: ActionKeyParts): Digest {
  return hasher.hash(encodeActionKey(parts))
}

/**
 * The key of an action whose command reports the files it read (a depfile):
 * its declared key plus each discovered file with its digest. Never equal to a
 * declared key (the encoding differs), so the log can hold both: the declared
 * key names the discovered paths of the last run, this key the result.
 */
export function computeDiscoveredKey(hasher: Hasher, declaredKey: Digest, discovered: readonly KeyedInput[]): Digest {
  const files = [...discovered].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)).map((i) => [i.path, i.digest, i.executable ? 1 : 0])
  return hasher.hash(JSON.stringify(['bldr-discovered-inputs-v1', declaredKey, files]))
}

const digestSchema = z.string().regex(/^[0-9a-f]{64}$/)
const blobRefSchema = z.object({ digest: digestSchema, size: z.number().int().nonnegative() })

export const outputRecordSchema = z.object({
  path: z.string().min(1),
  digest: digestSchema,
  size: z.number().int().nonnegative(),
  executable: z.boolean(),
  /**
   * The output is a symbolic link with this target (relative, to another
   * output: CMake's `libfoo.so -> libfoo.so.1 -> libfoo.so.1.2.3`). Placed in
   * the project as that link; `digest`, `size` and `executable` are the file
   * it leads to, which an action that reads it is given.
   */
  symlink: z.string().min(1).max(4096).optional(),
})
export type OutputRecord = z.infer<typeof outputRecordSchema>

export const actionResultSchema = z.object({
  v: z.literal(1),
  exitCode: z.number().int(),
  outputs: z.array(outputRecordSchema),
  stdout: blobRefSchema,
  stderr: blobRefSchema,
  /** How long the action ran when it was executed. */
  durationMs: z.number().nonnegative(),
  sandbox: z.string(),
})
export type ActionResult = z.infer<typeof actionResultSchema>

/** The files an action's last run read (from its depfile), recorded under its declared key. */
const discoveredSchema = z.object({ v: z.literal(1), discovered: z.array(z.string().min(1)) }).strict()

/** Rewrite the log when it has this many lines per live key (and at least COMPACT_MIN_LINES). */
const COMPACT_RATIO = 3
const COMPACT_MIN_LINES = 1000

/** A log line `<key> <json>`: its key and JSON text, or undefined for a line that is not one (a torn write). */
export function parseLogLine(line: string): { key: Digest; text: string } | undefined {
  return line.length >= 66 && line[64] === ' ' ? { key: line.slice(0, 64), text: line.slice(65) } : undefined
}

/**
 * Entries parsed and checked in this process, by their text: a process that
 * opens the log again (the kept local mesh, once for each build it runs) does
 * not parse each entry it looks up again (~20 ms of each build of a 200-file
 * project). Frozen: every build that finds one shares it. Emptied when full.
 */
const parsedResults = new Map<string, ActionResult>()
const parsedDiscovered = new Map<string, readonly string[]>()
const PARSED_MAX = 100_000

function remember<T>(memo: Map<string, T>, text: string, value: T): T {
  if (memo.size >= PARSED_MAX) memo.clear()
  memo.set(text, value)
  return value
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

export class ActionCache {
  /** Key → the JSON text of its latest line (parsed on lookup only). */
  private readonly entries = new Map<Digest, string>()
  private fd: number | undefined

  private constructor(
    /** The log file, normally `<project>/.bldr/ac.log`. */
    readonly file: string,
    private readonly log?: Logger,
  ) {}

  /** Load the log (a missing log is an empty cache). */
  static open(file: string, log?: Logger): ActionCache {
    const cache = new ActionCache(file, log)
    let text = ''
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      if (!isErrnoException(err, 'ENOENT')) throw err
    }
    let lines = 0
    for (const line of text.split('\n')) {
      const entry = parseLogLine(line)
      if (!entry) continue
      lines++
      cache.entries.set(entry.key, entry.text)
    }
    if (lines >= COMPACT_MIN_LINES && lines > COMPACT_RATIO * cache.entries.size) cache.compact()
    return cache
  }

  /** The recorded result, or null on a miss. An unreadable entry is logged and treated as a miss. */
  async get(key: Digest): Promise<ActionResult | null> {
    const text = this.entries.get(key)
    if (text === undefined) return null
    const known = parsedResults.get(text)
    if (known) return known
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch (err) {
      this.log?.warn({ err, key }, 'action cache entry is not valid JSON; treating as a miss')
      return null
    }
    const parsed = actionResultSchema.safeParse(json)
    if (!parsed.success) {
      this.log?.warn({ key, issues: parsed.error.issues }, 'action cache entry fails its schema; treating as a miss')
      return null
    }
    return remember(parsedResults, text, deepFreeze(parsed.data))
  }

  async put(key: Digest, result: ActionResult): Promise<void> {
    this.append(key, JSON.stringify(result))
  }

  /** The project files the last run of the action with this declared key read, or null if unknown (a miss). */
  getDiscovered(key: Digest): readonly string[] | null {
    const text = this.entries.get(key)
    if (text === undefined) return null
    const known = parsedDiscovered.get(text)
    if (known) return known
    try {
      const parsed = discoveredSchema.safeParse(JSON.parse(text))
      if (parsed.success) return remember(parsedDiscovered, text, Object.freeze(parsed.data.discovered))
    } catch {
      // not JSON: a torn line
    }
    this.log?.warn({ key }, 'discovered-inputs entry is unreadable; treating as a miss')
    return null
  }

  putDiscovered(key: Digest, paths: readonly string[]): void {
    this.append(key, JSON.stringify({ v: 1, discovered: paths }))
  }

  private append(key: Digest, text: string): void {
    this.fd ??= withParentDir(this.file, () => openSync(this.file, 'a'))
    writeSync(this.fd, `${key} ${text}\n`)
    this.entries.set(key, text)
  }

  /** Number of keys with a recorded result. */
  get size(): number {
    return this.entries.size
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd)
    this.fd = undefined
  }

  private compact(): void {
    let out = ''
    for (const [key, text] of this.entries) out += `${key} ${text}\n`
    writeFileAtomic(this.file, out)
    this.log?.debug({ file: this.file, keys: this.entries.size }, 'compacted the action cache log')
  }
}
