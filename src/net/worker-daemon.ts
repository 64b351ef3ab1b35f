/**
 * A worker on the mesh: a WorkerCore wired to libp2p. The coordinator is
 * reached over `/bldr/coordinator/1.0.0`, peers over `/bldr/steal/1.0.0`, the
 * coordinator seeds over `/bldr/seed/1.0.0`, and load goes out on `bldr/load/1`.
 * What a work item means is the runner's business.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import type { Digest } from '../cas/hasher.js'
import type { CasStore } from '../cas/store.js'
import { reportWeight, resultReportSchema, type ResultReport } from '../worker/action-payload.js'
import type { BlobExchange } from '../worker/action-runner.js'
import { STRATEGIES, createRng, type StrategyName } from '../../strategies/index.js'
import { systemClock } from '../worker/clock.js'
import { decodeAnnouncement, encodeAnnouncement, LOAD_TOPIC } from '../worker/load-announcement.js'
import { DEFAULT_WORKER_CONFIG, WorkerCore, type MeshPort, type Runner, type StealReply, type WorkerConfig } from '../worker/worker-core.js'
import { createMeshNode, learnPeer, parseMultiaddr, peerIdOfAddr, type Liveness, type MeshNode } from './node.js'
import { Batcher } from './batcher.js'
import { CasClient, MAX_BLOBS_PER_STREAM, serveCas } from './cas-protocol.js'
import { COORDINATOR_PROTOCOL, SEED_PROTOCOL, STATS_PROTOCOL, STEAL_PROTOCOL, type CoordinatorRequest, type CoordinatorResponse, type WireItem, type WireSandbox } from './protocols.js'
import { ProtocolClient, requestExpecting, serveProtocol } from './request-response.js'

export interface WorkerDaemonOptions {
  /** The coordinator's multiaddr. */
  coordinator: string
  slots: number
  strategy: StrategyName
  /** Seeds the worker's random choices (reproducible runs). */
  seed: number
  /** Multiaddrs to listen on (default: an ephemeral port on 127.0.0.1). */
  listen?: string[]
  /** Keep the node's key here (a stable peer id across restarts). */
  keyFile?: string
  /** The worker's own store: served to peers, and where fetched inputs go. */
  cas?: CasStore
  /** Makes the runner of work items, given the way to fetch blobs from peers. */
  runner: (mesh: BlobExchange) => Runner<WireItem>
  /** Heartbeats on its connections (default DEFAULT_LIVENESS). */
  liveness?: Liveness
  /** Overrides of the worker defaults (timeouts, intervals, …). */
  config?: Partial<Omit<WorkerConfig, 'id' | 'slots' | 'strategy' | 'rng'>>
  log?: Logger
  /** Fault injection: every N-th non-empty blob this worker sends has a byte flipped on the wire. Default 0 (none). */
  corruptSentEvery?: number
  /** Fault injection: the share of incoming load announcements dropped on purpose (0–1). Default 0. */
  dropGossip?: number
  /** Told of every load announcement dropped as malformed (also logged). */
  onBadAnnouncement?: (from: string, error: string) => void
}

export interface WorkerDaemon {
  id: string
  node: MeshNode
  core: WorkerCore<WireItem>
  /**
   * Leave the mesh: stop taking work, give queued actions back to the
   * coordinator, let running ones finish and report (up to `graceMs`), then stop.
   */
  stop(opts?: { graceMs?: number }): Promise<void>
}

/** Most start or result entries in one coordinator call. */
const MAX_BATCH = 1024

/** One coordinator call; past it the call is retried. */
const COORDINATOR_TIMEOUT_MS = 5_000
/** Attempts per coordinator call, with doubling backoff from COORDINATOR_RETRY_MS. Every call is idempotent. */
const COORDINATOR_ATTEMPTS = 4
const COORDINATOR_RETRY_MS = 50
/** A blob holder that could not be reached is asked last for this long. */
const UNREACHABLE_FOR_MS = 30_000
/** After losing the coordinator, the first wait before registering again; doubled up to REREGISTER_MAX_MS. */
const REREGISTER_FIRST_MS = 250
const REREGISTER_MAX_MS = 5_000

