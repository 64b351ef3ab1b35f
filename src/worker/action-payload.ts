/**
 * The wire form of an action for a worker, and of the worker's report on it.
 * Both travel inside mesh frames and are schema-checked when they arrive.
 */
import { z } from 'zod'
import { digestSchema } from '../cas/digest-schema.js'
import { isDigest } from '../cas/hasher.js'
import { DEPFILE_TEXT_MAX_BYTES } from '../../sandbox/types.js'

const PATH_MAX_LEN = 4096
const PEER_ID_MAX_LEN = 128
const peerId = z.string().min(1).max(PEER_ID_MAX_LEN)
const relPath = z.string().min(1).max(PATH_MAX_LEN)

/** An output of a finished action: where it goes in the project, and its blob. */
const outputRecord = z.object({ path: relPath, digest: digestSchema, size: z.number().int().nonnegative(), executable: z.boolean(), symlink: z.string().min(1).max(4096).optional() }).strict()

/** Most inputs one action may name (a ninja action names the whole source tree). */
const MAX_INPUTS = 100_000
/**
 * Largest listing sent inline, in the first payload that names it (the
 * listing of a 200-file CMake project's source tree is ~40 KB): the worker
 * that runs that action need not fetch it, a round trip to the client on the
 * way to the first action of every build whose sources changed.
 */
export const LISTING_INLINE_MAX_BYTES = 256 * 1024
const inputEntry = z.object({ path: relPath, digest: digestSchema, executable: z.boolean(), from: peerId.optional() }).strict()
type InputEntry = z.infer<typeof inputEntry>
const inputList = z.array(inputEntry).max(MAX_INPUTS)
export type { InputEntry }

/** What `inputList` accepts, checked by hand: a type check and a regular expression per field, not zod's per-field parse. */
function wellFormedInputs(v: unknown): v is InputEntry[] {
  if (!Array.isArray(v) || v.length > MAX_INPUTS) return false
  for (const e of v as unknown[]) {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return false
    for (const k of Object.keys(e)) if (k !== 'path' && k !== 'digest' && k !== 'executable' && k !== 'from') return false
    const { path, digest, executable, from } = e as Record<string, unknown>
    if (typeof path !== 'string' || path.length < 1 || path.length > PATH_MAX_LEN) return false
    if (!isDigest(digest) || typeof executable !== 'boolean') return false
    if (from !== undefined && (typeof from !== 'string' || from.length < 1 || from.length > PEER_ID_MAX_LEN)) return false
  }
  return true
}

/**
 * An action's inputs. A ninja action stages the whole source tree (~420
 * files for a 200-file project), and zod took 3.5 ms to check such a payload
 * in every worker for every action (1.4 ms for 140 inputs), against 0.23 ms
 * to parse its JSON. So the list is checked by hand, and zod checks it only
 * when that fails, for the exact path and message of what is wrong.
 */
const inputsSchema = z.custom<InputEntry[]>().superRefine((v, ctx) => {
  if (wellFormedInputs(v)) return
  const parsed = inputList.safeParse(v)
  if (!parsed.success) for (const issue of parsed.error.issues) ctx.addIssue(issue as z.IssueData)
})

/**
 * What a worker needs to run one action: the command, and every input by
 * digest with the peers that hold it (`from`: the worker that produced it, if
 * any; the build's client always has it).
 */
