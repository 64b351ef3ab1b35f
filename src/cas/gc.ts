/**
 * `bldr gc`: bound a project's state folder (`.bldr`).
 *
 * The store keeps every blob a build wrote and the action cache every result,
 * so both grow without end. A collection keeps the cached actions (newest
 * first, as the log last wrote them) whose blobs fit in `maxBytes`, and
 * removes every blob no kept action names (outputs, stdout, stderr). Sources
 * are stored again by the next build that needs them; a removed action's
 * outputs are rebuilt. Also removed: the store's temporary files, scratch
 * folders, and the local mesh's worker stores (input caches, filled again on
 * demand).
 *
 * Not while a build runs in the folder: each build marks itself in
 * `.bldr/running/<pid>` (a collection's mark is `gc-<pid>`), and either one
 * refuses to start while the other's process lives.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BldrError, ExitCode } from '../errors.js'
import { actionResultSchema, parseLogLine } from './action-cache.js'
import { isAlive, writeFileAtomic } from './fs-util.js'
import { blobPathIn, storedBlobs } from './store.js'

/** A build or a collection is running in a state folder (its pid). */
export class StateBusyError extends BldrError {
  override readonly name = 'StateBusyError'
  readonly exitCode = ExitCode.buildFailed
}

/** Live marks in `<stateDir>/running`: builds by pid, collections as `gc-<pid>`. Dead ones are removed. */
function liveMarks(stateDir: string): { builds: number[]; collections: number[] } {
  const dir = join(stateDir, 'running')
  const found = { builds: [] as number[], collections: [] as number[] }
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    const m = /^(gc-)?(\d+)$/.exec(name)
    if (!m) continue
    const pid = Number(m[2])
    if (pid === process.pid) continue
    if (!isAlive(pid)) {
      rmSync(join(dir, name), { force: true })
      continue
    }
    ;(m[1] ? found.collections : found.builds).push(pid)
  }
  return found
}

/** Mark the state folder as used by this process (`kind` build or gc); refuses if the other kind runs there. Returns the release. */
export function holdStateDir(stateDir: string, kind: 'build' | 'gc'): () => void {
  const live = liveMarks(stateDir)
  if (kind === 'build' && live.collections.length > 0) throw new StateBusyError(`bldr gc is collecting in ${stateDir} (pid ${live.collections[0]}); build when it ends`)
  if (kind === 'gc' && live.builds.length > 0) throw new StateBusyError(`a build is running in ${stateDir} (pid ${live.builds.join(', ')}); collect when it ends`)
  const mark = join(stateDir, 'running', kind === 'gc' ? `gc-${process.pid}` : String(process.pid))
  mkdirSync(join(stateDir, 'running'), { recursive: true })
  writeFileSync(mark, '')
  return () => rmSync(mark, { force: true })
}

export interface GcReport {
  actionsKept: number
  actionsRemoved: number
  blobsKept: number
  bytesKept: number
  blobsRemoved: number
  bytesRemoved: number
  /** Local-mesh worker stores, scratch folders and temporary files removed. */
  otherBytesRemoved: number
}

/** Collect `stateDir` down to the cached actions whose blobs fit in `maxBytes` (all, without it). With `dryRun`, only say what would go. */
export function collectGarbage(stateDir: string, opts: { maxBytes?: number; dryRun?: boolean } = {}): GcReport {
  const release = opts.dryRun ? () => {} : holdStateDir(stateDir, 'gc')
  try {
    return collect(stateDir, opts.maxBytes ?? Infinity, opts.dryRun ?? false)
  } finally {
    release()
  }
}

function collect(stateDir: string, maxBytes: number, dryRun: boolean): GcReport {
  const casRoot = join(stateDir, 'cas')
  const logFile = join(stateDir, 'ac.log')
  // The log's last line per key wins, and its position is the key's age.
  const latest = new Map<string, { text: string; at: number }>()
  const lines = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n') : []
  lines.forEach((line, at) => {
    const entry = parseLogLine(line)
    if (entry) latest.set(entry.key, { text: entry.text, at })
  })
  const size = new Map<string, number>()
  const sizeOf = (d: string): number | undefined => {
    if (!size.has(d)) {
      const st = statSync(blobPathIn(casRoot, d), { throwIfNoEntry: false })
      if (st) size.set(d, st.size)
      else return undefined
    }
    return size.get(d)
  }
  /** Result entries with their blobs, oldest first; other entries (discovered inputs) name no blob and are kept. */
  const results: { key: string; at: number; blobs: string[] }[] = []
  const others: { key: string; at: number }[] = []
  for (const [key, { text, at }] of latest) {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      continue // a torn line: dropped
    }
    const parsed = actionResultSchema.safeParse(json)
    if (!parsed.success) {
      if (json && typeof json === 'object' && 'discovered' in json) others.push({ key, at })
      continue
    }
    const blobs = [...new Set([...parsed.data.outputs.map((o) => o.digest), parsed.data.stdout.digest, parsed.data.stderr.digest])]
    // An entry whose blob is gone already is a miss anyway.
    if (blobs.every((d) => sizeOf(d) !== undefined)) results.push({ key, at, blobs })
  }
  results.sort((a, b) => a.at - b.at)
  const refs = new Map<string, number>()
  let bytesKept = 0
  for (const r of results)
    for (const d of r.blobs) {
      const n = refs.get(d) ?? 0
      if (n === 0) bytesKept += sizeOf(d)!
      refs.set(d, n + 1)
    }
  let dropped = 0
  while (bytesKept > maxBytes && dropped < results.length) {
    for (const d of results[dropped]!.blobs) {
      const n = refs.get(d)! - 1
      if (n === 0) {
        refs.delete(d)
        bytesKept -= sizeOf(d)!
      } else refs.set(d, n)
    }
    dropped++
  }
  const kept = results.slice(dropped)
  const report: GcReport = { actionsKept: kept.length, actionsRemoved: latest.size - kept.length - others.length, blobsKept: refs.size, bytesKept, blobsRemoved: 0, bytesRemoved: 0, otherBytesRemoved: 0 }
  // Every blob no kept action names.
  for (const { digest, path } of storedBlobs(casRoot)) {
    if (refs.has(digest)) continue
    report.blobsRemoved++
    report.bytesRemoved += statSync(path, { throwIfNoEntry: false })?.size ?? 0
    if (!dryRun) unlinkSync(path)
  }
  // Caches and leftovers: temporary files, scratch folders, the local mesh's worker stores.
  const meshDir = join(stateDir, 'mesh')
  const leftovers = [join(casRoot, 'tmp'), join(stateDir, 'scratch'), ...(existsSync(meshDir) ? readdirSync(meshDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((w) => join(meshDir, w.name, 'cas')) : [])]
  for (const dir of leftovers) {
    report.otherBytesRemoved += bytesUnder(dir)
    if (!dryRun) rmSync(dir, { recursive: true, force: true })
  }
  if (!dryRun && existsSync(logFile)) {
    const keep = [...kept, ...others].sort((a, b) => a.at - b.at)
    writeFileAtomic(logFile, keep.map((e) => `${e.key} ${latest.get(e.key)!.text}\n`).join(''))
  }
  return report
}

function bytesUnder(path: string): number {
  const st = statSync(path, { throwIfNoEntry: false })
  if (!st) return 0
  if (!st.isDirectory()) return st.size
  let n = 0
  for (const name of readdirSync(path)) n += bytesUnder(join(path, name))
  return n
}
