/**
 * BUILD spec → validated actions → `BuildGraph`.
 *
 * Generic actions are taken as written. C/C++ rules expand to one compile
 * action per source, plus an archive (`cc_library`) or link (`cc_binary`)
 * action. Then the whole set is checked: paths inside the project, every input
 * either a source file or some action's output, no output produced twice, no
 * dependency cycle. Every problem names the file, line and key path.
 */
import { posix } from 'node:path'
import { BuildFileError, BuildFileErrors, formatLocation } from '../errors.js'
import {
  DEFAULT_ACTION_TIMEOUT_MS,
  DEFAULT_CAPABILITIES,
  HERMETIC_ENV,
  type Action,
  type Capabilities,
  type Mnemonic,
} from './action.js'
import type { BuildFileSpec } from './build-file.js'
import { didYouMean } from './suggest.js'
import { BuildGraph } from './dag.js'
import { checkProjectPath, isGlob, RULE_OUTPUT_DIR } from './paths.js'
import { durationToMs, sizeToBytes, type CapabilitiesSpec, type CcRuleSpec } from './schema.js'
import type { SourceTree } from './source-tree.js'
import type { KeyPath, YamlSource } from './yaml-source.js'

/** An input as written, remembered with its key path for error messages. */
interface InputRef {
  path: string
  keyPath: KeyPath
  /** Written literally (not matched by a glob): must exist or be produced. */
  literal: boolean
}

interface Draft {
  action: Omit<Action, 'inputs' | 'outputs'>
  inputs: InputRef[]
  /**
   * Inputs shared by many actions, as one array (a rule's headers, which every
   * compile of the rule reads): sorted once for all of them, not once per action.
   */
  shared?: InputRef[]
  outputs: { path: string; keyPath: KeyPath }[]
  /** Key path of the BUILD entry, for errors about the action as a whole. */
  entryPath: KeyPath
}

const HEADER_EXTS = new Set(['.h', '.hh', '.hpp', '.hxx', '.h++', '.inc', '.ipp', '.inl'])
const C_EXTS = new Set(['.c', '.s', '.S'])
const CXX_EXTS = new Set(['.cc', '.cpp', '.cxx', '.c++', '.C'])

