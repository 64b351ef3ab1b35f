/**
 * The engine's executor for a distributed build: an action is submitted to the
 * mesh (its inputs named by digest, with the worker that produced each; the
 * files a ninja file stages, its whole source tree, as one listing blob that
 * every action shares, so a payload does not grow with the tree: ~55 KiB per
 * action for a 200-file CMake project, and a steal reply is capped at 4 MiB), and
 * its result comes back from whichever worker ran it; the outputs, stdout and
 * stderr are then fetched from that worker by digest, verified, into the
 * project's store. The engine does the rest exactly as in a local build
 * (action cache, placing outputs), which is why the outputs are identical.
 *
 * It talks to the mesh through `MeshSession` (libp2p lives in src/net).
 */
import type { Digest } from '../cas/hasher.js'
import type { CasStore } from '../cas/store.js'
import { RemoteExecutionError } from '../errors.js'
import { setTimeout as delay } from 'node:timers/promises'
import { inputListingBytes, LISTING_INLINE_MAX_BYTES, type ActionPayload, type ExecReport, type ResultReport } from '../worker/action-payload.js'
import type { KeyedInput } from '../cas/action-cache.js'
import { actionPlacement, type SandboxName, type SandboxResult } from '../../sandbox/types.js'
import type { Executor } from './engine.js'

export interface MeshSessionEvents {
  started(ids: readonly string[], worker: string): void
  result(id: string, worker: string, report: ResultReport): void
  /** No worker left can run this build's actions. */
  stalled?(reason: string): void
}

/** A build opened on a mesh. */
export interface MeshSession {
  readonly buildId: string
  readonly clientId: string
  readonly clientAddrs: readonly string[]
  setHandlers(h: MeshSessionEvents): void
  /** Hand a ready action to the mesh; `avoid`: workers it should not go to if another can take it. */
  submit(item: { id: string; payload: ActionPayload; avoid?: string[] }): Promise<void>
  /** Fetch blobs from a peer into the project's store, verified, over as few streams as the CAS protocol allows; rejects with the first that could not be had. */
  fetchBlobs(digests: readonly Digest[], holder: string): Promise<void>
}

export interface MeshExecutorInit {
  /** Opens the build on the mesh; called when the first action must run (a build the cache covers starts no mesh). */
  connect: () => Promise<MeshSession>
  cas: CasStore
  /** The sandbox the workers run actions in (part of every action key). */
  sandbox: SandboxName
  /** The mesh's total slots (shown in progress; the mesh bounds itself). */
  slots: number
  /** Where the engine puts small sources instead of the store: the client's CAS server serves them from there (served-sources.ts). */
  sources?: Executor['sources']
  /** Told which worker ran each action. */
  onRan?: (actionId: string, worker: string) => void
  /** The coordinator says no worker left can run this build. */
  onStalled?: (reason: string) => void
  /** An attempt failed for a reason that is not the action's; attempt `next` of `max` follows. */
  onRetry?: (actionId: string, reason: string, next: number, max: number) => void
}

/** Actions the engine may have submitted at once: enough to keep every worker queue full. */
const MAX_IN_FLIGHT = 4096
/** Attempts of an action whose worker could not run it (infrastructure failures only). */
const MAX_ATTEMPTS = 3
/** Wait before the second attempt; doubled before each one after. */
const RETRY_BACKOFF_MS = 200

interface Waiting {
  onStart: () => void
  resolve: (r: { worker: string; report: ResultReport }) => void
}

