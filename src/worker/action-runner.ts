/**
 * How a worker runs one action it was given: check the payload, fetch every
 * input it does not have (by digest, verified, from the peer that produced it
 * or from the build's client), run the command in the worker's sandbox, keep
 * the outputs, stdout and stderr in the worker's store, push them to the
 * build's client (which verifies them), and report their digests. Pushing
 * before reporting means a result never names bytes only a worker that has
 * since left could give; other workers still fetch them from here first.
 *
 * A command that ran and failed is the action's failure (`ok`, with its exit
 * code). Inputs that cannot be fetched or a sandbox that cannot start is the
 * worker's failure (`error`): the action itself was not at fault.
 */
import pLimit from 'p-limit'
import type { Logger } from 'pino'
import type { Digest } from '../cas/hasher.js'
import type { CasStore } from '../cas/store.js'
import { ToolIndex, type RememberedDigests } from '../cas/tools.js'
import { BlobNotFoundError, causeOf, DigestMismatchError } from '../errors.js'
import { placementOf, type Sandbox, type SandboxSpec } from '../../sandbox/types.js'
import { actionPayloadSchema, parseInputListing, type ActionPayload, type InputEntry, type ResultReport } from './action-payload.js'
import type { LastListing } from './last-listing.js'
import type { StoreBudget } from './store-budget.js'
import type { RunContext, RunOutcome } from './worker-core.js'

/** A peer that may hold a blob: its id, and addresses if it may not be known yet. */
export interface BlobHolder {
  id: string
  addrs?: readonly string[]
}

/** How blobs move between this worker and its peers. */
export interface BlobExchange {
  /** This worker's peer id (never asked for a blob). */
  id: string
  /**
   * Fetch blobs into the worker's store, each from the first of `holders`
   * that has it (one stream per holder asked). Resolves with those that could
   * not be fetched, each with why.
   */
  fetchBlobs(digests: readonly Digest[], holders: readonly BlobHolder[]): Promise<Map<Digest, Error>>
  /** Send blobs from the worker's store to a peer that lacks them (it verifies each). */
  pushBlobs(digests: readonly Digest[], to: BlobHolder): Promise<void>
}

export interface ActionRunnerInit {
  cas: CasStore
  /** The sandboxes this worker offers; an action names the one it needs. */
  sandboxes: readonly Sandbox[]
  blobs: BlobExchange
  /** Keeps the store within its size (absent: unbounded). */
  budget?: StoreBudget
  /** Tool digests remembered across this worker's restarts (saved when one is hashed). */
  toolDigests?: RememberedDigests & { save(): void }
  /** Told of each input listing read, for the next worker process to check its blobs early (last-listing.ts). */
  lastListing?: LastListing
  log?: Logger
}

/** Fetches (each of up to FETCH_BATCH blobs from one holder) under way at once on one worker. */
const FETCH_CONCURRENCY = 8
/**
 * Most blobs asked for in one fetch. A worker's first action of a ninja build
 * lacks the whole source tree (135 blobs for a 60-file CMake project); one
 * stream per blob cost each worker ~2.6 s on 2 cores, the stream set-up
 * (protocol negotiation, peer-store updates, frames) far more than the bytes.
 * Batches still let several fetches run at once.
 */
const FETCH_BATCH = 32
/** Input listings kept read (ActionPayload.listed): a build's actions share one or a few. */
const LISTINGS_KEPT = 8

/** An action runner as the worker calls it (see Runner in worker-core.ts). */
export type ActionRunner = (item: { id: string; payload: unknown }, ctx?: RunContext) => Promise<RunOutcome>

