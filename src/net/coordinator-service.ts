/**
 * The coordinator on the mesh: serves `/bldr/coordinator/1.0.0` (registration,
 * the start gate, steal transfers, holders, results) over an OwnershipLedger,
 * and seeds work into workers' queues over `/bldr/seed/1.0.0`. It stays thin:
 * after seeding it moves no work; workers balance themselves by stealing.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { OwnershipLedger, type RecordOutcome } from '../coordinator/ledger.js'
import { createMeshNode, type MeshNode } from './node.js'
import { COORDINATOR_PROTOCOL, SEED_PROTOCOL, type CoordinatorResponse, type WireItem } from './protocols.js'
import { ProtocolClient, serveProtocol } from './request-response.js'

export interface ResultEvent {
  id: string
  worker: string
  ok: boolean
  outcome: RecordOutcome
}

export interface CoordinatorService {
  node: MeshNode
  ledger: OwnershipLedger
  /** Multiaddr strings workers dial. */
  addrs: string[]
  /** Registered workers, by peer id. */
  workers(): string[]
  /** Resolves once `n` workers have registered. */
  waitForWorkers(n: number, timeoutMs: number): Promise<string[]>
  /** Give items to a worker's queue (recorded in the ledger first). Returns ids that did not fit. */
  seed(worker: string, items: WireItem[]): Promise<string[]>
  /** Called for every result report. */
  onResult(fn: (e: ResultEvent) => void): void
  stop(): Promise<void>
}

const SEED_TIMEOUT_MS = 10_000

export async function startCoordinatorService(opts: { listen?: string[]; log?: Logger } = {}): Promise<CoordinatorService> {
  const node = await createMeshNode(opts.listen ? { listen: opts.listen } : {})
  const ledger = new OwnershipLedger()
  const registered = new Map<string, string[]>()
  const resultListeners: ((e: ResultEvent) => void)[] = []
  const registrationWaiters: (() => void)[] = []
  const seeder = new ProtocolClient(node, SEED_PROTOCOL)
  // The coordinator relays load gossip like any peer (it does not act on it).
  node.services.pubsub.subscribe('bldr/load/1')

  await serveProtocol(
    node,
    COORDINATOR_PROTOCOL,
    (req, from): CoordinatorResponse => {
      switch (req.type) {
        case 'register': {
          const peers = [...registered].filter(([id]) => id !== from).map(([id, addrs]) => ({ id, addrs }))
          registered.set(from, req.addrs)
          opts.log?.info({ worker: from, workers: registered.size }, 'worker registered')
          for (const w of registrationWaiters.splice(0)) w()
          return { type: 'registered', peers }
        }
        case 'start':
          return { type: 'allowed', ids: req.ids.filter((id) => ledger.started(id, from)) }
        case 'transfer':
          return { type: 'accepted', ids: ledger.transfer(req.stealId, req.ids, req.victim, from).accepted }
        case 'holders':
          return { type: 'holders', holders: Object.fromEntries(req.ids.map((id) => [id, ledger.ownerOf(id)])) }
        case 'result': {
          const outcome = ledger.recordResult(req.id, from, { key: req.id, outputs: [], exitCode: req.ok ? 0 : 1 })
          for (const l of resultListeners) l({ id: req.id, worker: from, ok: req.ok, outcome })
          return { type: 'recorded', outcome }
        }
      }
    },
    opts.log,
  )

  return {
    node,
    ledger,
    addrs: node.getMultiaddrs().map((a) => a.toString()),
    workers: () => [...registered.keys()],
    waitForWorkers: (n, timeoutMs) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${registered.size} of ${n} workers registered within ${timeoutMs} ms`)), timeoutMs)
        const check = (): void => {
          if (registered.size >= n) {
            clearTimeout(timer)
            resolve([...registered.keys()])
          } else registrationWaiters.push(check)
        }
        check()
      }),
    seed: async (worker, items) => {
      for (const item of items) ledger.seed(item.id, worker)
      const res = await seeder.request(peerIdFromString(worker), { items }, { timeoutMs: SEED_TIMEOUT_MS })
      // What did not fit stays with the coordinator (unassigned); the caller seeds it again later.
      ledger.release(res.rest, worker)
      return res.rest
    },
    onResult: (fn) => {
      resultListeners.push(fn)
    },
    stop: async () => {
      seeder.close()
      await node.stop()
    },
  }
}
