/**
 * The build engine: walks the action graph from its ready set, and for each
 * action either restores it from the action cache or runs it through an
 * executor, then releases its dependants.
 *
 * Design notes.
 * - Keys are computed when an action becomes ready, because a generated input's
 *   digest is known only once its producer has finished (or been restored).
 * - Cache checks are I/O only and run with their own, wider limit, so a warm
 *   build is bound by the disk, not by `-j`; `-j` bounds executions.
 * - A failed action stops its dependants (recorded as skipped). Without
 *   keep-going, nothing new starts after the first failure; what runs finishes.
 * - Outputs reach the project folder from the CAS (verified), written
 *   atomically, and only when they differ, so an unchanged output keeps its
 *   mtime (which tools like make rely on).
 * - The executor is an interface: the local one runs the sandbox on this
 *   machine; the mesh supplies another. The engine does not know which.
 * - An action with a depfile (ninja compiles) reads more than it declares: the
 *   source tree is staged for it (`staged`), and what it really read comes
 *   from its depfile. Its result is recorded under a key that adds those files
 *   with their digests, and the list under its declared key; a later build
 *   looks the list up, hashes those files as they are now, and finds the
 *   result only if none changed (ccache's "direct mode", two levels). A
 *   header edited to include a new one changes a listed file, so it runs again
 *   and lists the new one.
 * - Pools (ninja's) bound how many of their actions run at once, before `-j`.
 */
import { setMaxListeners } from 'node:events'
import { setImmediate as turn } from 'node:timers/promises'
import { lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, symlinkSync, unlinkSync } from 'node:fs'
import { dirname, join, posix } from 'node:path'
import pLimit, { type LimitFunction } from 'p-limit'
import type { Logger } from 'pino'
import { computeActionKey, computeDiscoveredKey, type ActionCache, type ActionResult, type KeyedInput, type OutputRecord } from '../cas/action-cache.js'
import type { Digest } from '../cas/hasher.js'
import type { CasStore } from '../cas/store.js'
import { readAtMost } from '../cas/fs-util.js'
import { isThinArchiveFile, thinArchiveMembers } from '../cas/thin-archive.js'
import { BlobNotFoundError, causeOf, DigestMismatchError, isBldrError, SourceChangedError } from '../errors.js'
import type { Action } from '../graph/action.js'
import type { BuildGraph } from '../graph/dag.js'
import { parseDepfile, projectFilesOf } from '../graph/ninja/depfile.js'
import type { SandboxResult } from '../../sandbox/types.js'
import { formatBytes } from '../graph/schema.js'
import { ToolIndex, type ToolRef } from '../cas/tools.js'
import type { SourceDigests } from './source-digests.js'

/** Runs one action whose inputs are in the CAS; returns what happened. */
export interface Executor {
  readonly sandboxName: string
  /** Most commands it runs at once (`-j`). */
  readonly slots: number
  /** Most actions the engine hands it at once (slots plus those being staged or collected). */
  readonly maxInFlight: number
  /**
   * Where small sources go instead of the store, for an executor whose
   * actions never stage on this machine: a mesh client serves them to workers
   * from there (src/build/served-sources.ts), so a build does not copy its
   * source tree into the project's store, one new file per source.
   */
  readonly sources?: { add(digest: Digest, abs: string, bytes: Buffer): void; holds(digest: Digest): boolean }
  /** A hint that `action` is about to be executed (its sources are being stored): what running needs may start now. */
  warm?(action: Action): void
  /** Run one action; `onStart` is called when its command starts. `tools`: the programs it starts, as its key has them. */
  execute(action: Action, inputs: readonly KeyedInput[], opts: { signal: AbortSignal; onStart: () => void; tools?: readonly ToolRef[] }): Promise<SandboxResult>
}

export type ActionStatus = 'executed' | 'cached' | 'failed' | 'skipped' | 'not-started' | 'interrupted'

