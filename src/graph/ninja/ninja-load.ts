/**
 * A parsed ninja manifest → bldr actions → `BuildGraph`.
 *
 * The project: ninja runs every command in the build folder, and CMake names
 * sources by absolute path (meson by `../` paths), so bldr's project root is
 * the deepest folder that holds the build folder and every file the
 * statements name outside the toolchain (`projectRootOf`). Every path is mapped onto that root; a path
 * under a toolchain folder (/usr, /lib, …) is the toolchain's, present on
 * every worker, and is neither staged nor keyed; any other path outside the
 * root is an error.
 *
 * One action per build statement: `/bin/sh -c <command>` in the build folder,
 * with the project root expected at its absolute path (`execRoot`, see
 * action.ts). Its key covers its explicit and implicit inputs; order-only
 * inputs order it; the source tree (every file under the root that no
 * statement produces, other build folders left out: `otherBuildFolders`) is staged beside them, so a compile finds every header
 * on a worker that shares no disk with the client; the depfile (gcc -MD) says
 * which it read, and those join the key (see the engine). Phony statements are
 * aliases; generator statements (CMake's re-run of itself) are not built
 * (re-run cmake instead); `restat` needs nothing (an unchanged output leaves
 * its dependants' keys unchanged, so they are restored, not run); pools limit
 * how many of their actions run at once. Not supported, with an error naming
 * the line: `dyndep`, `deps = msvc`.
 */
import { posix } from 'node:path'
import { BuildFileError, BuildFileErrors } from '../../errors.js'
import { DEFAULT_ACTION_TIMEOUT_MS, DEFAULT_CAPABILITIES, HERMETIC_ENV, type Action } from '../action.js'
import { BuildGraph } from '../dag.js'
import { shellEscape } from './eval-string.js'
import type { NinjaEdge, NinjaManifest } from './manifest-parser.js'

/** Folders of the toolchain, which every worker has: paths under them are not project files. */
export const TOOLCHAIN_PREFIXES = ['/usr/', '/bin/', '/lib/', '/lib64/', '/lib32/', '/libx32/', '/sbin/', '/etc/', '/proc/', '/dev/']

/** ninja's own files in the build folder, never inputs. */
const NINJA_STATE_FILES = new Set(['.ninja_log', '.ninja_deps'])

export function isToolchainPath(abs: string): boolean {
  return TOOLCHAIN_PREFIXES.some((p) => abs.startsWith(p))
}

/**
 * The project root for a manifest in `buildDir` (absolute): the deepest folder
 * holding the build folder and every non-toolchain path the build statements
 * (other than generator ones) name. Errors when that is `/`.
 */
export function projectRootOf(manifest: NinjaManifest, buildDir: string): string {
  let root = buildDir
  for (const e of manifest.edges) {
    if (e.generator) continue
    for (const written of [...e.outs, ...e.implicitOuts, ...e.ins, ...e.implicitIns, ...e.orderOnly]) {
      // Meson names sources relative to the build folder (`../src/a.c`), CMake by absolute path.
      const p = written.startsWith('/') ? written : posix.join(buildDir, written)
      if (isToolchainPath(p)) continue
      while (root !== '/' && p !== root && !p.startsWith(`${root}/`)) root = posix.dirname(root)
      if (root === '/') {
        throw new BuildFileError({ file: e.file, line: e.line }, `${p} and the build folder ${buildDir} have no common folder but /; bldr needs one project folder holding the sources and the build folder`)
      }
    }
  }
  return root
}

export interface NinjaGraphInput {
  manifest: NinjaManifest
  /** Absolute project root (`projectRootOf`). */
  root: string
  /** Absolute build folder (where build.ninja is, where commands run). */
  buildDir: string
  /** Every file under the root, project-relative, sorted (bldr's own folder excluded). */
  files: readonly string[]
  /** Told the other build folders left out of the staged source tree, if any (see `otherBuildFolders`). */
  onOtherBuildFolders?: (folders: readonly string[]) => void
}