export async function loadBuildGraph(spec: BuildFileSpec, tree: SourceTree): Promise<BuildGraph> {
  const src = spec.source
  const errors: BuildFileError[] = []
  const drafts: Draft[] = []
  const targets = new Map<string, string[]>()

  const resolvePatterns = async (patterns: readonly string[] | undefined, base: KeyPath): Promise<InputRef[]> => {
    const refs: InputRef[] = []
    for (const [i, raw] of (patterns ?? []).entries()) {
      const keyPath = [...base, i]
      const check = checkProjectPath(raw, isGlob(raw) ? 'pattern' : 'input')
      if (!check.ok) {
        errors.push(src.error(keyPath, check.rule))
        continue
      }
      if (!isGlob(raw)) {
        refs.push({ path: check.path, keyPath, literal: true })
        continue
      }
      const matches = await tree.glob(check.path)
      if (matches.length === 0) errors.push(src.error(keyPath, `glob ${JSON.stringify(raw)} matches no files`))
      for (const m of matches) refs.push({ path: m, keyPath, literal: false })
    }
    return refs
  }

  // Generic actions.
  for (const [name, a] of spec.actions) {
    const entryPath = ['actions', name]
    const outputs: Draft['outputs'] = []
    for (const [i, raw] of (a.outputs ?? []).entries()) {
      const check = checkProjectPath(raw, 'output')
      if (!check.ok) errors.push(src.error([...entryPath, 'outputs', i], check.rule))
      else outputs.push({ path: check.path, keyPath: [...entryPath, 'outputs', i] })
    }
    drafts.push({
      entryPath,
      inputs: await resolvePatterns(a.inputs, [...entryPath, 'inputs']),
      outputs,
      action: {
        id: name,
        owner: name,
        mnemonic: 'Action',
        description: a.description ?? name,
        argv: a.command,
        env: { ...HERMETIC_ENV, ...(a.env ?? {}) },
        timeoutMs: timeoutOf(a.timeout, spec),
        capabilities: toCapabilities(a.capabilities, spec),
        ...(a.flaky ? { flaky: true } : {}),
        origin: src.locate(entryPath, { key: true }),
      },
    })
    targets.set(name, [name])
  }

  // C/C++ rules.
  const order = ccDependencyOrder(spec, src, errors)
  const resolvedRules = new Map<string, { srcs: InputRef[]; hdrs: InputRef[]; includes: string[] }>()
  for (const [name, rule] of spec.targets) {
    const base = ['targets', name]
    const srcs = await resolvePatterns(rule.srcs, [...base, 'srcs'])
    const hdrs = await resolvePatterns(rule.hdrs, [...base, 'hdrs'])
    const includes: string[] = []
    for (const [i, raw] of (rule.includes ?? []).entries()) {
      const check = checkProjectPath(raw, 'input')
      if (!check.ok) errors.push(src.error([...base, 'includes', i], check.rule))
      else includes.push(check.path)
    }
    if (rule.includes === undefined) {
      for (const h of hdrs) includes.push(posix.dirname(h.path))
    }
    resolvedRules.set(name, { srcs, hdrs, includes: unique(includes) })
  }
  if (order) {
    for (const name of order) {
      const rule = spec.targets.get(name) as CcRuleSpec
      const own = resolvedRules.get(name)
      if (!own) continue
      const deps = transitiveDeps(spec, name)
      expandCcRule(name, rule, own, deps.map((d) => ({ name: d, rule: spec.targets.get(d) as CcRuleSpec, resolved: resolvedRules.get(d) })), spec, src, drafts, targets, errors)
    }
  }

  // Outputs: each produced once.
  const producer = new Map<string, Draft>()
  for (const d of drafts) {
    for (const out of d.outputs) {
      const other = producer.get(out.path)
      if (other) {
        const where = formatLocation(src.locate(other.entryPath, { key: true }))
        errors.push(src.error(out.keyPath, `output "${out.path}" is produced by two actions: "${other.action.id}" (${where}) and "${d.action.id}"`))
      } else {
        producer.set(out.path, d)
      }
    }
  }

  // Inputs: each a source file or another action's output.
  const isFile = new Map<string, Promise<boolean>>()
  for (const d of drafts) {
    for (const input of d.shared ? chain(d.inputs, d.shared) : d.inputs) {
      const p = producer.get(input.path)
      if (p === d) {
        errors.push(src.error(input.keyPath, `input "${input.path}" is also an output of the same action "${d.action.id}"`))
      } else if (!p && input.literal) {
        let exists = isFile.get(input.path)
        if (!exists) isFile.set(input.path, (exists = tree.isFile(input.path)))
        if (!(await exists)) errors.push(src.error(input.keyPath, `input file "${input.path}" does not exist and no action produces it`))
      }
    }
  }
  if (errors.length > 0) throw new BuildFileErrors(dedupe(errors))

  const actions = new Map<string, Action>()
  const sortedShared = new Map<InputRef[], string[]>()
  const sharedPaths = (refs: InputRef[]): string[] => {
    let paths = sortedShared.get(refs)
    if (!paths) sortedShared.set(refs, (paths = sortedPaths(refs)))
    return paths
  }
  for (const d of drafts) {
    actions.set(d.action.id, {
      ...d.action,
      inputs: d.shared ? mergeSorted(sortedPaths(d.inputs), sharedPaths(d.shared)) : sortedPaths(d.inputs),
      outputs: unique(d.outputs.map((o) => o.path)).sort(),
    })
  }
  const graph = new BuildGraph(actions, targets)
  const cycle = graph.findCycle()
  if (cycle) {
    const first = graph.get(cycle[0] as string)
    throw new BuildFileErrors([new BuildFileError(first.origin, `dependency cycle: ${cycle.join(' → ')}`)])
  }
  return graph
}

