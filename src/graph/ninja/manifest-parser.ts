/**
 * A reader for `build.ninja` files (ninja's manual, "Ninja file reference"):
 * variables and their scoping, `rule`, `build` (explicit, implicit `|`,
 * order-only `||` and validation `|@` inputs, implicit outputs), `phony`,
 * `default`, `pool`, `include`, `subninja`. Every build statement comes out
 * with its paths and reserved variables (command, description, depfile, deps,
 * restat, generator, pool, rspfile, dyndep) evaluated as ninja would evaluate
 * them, and with the file and line it was written on; every error names the
 * file and line, and stops the reading, as in ninja.
 *
 * Paths are as written (canonicalized: `./` and `x/..` removed), relative to
 * the build folder or absolute; the loader (ninja-load.ts) maps them onto the
 * project.
 */
import { posix } from 'node:path'
import { BuildFileError } from '../../errors.js'
import { evaluate, EvalSyntaxError, parseEvalString, Scope, shellEscape, type EvalString, type Rule } from './eval-string.js'

export interface NinjaEdge {
  /** The rule's name; `phony` for aliases. */
  rule: string
  outs: string[]
  implicitOuts: string[]
  ins: string[]
  implicitIns: string[]
  orderOnly: string[]
  validations: string[]
  /** Evaluated reserved variables (undefined or '' when not set). */
  command: string
  description: string
  depfile: string
  deps: string
  restat: boolean
  generator: boolean
  pool: string
  rspfile: string
  rspfileContent: string
  dyndep: string
  file: string
  line: number
}

export interface NinjaManifest {
  edges: NinjaEdge[]
  /** Targets of `default` statements, in order (empty: ninja builds every root). */
  defaults: { target: string; file: string; line: number }[]
  /** Pool name → depth (`console` is built in, depth 1). */
  pools: Map<string, number>
  /** Every file read: the main one, then includes and subninjas in order. */
  files: string[]
}

/** Reads a manifest file by its path as written (relative to the build folder or absolute). */
export type ManifestReader = (path: string) => string

const RULE_VARIABLES = new Set(['command', 'depfile', 'deps', 'msvc_deps_prefix', 'description', 'dyndep', 'generator', 'restat', 'rspfile', 'rspfile_content', 'pool'])
const IDENT = /^[A-Za-z0-9_.-]+/

interface LogicalLine {
  text: string
  /** 1-based number of its first physical line. */
  line: number
  indented: boolean
}

/** Physical lines → logical ones: `$` at the end of a line continues it (leading blanks of the next line dropped); comments and blank lines skipped. */
function logicalLines(text: string): LogicalLine[] {
  const physical = text.split(/\r?\n/)
  const out: LogicalLine[] = []
  for (let i = 0; i < physical.length; i++) {
    const start = i
    let line = physical[i] as string
    while (endsWithContinuation(line) && i + 1 < physical.length) {
      i++
      line = line.slice(0, -1) + (physical[i] as string).replace(/^[ ]+/, '')
    }
    const trimmed = line.replace(/^[ ]+/, '')
    if (trimmed === '' || trimmed.startsWith('#')) continue
    out.push({ text: trimmed, line: start + 1, indented: trimmed.length !== line.length })
  }
  return out
}

/** An odd number of `$` at the end: the last one escapes the newline. */
function endsWithContinuation(line: string): boolean {
  let n = 0
  for (let j = line.length - 1; j >= 0 && line[j] === '$'; j--) n++
  return n % 2 === 1
}

export function canonicalizePath(p: string): string {
  if (p === '') return p
  const n = posix.normalize(p)
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n
}

export function parseNinjaManifest(mainFile: string, read: ManifestReader): NinjaManifest {
  const manifest: NinjaManifest = { edges: [], defaults: [], pools: new Map([['console', 1]]), files: [] }
  parseFile(mainFile, read(mainFile), new Scope(), read, manifest, [])
  return manifest
}