/** Files that mark a folder as a build folder: CMake's cache, Meson's private state. */
const BUILD_FOLDER_MARKERS = ['CMakeCache.txt', 'meson-private/coredata.dat']

/**
 * Build folders in the tree other than this one (`buildRel`, project-relative;
 * '' for the root): folders holding CMake's `CMakeCache.txt` or Meson's
 * `meson-private/coredata.dat`, except this build folder, folders holding it
 * (an in-source build) and folders inside it (a sub-build it makes). Their
 * files are another build's outputs and state, not sources: staged, a second
 * build folder beside this one (`build-debug/` and `build-release/`) would be
 * hashed, stored and sent to workers with every action of this build, and its
 * objects, identical to this build's, would be stored as sources.
 */
export function otherBuildFolders(files: readonly string[], buildRel: string): string[] {
  const inside = (path: string, folder: string): boolean => folder === '' || path === folder || path.startsWith(`${folder}/`)
  const out = new Set<string>()
  for (const f of files) {
    for (const marker of BUILD_FOLDER_MARKERS) {
      if (f !== marker && !f.endsWith(`/${marker}`)) continue
      const folder = f === marker ? '' : f.slice(0, -marker.length - 1)
      if (!inside(buildRel, folder) && !inside(folder, buildRel)) out.add(folder)
    }
  }
  return [...out].sort()
}

