/**
 * A kept local mesh's head start on the project it was started for, run after
 * its warm-up build (src/cli/mesh-command.ts) and before it takes a build.
 *
 * The first build on a new mesh did for the first time in the mesh's process
 * what the builds after it find done (bench/ninja's incremental row: 0.70 s,
 * against 0.59 s for the next build; scratch timestamps):
 * - read build.ninja into its graph (~35 ms; kept after, project.ts);
 * - hash the outputs in place, to trust their blobs (~200 files; the record
 *   is kept after, store.ts);
 * - read and hash the ~400 sources its first action stages, to serve them to
 *   the workers (~22 ms; kept after, served-sources.ts).
 * Each is done here the same way, with nothing trusted that was not hashed
 * in this process. It runs no action and places no output (opening the
 * project may compact its action-cache log, as any build's opening does).
 *
 * It stops early once `signal` is aborted (a build came, or the mesh stops):
 * whatever it did not do, the build does as before.
 */
import { lstatSync, readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import type { Logger } from 'pino'
import { HELD_SOURCE_MAX_BYTES } from './engine.js'
import { openProject } from './project.js'
import { servedSourcesOf } from './served-sources.js'

/** Longest run of work without letting I/O in (a build that comes is told at once, and it stops). */
const SLICE_MS = 2
/** Most bytes of outputs hashed (a project with huge outputs leaves the rest to its first build). */
const OUTPUT_BYTES_MAX = 256 * 1024 * 1024

export interface PrimeOptions {
  /** The build file the mesh was started for, absolute. */
  buildFile: string
  signal: AbortSignal
  log?: Logger
}

export interface Primed {
  /** Sources hashed and kept for serving. */
  sources: number
  /** Outputs in place whose blobs now count as verified. */
  outputs: number
}

/** Prime the project of `buildFile`. Run in the folder its builds run in: the graph is kept under the name the build file has from there (project.ts). */
export async function primeProject({ buildFile, signal, log }: PrimeOptions): Promise<Primed> {
  const project = await openProject({ dir: dirname(buildFile), file: basename(buildFile), ...(log ? { log } : {}) })
  project.actionCache.close()
  const { graph, cas, root } = project
  let sliceStart = performance.now()
  const yielded = async (): Promise<boolean> => {
    if (performance.now() - sliceStart > SLICE_MS) {
      await new Promise((resolve) => setImmediate(resolve))
      sliceStart = performance.now()
    }
    return signal.aborted
  }

  let outputs = 0
  let outputBytes = 0
  for (const action of graph.actions.values()) {
    for (const out of action.outputs) {
      if (await yielded()) return { sources: 0, outputs }
      const abs = join(root, out)
      const size = lstatSync(abs, { throwIfNoEntry: false })?.size ?? 0
      if (outputBytes + size > OUTPUT_BYTES_MAX) continue
      outputBytes += size
      if ((await cas.verifyPlaced(abs)) !== undefined) outputs++
    }
  }

  const served = servedSourcesOf(root, cas.hasher, log)
  const paths = new Set<string>()
  const lists = new Set<readonly string[]>()
  for (const action of graph.actions.values()) {
    for (const list of [action.inputs, action.orderOnly ?? [], action.staged ?? []]) {
      if (lists.has(list)) continue // a ninja file's actions share one staged list
      lists.add(list)
      for (const p of list) if (!graph.producerOf(p)) paths.add(p)
    }
  }
  let sources = 0
  for (const path of paths) {
    if (await yielded()) break
    const abs = join(root, path)
    const st = lstatSync(abs, { throwIfNoEntry: false })
    if (!st?.isFile() || st.size > HELD_SOURCE_MAX_BYTES) continue
    let bytes: Buffer
    try {
      bytes = readFileSync(abs)
    } catch {
      continue // gone meanwhile: the build reports it if an action needs it
    }
    const digest = cas.hasher.hash(bytes)
    if (!served.holds(digest)) served.add(digest, abs, bytes)
    sources++
  }
  return { sources, outputs }
}