export const actionPayloadSchema = z
  .object({
    v: z.literal(1),
    /** The peer id of the build's client, which serves every input… */
    client: peerId,
    /** …and where to reach it. */
    clientAddrs: z.array(z.string().max(256)).max(16),
    /** The sandbox the action must run in (it is part of the action's key). */
    sandbox: z.enum(['local', 'bwrap', 'docker']),
    argv: z.array(z.string().max(64 * 1024)).min(1).max(65_536),
    env: z.record(z.string(), z.string().max(64 * 1024)),
    inputs: inputsSchema,
    /**
     * More inputs, listed in a blob of their own (`inputListingBytes`), which
     * the client serves: the source tree every action of a ninja file stages
     * (~420 files for a 200-file CMake project) is one listing shared by all
     * of them, fetched and read once per worker, instead of ~50 KiB in every
     * payload, encoded, encrypted and decoded along the way.
     */
    listed: z
      .object({
        digest: digestSchema,
        entries: z.number().int().min(1).max(MAX_INPUTS),
        /** The listing itself, in the first payload that names it (LISTING_INLINE_MAX_BYTES); checked against `digest`. */
        text: z.string().max(LISTING_INLINE_MAX_BYTES).optional(),
      })
      .strict()
      .optional(),
    outputs: z.array(relPath).max(10_000),
    timeoutMs: z.number().int().min(1),
    capabilities: z
      .object({
        network: z.boolean(),
        writeHome: z.boolean(),
        writeTmp: z.boolean(),
        readPaths: z.array(z.string().max(4096)).max(256),
        writePaths: z.array(z.string().max(4096)).max(256),
        maxCpu: z.number().positive().optional(),
        maxMemoryBytes: z.number().int().positive().optional(),
      })
      .strict(),
    /** Where the command expects its folder (the client's project path), its working folder in it, and its depfile (see SandboxSpec). */
    execRoot: z.string().min(2).max(4096).startsWith('/').optional(),
    cwd: z.string().max(4096).optional(),
    depfile: relPath.optional(),
    /** The depfile is read and dropped (ninja's deps = gcc): its text comes back in the report, not as an output (SandboxSpec.readDepfile). */
    readDepfile: z.literal(true).optional(),
    /** The programs the command starts, as the client's key has them (src/cas/tools.ts): a worker runs it only with the same ones. */
    tools: z.array(z.object({ name: z.string().min(1).max(4096), path: z.string().min(1).max(4096), digest: digestSchema }).strict()).max(64).optional(),
  })
  .strict()
export type ActionPayload = z.infer<typeof actionPayloadSchema>

/** How a command ran on a worker; outputs, stdout and stderr are in that worker's store. */
export const execReportSchema = z
  .object({
    exitCode: z.number().int().nullable(),
    signal: z.string().max(32).nullable(),
    timedOut: z.boolean(),
    oomKilled: z.boolean().optional(),
    outputs: z.array(outputRecord).max(10_000),
    missingOutputs: z.array(relPath).max(10_000),
    /** The depfile's text, when the payload asked for it to be read (`readDepfile`) and it was small enough. */
    depfileText: z.string().max(DEPFILE_TEXT_MAX_BYTES).optional(),
    stdout: digestSchema,
    stderr: digestSchema,
    durationMs: z.number().nonnegative(),
    cpuMs: z.number().nonnegative().optional(),
  })
  .strict()
export type ExecReport = z.infer<typeof execReportSchema>

/**
 * A worker's report of one action. `ok` with `exec`: the command ran (it may
 * have failed). `error`: the worker could not run it (inputs unavailable,
 * sandbox failure): an infrastructure failure, not the action's.
 */
export const resultReportSchema = z.object({ ok: z.boolean(), exec: execReportSchema.optional(), error: z.string().max(16 * 1024).optional() }).strict()
export type ResultReport = z.infer<typeof resultReportSchema>

/**
 * About how many bytes a report takes as JSON, at least: batches of results
 * are cut by it to fit their frames. A depfile's text counts twice (its
 * newlines and backslashes are escaped), an output its path and ~200 bytes.
 */
export function reportWeight(report: ResultReport): number {
  let n = 512 + (report.error?.length ?? 0)
  if (report.exec) {
    n += 2 * (report.exec.depfileText?.length ?? 0)
    for (const o of report.exec.outputs) n += 200 + o.path.length
    for (const m of report.exec.missingOutputs) n += 8 + m.length
  }
  return n
}

/** A listing of inputs (ActionPayload.listed): canonical JSON, `[path, digest, 1 if executable else 0]` per input. */
export function inputListingBytes(inputs: readonly { path: string; digest: string; executable: boolean }[]): string {
  return JSON.stringify(inputs.map((i) => [i.path, i.digest, i.executable ? 1 : 0]))
}

/** The inputs a listing blob names, or why it is not one (checked as a payload's inputs are). */
export function parseInputListing(text: string): InputEntry[] | string {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return 'not valid JSON'
  }
  if (!Array.isArray(v)) return 'not a list'
  if (v.length > MAX_INPUTS) return `over ${MAX_INPUTS} inputs`
  const inputs: InputEntry[] = []
  for (const [n, e] of v.entries()) {
    if (!Array.isArray(e) || e.length !== 3) return `entry ${n} is not [path, digest, executable]`
    const [path, digest, executable] = e as unknown[]
    if (typeof path !== 'string' || path.length < 1 || path.length > PATH_MAX_LEN) return `entry ${n}: bad path`
    if (!isDigest(digest)) return `entry ${n}: bad digest`
    if (executable !== 0 && executable !== 1) return `entry ${n}: executable is not 0 or 1`
    inputs.push({ path, digest, executable: executable === 1 })
  }
  return inputs
}