function expandCcRule(
  name: string,
  rule: CcRuleSpec,
  own: { srcs: InputRef[]; hdrs: InputRef[]; includes: string[] },
  deps: { name: string; rule: CcRuleSpec; resolved: { srcs: InputRef[]; hdrs: InputRef[]; includes: string[] } | undefined }[],
  spec: BuildFileSpec,
  src: YamlSource,
  drafts: Draft[],
  targets: Map<string, string[]>,
  errors: BuildFileError[],
): void {
  const base = ['targets', name]
  const cc = spec.toolchain.cc ?? 'cc'
  const cxx = spec.toolchain.cxx ?? 'c++'
  const ar = spec.toolchain.ar ?? 'ar'
  const common = {
    owner: name,
    env: { ...HERMETIC_ENV, ...(rule.env ?? {}) },
    timeoutMs: timeoutOf(rule.timeout, spec),
    capabilities: toCapabilities(rule.capabilities, spec),
    ...(rule.flaky ? { flaky: true } : {}),
    origin: src.locate(base, { key: true }),
  }
  // Headers visible to this target's compiles: its own (hdrs and headers listed in srcs) and its deps' public ones.
  const headers: InputRef[] = [...own.hdrs, ...own.srcs.filter((s) => HEADER_EXTS.has(posix.extname(s.path)))]
  const includeDirs = [...own.includes]
  for (const d of deps) {
    if (!d.resolved) continue
    headers.push(...d.resolved.hdrs.map((h) => ({ ...h, literal: false })))
    includeDirs.push(...d.resolved.includes)
  }
  const includeFlags = unique(includeDirs).map((dir) => `-I${dir}`)

  const objects: InputRef[] = []
  let usesCxx = false
  for (const s of own.srcs) {
    const ext = posix.extname(s.path)
    if (HEADER_EXTS.has(ext)) continue
    const isCxx = CXX_EXTS.has(ext)
    if (!isCxx && !C_EXTS.has(ext)) {
      errors.push(src.error(s.keyPath, `source "${s.path}" has an unsupported extension "${ext}"; use one of ${[...C_EXTS, ...CXX_EXTS, ...HEADER_EXTS].join(' ')}`))
      continue
    }
    usesCxx ||= isCxx
    const obj = `${RULE_OUTPUT_DIR}/obj/${name}/${s.path}.o`
    drafts.push({
      entryPath: base,
      inputs: [s],
      shared: headers,
      outputs: [{ path: obj, keyPath: s.keyPath }],
      action: {
        ...common,
        id: `${name}/compile/${s.path}`,
        mnemonic: 'CcCompile' as Mnemonic,
        description: `${isCxx ? 'CXX' : 'CC'} ${s.path}`,
        argv: [isCxx ? cxx : cc, ...(rule.copts ?? []), ...includeFlags, '-c', s.path, '-o', obj],
      },
    })
    objects.push({ path: obj, keyPath: s.keyPath, literal: false })
  }

  if (rule.kind === 'cc_library') {
    if (objects.length === 0) {
      targets.set(name, []) // header-only
      return
    }
    const lib = libraryPath(name)
    drafts.push({
      entryPath: base,
      inputs: objects,
      outputs: [{ path: lib, keyPath: base }],
      action: { ...common, id: `${name}/archive`, mnemonic: 'CcArchive', description: `AR ${lib}`, argv: [ar, 'rcsD', lib, ...objects.map((o) => o.path)] },
    })
    targets.set(name, [`${name}/archive`])
    return
  }

  // cc_binary: link own objects with every library below it, dependants before dependencies.
  const libs: InputRef[] = []
  const linkopts = [...(rule.linkopts ?? [])]
  for (const d of deps) {
    const hasObjects = d.resolved?.srcs.some((s) => !HEADER_EXTS.has(posix.extname(s.path)))
    if (hasObjects) libs.push({ path: libraryPath(d.name), keyPath: base, literal: false })
    if (d.resolved?.srcs.some((s) => CXX_EXTS.has(posix.extname(s.path)))) usesCxx = true
    linkopts.push(...(d.rule.linkopts ?? []))
  }
  const bin = `${RULE_OUTPUT_DIR}/bin/${name}`
  drafts.push({
    entryPath: base,
    inputs: [...objects, ...libs],
    outputs: [{ path: bin, keyPath: base }],
    action: {
      ...common,
      id: `${name}/link`,
      mnemonic: 'CcLink',
      description: `LINK ${bin}`,
      argv: [usesCxx ? cxx : cc, '-o', bin, ...objects.map((o) => o.path), ...libs.map((l) => l.path), ...unique(linkopts)],
    },
  })
  targets.set(name, [`${name}/link`])
}

function libraryPath(name: string): string {
  return `${RULE_OUTPUT_DIR}/lib/lib${name}.a`
}

/**
 * Rule names ordered so a library comes before the rules that use it, after
 * checking every `deps` entry names a cc_library. Null if the deps have a cycle
 * (reported) — expansion is skipped then.
 */
