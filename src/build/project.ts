/**
 * A project on disk: its BUILD file, graph, store and cache, and a local build
 * of it. The CLI is a thin layer over this; tests use it directly.
 */
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve, relative } from 'node:path'
import type { Logger } from 'pino'
import { ActionCache } from '../cas/action-cache.js'
import { isErrnoException } from '../cas/fs-util.js'
import { createBlake3Hasher } from '../cas/hasher.js'
import { openCasStore, type CasStore } from '../cas/store.js'
import { UsageError } from '../errors.js'
import { parseBuildFile } from '../graph/build-file.js'
import { didYouMean } from '../graph/suggest.js'
import type { BuildGraph } from '../graph/dag.js'
import { loadBuildGraph } from '../graph/load.js'
import { parseNinjaManifest } from '../graph/ninja/manifest-parser.js'
import { loadNinjaGraph, projectRootOf } from '../graph/ninja/ninja-load.js'
import { DEFAULT_BUILD_FILE, stateDirOf } from '../graph/paths.js'
import { createSandbox, type AvailableSandbox } from '../../sandbox/create.js'
import { runBuild, type BuildEvent, type BuildOptions, type BuildSummary } from './engine.js'
import { createFsSourceTree } from './fs-source-tree.js'
import { createSandboxExecutor } from './sandbox-executor.js'
import { SourceDigests } from './source-digests.js'

export { DEFAULT_BUILD_FILE }

export interface Project {
  /** Absolute project root: the folder of the BUILD file (for a ninja file: the folder holding its build folder and sources). */
  root: string
  buildFile: string
  graph: BuildGraph
  cas: CasStore
  actionCache: ActionCache
  /** bldr's state folder, `<root>/.bldr` (for a ninja file `<build folder>/.bldr`). */
  stateDir: string
}

export interface OpenProjectOptions {
  /** Folder to start in (`-C`). Default: the current folder. */
  dir?: string
  /** BUILD file, relative to `dir` (`-f`). Default: BUILD.yaml. */
  file?: string
  log?: Logger
}

/**
 * Ninja graphs read in this process, by build file, most recent last: a
 * process that runs many builds (the kept local mesh, for thin clients) reads
 * a project's build.ninja again only when a file it read changed or the
 * source tree gained or lost a file (its graph depends on nothing else; graphs
 * are not changed by builds). Parsing and loading a 200-file CMake project's
 * cost ~18 ms of each of its builds there.
 */
const ninjaGraphs = new Map<string, { shown: string; reads: [string, string][]; root: string; files: string[]; graph: BuildGraph }>()
const NINJA_GRAPHS_KEPT = 4

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

/** A project's build file read into its graph, without opening its store (nothing is written). */
export async function readProjectGraph(opts: OpenProjectOptions = {}): Promise<Pick<Project, 'root' | 'buildFile' | 'graph' | 'stateDir'>> {
  const dir = resolve(opts.dir ?? '.')
  const buildFile = resolve(dir, opts.file ?? DEFAULT_BUILD_FILE)
  let text: string
  try {
    text = await readFile(buildFile, 'utf8')
  } catch (err) {
    if (isErrnoException(err, 'ENOENT')) {
      throw new UsageError(`no build file at ${buildFile} (run in a folder with ${DEFAULT_BUILD_FILE}, or pass -C DIR or -f FILE)`)
    }
    if (isErrnoException(err, 'EISDIR')) throw new UsageError(`${buildFile} is a folder, not a build file`)
    throw err
  }
  const shownName = relative(process.cwd(), buildFile) || buildFile
  const shown = shownName.startsWith('..') ? buildFile : shownName
  let root: string
  let graph: BuildGraph
  let stateDir: string
  if (buildFile.endsWith('.ninja')) {
    const buildDir = dirname(buildFile)
    const readNinja = (p: string): string => (p === shown ? text : readFileSync(resolve(buildDir, p), 'utf8'))
    const known = ninjaGraphs.get(buildFile)
    let files: string[] | undefined
    const unchanged = (reads: [string, string][]): boolean => {
      try {
        return reads.every(([p, t]) => readNinja(p) === t)
      } catch {
        return false // a file it read is gone: read the build file again, which says where
      }
    }
    if (known && known.shown === shown && unchanged(known.reads)) {
      files = await createFsSourceTree(known.root).glob('**')
      if (sameList(files, known.files)) {
        ninjaGraphs.delete(buildFile)
        ninjaGraphs.set(buildFile, known)
        return { root: known.root, buildFile, graph: known.graph, stateDir: stateDirOf(buildFile) }
      }
    }
    const reads: [string, string][] = []
    const manifest = parseNinjaManifest(shown, (p) => {
      const t = readNinja(p)
      reads.push([p, t])
      return t
    })
    root = projectRootOf(manifest, buildDir)
    if (!files || known?.root !== root) files = await createFsSourceTree(root).glob('**')
    graph = loadNinjaGraph({
      manifest,
      root,
      buildDir,
      files,
      onOtherBuildFolders: (folders) => opts.log?.info({ root, folders }, 'other build folders are left out of the source tree staged for each action'),
    })
    ninjaGraphs.delete(buildFile)
    ninjaGraphs.set(buildFile, { shown, reads, root, files, graph })
    for (const old of ninjaGraphs.keys()) if (ninjaGraphs.size > NINJA_GRAPHS_KEPT) ninjaGraphs.delete(old)
    stateDir = stateDirOf(buildFile)
  } else {
    root = dirname(buildFile)
    graph = await loadBuildGraph(parseBuildFile(text, shown), createFsSourceTree(root))
    stateDir = stateDirOf(buildFile)
  }
  return { root, buildFile, graph, stateDir }
}

