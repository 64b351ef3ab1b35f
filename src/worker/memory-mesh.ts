/**
 * An in-memory mesh for unit tests and the simulator: a coordinator (the real
 * OwnershipLedger) and workers (the real WorkerCore) exchanging messages on a
 * VirtualClock, with latency, loss and duplication chosen by the caller. The
 * worker code is the daemon's; only the wire is replaced.
 */
import { OwnershipLedger } from '../coordinator/ledger.js'
import type { Rng } from '../../strategies/types.js'
import type { VirtualClock } from './clock.js'
import type { LoadAnnouncement } from './load-announcement.js'
import type { MeshPort, RunOutcome, StealReply, StealRequest, WorkerCore, WorkItem } from './worker-core.js'

export interface MemoryMeshOptions {
  clock: VirtualClock
  /** Drives loss and duplication. */
  rng: Rng
  /** One-way message latency, ms. */
  latencyMs: number
  /** Extra delay of a gossip message, ms. */
  gossipDelayMs: number
  /** Share of gossip messages lost, per receiver. */
  gossipLoss: number
  /** Share of gossip messages delivered twice. */
  gossipDuplicate: number
  /** Share of steal requests, and of steal replies, lost. */
  stealLoss: number
}

export class MemoryMesh<T extends WorkItem> {
  readonly ledger = new OwnershipLedger()
  readonly workers = new Map<string, WorkerCore<T>>()
  /** Recorded results per action id (the ledger records one; this counts reports). */
  readonly reports = new Map<string, number>()
  /** Messages sent, by kind. */
  readonly messages = { gossip: 0, stealRequests: 0, stealReplies: 0, coordinator: 0 }

  constructor(private readonly opts: MemoryMeshOptions) {}

  add(worker: WorkerCore<T>): void {
    this.workers.set(worker.config.id, worker)
  }

  /** Give `items` to `workerId`, as the coordinator seeds them. */
  seed(workerId: string, items: T[]): void {
    for (const item of items) this.ledger.seed(item.id, workerId)
    const rest = this.workers.get(workerId)!.seed(items)
    if (rest.length > 0) throw new Error(`memory mesh: ${workerId} is full; ${rest.length} actions not seeded`)
  }

  readonly port: MeshPort<T> = {
    startActions: (worker, ids) => this.coordinator(() => ids.filter((id) => this.ledger.started(id, worker))),
    transfer: (stealId, ids, victim, thief) => this.coordinator(() => this.ledger.transfer(stealId, ids, victim, thief).accepted),
    settleSteal: (stealId) => this.coordinator(() => this.ledger.settle(stealId)),
    reportResult: (worker, item, outcome: RunOutcome) =>
      this.coordinator(() => {
        this.reports.set(item.id, (this.reports.get(item.id) ?? 0) + 1)
        this.ledger.recordResult(item.id, worker, { key: item.id, outputs: [], exitCode: outcome.ok ? 0 : 1 })
      }),
    requestSteal: (thief, victim, req, { timeoutMs }) => this.steal(thief, victim, req, timeoutMs),
    announce: (worker, a) => this.gossip(worker, a),
  }

  private coordinator<R>(fn: () => R): Promise<R> {
    this.messages.coordinator++
    // A round trip to the coordinator; reliable here (losing the coordinator is issue 5's subject).
    return new Promise((resolve) => this.opts.clock.after(2 * this.opts.latencyMs, () => resolve(fn())))
  }

  private steal(thief: string, victim: string, req: StealRequest, timeoutMs: number): Promise<StealReply<T>> {
    const { clock, rng, latencyMs, stealLoss } = this.opts
    return new Promise((resolve, reject) => {
      let settled = false
      const cancelTimeout = clock.after(timeoutMs, () => {
        if (settled) return
        settled = true
        reject(new Error(`steal ${req.stealId}: no reply from ${victim} within ${timeoutMs} ms`))
      })
      this.messages.stealRequests++
      if (rng.next() < stealLoss) return // the request is lost
      clock.after(latencyMs, () => {
        const w = this.workers.get(victim)
        if (!w) return
        const reply = w.onStealRequest(req)
        this.messages.stealReplies++
        if (rng.next() < stealLoss) return // the reply is lost
        clock.after(latencyMs, () => {
          if (settled) return
          settled = true
          cancelTimeout()
          resolve(reply)
        })
      })
    })
  }

  private gossip(from: string, a: LoadAnnouncement): void {
    const { clock, rng, latencyMs, gossipDelayMs, gossipLoss, gossipDuplicate } = this.opts
    for (const [id, w] of this.workers) {
      if (id === from) continue
      this.messages.gossip++
      if (rng.next() < gossipLoss) continue
      const copies = rng.next() < gossipDuplicate ? 2 : 1
      for (let c = 0; c < copies; c++) clock.after(latencyMs + gossipDelayMs * (1 + c), () => w.onAnnouncement(from, a))
    }
  }
}