export function createActionRunner(init: ActionRunnerInit): ActionRunner {
  const limit = pLimit(FETCH_CONCURRENCY)
  /** This machine's programs by content, to check an action's against the client's (nothing is under the store's folder). */
  const toolIndex = new ToolIndex(init.cas.hasher, init.cas.root, init.toolDigests)
  /** Fetches under way, by digest: two actions needing one blob wait for one fetch. */
  const fetching = new Map<Digest, Promise<void>>()

  /**
   * Whether the store has the blob with the right bytes. One found corrupt is
   * removed by the check (and counted) and then fetched like a missing one, so
   * a worker whose disk rots does not fail one attempt per bad input. A blob
   * already checked and unchanged since costs one stat.
   */
  const intact = async (digest: Digest): Promise<boolean> => {
    // Checked in this process and not forgotten since: no stat here, as staging
    // checks it again (one that vanished or changed meanwhile is fetched then, runStaged).
    if (init.cas.isKnown(digest)) return true
    try {
      await init.cas.verify(digest)
      return true
    } catch (err) {
      if (err instanceof BlobNotFoundError) return false
      if (!(err instanceof DigestMismatchError)) throw err
      init.log?.warn({ err }, 'a stored input is corrupt; removed, fetching it again')
      return false
    }
  }

  /** A blob this action fetches, and how to settle the wait on it that other actions may share. */
  interface Wanted {
    digest: Digest
    holders: BlobHolder[]
    settle: (err?: Error) => void
  }

  /** Fetch wanted blobs that share their holders, at most FETCH_BATCH per request, settling each. */
  const fetchFrom = async (holders: BlobHolder[], wanted: Wanted[]): Promise<void> => {
    const batches: Wanted[][] = []
    for (let i = 0; i < wanted.length; i += FETCH_BATCH) batches.push(wanted.slice(i, i + FETCH_BATCH))
    await Promise.all(
      batches.map((batch) =>
        limit(async () => {
          try {
            const failed = await init.blobs.fetchBlobs(batch.map((w) => w.digest), holders)
            for (const w of batch) w.settle(failed.get(w.digest))
          } catch (err) {
            for (const w of batch) w.settle(err as Error)
          }
        }),
      ),
    )
  }

  /**
   * Every input in the store, intact. A blob another action is fetching is
   * waited for, not fetched twice; the rest are checked, and those missing
   * are fetched in batches by holder: the producer first (it spares the
   * client), then the client, which has every input.
   */
  const fetchInputs = async (payload: ActionPayload): Promise<void> => {
    const from = client(payload)
    const waits: Promise<void>[] = []
    const mine: Wanted[] = []
    for (const i of payload.inputs) {
      const under = fetching.get(i.digest)
      if (under) {
        waits.push(under)
        continue
      }
      let settle!: (err?: Error) => void
      const p = new Promise<void>((resolve, reject) => {
        settle = (err) => (err ? reject(err) : resolve())
      })
      fetching.set(i.digest, p)
      p.then(
        () => fetching.delete(i.digest),
        () => fetching.delete(i.digest),
      )
      waits.push(p)
      const holders = i.from !== undefined && i.from !== init.blobs.id && i.from !== from.id ? [{ id: i.from }, from] : [from]
      mine.push({ digest: i.digest, holders, settle })
    }
    const checked = await Promise.all(
      mine.map(async (w) => {
        try {
          if (!(await intact(w.digest))) return w
          w.settle()
        } catch (err) {
          w.settle(err as Error)
        }
        return undefined
      }),
    )
    const byHolders = new Map<string, Wanted[]>()
    for (const w of checked) {
      if (!w) continue
      const key = w.holders.map((h) => h.id).join(' ')
      const group = byHolders.get(key)
      if (group) group.push(w)
      else byHolders.set(key, [w])
    }
    await Promise.all([...byHolders.values()].map((group) => fetchFrom((group[0] as Wanted).holders, group)))
    await Promise.all(waits)
  }

  /**
   * Within a store budget, an action's inputs stay while it runs; after it,
   * what it used is the most recent, and the store is brought within budget.
   */
  const withinBudget = async (payload: ActionPayload, fn: () => Promise<RunOutcome>): Promise<RunOutcome> => {
    const budget = init.budget
    if (!budget) return fn()
    const inputs = payload.inputs.map((i) => i.digest)
    budget.pin(inputs)
    try {
      return await fn()
    } finally {
      budget.unpin(inputs)
      budget.touch(inputs)
      await budget.enforce().catch((err: unknown) => init.log?.warn({ err }, 'could not bring the store within its budget'))
    }
  }

  /** Input listings read, by digest; a fetch under way is shared. */
  const listings = new Map<Digest, Promise<InputEntry[]>>()
  const listingOf = (digest: Digest, from: BlobHolder, text?: string): Promise<InputEntry[]> => {
    let p = listings.get(digest)
    if (!p) {
      p = (async () => {
        // Sent inline (the first payload that names it): taken, and stored, if it is what its digest says.
        const actual = text === undefined ? undefined : init.cas.hasher.hash(text)
        let listing: string
        if (text !== undefined && actual === digest) {
          await init.cas.putBytes(text)
          listing = text
        } else {
          if (text !== undefined) init.log?.warn({ digest, actual }, 'an input listing sent inline does not match its digest; fetching it')
          if (!(await intact(digest))) {
            const err = (await init.blobs.fetchBlobs([digest], [from])).get(digest)
            if (err) throw err
          }
          listing = (await init.cas.getBytes(digest)).toString('utf8')
        }
        const entries = parseInputListing(listing)
        if (typeof entries === 'string') throw new Error(`the input listing blake3 ${digest} is malformed: ${entries}`)
        init.lastListing?.note(digest)
        return entries
      })()
      listings.set(digest, p)
      p.catch(() => listings.delete(digest))
      if (listings.size > LISTINGS_KEPT) listings.delete(listings.keys().next().value as Digest)
    }
    return p
  }

  /** The payload with the inputs its listing names added (those it names itself come first). */
  const withListedInputs = async (payload: ActionPayload): Promise<ActionPayload> => {
    const listed = payload.listed
    if (!listed) return payload
    const entries = await listingOf(listed.digest, client(payload), listed.text)
    if (entries.length !== listed.entries) throw new Error(`the input listing blake3 ${listed.digest} names ${entries.length} inputs, the payload says ${listed.entries}`)
    const own = new Set(payload.inputs.map((i) => i.path))
    return { ...payload, inputs: [...payload.inputs, ...entries.filter((e) => !own.has(e.path))] }
  }

  return async (item, ctx) => {
    const parsed = actionPayloadSchema.safeParse(item.payload)
    if (!parsed.success) {
      const first = parsed.error.issues[0]
      return fail(`the action's payload fails its schema: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'invalid'}`)
    }
    let payload: ActionPayload
    try {
      payload = await withListedInputs(parsed.data)
    } catch (err) {
      init.log?.warn({ err, action: item.id }, 'could not read the input listing of an action')
      return fail(`inputs unavailable: ${(err as Error).message}`)
    }
    return withinBudget(payload, () => runParsed(item.id, payload, ctx))
  }

  /**
   * Run the action; if staging found an input gone from the store or no longer
   * matching its digest (removed or changed behind this worker's back, after
   * fetchInputs took it as known), fetch the inputs again and run once more.
   */
  async function runStaged(sandbox: Sandbox, spec: SandboxSpec, payload: ActionPayload): ReturnType<Sandbox['run']> {
    try {
      return await sandbox.run(spec)
    } catch (err) {
      const lost = causeOf(err, BlobNotFoundError) ?? causeOf(err, DigestMismatchError)
      if (!lost) throw err
      init.log?.warn({ err: lost, action: spec.actionId }, 'an input left the store while the action was staged; fetching it again')
      await fetchInputs(payload)
      return sandbox.run(spec)
    }
  }

  async function runParsed(id: string, payload: ActionPayload, ctx: RunContext | undefined): Promise<RunOutcome> {
    const sandbox = init.sandboxes.find((s) => s.name === payload.sandbox)
    if (!sandbox) return fail(`the action needs sandbox ${payload.sandbox}; this worker offers ${init.sandboxes.map((s) => s.name).join(', ')}`)
    const otherTool = differentTool(toolIndex, payload)
    try {
      init.toolDigests?.save()
    } catch (err) {
      init.log?.warn({ err }, 'could not save the tool digests (only a cache)')
    }
    if (otherTool) return fail(otherTool)
    const spec: SandboxSpec = {
      actionId: id,
      argv: payload.argv,
      env: payload.env,
      inputs: payload.inputs.map(({ path, digest, executable }) => ({ path, digest, executable })),
      outputs: payload.outputs,
      timeoutMs: payload.timeoutMs,
      capabilities: payload.capabilities,
      ...placementOf(payload),
    }
    // Its sandbox starts while the inputs come (a worker's first action would wait for both in turn).
    sandbox.warm?.(spec)
    try {
      await fetchInputs(payload)
    } catch (err) {
      init.log?.warn({ err, action: id }, 'could not fetch the inputs of an action')
      return fail(`inputs unavailable: ${(err as Error).message}`)
    }
    try {
      const result = await runStaged(sandbox, spec, payload)
      const [stdout, stderr] = await Promise.all([init.cas.putBytes(result.stdout), init.cas.putBytes(result.stderr)])
      // Everything is in this worker's store: the next action may start while these go to the client.
      ctx?.slotDone()
      try {
        await init.blobs.pushBlobs([...result.outputs.map((o) => o.digest), stdout.digest, stderr.digest], client(payload))
      } catch (err) {
        init.log?.warn({ err, action: id }, 'could not send the outputs of an action to its client')
        return fail(`outputs not delivered to the client: ${(err as Error).message}`)
      }
      const report: ResultReport = {
        ok: true,
        exec: {
          exitCode: result.exitCode,
          signal: result.signal,
          timedOut: result.timedOut,
          ...(result.oomKilled ? { oomKilled: true } : {}),
          outputs: result.outputs.map(({ path, digest, size, executable, symlink }) => ({ path, digest, size, executable, ...(symlink !== undefined ? { symlink } : {}) })),
          missingOutputs: result.missingOutputs,
          ...(result.depfileText !== undefined ? { depfileText: result.depfileText } : {}),
          stdout: stdout.digest,
          stderr: stderr.digest,
          durationMs: result.durationMs,
          ...(result.cpuMs !== undefined ? { cpuMs: result.cpuMs } : {}),
        },
      }
      init.budget?.touch([...result.outputs.map((o) => o.digest), stdout.digest, stderr.digest])
      return { ok: true, detail: report }
    } catch (err) {
      init.log?.error({ err, action: id }, 'the sandbox could not run an action')
      return fail((err as Error).message)
    }
  }
}