export type BuildEvent =
  | { type: 'build-start'; total: number }
  | { type: 'action-start'; action: Action; running: number }
  | { type: 'action-done'; action: Action; status: 'executed' | 'cached'; durationMs: number; result?: SandboxResult }
  | { type: 'action-failed'; action: Action; failure: ActionFailure }
  | { type: 'action-skipped'; action: Action; because: string }
  | { type: 'action-interrupted'; action: Action }
  /** A flaky action's run failed and it runs again (`run` of FLAKY_RUNS). */
  | { type: 'action-rerun'; action: Action; reason: string; run: number; of: number }

export interface ActionFailure {
  /** One line: `exit 1`, `timed out after 600 s`, `missing output x.o`, `sandbox error: …`. */
  reason: string
  /** The command and its output, when it ran. */
  argv: readonly string[]
  stderr?: Buffer
  stdout?: Buffer
  exitCode?: number | null
  /** The action's folder, kept for inspection. */
  keptAt?: string
}

export interface BuildOptions {
  graph: BuildGraph
  /** Action ids the user asked for; their whole closure is built. */
  roots: Iterable<string>
  /** Project root: sources are read from here and outputs written here. */
  root: string
  cas: CasStore
  actionCache: ActionCache
  executor: Executor
  platform: string
  keepGoing?: boolean
  signal?: AbortSignal
  onEvent?: (e: BuildEvent) => void
  log?: Logger
  /** Source and tool digests remembered from earlier builds (saved when this one ends); without it every source and tool is hashed. */
  sourceDigests?: SourceDigests
  /**
   * What the cache checks wait for while it returns one: work the first action
   * to run waits for that is short but needs this thread (a kept mesh's session
   * opening), which the checks' CPU would otherwise slow down.
   */
  holdChecks?: () => Promise<unknown> | undefined
}

export interface BuildSummary {
  ok: boolean
  total: number
  executed: number
  cached: number
  failed: string[]
  skipped: number
  notStarted: number
  /** Running when the build was interrupted (and killed). */
  interrupted: number
  /** The build was stopped by its signal (Ctrl-C), not by a failure. */
  aborted: boolean
  wallTimeMs: number
  criticalPath: { totalMs: number; actions: string[] }
  actions: Map<string, { status: ActionStatus; durationMs: number; key?: Digest }>
}

/** I/O-bound cache checks in flight at once. */
const CACHE_CHECK_CONCURRENCY = 64
/**
 * Longest run of cache checks without letting I/O in. They are mostly
 * synchronous (stat, a hash, a lookup), so 200 of them held the event loop
 * ~30 ms: a mesh worker that asked this client for the first action's inputs
 * waited for all of them (bench/ninja incremental, scratch timestamps).
 */
const CHECK_SLICE_MS = 2
/** Runs of an action marked flaky, at most, before its failure counts. */
export const FLAKY_RUNS = 3
/**
 * Source files copied into the CAS at once. Small ones are copied with
 * synchronous calls (one file's read, write and rename cost less than the
 * thread-pool round trips they would take; bench/local-build: the first
 * compile of a cold build started ~0.1 s sooner); large ones stream.
 */
const SOURCE_STORE_CONCURRENCY = 8
/**
 * A source read to be hashed keeps its bytes until it is stored (when an action
 * that reads it runs), so a cold build reads each file once, not twice, and
 * stores exactly the bytes its key was made from. Only small files, and at
 * most this much at once (a ninja build hashes its whole source tree); any
 * other is read again to be stored, and checked against its digest.
 */
export const HELD_SOURCE_MAX_BYTES = 256 * 1024
const HELD_SOURCES_MAX_TOTAL = 64 * 1024 * 1024