function parseFile(file: string, text: string, scope: Scope, read: ManifestReader, manifest: NinjaManifest, including: string[]): void {
  manifest.files.push(file)
  const lines = logicalLines(text)
  const fail = (line: number, rule: string): never => {
    throw new BuildFileError({ file, line }, rule)
  }
  const evalAt = (line: number, text: string, from = 0, stopAt?: string): { value: EvalString; end: number } => {
    try {
      return parseEvalString(text, from, stopAt)
    } catch (err) {
      if (err instanceof EvalSyntaxError) return fail(line, err.message)
      throw err
    }
  }
  /** `name = value` → [name, parsed value]. */
  const binding = (l: LogicalLine): [string, EvalString] => {
    const m = /^([A-Za-z0-9_.-]+)[ ]*=[ ]*/.exec(l.text)
    if (!m) return fail(l.line, `expected "name = value", got ${JSON.stringify(l.text.slice(0, 60))}`)
    return [m[1] as string, evalAt(l.line, l.text, m[0].length).value]
  }
  /** The indented lines after a declaration. */
  const body = (i: number): { bindings: [string, EvalString, LogicalLine][]; next: number } => {
    const bindings: [string, EvalString, LogicalLine][] = []
    let j = i + 1
    for (; j < lines.length && (lines[j] as LogicalLine).indented; j++) {
      const l = lines[j] as LogicalLine
      bindings.push([...binding(l), l])
    }
    return { bindings, next: j }
  }

  let i = 0
  while (i < lines.length) {
    const l = lines[i] as LogicalLine
    if (l.indented) fail(l.line, 'unexpected indented line (variables of a rule, build or pool go right under it)')
    const keyword = /^(\S+)/.exec(l.text)?.[1] ?? ''
    const rest = l.text.slice(keyword.length).replace(/^[ ]+/, '')
    if (keyword === 'rule') {
      const name = IDENT.exec(rest)?.[0]
      if (!name || name.length !== rest.trimEnd().length) fail(l.line, `expected a rule name after "rule"`)
      const { bindings, next } = body(i)
      const rule: Rule = { name: name as string, bindings: new Map(), file, line: l.line }
      for (const [k, v, bl] of bindings) {
        if (!RULE_VARIABLES.has(k)) fail(bl.line, `unexpected variable "${k}" in rule ${name} (rules take ${[...RULE_VARIABLES].join(', ')})`)
        rule.bindings.set(k, v)
      }
      if (name === 'phony') fail(l.line, 'rule "phony" is built in and cannot be redefined')
      if (!rule.bindings.has('command')) fail(l.line, `rule ${name} has no "command ="`)
      if (!scope.addRule(rule)) fail(l.line, `duplicate rule "${name}"`)
      i = next
    } else if (keyword === 'build') {
      const { bindings, next } = body(i)
      manifest.edges.push(parseBuild(file, l, rest, bindings, scope, fail, evalAt, manifest))
      i = next
    } else if (keyword === 'default') {
      let j = 0
      while (j < rest.length) {
        if (rest[j] === ' ') {
          j++
          continue
        }
        const { value, end } = evalAt(l.line, rest, j, ' ')
        const target = canonicalizePath(evaluate(value, (n) => scope.lookup(n)))
        if (target) manifest.defaults.push({ target, file, line: l.line })
        j = end
      }
      if (j === 0) fail(l.line, 'expected target names after "default"')
      i++
    } else if (keyword === 'pool') {
      const name = IDENT.exec(rest)?.[0]
      if (!name) fail(l.line, 'expected a pool name after "pool"')
      if (manifest.pools.has(name as string)) fail(l.line, `duplicate pool "${name}"`)
      const { bindings, next } = body(i)
      let depth: number | undefined
      for (const [k, v, bl] of bindings) {
        if (k !== 'depth') fail(bl.line, `unexpected variable "${k}" in pool ${name} (pools take depth)`)
        const text = evaluate(v, (n) => scope.lookup(n))
        depth = Number(text)
        if (!/^\d+$/.test(text) || depth < 0) fail(bl.line, `invalid pool depth: must be a whole number >= 0 (got ${JSON.stringify(text)})`)
      }
      if (depth === undefined) fail(l.line, `pool ${name} has no "depth ="`)
      manifest.pools.set(name as string, depth as number)
      i = next
    } else if (keyword === 'include' || keyword === 'subninja') {
      const path = evaluate(evalAt(l.line, rest).value, (n) => scope.lookup(n)).trimEnd()
      if (!path) fail(l.line, `expected a path after "${keyword}"`)
      if (including.includes(path) || path === file) fail(l.line, `${keyword} ${path} includes itself`)
      let included = ''
      try {
        included = read(path)
      } catch (err) {
        fail(l.line, `cannot read ${keyword} file ${path}: ${(err as Error).message}`)
      }
      parseFile(path, included, keyword === 'include' ? scope : new Scope(scope), read, manifest, [...including, file])
      i++
    } else if (keyword === 'ninja_required_version') {
      i++
    } else {
      const [name, value] = binding(l)
      scope.set(name, evaluate(value, (n) => scope.lookup(n)))
      i++
    }
  }
}

type Fail = (line: number, rule: string) => never
type EvalAt = (line: number, text: string, from?: number, stopAt?: string) => { value: EvalString; end: number }

