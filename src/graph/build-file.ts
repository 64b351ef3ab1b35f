/**
 * BUILD.yaml text → a checked `BuildFileSpec`, or every problem at once, each
 * naming the file, the line and key path, and the rule broken.
 */
import { ZodArray, ZodDefault, ZodNullable, ZodObject, ZodOptional, ZodRecord, type z } from 'zod'
import { BuildFileError, BuildFileErrors } from '../errors.js'
import {
  buildFileSchema,
  KEY_RULE_PREFIX,
  RULE_KINDS,
  ruleSchemas,
  type ActionSpec,
  type CcRuleSpec,
  type ToolchainSpec,
  type DefaultsSpec,
} from './schema.js'
import { didYouMean } from './suggest.js'
import { YamlSource, type KeyPath } from './yaml-source.js'

export interface BuildFileSpec {
  source: YamlSource
  actions: Map<string, ActionSpec>
  targets: Map<string, CcRuleSpec>
  toolchain: ToolchainSpec
  defaults: DefaultsSpec
}

export function parseBuildFile(text: string, file: string): BuildFileSpec {
  const source = YamlSource.parse(text, file)
  const errors: BuildFileError[] = []
  const data = source.data ?? {}

  const root = buildFileSchema.safeParse(data)
  if (!root.success) {
    errors.push(...issuesToErrors(source, buildFileSchema, root.error.issues, []))
    throw new BuildFileErrors(errors)
  }

  const targets = new Map<string, CcRuleSpec>()
  for (const [name, raw] of Object.entries(root.data.targets ?? {})) {
    const path = ['targets', name]
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      errors.push(source.error(path, `wrong type: a target must be a mapping with a "kind", got ${describe(raw)}`))
      continue
    }
    const kind = (raw as Record<string, unknown>)['kind']
    if (kind === undefined) {
      errors.push(source.error(path, `missing required key "kind" (one of ${RULE_KINDS.join(', ')})`, { key: true }))
      continue
    }
    if (typeof kind !== 'string' || !(RULE_KINDS as readonly string[]).includes(kind)) {
      errors.push(
        source.error(
          [...path, 'kind'],
          `unknown kind ${JSON.stringify(kind)}: must be one of ${RULE_KINDS.join(', ')}${typeof kind === 'string' ? didYouMean(kind, RULE_KINDS) : ''}`,
        ),
      )
      continue
    }
    const schema = ruleSchemas[kind as keyof typeof ruleSchemas]
    const parsed = schema.safeParse(raw)
    if (!parsed.success) errors.push(...issuesToErrors(source, schema, parsed.error.issues, path))
    else targets.set(name, parsed.data)
  }

  for (const name of Object.keys(root.data.actions ?? {})) {
    if (Object.hasOwn(root.data.targets ?? {}, name)) {
      errors.push(source.error(['targets', name], `name "${name}" is used by both an action and a target; names must be unique`, { key: true }))
    }
  }

  if (errors.length > 0) throw new BuildFileErrors(errors)
  return {
    source,
    actions: new Map(Object.entries(root.data.actions ?? {})),
    targets,
    toolchain: root.data.toolchain ?? {},
    defaults: root.data.defaults ?? {},
  }
}

type Issue = z.ZodIssue

function issuesToErrors(source: YamlSource, schema: z.ZodTypeAny, issues: Issue[], base: KeyPath): BuildFileError[] {
  const errors: BuildFileError[] = []
  for (const issue of issues) {
    const path: KeyPath = [...base, ...(issue.path as (string | number)[])]
    switch (issue.code) {
      case 'unrecognized_keys': {
        const known = knownKeys(schema, issue.path as (string | number)[])
        for (const key of issue.keys) {
          errors.push(source.error([...path, key], `unknown key "${key}"${didYouMean(key, known)}; allowed keys: ${known.join(', ')}`, { key: true }))
        }
        break
      }
      case 'invalid_type': {
        const value = valueAt(source.data, path)
        if (issue.received === 'undefined') {
          const key = path[path.length - 1]
          errors.push(source.error(path.slice(0, -1), `missing required key "${String(key)}"`, { key: path.length > 1 }))
        } else {
          const hint = issue.expected === 'string' && (typeof value === 'boolean' || typeof value === 'number' || value === null) ? ` (quote it: "${String(value)}")` : ''
          errors.push(source.error(path, `wrong type: expected ${article(issue.expected)}, got ${describe(value)}${hint}`))
        }
        break
      }
      default:
        if (issue.message.startsWith(KEY_RULE_PREFIX)) {
          // A rule on a mapping key: the path ends at the entry, the message names the rule.
          const key = path[path.length - 1]
          errors.push(source.error(path, `invalid name ${JSON.stringify(key)}: ${issue.message.slice(KEY_RULE_PREFIX.length)}`, { key: true }))
        } else {
          errors.push(source.error(path, `${issue.message} (got ${describe(valueAt(source.data, path))})`))
        }
    }
  }
  return errors
}

/** The keys the object schema at `path` inside `schema` allows. */
function knownKeys(schema: z.ZodTypeAny, path: (string | number)[]): string[] {
  const unwrap = (n: z.ZodTypeAny): z.ZodTypeAny => {
    let cur = n
    while (cur instanceof ZodOptional || cur instanceof ZodDefault || cur instanceof ZodNullable) cur = cur._def.innerType as z.ZodTypeAny
    return cur
  }
  let node: z.ZodTypeAny | undefined = schema
  for (const seg of path) {
    const cur: z.ZodTypeAny = unwrap(node)
    if (cur instanceof ZodObject) node = (cur.shape as Record<string, z.ZodTypeAny>)[String(seg)]
    else if (cur instanceof ZodRecord) node = cur._def.valueType as z.ZodTypeAny
    else if (cur instanceof ZodArray) node = cur._def.type as z.ZodTypeAny
    else return []
    if (!node) return []
  }
  const last = unwrap(node)
  return last instanceof ZodObject ? Object.keys(last.shape as object) : []
}

function valueAt(data: unknown, path: KeyPath): unknown {
  let cur = data
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<string | number, unknown>)[seg]
  }
  return cur
}

function article(expected: string): string {
  const names: Record<string, string> = { array: 'a list', object: 'a mapping', string: 'a string', number: 'a number', boolean: 'true or false', record: 'a mapping' }
  return names[expected] ?? expected
}

/** A short description of a value for messages: `number 5`, `a list`, `"text"`. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'a mapping'
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
  return `${typeof value} ${String(value)}`
}