export async function runBuild(opts: BuildOptions): Promise<BuildSummary> {
  const started = performance.now()
  const { graph, cas, actionCache, executor, log } = opts
  const emit = opts.onEvent ?? (() => {})
  const ids = graph.closure(opts.roots)
  // The programs actions start, by content, for their keys (tools.ts).
  const toolIndex = new ToolIndex(cas.hasher, realpathSync(opts.root), opts.sourceDigests)
  const abort = new AbortController()
  // Every action in flight listens to it (thousands, on a mesh): not a leak.
  setMaxListeners(Infinity, abort.signal)
  const onOuterAbort = (): void => abort.abort(opts.signal?.reason)
  // One aborted before the build starts fires no event: it is stopped at once (else it would run in full).
  if (opts.signal?.aborted) onOuterAbort()
  else opts.signal?.addEventListener('abort', onOuterAbort, { once: true })

  const state = new Map<string, { status: ActionStatus; durationMs: number; key?: Digest }>()
  for (const id of ids) state.set(id, { status: 'not-started', durationMs: 0 })
  const waiting = new Map<string, number>()
  for (const id of ids) waiting.set(id, graph.depsOf(id).filter((d) => ids.has(d)).length)

  /** Every generated file known so far, as it enters action keys. */
  const generated = new Map<string, KeyedInput>()
  /** Source files, hashed once per build. One object per path: action keys reuse its encoding. */
  const sources = new Map<string, Promise<KeyedInput>>()
  const checkLimit = pLimit(CACHE_CHECK_CONCURRENCY)
  const execLimit = pLimit(executor.maxInFlight)
  let stopping = false
  let running = 0
  const failed: string[] = []

  emit({ type: 'build-start', total: ids.size })

  /** Bytes of sources hashed and not stored yet, by path (HELD_SOURCE_MAX_BYTES). */
  const heldBytes = new Map<string, Buffer>()
  let heldTotal = 0
  const sourceInput = (path: string): Promise<KeyedInput> => {
    let p = sources.get(path)
    if (!p) {
      p = (async () => {
        const abs = join(opts.root, path)
        const st = lstatSync(abs, { bigint: true, throwIfNoEntry: false })
        if (!st?.isFile()) throw new SourceChangedError(path, st ? 'stopped being a file' : 'disappeared')
        const executable = (st.mode & 0o111n) !== 0n
        const known = opts.sourceDigests?.get(path, st)
        if (known) return { path, digest: known, executable }
        const hashStartMs = Date.now()
        const size = Number(st.size)
        let digest: Digest
        if (size <= HELD_SOURCE_MAX_BYTES && heldTotal + size <= HELD_SOURCES_MAX_TOTAL) {
          const bytes = readFileSync(abs)
          digest = cas.hasher.hash(bytes)
          heldBytes.set(path, bytes)
          heldTotal += bytes.byteLength
        } else {
          digest = await cas.hashFile(abs, size)
        }
        opts.sourceDigests?.set(path, st, digest, hashStartMs)
        return { path, digest, executable }
      })()
      sources.set(path, p)
    }
    return p
  }

  /** The members of each generated thin archive (cas/thin-archive.ts), project paths, by its digest; null for any other file. */
  const thinMembers = new Map<Digest, Promise<string[] | null>>()
  const membersOf = (archive: KeyedInput): Promise<string[] | null> => {
    let p = thinMembers.get(archive.digest)
    if (!p) {
      p = (async () => {
        if (!isThinArchiveFile(cas.pathOf(archive.digest))) return null
        const names = thinArchiveMembers(await cas.getBytes(archive.digest))
        if (!names) return null
        const folder = posix.dirname(archive.path)
        return names.flatMap((n) => {
          const rel = n.startsWith('/') ? (n.startsWith(`${opts.root}/`) ? n.slice(opts.root.length + 1) : undefined) : posix.normalize(posix.join(folder, n))
          return rel === undefined || rel === '..' || rel.startsWith('../') ? [] : [rel]
        })
      })()
      thinMembers.set(archive.digest, p)
    }
    return p
  }

  /** An action's inputs: the declared ones, and the members of a generated thin archive among them (what reads one reads them). */
  const inputsOf = async (action: Action): Promise<KeyedInput[]> => {
    const declared = await Promise.all(
      action.inputs.map((path) => {
        if (!graph.producerOf(path)) return sourceInput(path)
        const g = generated.get(path)
        if (!g) throw new Error(`internal: ${action.id} is ready but its input ${path} has no digest`)
        return g
      }),
    )
    const archives = declared.filter((i) => graph.producerOf(i.path) && i.path.endsWith('.a'))
    if (archives.length === 0) return declared
    const have = new Set(action.inputs)
    const members = new Set<string>()
    for (const a of archives) for (const m of (await membersOf(a)) ?? []) if (!have.has(m)) members.add(m)
    if (members.size === 0) return declared
    // A member gone or not made in this build is left out: the command then fails on its own, naming it.
    const found = await Promise.all([...members].sort().map(currentInput))
    return [...declared, ...found.filter((i): i is KeyedInput => i !== undefined)]
  }

  /** A file as it is now: a generated one's recorded digest (undefined if not made in this build), else the source file's. */
  const currentInput = async (path: string): Promise<KeyedInput | undefined> => {
    if (graph.producerOf(path)) return generated.get(path)
    try {
      return await sourceInput(path)
    } catch (err) {
      if (err instanceof SourceChangedError) return undefined
      throw err
    }
  }

  /** A staged list as inputs, once per build: the list is one array shared by every action of a ninja file. */
  const stagedLists = new WeakMap<readonly string[], Promise<(KeyedInput | undefined)[]>>()
  const stagedInputsOf = (list: readonly string[]): Promise<(KeyedInput | undefined)[]> => {
    let p = stagedLists.get(list)
    if (!p) stagedLists.set(list, (p = Promise.all(list.map(currentInput))))
    return p
  }

  /** What the command gets: its inputs, then its order-only inputs and staged files (a file gone since the graph was read is left out). */
  const stagingOf = async (action: Action, inputs: KeyedInput[]): Promise<KeyedInput[]> => {
    if (!action.orderOnly && !action.staged) return inputs
    const byPath = new Map(inputs.map((i) => [i.path, i]))
    const [orderOnly, staged] = await Promise.all([Promise.all((action.orderOnly ?? []).map(currentInput)), stagedInputsOf(action.staged ?? [])])
    for (const i of [...orderOnly, ...staged]) if (i && !byPath.has(i.path)) byPath.set(i.path, i)
    return [...byPath.values()]
  }

  /** The key an action with a depfile was last recorded under, from the files it read then as they are now; undefined when unknown. */
  const discoveredKeyOf = async (declaredKey: Digest): Promise<Digest | undefined> => {
    const paths = actionCache.getDiscovered(declaredKey)
    if (!paths) return undefined
    const files = await Promise.all(paths.map(currentInput))
    if (files.some((f) => f === undefined)) return undefined
    return computeDiscoveredKey(cas.hasher, declaredKey, files as KeyedInput[])
  }

  /**
   * After a run of an action with a depfile: record what it read; its result's
   * key; its outputs (the depfile dropped unless kept). A depfile ninja drops
   * comes back as text (`readDepfile`), one too large for that as an output.
   */
  const recordDiscovered = async (action: Action, declaredKey: Digest, staging: KeyedInput[], result: SandboxResult): Promise<{ key: Digest; outputs: OutputRecord[] }> => {
    const { outputs } = result
    const depfile = action.depfile
    const record = depfile && outputs.find((o) => o.path === depfile.path)
    if (!depfile || (!record && result.depfileText === undefined)) return { key: declaredKey, outputs }
    const text = record ? (await cas.getBytes(record.digest)).toString('utf8') : result.depfileText!
    const staged = new Map(staging.map((i) => [i.path, i]))
    // Files the command made itself, or that no longer exist, are not inputs.
    const read = projectFilesOf(parseDepfile(text), { execRoot: action.execRoot ?? opts.root, cwd: action.cwd ?? '' }).flatMap((p) => staged.get(p) ?? [])
    actionCache.putDiscovered(declaredKey, read.map((i) => i.path))
    return { key: computeDiscoveredKey(cas.hasher, declaredKey, read), outputs: depfile.keep ? outputs : outputs.filter((o) => o !== record) }
  }

  const finish = (action: Action, status: 'executed' | 'cached', outputs: OutputRecord[], durationMs: number, result?: SandboxResult): void => {
    for (const o of outputs) generated.set(o.path, { path: o.path, digest: o.digest, executable: o.executable })
    const s = state.get(action.id)!
    s.status = status
    s.durationMs = status === 'executed' ? durationMs : 0
    emit({ type: 'action-done', action, status, durationMs, ...(result ? { result } : {}) })
    for (const r of graph.dependantsOf(action.id)) {
      const n = waiting.get(r)
      if (n === undefined) continue
      waiting.set(r, n - 1)
      if (n === 1) schedule(r)
    }
  }

  const fail = (action: Action, failure: ActionFailure): void => {
    state.get(action.id)!.status = 'failed'
    failed.push(action.id)
    emit({ type: 'action-failed', action, failure })
    if (!opts.keepGoing) stopping = true
    // Everything downstream can no longer be built.
    const stack = [...graph.dependantsOf(action.id)]
    while (stack.length > 0) {
      const id = stack.pop() as string
      const s = state.get(id)
      if (!s || s.status !== 'not-started') continue
      s.status = 'skipped'
      emit({ type: 'action-skipped', action: graph.get(id), because: action.id })
      stack.push(...graph.dependantsOf(id))
    }
  }

  /** The action was killed because the build was interrupted: neither a success nor its failure. */
  const interrupted = (action: Action): void => {
    state.get(action.id)!.status = 'interrupted'
    emit({ type: 'action-interrupted', action })
  }

  /** Restore a cached result: every output blob must be present and verify, else it is a miss. */
  const restore = async (action: Action, cached: ActionResult): Promise<boolean> => {
    try {
      for (const o of cached.outputs) await materializeOutput(cas, opts.root, o)
      return true
    } catch (err) {
      if (err instanceof DigestMismatchError || err instanceof BlobNotFoundError) {
        log?.warn({ err, action: action.id }, 'cached output unusable; running the action again')
        if (err instanceof DigestMismatchError) await cas.remove(err.expected)
        return false
      }
      throw err
    }
  }

  /** Source blobs known to be in the CAS in this build (a wide action would otherwise stat each header every time). */
  const storedSources = new Set<Digest>()

  /** Sources enter the CAS only when an action that reads them actually runs. */
  const storeSources = async (inputs: KeyedInput[]): Promise<void> => {
    const unknown = inputs.filter((i) => !storedSources.has(i.digest) && !graph.producerOf(i.path))
    const pending = unknown.filter((i) => !storedBefore(i))
    await Promise.all(pending.map((i) => storeSource(i)))
    for (const i of pending) storedSources.add(i.digest)
  }
  /**
   * Whether a source's blob is in the store already, or served already (an
   * earlier build in this process stored or served it: every source but what
   * changed), found by a lookup or one stat and counted as stored.
   * The first action of an incremental ninja build stages the whole source
   * tree (~400 files): reading and hashing each again to serve it took ~15 ms
   * of a hosted build.
   */
  const storedBefore = (i: KeyedInput): boolean => {
    if (storing.has(i.digest) || heldBytes.has(i.path) || !(executor.sources?.holds(i.digest) || cas.holds(i.digest))) return false
    storedSources.add(i.digest)
    return true
  }
  /** Sources being stored, by digest, so concurrent actions wait for one copy instead of making their own. */
  const storing = new Map<Digest, Promise<void>>()
  const storeLimit = pLimit(SOURCE_STORE_CONCURRENCY)
  /** A project file into the CAS, sealed (when root): a source's blob is not an output's, and a sandbox without capabilities cannot change it (store.ts). */
  const putSource = (path: string) => cas.putFile(join(opts.root, path), { seal: true })
  const storeSource = (i: KeyedInput): Promise<void> => {
    let p = storing.get(i.digest)
    if (!p) {
      p = storeLimit(async () => {
        const held = heldBytes.get(i.path)
        if (held) {
          heldBytes.delete(i.path)
          heldTotal -= held.byteLength
        }
        if (await cas.has(i.digest)) return
        if (executor.sources) {
          // Read again if not held: this is where a source that changed since it was hashed is caught, as storing it would.
          const abs = join(opts.root, i.path)
          const bytes = held ?? readAtMost(abs, HELD_SOURCE_MAX_BYTES)
          if (bytes) {
            const now = held ? i.digest : cas.hasher.hash(bytes)
            if (now !== i.digest) throw new SourceChangedError(i.path, `changed (was blake3 ${i.digest}, now ${now})`)
            return executor.sources.add(i.digest, abs, bytes)
          }
        }
        const ref = held ? await cas.putBytes(held, { seal: true }) : await putSource(i.path)
        if (ref.digest !== i.digest) throw new SourceChangedError(i.path, `changed (was blake3 ${i.digest}, now ${ref.digest})`)
      })
      storing.set(i.digest, p)
      p.catch(() => storing.delete(i.digest))
    }
    return p
  }

  /**
   * Files of a staged tree (ninja's source tree: every file under the root)
   * found changed since they were hashed, a log being written there for one:
   * left out of every action's staging from then on, each with one warning.
   * Only a declared input that changes fails its action; an action that did
   * read a file left out fails on its own, naming it.
   */
  const unsteady = new Set<string>()
  /** Store what an action's command gets: its declared inputs must store; a staged file that changed meanwhile is left out (above). */
  const storeStaging = async (action: Action, declared: KeyedInput[], staging: KeyedInput[]): Promise<KeyedInput[]> => {
    await storeSources(declared)
    if (staging === declared) return declared
    // The declared ones are stored by now; of the rest, only sources not stored yet (after the first action, one or none).
    const pending = staging.filter((i) => !storedSources.has(i.digest) && !graph.producerOf(i.path) && !storedBefore(i))
    if (pending.length === 0) return staging
    const dropped = new Set<string>()
    await Promise.all(
      pending.map(async (i) => {
        if (unsteady.has(i.path)) return void dropped.add(i.path)
        try {
          await storeSources([i])
        } catch (err) {
          if (!(err instanceof SourceChangedError)) throw err
          dropped.add(i.path)
          if (unsteady.has(i.path)) return
          unsteady.add(i.path)
          log?.warn({ action: action.id, path: i.path }, `file ${i.path} changed while the build read it (no action declares it); it is left out of the files staged for this build's actions`)
        }
      }),
    )
    return dropped.size === 0 ? staging : staging.filter((i) => !dropped.has(i.path))
  }

  /** Replace a corrupt blob from a project file that still has its bytes. True if repaired. */
  const repairBlob = async (digest: Digest, inputs: KeyedInput[]): Promise<boolean> => {
    await cas.remove(digest)
    storedSources.delete(digest)
    storing.delete(digest)
    for (const i of inputs) {
      if (i.digest !== digest) continue
      const ref = await putSource(i.path).catch(() => undefined)
      if (ref?.digest === digest) return true
    }
    return false
  }

  const execute = async (action: Action, declared: KeyedInput[], declaredKey: Digest, tools: readonly ToolRef[]): Promise<void> => {
    if (stopping || abort.signal.aborted) return
    executor.warm?.(action)
    let inputs = await stagingOf(action, declared)
    /** When the command first started (staging before it is not counted as running). */
    let startedAt: number | undefined
    const onStart = (): void => {
      if (startedAt !== undefined) return
      startedAt = performance.now()
      running++
      emit({ type: 'action-start', action, running })
    }
    const run = () => executor.execute(action, inputs, { signal: abort.signal, onStart, tools })
    let result: SandboxResult
    try {
      inputs = await storeStaging(action, declared, inputs)
      try {
        result = await run()
      } catch (err) {
        // A stored input that no longer matches its digest is never used: drop it,
        // store it again from the project folder if the file there still has those
        // bytes, and try once more. Anything else is a failure of this action.
        const mismatch = causeOf(err, DigestMismatchError)
        if (!mismatch || !(await repairBlob(mismatch.expected, inputs))) throw err
        log?.warn({ action: action.id, digest: mismatch.expected }, 'repaired a corrupt stored input; running the action again')
        result = await run()
      }
    } catch (err) {
      if (startedAt !== undefined) running--
      if (abort.signal.aborted) return interrupted(action)
      log?.error({ err, action: action.id }, 'action could not run')
      fail(action, { reason: (err as Error).message, argv: action.argv })
      return
    }
    // An action marked flaky that failed runs again (its failure is the last run's).
    for (let runNo = 2; action.flaky && runNo <= FLAKY_RUNS && (result.exitCode !== 0 || result.missingOutputs.length > 0) && !abort.signal.aborted; runNo++) {
      emit({ type: 'action-rerun', action, reason: describeFailure(action, result), run: runNo, of: FLAKY_RUNS })
      try {
        result = await run()
      } catch (err) {
        if (startedAt !== undefined) running--
        if (abort.signal.aborted) return interrupted(action)
        fail(action, { reason: (err as Error).message, argv: action.argv })
        return
      }
    }
    if (startedAt !== undefined) running--
    if (abort.signal.aborted && result.exitCode !== 0) return interrupted(action)
    const durationMs = startedAt === undefined ? result.durationMs : performance.now() - startedAt
    if (result.exitCode !== 0 || (result.missingOutputs.length > 0 && !action.outputsMayBeMissing)) {
      fail(action, {
        reason: describeFailure(action, result),
        argv: action.argv,
        stderr: result.stderr,
        stdout: result.stdout,
        exitCode: result.exitCode,
        ...(result.keptAt ? { keptAt: result.keptAt } : {}),
      })
      return
    }
    const [stdout, stderr] = await Promise.all([cas.putBytes(result.stdout), cas.putBytes(result.stderr)])
    const { key, outputs } = await recordDiscovered(action, declaredKey, inputs, result)
    await actionCache.put(key, { v: 1, exitCode: 0, outputs, stdout, stderr, durationMs: result.durationMs, sandbox: executor.sandboxName })
    for (const o of outputs) await materializeOutput(cas, opts.root, o)
    state.get(action.id)!.key = key
    finish(action, 'executed', outputs, durationMs, result)
  }

  let sliceStart = performance.now()
  const process1 = async (id: string): Promise<void> => {
    if (performance.now() - sliceStart > CHECK_SLICE_MS) {
      await turn()
      sliceStart = performance.now()
    }
    const hold = opts.holdChecks?.()
    if (hold) await hold.catch(() => {})
    if (stopping || abort.signal.aborted) return
    const action = graph.get(id)
    const inputs = await inputsOf(action)
    const tools = toolIndex.toolsOf(action.argv, action.env)
    const declaredKey = computeActionKey(cas.hasher, {
      argv: action.argv,
      env: action.env,
      inputs,
      outputs: action.outputs,
      sandbox: executor.sandboxName,
      platform: opts.platform,
      tools,
    })
    const key = action.depfile ? await discoveredKeyOf(declaredKey) : declaredKey
    if (key !== undefined) {
      state.get(id)!.key = key
      const cached = await actionCache.get(key)
      if (cached && (await restore(action, cached))) {
        finish(action, 'cached', cached.outputs, 0)
        return
      }
    }
    const run = (): Promise<void> => execLimit(() => execute(action, inputs, declaredKey, tools))
    await (action.pool ? poolLimit(action.pool)(run) : run())
  }

  /** Ninja pools: one limit per pool, taken before a -j slot. */
  const pools = new Map<string, LimitFunction>()
  const poolLimit = (pool: NonNullable<Action['pool']>): LimitFunction => {
    let limit = pools.get(pool.name)
    if (!limit) pools.set(pool.name, (limit = pLimit(pool.depth)))
    return limit
  }

  /** Checks scheduled and not done (an action's check runs on into its execution); the build ends when none is left. */
  let inFlight = 0
  let allDone!: () => void
  const done = new Promise<void>((resolve) => (allDone = resolve))
  let firstError: unknown
  function schedule(id: string): void {
    inFlight++
    void checkLimit(() => process1(id))
      .catch((err: unknown) => {
        // Anything unexpected in the engine itself: fail this action and stop.
        firstError ??= err
        const action = graph.get(id)
        const reason = isBldrError(err) ? err.message : `internal error: ${(err as Error).message}`
        if (state.get(id)?.status === 'not-started') fail(action, { reason, argv: action.argv })
        stopping = true
      })
      .finally(() => {
        if (--inFlight === 0) allDone()
      })
  }

  for (const id of ids) if (waiting.get(id) === 0) schedule(id)
  // One promise, not a race over every check in flight after each one ends: that was quadratic (20,000 ready actions).
  if (inFlight > 0) await done
  opts.signal?.removeEventListener('abort', onOuterAbort)
  try {
    opts.sourceDigests?.save()
  } catch (err) {
    // Only a cache: the next build hashes again.
    log?.warn({ err }, 'could not save the source digests')
  }
  if (firstError && !isBldrError(firstError)) log?.error({ err: firstError }, 'build engine error')

  const counts = { executed: 0, cached: 0, skipped: 0, notStarted: 0, interrupted: 0 }
  for (const s of state.values()) {
    if (s.status === 'executed') counts.executed++
    else if (s.status === 'cached') counts.cached++
    else if (s.status === 'skipped') counts.skipped++
    else if (s.status === 'not-started') counts.notStarted++
    else if (s.status === 'interrupted') counts.interrupted++
  }
  return {
    ok: failed.length === 0 && counts.notStarted === 0 && counts.skipped === 0 && counts.interrupted === 0,
    aborted: abort.signal.aborted,
    total: ids.size,
    ...counts,
    failed,
    wallTimeMs: performance.now() - started,
    criticalPath: graph.criticalPath(ids, (id) => state.get(id)?.durationMs ?? 0),
    actions: state,
  }
}