function parseBuild(file: string, l: LogicalLine, rest: string, bindings: [string, EvalString, LogicalLine][], scope: Scope, fail: Fail, evalAt: EvalAt, manifest: NinjaManifest): NinjaEdge {
  type Section = 'outs' | 'implicitOuts' | 'ins' | 'implicitIns' | 'orderOnly' | 'validations'
  const raw: Record<Section, EvalString[]> = { outs: [], implicitOuts: [], ins: [], implicitIns: [], orderOnly: [], validations: [] }
  let section: Section = 'outs'
  let ruleName: string | undefined
  let j = 0
  while (j < rest.length) {
    const c = rest[j]
    if (c === ' ') {
      j++
    } else if (c === ':') {
      if (ruleName !== undefined) fail(l.line, 'unexpected ":" (a build statement has one, between its outputs and its rule)')
      j++
      while (rest[j] === ' ') j++
      ruleName = IDENT.exec(rest.slice(j))?.[0]
      if (!ruleName) fail(l.line, 'expected a rule name after ":"')
      j += (ruleName as string).length
      section = 'ins'
    } else if (rest.startsWith('||', j)) {
      if (ruleName === undefined) fail(l.line, 'unexpected "||" before the rule')
      section = 'orderOnly'
      j += 2
    } else if (rest.startsWith('|@', j)) {
      if (ruleName === undefined) fail(l.line, 'unexpected "|@" before the rule')
      section = 'validations'
      j += 2
    } else if (c === '|') {
      if (section === 'outs') section = 'implicitOuts'
      else if (section === 'ins') section = 'implicitIns'
      else fail(l.line, `unexpected "|" after the ${section === 'implicitOuts' ? 'implicit outputs' : 'implicit inputs'}`)
      j++
    } else {
      const { value, end } = evalAt(l.line, rest, j, ' :|')
      raw[section].push(value)
      j = end
    }
  }
  if (ruleName === undefined) fail(l.line, 'expected ":" and a rule after the outputs of a build statement')
  if (raw.outs.length === 0) fail(l.line, 'a build statement needs at least one output')

  // A build statement's own variables are evaluated in the enclosing scope, in order; its paths see them.
  const edgeScope = new Scope(scope)
  for (const [k, v] of bindings) edgeScope.set(k, evaluate(v, (n) => edgeScope.lookup(n)))
  const paths = (s: Section): string[] => raw[s].map((v) => canonicalizePath(evaluate(v, (n) => edgeScope.lookup(n)))).filter((p) => p !== '')

  const edge: NinjaEdge = {
    rule: ruleName as string,
    outs: paths('outs'),
    implicitOuts: paths('implicitOuts'),
    ins: paths('ins'),
    implicitIns: paths('implicitIns'),
    orderOnly: paths('orderOnly'),
    validations: paths('validations'),
    command: '',
    description: '',
    depfile: '',
    deps: '',
    restat: false,
    generator: false,
    pool: '',
    rspfile: '',
    rspfileContent: '',
    dyndep: '',
    file,
    line: l.line,
  }
  if (edge.rule === 'phony') return edge

  const rule = scope.findRule(edge.rule)
  if (!rule) return fail(l.line, `unknown rule "${edge.rule}"`)
  // Ninja's lookup for a rule's variables: the statement's own, then the rule's (evaluated here), then the enclosing scopes.
  const evaluating: string[] = []
  const lookup = (name: string): string => {
    if (name === 'in') return edge.ins.map(shellEscape).join(' ')
    if (name === 'in_newline') return edge.ins.map(shellEscape).join('\n')
    if (name === 'out') return edge.outs.map(shellEscape).join(' ')
    const own = edgeScope.own(name)
    if (own !== undefined) return own
    const fromRule = rule.bindings.get(name)
    if (fromRule === undefined) return scope.lookup(name)
    if (evaluating.includes(name)) fail(l.line, `cycle in rule variables: ${[...evaluating, name].join(' -> ')}`)
    evaluating.push(name)
    const v = evaluate(fromRule, lookup)
    evaluating.pop()
    return v
  }
  edge.command = lookup('command')
  edge.description = lookup('description')
  edge.depfile = canonicalizePath(lookup('depfile'))
  edge.deps = lookup('deps')
  edge.restat = lookup('restat') !== ''
  edge.generator = lookup('generator') !== ''
  edge.pool = lookup('pool')
  edge.rspfile = canonicalizePath(lookup('rspfile'))
  edge.rspfileContent = lookup('rspfile_content')
  edge.dyndep = lookup('dyndep')
  if (edge.pool && !manifest.pools.has(edge.pool)) fail(l.line, `unknown pool "${edge.pool}"`)
  if (edge.deps && edge.deps !== 'gcc') fail(l.line, `deps = ${edge.deps} is not supported (bldr reads gcc-style depfiles: deps = gcc)`)
  if (edge.deps && !edge.depfile) fail(l.line, `deps = ${edge.deps} needs a depfile`)
  return edge
}