function ccDependencyOrder(spec: BuildFileSpec, src: YamlSource, errors: BuildFileError[]): string[] | null {
  let ok = true
  for (const [name, rule] of spec.targets) {
    for (const [i, dep] of (rule.deps ?? []).entries()) {
      const target = spec.targets.get(dep)
      if (!target) {
        ok = false
        const known = [...spec.targets.keys()]
        errors.push(src.error(['targets', name, 'deps', i], `unknown target "${dep}"${didYouMean(dep, known)}`))
      } else if (target.kind !== 'cc_library') {
        ok = false
        errors.push(src.error(['targets', name, 'deps', i], `"${dep}" is a ${target.kind}; deps must name cc_library targets`))
      }
    }
  }
  if (!ok) return null
  const order: string[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string, chain: string[]): boolean => {
    const s = state.get(name)
    if (s === 'done') return true
    if (s === 'visiting') {
      const cycle = [...chain.slice(chain.indexOf(name)), name]
      errors.push(src.error(['targets', cycle[0] as string, 'deps'], `dependency cycle between targets: ${cycle.join(' → ')}`))
      return false
    }
    state.set(name, 'visiting')
    for (const dep of spec.targets.get(name)?.deps ?? []) if (!visit(dep, [...chain, name])) return false
    state.set(name, 'done')
    order.push(name)
    return true
  }
  for (const name of spec.targets.keys()) if (!visit(name, [])) return null
  return order
}

/** Every library `name` depends on, directly or not, each before the libraries it uses. */
function transitiveDeps(spec: BuildFileSpec, name: string): string[] {
  const post: string[] = []
  const seen = new Set<string>()
  const visit = (n: string): void => {
    for (const d of spec.targets.get(n)?.deps ?? []) {
      if (seen.has(d)) continue
      seen.add(d)
      visit(d)
      post.push(d)
    }
  }
  visit(name)
  return post.reverse()
}

/** An entry's timeout: its own, else the file's `defaults`, else bldr's. */
function timeoutOf(own: number | string | undefined, file: BuildFileSpec): number {
  const t = own ?? file.defaults.timeout
  return t !== undefined ? durationToMs(t) : DEFAULT_ACTION_TIMEOUT_MS
}

/** An entry's capabilities: bldr's defaults, overridden by the file's `defaults`, then by its own, field by field. */
function toCapabilities(own: CapabilitiesSpec | undefined, file: BuildFileSpec): Capabilities {
  const spec: CapabilitiesSpec = { ...file.defaults.capabilities, ...own }
  const caps: Capabilities = { ...DEFAULT_CAPABILITIES, readPaths: [], writePaths: [] }
  if (spec.network !== undefined) caps.network = spec.network
  if (spec.writeHome !== undefined) caps.writeHome = spec.writeHome
  if (spec.writeTmp !== undefined) caps.writeTmp = spec.writeTmp
  if (spec.readPaths) caps.readPaths = [...spec.readPaths]
  if (spec.writePaths) caps.writePaths = [...spec.writePaths]
  if (spec.maxCpu !== undefined) caps.maxCpu = spec.maxCpu
  if (spec.maxMemory !== undefined) caps.maxMemoryBytes = sizeToBytes(spec.maxMemory)
  return caps
}

function unique<T>(xs: Iterable<T>): T[] {
  return [...new Set(xs)]
}

function* chain<T>(a: readonly T[], b: readonly T[]): Iterable<T> {
  yield* a
  yield* b
}

/** The paths of `refs`, each once, sorted. */
function sortedPaths(refs: readonly InputRef[]): string[] {
  return unique(refs.map((i) => i.path)).sort()
}

/** Two sorted lists of distinct paths as one (sort()'s order), each path once. */
function mergeSorted(a: readonly string[], b: readonly string[]): string[] {
  const out: string[] = []
  let i = 0
  let j = 0
  while (i < a.length && j < b.length) {
    const x = a[i] as string
    const y = b[j] as string
    if (x === y) {
      out.push(x)
      i++
      j++
    } else if (x < y) {
      out.push(x)
      i++
    } else {
      out.push(y)
      j++
    }
  }
  while (i < a.length) out.push(a[i++] as string)
  while (j < b.length) out.push(b[j++] as string)
  return out
}

function dedupe(errors: BuildFileError[]): BuildFileError[] {
  const seen = new Set<string>()
  return errors.filter((e) => (seen.has(e.message) ? false : (seen.add(e.message), true)))
}
