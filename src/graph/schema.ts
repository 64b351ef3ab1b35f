/**
 * The shape of BUILD.yaml, as zod schemas (which also give the TypeScript types).
 *
 *   actions:   generic actions, name → { command, inputs, outputs, env, timeout, capabilities, description, flaky }
 *   targets:   rules, name → { kind: cc_library | cc_binary, srcs, hdrs, copts, includes, linkopts, deps, … }
 *   toolchain: { cc, cxx, ar } commands used by the C/C++ rules
 *
 * Messages here are the rule part of an error; the file, line and key path are
 * added by the caller.
 */
import { z } from 'zod'
import { SIZE_RE } from '../size.js'

export { formatBytes, sizeToBytes } from '../size.js'

/** Names of actions and targets: they appear in action ids (which use `/`) and on the command line. */
export const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/
/** Messages of rules on mapping keys start with this, so errors can point at the key. */
export const KEY_RULE_PREFIX = 'invalid name: '
const name = z.string().regex(NAME_RE, { message: 'must be letters, digits, and . _ + - (not starting with . + -)' })
const nameKey = z.string().regex(NAME_RE, { message: `${KEY_RULE_PREFIX}must be letters, digits, and . _ + - (not starting with . + -)` })

const nonEmpty = z.string().min(1, { message: 'must not be empty' })

/** A duration: a number of seconds, or a string like `500ms`, `30s`, `10m`, `1h`. */
const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/
const DURATION_RULE = 'must be a positive number of seconds or a duration like "500ms", "30s", "10m", "1h"'
const duration = z.union([z.number().positive({ message: DURATION_RULE }), z.string().regex(DURATION_RE, { message: DURATION_RULE })], {
  errorMap: () => ({ message: DURATION_RULE }),
})

/** A size: a number of bytes, or a string like `512MiB`, `2G`, `64k`. */
const SIZE_RULE = 'must be a positive number of bytes or a size like "512MiB", "2G", "64k"'
const byteSize = z.union(
  [z.number().int({ message: SIZE_RULE }).positive({ message: SIZE_RULE }), z.string().regex(SIZE_RE, { message: SIZE_RULE })],
  { errorMap: () => ({ message: SIZE_RULE }) },
)

const absolutePath = z.string().regex(/^\//, { message: 'must be an absolute path' })

export const capabilitiesSchema = z.strictObject({
  network: z.boolean().optional(),
  writeHome: z.boolean().optional(),
  writeTmp: z.boolean().optional(),
  readPaths: z.array(absolutePath).optional(),
  writePaths: z.array(absolutePath).optional(),
  maxCpu: z.number().positive({ message: 'must be a positive number of cores' }).optional(),
  maxMemory: byteSize.optional(),
})

const commonFields = {
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: `${KEY_RULE_PREFIX}must be a valid environment variable name` }), z.string()).optional(),
  timeout: duration.optional(),
  capabilities: capabilitiesSchema.optional(),
  /** The command sometimes fails for reasons of its own (a test that races): a non-zero exit is run again, up to 3 runs in all. */
  flaky: z.boolean().optional(),
}

export const actionSchema = z.strictObject({
  command: z.array(z.string()).min(1, { message: 'must have at least the program to run' }),
  inputs: z.array(nonEmpty).optional(),
  outputs: z.array(nonEmpty).optional(),
  description: z.string().optional(),
  ...commonFields,
})

const ccCommon = {
  srcs: z.array(nonEmpty).min(1, { message: 'must list at least one source file' }),
  hdrs: z.array(nonEmpty).optional(),
  copts: z.array(z.string()).optional(),
  includes: z.array(nonEmpty).optional(),
  linkopts: z.array(z.string()).optional(),
  deps: z.array(name).optional(),
  ...commonFields,
}

export const ccLibrarySchema = z.strictObject({ kind: z.literal('cc_library'), ...ccCommon })
export const ccBinarySchema = z.strictObject({ kind: z.literal('cc_binary'), ...ccCommon })

export const RULE_KINDS = ['cc_library', 'cc_binary'] as const
export type RuleKind = (typeof RULE_KINDS)[number]
export const ruleSchemas = { cc_library: ccLibrarySchema, cc_binary: ccBinarySchema } as const

export const toolchainSchema = z.strictObject({
  cc: nonEmpty.optional(),
  cxx: nonEmpty.optional(),
  ar: nonEmpty.optional(),
})

/** What every action and target gets unless it says otherwise (capabilities merge field by field). */
export const defaultsSchema = z.strictObject({
  timeout: duration.optional(),
  capabilities: capabilitiesSchema.optional(),
})

/** The file as a whole; targets are checked per kind afterwards (see build-file.ts). */
export const buildFileSchema = z.strictObject({
  defaults: defaultsSchema.optional(),
  actions: z.record(nameKey, actionSchema).optional(),
  targets: z.record(nameKey, z.unknown()).optional(),
  toolchain: toolchainSchema.optional(),
})

export type ActionSpec = z.infer<typeof actionSchema>
export type CcRuleSpec = z.infer<typeof ccLibrarySchema> | z.infer<typeof ccBinarySchema>
export type ToolchainSpec = z.infer<typeof toolchainSchema>
export type DefaultsSpec = z.infer<typeof defaultsSchema>
export type CapabilitiesSpec = z.infer<typeof capabilitiesSchema>

/** Parse a duration as written in a BUILD file into milliseconds. */
export function durationToMs(value: number | string): number {
  if (typeof value === 'number') return value * 1000
  const m = DURATION_RE.exec(value)
  if (!m) throw new Error(`not a duration: ${value}`)
  const n = Number(m[1])
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']
  return n * unit
}