function describeFailure(action: Action, r: SandboxResult): string {
  if (r.timedOut) return `timed out after ${(action.timeoutMs / 1000).toFixed(1)} s`
  if (r.oomKilled) {
    const limit = action.capabilities.maxMemoryBytes
    return `killed for using more memory than its limit${limit !== undefined ? ` (maxMemory ${formatBytes(limit)})` : ''}`
  }
  if (r.exitCode === null) return `killed by ${r.signal ?? 'a signal'}`
  if (r.exitCode !== 0) return `exit ${r.exitCode}`
  return `did not create declared output${r.missingOutputs.length > 1 ? 's' : ''} ${r.missingOutputs.join(', ')}`
}

/**
 * Put an output into the project folder from the CAS, unless the file there
 * already is it (then it is left alone, mtime and all). See CasStore.placeOutput.
 */
export async function materializeOutput(cas: CasStore, root: string, o: OutputRecord): Promise<void> {
  if (o.symlink === undefined) {
    await cas.placeOutput(o.digest, join(root, o.path), { executable: o.executable })
    return
  }
  // A link to another output: the file it leads to must be had, as any output's.
  if (!(await cas.has(o.digest))) throw new BlobNotFoundError(o.digest, `the store (for the link ${o.path})`)
  const dest = join(root, o.path)
  const current = lstatSync(dest, { throwIfNoEntry: false })
  if (current?.isSymbolicLink() && readlinkSync(dest) === o.symlink) return
  if (current?.isDirectory()) throw new Error(`cannot write output ${dest}: a folder is in the way`)
  mkdirSync(dirname(dest), { recursive: true })
  if (current) unlinkSync(dest)
  symlinkSync(o.symlink, dest)
}