/**
 * Why this worker must not run the action: a program its command starts is
 * missing here or is not the client's (by content); undefined if all match.
 * Run with another compiler, it would not make what a local build makes, and
 * the client would cache that under the key of its own compiler.
 */
function differentTool(index: ToolIndex, payload: ActionPayload): string | undefined {
  if (!payload.tools?.length) return undefined
  const mine = new Map(index.toolsOf(payload.argv, payload.env).map((t) => [t.name, t]))
  for (const want of payload.tools) {
    const have = mine.get(want.name)
    if (!have) return `this worker has no ${want.name} (the client's is ${want.path}, blake3 ${want.digest})`
    if (have.digest !== want.digest) return `this worker's ${want.name} (${have.path}, blake3 ${have.digest}) is not the client's (${want.path}, blake3 ${want.digest}); it would not make the same outputs`
  }
  return undefined
}

function client(payload: ActionPayload): BlobHolder {
  return { id: payload.client, addrs: payload.clientAddrs }
}

/**
 * Fault injection for tests and benchmarks: every `everyN`-th action this
 * worker is given for the first time (not a retry) is reported as an
 * infrastructure failure without running, as a sandbox that cannot start is.
 * `broken`: every action is, retries too (a worker whose sandbox is broken).
 */
export function withInjectedFailures(run: ActionRunner, everyN: number, broken = false): ActionRunner {
  if (broken) return async () => fail('injected fault (BLDR_FAULT_BROKEN): the sandbox did not start')
  if (everyN <= 0) return run
  let firstTries = 0
  return async (item, ctx) => {
    if (!isRetry(item.id) && ++firstTries % everyN === 0) return fail('injected fault (BLDR_FAULT_FAIL_EVERY): the sandbox did not start')
    return run(item, ctx)
  }
}

/** Whether an action id names a second or later attempt (see the mesh executor). */
function isRetry(id: string): boolean {
  return /#\d+$/.test(id)
}

function fail(error: string): RunOutcome {
  const report: ResultReport = { ok: false, error }
  return { ok: false, detail: report }
}