export function createMeshExecutor(init: MeshExecutorInit): Executor {
  const { cas } = init
  const waiting = new Map<string, Waiting>()
  /** Which worker made each generated blob: workers fetch it from there first. */
  const producedBy = new Map<Digest, string>()
  /** Attempts submitted per action: each has its own id (`<build>/<action>`, then `…#2`, `…#3`), so the ledger records each once. */
  const submissions = new Map<string, number>()
  const attemptId = (base: string): string => {
    const n = (submissions.get(base) ?? 0) + 1
    submissions.set(base, n)
    return n === 1 ? base : `${base}#${n}`
  }
  /**
   * The listing of a staged list's files (ninja actions all share one list,
   * the source tree), by that list: the inputs it was made of (one object
   * per file in a build, so an unchanged listing is found by identity) and
   * its blob, stored here for workers to fetch.
   */
  const listings = new WeakMap<readonly string[], { members: KeyedInput[]; digest: Digest; text: string; sent: boolean }>()
  const stagedSets = new WeakMap<readonly string[], Set<string>>()
  /** An action's inputs: those its payload names, and (a ninja action's) staged files as a listing. */
  const splitInputs = async (staged: readonly string[] | undefined, inputs: readonly KeyedInput[]): Promise<{ own: readonly KeyedInput[]; listed?: { digest: Digest; entries: number; text?: string } }> => {
    if (!staged) return { own: inputs }
    let set = stagedSets.get(staged)
    if (!set) stagedSets.set(staged, (set = new Set(staged)))
    const byPath = new Map<string, KeyedInput>()
    const own: KeyedInput[] = []
    // Staged files are the ones no statement makes: the client serves them all.
    for (const i of inputs) (set.has(i.path) ? byPath.set(i.path, i) : own.push(i))
    // In the staged list's order, so every action of the list makes the same listing.
    const members = staged.flatMap((p) => byPath.get(p) ?? [])
    if (members.length === 0) return { own: inputs }
    let memo = listings.get(staged)
    if (!memo || memo.members.length !== members.length || memo.members.some((m, k) => m !== members[k])) {
      const text = inputListingBytes(members)
      memo = { members, digest: (await cas.putBytes(text)).digest, text, sent: false }
      listings.set(staged, memo)
    }
    // The first payload that names it carries it (LISTING_INLINE_MAX_BYTES); other workers fetch it from here.
    const inline = !memo.sent && Buffer.byteLength(memo.text) <= LISTING_INLINE_MAX_BYTES
    memo.sent = true
    return { own, listed: { digest: memo.digest, entries: members.length, ...(inline ? { text: memo.text } : {}) } }
  }
  let connected: Promise<MeshSession> | undefined
  const connect = (): Promise<MeshSession> =>
    (connected ??= init.connect().then((session) => {
      session.setHandlers({
        started: (ids) => {
          for (const id of ids) waiting.get(id)?.onStart()
        },
        result: (id, worker, report) => {
          const w = waiting.get(id)
          if (!w) return
          waiting.delete(id)
          w.resolve({ worker, report })
        },
        stalled: (reason) => init.onStalled?.(reason),
      })
      return session
    }))

  /** An action's outputs (and its stdout and stderr) the store lacks, fetched together: one stream, not one per blob. */
  const fetchFrom = async (session: MeshSession, worker: string, digests: Digest[]): Promise<void> => {
    const missing: Digest[] = []
    for (const d of new Set(digests)) if (!(await cas.has(d))) missing.push(d)
    if (missing.length > 0) await session.fetchBlobs(missing, worker)
  }

  /** Submit one attempt and wait for its report; a report that the worker could not run it is a RemoteExecutionError. */
  const runOnce = async (session: MeshSession, id: string, payload: ActionPayload, avoid: readonly string[], signal: AbortSignal, onStart: () => void): Promise<{ worker: string; exec: ExecReport }> => {
    const done = new Promise<{ worker: string; report: ResultReport }>((resolve, reject) => {
      const onAbort = (): void => {
        waiting.delete(id)
        reject(signal.reason instanceof Error ? signal.reason : new Error('interrupted'))
      }
      waiting.set(id, {
        onStart,
        resolve: (r) => {
          signal.removeEventListener('abort', onAbort)
          resolve(r)
        },
      })
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      await session.submit({ id, payload, ...(avoid.length > 0 ? { avoid: [...avoid] } : {}) })
    } catch (err) {
      waiting.delete(id)
      done.catch(() => {})
      throw err
    }
    const { worker, report } = await done
    if (!report.ok || !report.exec) throw new RemoteExecutionError(id.slice(id.indexOf('/') + 1), worker, report.error ?? 'no report of the run')
    return { worker, exec: report.exec }
  }

  /**
   * An infrastructure failure (the worker could not fetch inputs or start the
   * sandbox, the action could not be submitted, or its outputs cannot be
   * fetched) is tried again, as a new attempt with its own id, after a backoff,
   * on another worker than the ones that failed it if any other can take it (a
   * worker whose sandbox is broken fails fast, so as the least loaded it would
   * otherwise draw every retry); an action that ran and failed is not.
   */
  const runWithRetries = async (session: MeshSession, actionId: string, id: string, payload: ActionPayload, signal: AbortSignal, onStart: () => void): Promise<{ worker: string; exec: ExecReport }> => {
    const failedOn: string[] = []
    for (let attempt = 1; ; attempt++) {
      let ran: { worker: string; exec: ExecReport } | undefined
      try {
        ran = await runOnce(session, attemptId(id), payload, failedOn, signal, onStart)
        init.onRan?.(actionId, ran.worker)
        await fetchFrom(session, ran.worker, [...ran.exec.outputs.map((o) => o.digest), ran.exec.stdout, ran.exec.stderr])
        return ran
      } catch (err) {
        if (signal.aborted || attempt >= MAX_ATTEMPTS) throw err
        const failedWorker = err instanceof RemoteExecutionError ? err.worker : ran?.worker
        if (failedWorker && !failedOn.includes(failedWorker)) failedOn.push(failedWorker)
        const reason =
          err instanceof RemoteExecutionError ? err.message : ran ? `its outputs could not be fetched from worker ${ran.worker.slice(-8)}: ${(err as Error).message}` : `it could not be submitted: ${(err as Error).message}`
        init.onRetry?.(actionId, reason, attempt + 1, MAX_ATTEMPTS)
        await delay(RETRY_BACKOFF_MS * 2 ** (attempt - 1), undefined, { signal })
      }
    }
  }

  return {
    sandboxName: init.sandbox,
    slots: init.slots,
    ...(init.sources ? { sources: init.sources } : {}),
    maxInFlight: MAX_IN_FLIGHT,
    execute: async (action, inputs, { signal, onStart, tools }) => {
      const session = await connect()
      const id = `${session.buildId}/${action.id}`
      const { own, listed } = await splitInputs(action.staged, inputs)
      const payload: ActionPayload = {
        v: 1,
        client: session.clientId,
        clientAddrs: [...session.clientAddrs],
        sandbox: init.sandbox,
        argv: [...action.argv],
        env: { ...action.env },
        inputs: own.map((i) => {
          const from = producedBy.get(i.digest)
          return { path: i.path, digest: i.digest, executable: i.executable, ...(from ? { from } : {}) }
        }),
        ...(listed ? { listed } : {}),
        outputs: [...action.outputs],
        timeoutMs: action.timeoutMs,
        capabilities: { ...action.capabilities, readPaths: [...action.capabilities.readPaths], writePaths: [...action.capabilities.writePaths] },
        ...actionPlacement(action),
        ...(tools && tools.length > 0 ? { tools: [...tools] } : {}),
      }
      const { worker, exec } = await runWithRetries(session, action.id, id, payload, signal, onStart)
      for (const o of exec.outputs) producedBy.set(o.digest, worker)
      const [stdout, stderr] = await Promise.all([cas.getBytes(exec.stdout), cas.getBytes(exec.stderr)])
      const result: SandboxResult = {
        exitCode: exec.exitCode,
        signal: exec.signal as NodeJS.Signals | null,
        timedOut: exec.timedOut,
        ...(exec.oomKilled ? { oomKilled: true } : {}),
        stdout,
        stderr,
        outputs: exec.outputs,
        ...(exec.depfileText !== undefined ? { depfileText: exec.depfileText } : {}),
        missingOutputs: exec.missingOutputs,
        durationMs: exec.durationMs,
        ...(exec.cpuMs !== undefined ? { cpuMs: exec.cpuMs } : {}),
      }
      return result
    },
  }
}