export async function openProject(opts: OpenProjectOptions = {}): Promise<Project> {
  // The hasher's WebAssembly compiles off the main thread (~30 ms before it can
  // hash): started first, it is ready when the graph is read, not after.
  const hasher = createBlake3Hasher()
  hasher.catch(() => {}) // awaited below; a failure is reported there
  const { root, buildFile, graph, stateDir } = await readProjectGraph(opts)
  const cas = await openCasStore(join(stateDir, 'cas'), await hasher)
  return { root, buildFile, graph, cas, actionCache: ActionCache.open(join(stateDir, 'ac.log'), opts.log), stateDir }
}

/** The action ids that make the named targets (the graph's defaults, else every action, when none are named). */
export function resolveTargets(graph: BuildGraph, names: readonly string[]): string[] {
  if (names.length === 0 && graph.defaults) return graph.defaults.length > 0 ? resolveTargets(graph, graph.defaults) : []
  if (names.length === 0) return [...graph.actions.keys()]
  const roots: string[] = []
  for (const name of names) {
    const ids = graph.targets.get(name) ?? (graph.actions.has(name) ? [name] : undefined)
    if (!ids) {
      const known = [...graph.targets.keys()]
      throw new UsageError(`unknown target "${name}"${didYouMean(name, known)}; targets: ${known.sort().join(', ') || '(none)'}`)
    }
    roots.push(...ids)
  }
  return roots
}

export interface LocalBuildOptions {
  targets?: readonly string[]
  jobs: number
  /** Default: local. */
  sandbox?: AvailableSandbox
  keepGoing?: boolean
  /** Keep scratch folders of failed actions under .bldr/scratch. */
  keepFailed?: boolean
  signal?: AbortSignal
  onEvent?: (e: BuildEvent) => void
  /** See BuildOptions.holdChecks. */
  holdChecks?: BuildOptions['holdChecks']
  log?: Logger
}

export const PLATFORM = `${process.platform}-${process.arch}`

export async function buildLocally(project: Project, opts: LocalBuildOptions): Promise<BuildSummary> {
  const sandbox = createSandbox(opts.sandbox ?? 'local', {
    cas: project.cas,
    scratchRoot: join(project.stateDir, 'scratch'),
    slots: opts.jobs,
    keepFailed: opts.keepFailed ?? false,
    ...(opts.log ? { log: opts.log } : {}),
  })
  try {
    return await runBuild({
      graph: project.graph,
      roots: resolveTargets(project.graph, opts.targets ?? []),
      root: project.root,
      cas: project.cas,
      actionCache: project.actionCache,
      sourceDigests: SourceDigests.ofProject(project.stateDir),
      executor: createSandboxExecutor(sandbox),
      platform: PLATFORM,
      keepGoing: opts.keepGoing ?? false,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
      ...(opts.holdChecks ? { holdChecks: opts.holdChecks } : {}),
      ...(opts.log ? { log: opts.log } : {}),
    })
  } finally {
    project.actionCache.close()
    await sandbox.close()
  }
}