export function loadNinjaGraph(input: NinjaGraphInput): BuildGraph {
  const { manifest, root } = input
  const buildRel = posix.relative(root, input.buildDir)
  const errors: BuildFileError[] = []
  const errorAt = (e: { file: string; line: number }, rule: string): void => {
    errors.push(new BuildFileError({ file: e.file, line: e.line }, rule))
  }
  /** A path as written → project-relative, or null for a toolchain file; undefined (error recorded) when outside the project. */
  const toProject = (p: string, e: NinjaEdge): string | null | undefined => {
    if (p.startsWith('/')) {
      if (p.startsWith(`${root}/`)) return p.slice(root.length + 1)
      if (isToolchainPath(p)) return null
      errorAt(e, `${p} is outside the project folder ${root}`)
      return undefined
    }
    const rel = posix.normalize(posix.join(buildRel, p))
    if (rel === '..' || rel.startsWith('../')) {
      errorAt(e, `${p} is outside the project folder ${root}`)
      return undefined
    }
    return rel
  }
  const mapAll = (paths: readonly string[], e: NinjaEdge): string[] => paths.map((p) => toProject(p, e)).filter((p): p is string => typeof p === 'string')

  const fileSet = new Set(input.files)
  // Who makes each file, by project path: real statements and phony ones; generator outputs are left alone.
  const producer = new Map<string, NinjaEdge>()
  const generated = new Set<string>()
  for (const e of manifest.edges) {
    for (const out of mapAll([...e.outs, ...e.implicitOuts], e)) {
      if (e.generator) {
        generated.add(out)
        continue
      }
      const other = producer.get(out)
      if (other === e) continue // the same file named twice (CMake: relative and absolute)
      if (other) errorAt(e, `multiple statements make ${out} (also ${other.file}:${other.line})`)
      else producer.set(out, e)
    }
  }

  // A phony target stands for the files its inputs name (through other phony targets).
  const phonyFiles = new Map<NinjaEdge, string[]>()
  const filesOf = (path: string, seen: Set<NinjaEdge>): string[] => {
    const e = producer.get(path)
    if (!e || e.rule !== 'phony') return generated.has(path) ? [] : [path]
    // `build file: phony` with no inputs: the file itself, if there is one (CMake lists its own inputs so).
    if (e.ins.length + e.implicitIns.length + e.orderOnly.length === 0) return fileSet.has(path) ? [path] : []
    let files = phonyFiles.get(e)
    if (files) return files
    if (seen.has(e)) return []
    seen.add(e)
    files = [...new Set(mapAll([...e.ins, ...e.implicitIns, ...e.orderOnly], e).flatMap((p) => filesOf(p, seen)))]
    phonyFiles.set(e, files)
    return files
  }

  const made = (f: string): boolean => generated.has(f) || (producer.has(f) && producer.get(f)?.rule !== 'phony')

  /** The statements `e` waits for (its inputs' makers, through phony targets), once per statement. */
  const beforeOf = new Map<NinjaEdge, NinjaEdge[]>()
  const before = (e: NinjaEdge): NinjaEdge[] => {
    let list = beforeOf.get(e)
    if (!list) {
      list = mapAll([...e.ins, ...e.implicitIns, ...e.orderOnly], e)
        .flatMap((p) => filesOf(p, new Set()))
        .flatMap((f) => {
          const m = producer.get(f)
          return m && m.rule !== 'phony' ? [m] : []
        })
      beforeOf.set(e, list)
    }
    return list
  }
  /**
   * Every statement `e` waits for, directly or not: walked once per statement
   * whose command names a produced file (a link naming several libraries asks
   * for each), not once per name.
   */
  const ancestorsOf = new Map<NinjaEdge, Set<NinjaEdge>>()
  const waitsFor = (e: NinjaEdge, target: NinjaEdge): boolean => {
    let seen = ancestorsOf.get(e)
    if (!seen) {
      seen = new Set<NinjaEdge>()
      const stack = [...before(e)]
      while (stack.length > 0) {
        const x = stack.pop()!
        if (seen.has(x)) continue
        seen.add(x)
        stack.push(...before(x))
      }
      ancestorsOf.set(e, seen)
    }
    return seen.has(target)
  }
  /**
   * Files other statements make that `e`'s command names without declaring
   * them, among those it waits for: Meson links a shared library's dependants
   * against `libfoo.so` but declares only its symbols file (so that a library
   * whose symbols did not change relinks nothing). Ninja runs in place, where
   * the library is there; a worker gets only what an action is given, so such
   * a file is an input too (and part of its key). Words are split at blanks
   * and at commas (`-Wl,a,b`), quotes stripped; a path names a file as written
   * or relative to the build folder.
   */
  const namedInCommand = (e: NinjaEdge, declared: ReadonlySet<string>, own: readonly string[]): string[] => {
    const found = new Set<string>()
    for (const word of e.command.split(/\s+/)) {
      const w = word.replace(/^['"]+|['"]+$/g, '')
      for (const p of w.includes(',') ? w.split(',') : [w]) {
        if (p === '' || p.startsWith('-')) continue
        const rel = p.startsWith('/') ? (p.startsWith(`${root}/`) ? p.slice(root.length + 1) : undefined) : posix.normalize(posix.join(buildRel, p))
        if (rel === undefined || rel.startsWith('../') || declared.has(rel) || own.includes(rel) || found.has(rel)) continue
        const maker = producer.get(rel)
        if (maker && maker !== e && maker.rule !== 'phony' && waitsFor(e, maker)) found.add(rel)
      }
    }
    return [...found]
  }
  const others = otherBuildFolders(input.files, buildRel)
  if (others.length > 0) input.onOtherBuildFolders?.(others)
  const inOtherBuild = (f: string): boolean => others.some((o) => f.startsWith(`${o}/`))
  const staged = input.files.filter((f) => !made(f) && !NINJA_STATE_FILES.has(posix.basename(f)) && !inOtherBuild(f)).sort()
  const actions = new Map<string, Action>()
  const idOf = new Map<NinjaEdge, string>()
  for (const e of manifest.edges) {
    if (e.rule === 'phony' || e.generator) continue
    if (e.dyndep) {
      errorAt(e, 'dyndep is not supported (CMake writes it for Fortran and C++20 modules only)')
      continue
    }
    const outputs = mapAll([...e.outs, ...e.implicitOuts], e)
    const inputs = new Set(mapAll([...e.ins, ...e.implicitIns], e).flatMap((p) => filesOf(p, new Set())))
    for (const p of namedInCommand(e, inputs, outputs)) inputs.add(p)
    // Order-only inputs only order: one no statement makes (CMake names object folders so) orders nothing.
    const orderOnly = new Set(mapAll(e.orderOnly, e).flatMap((p) => filesOf(p, new Set())).filter((p) => producer.has(p) || fileSet.has(p)))
    for (const i of inputs) orderOnly.delete(i)
    for (const i of inputs) {
      if (!producer.has(i) && !fileSet.has(i)) errorAt(e, `input ${i} is missing and no statement makes it`)
    }
    const depfile = e.depfile ? toProject(e.depfile, e) : undefined
    if (depfile) outputs.push(depfile)
    const id = e.outs[0] as string
    const depth = e.pool ? (manifest.pools.get(e.pool) ?? 0) : 0
    idOf.set(e, id)
    actions.set(id, {
      id,
      owner: e.rule,
      mnemonic: 'Ninja',
      description: e.description || e.command,
      argv: ['/bin/sh', '-c', e.rspfile ? `printf '%s' "$BLDR_RSPFILE_CONTENT" > ${shellEscape(e.rspfile)} && ${e.command}` : e.command],
      env: e.rspfile ? { ...HERMETIC_ENV, BLDR_RSPFILE_CONTENT: e.rspfileContent } : HERMETIC_ENV,
      inputs: [...inputs].sort(),
      outputs: [...new Set(outputs)].sort(),
      timeoutMs: DEFAULT_ACTION_TIMEOUT_MS,
      capabilities: DEFAULT_CAPABILITIES,
      origin: { file: e.file, line: e.line },
      execRoot: root,
      cwd: buildRel,
      ...(orderOnly.size > 0 ? { orderOnly: [...orderOnly].sort() } : {}),
      staged,
      ...(depfile ? { depfile: { path: depfile, keep: e.deps === '' } } : {}),
      ...(depth > 0 ? { pool: { name: e.pool, depth } } : {}),
      outputsMayBeMissing: true,
    })
  }

  // Targets: every output as written and as a project path, and every phony name → the actions that make it.
  const targets = new Map<string, string[]>()
  const consumed = new Set<string>()
  for (const e of manifest.edges) {
    for (const p of [...e.ins, ...e.implicitIns, ...e.orderOnly]) consumed.add(p)
  }
  const actionsFor = (path: string): string[] => {
    const ids = new Set<string>()
    for (const f of filesOf(path, new Set())) {
      const p = producer.get(f)
      const id = p ? idOf.get(p) : undefined
      if (id !== undefined) ids.add(id)
    }
    return [...ids].sort()
  }
  const roots: string[] = []
  for (const e of manifest.edges) {
    if (e.generator) continue
    for (const out of [...e.outs, ...e.implicitOuts]) {
      const project = toProject(out, e)
      if (typeof project !== 'string') continue
      const ids = actionsFor(project)
      targets.set(out, ids)
      targets.set(project, ids)
      if (!consumed.has(out)) roots.push(out)
    }
  }
  const defaults = manifest.defaults.length > 0 ? manifest.defaults.map((d) => d.target) : roots
  for (const d of manifest.defaults) {
    if (!targets.has(d.target)) errorAt(d, `unknown target "${d.target}" in default`)
  }

  if (errors.length > 0) throw new BuildFileErrors(errors.slice(0, 20))
  const graph = new BuildGraph(actions, targets, defaults)
  const cycle = graph.findCycle()
  if (cycle) {
    const first = graph.get(cycle[0] as string)
    throw new BuildFileErrors([new BuildFileError(first.origin, `dependency cycle: ${cycle.join(' -> ')}`)])
  }
  return graph
}
