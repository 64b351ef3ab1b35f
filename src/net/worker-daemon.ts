/**
 * A worker on the mesh: a WorkerCore wired to libp2p. The coordinator is
 * reached over `/bldr/coordinator/1.0.0`, peers over `/bldr/steal/1.0.0`, the
 * coordinator seeds over `/bldr/seed/1.0.0`, and load goes out on `bldr/load/1`.
 * What a work item means is the runner's business.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { STRATEGIES, createRng, type StrategyName } from '../../strategies/index.js'
import { systemClock } from '../worker/clock.js'
import { decodeAnnouncement, encodeAnnouncement, LOAD_TOPIC } from '../worker/load-announcement.js'
import { DEFAULT_WORKER_CONFIG, WorkerCore, type MeshPort, type Runner, type StealReply, type WorkerConfig } from '../worker/worker-core.js'
import { createMeshNode, parseMultiaddr, type MeshNode } from './node.js'
import { COORDINATOR_PROTOCOL, SEED_PROTOCOL, STEAL_PROTOCOL, type CoordinatorRequest, type CoordinatorResponse, type WireItem } from './protocols.js'
import { ProtocolClient, ProtocolError, serveProtocol } from './request-response.js'

export interface WorkerDaemonOptions {
  /** The coordinator's multiaddr. */
  coordinator: string
  slots: number
  strategy: StrategyName
  /** Seeds the worker's random choices (reproducible runs). */
  seed: number
  runner: Runner<WireItem>
  /** Overrides of the worker defaults (timeouts, intervals, …). */
  config?: Partial<Omit<WorkerConfig, 'id' | 'slots' | 'strategy' | 'rng'>>
  log?: Logger
  /** Told of every load announcement dropped as malformed (also logged). */
  onBadAnnouncement?: (from: string, error: string) => void
}

export interface WorkerDaemon {
  id: string
  node: MeshNode
  core: WorkerCore<WireItem>
  stop(): Promise<void>
}

/** One coordinator call; past it the call is retried. */
const COORDINATOR_TIMEOUT_MS = 5_000
/** Attempts per coordinator call, with doubling backoff from COORDINATOR_RETRY_MS. Every call is idempotent. */
const COORDINATOR_ATTEMPTS = 4
const COORDINATOR_RETRY_MS = 50

export async function startWorkerDaemon(opts: WorkerDaemonOptions): Promise<WorkerDaemon> {
  const node = await createMeshNode()
  const id = node.peerId.toString()
  const log = opts.log?.child({ component: 'worker', workerId: id.slice(-8) })
  const coordinatorAddr = parseMultiaddr(opts.coordinator)
  const coordinator = new ProtocolClient(node, COORDINATOR_PROTOCOL)
  const steal = new ProtocolClient(node, STEAL_PROTOCOL)

  /**
   * A coordinator call, retried on timeouts and broken streams (not on an error
   * answer). Safe because every call is idempotent: start (for the holder),
   * transfer (by steal id), holders, result (a repeat is a duplicate), register.
   */
  async function call<K extends CoordinatorResponse['type']>(req: CoordinatorRequest, expect: K): Promise<Extract<CoordinatorResponse, { type: K }>> {
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await coordinator.request(coordinatorAddr, req, { timeoutMs: COORDINATOR_TIMEOUT_MS })
        if (res.type !== expect) throw new ProtocolError(`coordinator answered ${res.type} to ${req.type}`)
        return res as Extract<CoordinatorResponse, { type: K }>
      } catch (err) {
        if (err instanceof ProtocolError || attempt >= COORDINATOR_ATTEMPTS) throw err
        log?.warn({ err, request: req.type, attempt }, 'coordinator call failed; retrying')
        await new Promise((resolve) => setTimeout(resolve, COORDINATOR_RETRY_MS * 2 ** (attempt - 1)))
      }
    }
  }

  const port: MeshPort<WireItem> = {
    startActions: async (_worker, ids) => (await call({ type: 'start', ids }, 'allowed')).ids,
    transfer: async (stealId, ids, victim) => (await call({ type: 'transfer', stealId, ids, victim }, 'accepted')).ids,
    holders: async (ids) => new Map(Object.entries((await call({ type: 'holders', ids }, 'holders')).holders)),
    reportResult: async (_worker, item, outcome) => {
      await call({ type: 'result', id: item.id, ok: outcome.ok }, 'recorded')
    },
    requestSteal: async (_thief, victim, req, { timeoutMs }) => (await steal.request(peerIdFromString(victim), req, { timeoutMs })) as StealReply<WireItem>,
    announce: (_worker, a) => {
      node.services.pubsub.publish(LOAD_TOPIC, encodeAnnouncement(a)).catch((err: unknown) => log?.debug({ err }, 'load announcement not sent'))
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
    },
    port,
    opts.runner,
    systemClock,
  )

  await serveProtocol(node, STEAL_PROTOCOL, (req) => core.onStealRequest(req), log)
  await serveProtocol(node, SEED_PROTOCOL, (req) => ({ rest: core.seed(req.items as WireItem[]).map((i) => i.id) }), log)
  node.services.pubsub.subscribe(LOAD_TOPIC)
  node.services.pubsub.addEventListener('message', (evt) => {
    const msg = evt.detail
    if (msg.topic !== LOAD_TOPIC || msg.type !== 'signed') return
    const decoded = decodeAnnouncement(msg.data)
    if (!decoded.ok) {
      log?.warn({ from: msg.from.toString(), error: decoded.error }, 'dropped a load announcement')
      opts.onBadAnnouncement?.(msg.from.toString(), decoded.error)
      return
    }
    core.onAnnouncement(msg.from.toString(), decoded.value)
  })

  const reg = await call({ type: 'register', addrs: node.getMultiaddrs().map((a) => a.toString()) }, 'registered')
  // Connect to the workers already there, so gossip and steals have a path; later ones dial us.
  for (const peer of reg.peers) {
    const addr = peer.addrs[0]
    if (addr) node.dial(parseMultiaddr(addr)).catch((err: unknown) => log?.warn({ err, peer: peer.id }, 'could not reach a peer'))
  }
  core.start()
  log?.info({ peers: reg.peers.length }, 'worker started')

  return {
    id,
    node,
    core,
    stop: async () => {
      core.stop()
      coordinator.close()
      steal.close()
      await node.stop()
    },
  }
}