export async function startWorkerDaemon(opts: WorkerDaemonOptions): Promise<WorkerDaemon> {
  const node = await createMeshNode({ ...(opts.listen ? { listen: opts.listen } : {}), ...(opts.keyFile ? { keyFile: opts.keyFile } : {}), ...(opts.liveness ? { liveness: opts.liveness } : {}) })
  const id = node.peerId.toString()
  const log = opts.log?.child({ component: 'worker', workerId: id.slice(-8) })
  const coordinatorAddr = parseMultiaddr(opts.coordinator)
  const coordinator = new ProtocolClient(node, COORDINATOR_PROTOCOL)
  const steal = new ProtocolClient(node, STEAL_PROTOCOL)

  /**
   * A coordinator call, retried on timeouts and broken streams (not on an error
   * answer). Safe because every call is idempotent: start (for the holder),
   * transfer and settle (by steal id), result (a repeat is a duplicate), register.
   */
  const call = <K extends CoordinatorResponse['type']>(req: CoordinatorRequest, expect: K): Promise<Extract<CoordinatorResponse, { type: K }>> =>
    requestExpecting(coordinator, coordinatorAddr, req, expect, {
      timeoutMs: COORDINATOR_TIMEOUT_MS,
      attempts: COORDINATOR_ATTEMPTS,
      backoffMs: COORDINATOR_RETRY_MS,
      onRetry: (err, attempt) => log?.warn({ err, request: req.type, attempt }, 'coordinator call failed; retrying'),
    })

  // Start requests and results are batched: under load, one call carries many.
  const starts = new Batcher<string, boolean>(async (ids) => {
    const allowed = new Set((await call({ type: 'start', ids }, 'allowed')).ids)
    return ids.map((i) => allowed.has(i))
  }, MAX_BATCH)
  const results = new Batcher<{ id: string; report: ResultReport }, string>(
    async (batch) => (await call({ type: 'results', results: batch }, 'recorded')).outcomes,
    MAX_BATCH,
    1,
    { of: (r) => reportWeight(r.report), max: COORDINATOR_PROTOCOL.maxFrameBytes / 2 },
  )

  /** The load topic's subscriber count, and when it was counted (see `peerCount`). */
  let subscribers = { at: -Infinity, count: 0 }
  const port: MeshPort<WireItem> = {
    startActions: async (_worker, ids) => {
      const ok = await Promise.all(ids.map((i) => starts.add(i)))
      return ids.filter((_, i) => ok[i])
    },
    transfer: async (stealId, ids, victim) => (await call({ type: 'transfer', stealId, ids, victim }, 'accepted')).ids,
    settleSteal: async (stealId) => (await call({ type: 'settle', stealId }, 'settled')).moved,
    reportResult: async (_worker, item, outcome) => {
      const parsed = resultReportSchema.safeParse(outcome.detail)
      const report: ResultReport = parsed.success ? parsed.data : outcome.ok ? { ok: true } : { ok: false, error: describe(outcome.detail) }
      const recorded = await results.add({ id: item.id, report })
      // 'unknown': the build was closed meanwhile (its client stopped), which is routine; a duplicate or conflict is not.
      if (recorded === 'unknown') log?.debug({ action: item.id }, 'a result for a build that is closed')
      // 'stale': this worker could not run an action it no longer holds (it was declared lost meanwhile); the holder reports.
      else if (recorded === 'stale') log?.info({ action: item.id }, 'a failure to run was ignored: the action is held elsewhere or done')
      else if (recorded !== 'recorded') log?.warn({ action: item.id, outcome: recorded }, 'the coordinator did not record a result as new')
    },
    requestSteal: async (_thief, victim, req, { timeoutMs }) =>
      (await steal.request(peerIdFromString(victim), { stealId: req.stealId, max: req.max, ...(req.sandboxes ? { sandboxes: [...req.sandboxes] as WireSandbox[] } : {}), ...(req.platform ? { platform: req.platform } : {}) }, { timeoutMs })) as StealReply<WireItem>,
    announce: (_worker, a) => {
      node.services.pubsub.publish(LOAD_TOPIC, encodeAnnouncement(a)).catch((err: unknown) => log?.debug({ err }, 'load announcement not sent'))
    },
    peerCount: () => {
      // Counted at most every 100 ms: gossipsub builds the list (a peer id per subscriber) on every call.
      const now = performance.now()
      if (now - subscribers.at > 100) subscribers = { at: now, count: node.services.pubsub.getSubscribers(LOAD_TOPIC).length }
      return subscribers.count
    },
  }

  const cas = opts.cas
  const corruptSent = opts.corruptSentEvery ? { every: opts.corruptSentEvery, sent: 0 } : undefined
  const casClient = cas ? new CasClient(node, cas, corruptSent ? { corruptSent } : {}) : undefined
  const reach = (holder: { id: string; addrs?: readonly string[] }) => learnPeer(node, holder.id, holder.addrs)
  /**
   * Holders that could not be reached lately (dead, frozen, cut off), until
   * when: asked last, so one frozen producer costs one timeout, not one per blob.
   */
  const unreachable = new Map<string, number>()
  /** Blobs this worker fetched from peers, and their bytes (its stats). */
  const fetched = { blobs: 0, bytes: 0 }
  const mesh: BlobExchange = {
    id,
    fetchBlobs: async (digests, holders) => {
      if (!casClient) throw new Error('this worker has no store to fetch into')
      const why = new Map<Digest, string[]>(digests.map((d) => [d, []]))
      let todo = [...new Set(digests)]
      const now = Date.now()
      const ordered = [...holders].sort((a, b) => Number((unreachable.get(a.id) ?? 0) > now) - Number((unreachable.get(b.id) ?? 0) > now))
      for (const holder of ordered) {
        if (todo.length === 0) break
        try {
          const got = await casClient.fetchMany(await reach(holder), todo)
          unreachable.delete(holder.id)
          const left: Digest[] = []
          for (const d of todo) {
            const r = got.get(d)
            if (r === undefined || r instanceof Error) {
              why.get(d)?.push(`${holder.id}: ${r?.message ?? 'no answer'}`)
              left.push(d)
            } else {
              fetched.blobs++
              fetched.bytes += r.size
            }
          }
          todo = left
        } catch (err) {
          // The holder did not answer (a timeout, a refused dial, a broken stream): it is absent for a while.
          unreachable.set(holder.id, Date.now() + UNREACHABLE_FOR_MS)
          for (const d of todo) why.get(d)?.push(`${holder.id}: ${(err as Error).message}`)
        }
      }
      return new Map(todo.map((d) => [d, new Error(`could not fetch blake3 ${d} from ${holders.length} peer${holders.length === 1 ? '' : 's'}: ${why.get(d)?.join('; ') || 'none given'}`)]))
    },
    pushBlobs: async (digests, to) => {
      if (!casClient) throw new Error('this worker has no store to push from')
      const peer = await reach(to)
      const unique = [...new Set(digests)]
      // One stream per MAX_BLOBS_PER_STREAM blobs: the peer says which it lacks, and gets those.
      for (let i = 0; i < unique.length; i += MAX_BLOBS_PER_STREAM) {
        const batch = unique.slice(i, i + MAX_BLOBS_PER_STREAM)
        // A batch whose stream failed, or blobs the peer refused (their bytes did not match on arrival), are sent once more before the action fails for them.
        const refused = await casClient.pushMany(peer, batch).catch(() => null)
        const again = refused === null ? batch : [...refused.keys()]
        if (again.length === 0) continue
        const still = (await casClient.pushMany(peer, again)).values().next()
        if (!still.done) throw still.value
      }
    },
  }

  const core = new WorkerCore<WireItem>(
    {
      ...DEFAULT_WORKER_CONFIG,
      platform: `${process.platform}-${process.arch}`,
      sandboxes: ['local'],
      ...opts.config,
      id,
      slots: opts.slots,
      strategy: STRATEGIES[opts.strategy],
      rng: createRng(opts.seed),
      sandboxOf: (item) => (item as WireItem).sandbox,
      avoidOf: (item) => (item as WireItem).avoid,
      platformOf: (item) => (item as WireItem).platform,
      ...(log ? { log } : {}),
    },
    port,
    opts.runner(mesh),
    systemClock,
  )

  if (cas) await serveCas(node, cas, { ...(opts.log ? { log: opts.log } : {}), ...(corruptSent ? { corruptSent } : {}) })
  await serveProtocol(node, STATS_PROTOCOL, () => ({ ...core.stats, corruptBlobsRemoved: cas?.corruption.storedRemoved ?? 0, blobsRejected: cas?.corruption.receivedRejected ?? 0, blobsFetched: fetched.blobs, bytesFetched: fetched.bytes }), log)
  await serveProtocol(node, STEAL_PROTOCOL, (req, from) => core.onStealRequest(req, from), log)
  await serveProtocol(node, SEED_PROTOCOL, (req) => ({ rest: core.seed(req.items as WireItem[]).map((i) => i.id) }), log)
  const dropGossip = opts.dropGossip ?? 0
  const dropRng = createRng(opts.seed + 0x9e3779b9)
  node.services.pubsub.subscribe(LOAD_TOPIC)
  node.services.pubsub.addEventListener('message', (evt) => {
    const msg = evt.detail
    if (msg.topic !== LOAD_TOPIC || msg.type !== 'signed') return
    if (dropGossip > 0 && dropRng.next() < dropGossip) return
    const decoded = decodeAnnouncement(msg.data)
    if (!decoded.ok) {
      log?.warn({ from: msg.from.toString(), error: decoded.error }, 'dropped a load announcement')
      opts.onBadAnnouncement?.(msg.from.toString(), decoded.error)
      return
    }
    core.onAnnouncement(msg.from.toString(), decoded.value)
  })

  const register = async (): Promise<number> => {
    const reg = await call({ type: 'register', addrs: node.getMultiaddrs().map((a) => a.toString()), room: core.config.queueCapacity + core.config.slots, slots: core.config.slots, sandboxes: core.config.sandboxes, platform: core.config.platform }, 'registered')
    // Connect to the workers already there, so gossip and steals have a path; later ones dial us.
    for (const peer of reg.peers) {
      learnPeer(node, peer.id, peer.addrs)
        .then((pid) => node.dial(pid))
        .catch((err: unknown) => log?.warn({ err, peer: peer.id }, 'could not reach a peer'))
    }
    return reg.peers.length
  }
  const peers = await register()
  core.start()
  log?.info({ peers }, 'worker started')

  /**
   * The connection to the coordinator closed (it restarted, or this worker was
   * frozen or cut off long enough to be declared lost): register again, with
   * backoff, until it answers. Registering is idempotent; a worker that was
   * declared lost finds its old queue refused at the start gate (the ledger
   * handed those actions to others) and takes new work.
   */
  const coordinatorId = peerIdOfAddr(coordinatorAddr)
  let leaving = false
  let rejoining = false
  const rejoin = async (): Promise<void> => {
    if (rejoining) return
    rejoining = true
    try {
      for (let wait = REREGISTER_FIRST_MS; !leaving; wait = Math.min(REREGISTER_MAX_MS, wait * 2)) {
        await new Promise((resolve) => setTimeout(resolve, wait).unref())
        if (leaving) return
        try {
          await register()
          log?.warn('lost the connection to the coordinator; registered again')
          return
        } catch (err) {
          log?.warn({ err, retryInMs: Math.min(REREGISTER_MAX_MS, wait * 2) }, 'cannot reach the coordinator to register again')
        }
      }
    } finally {
      rejoining = false
    }
  }
  node.addEventListener('peer:disconnect', (evt) => {
    const peer = evt.detail.toString()
    if (peer === coordinatorId) {
      if (!leaving) void rejoin()
      return
    }
    // A peer's last connection closed: it left, died, or stopped answering heartbeats. It is
    // no steal victim until it announces again, and its blobs are asked of others first.
    core.peers.forget(peer)
    unreachable.set(peer, Date.now() + UNREACHABLE_FOR_MS)
  })
  node.addEventListener('peer:connect', (evt) => {
    unreachable.delete(evt.detail.toString())
  })

  return {
    id,
    node,
    core,
    stop: async ({ graceMs = 10_000 } = {}) => {
      leaving = true
      // Always tell the coordinator (even with nothing queued), so it seeds this worker no more.
      const queued = core.shutdown()
      await call({ type: 'release', ids: queued.map((i) => i.id) }, 'released').catch((err: unknown) =>
        log?.error({ err, actions: queued.length }, 'could not tell the coordinator this worker leaves (and hand back its queued actions)'),
      )
      let timer: NodeJS.Timeout | undefined
      const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))
      await Promise.race([core.whenNothingRuns(), graceOver])
      clearTimeout(timer)
      if (core.executing > 0) log?.warn({ running: core.executing }, 'stopping with actions still running')
      coordinator.close()
      steal.close()
      await node.stop()
    },
  }
}

function describe(detail: unknown): string {
  if (detail instanceof Error) return detail.message
  return detail === undefined ? 'the runner reported a failure' : String(detail)
}
