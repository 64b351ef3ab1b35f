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
  /** One-way latency of a message to or from the coordinator, ms (default `latencyMs`). */
  coordinatorLatencyMs?: number
  /** Extra delay of a gossip message, ms. */
  gossipDelayMs: number
  /** Share of gossip messages lost, per receiver. */
  gossipLoss: number
  /** Share of gossip messages delivered twice. */
  gossipDuplicate: number
  /** Share of steal requests, and of steal replies, lost. */
  stealLoss: number
  /**
   * The coordinator's work per message, ms: it serves one message at a time,
   * so at scale its queue is what a design that talks to it per action pays
   * for (0: free and instant, as in unit tests).
   */
  coordinatorServiceMs?: number
  /** Called when a result is recorded (first report of an action), at the coordinator's time. */
  onResult?: (actionId: string, worker: string, outcome: RunOutcome) => void
  /** Called when the coordinator allows actions to start, at its time. */
  onStarted?: (actionIds: readonly string[], worker: string) => void
}

export class MemoryMesh<T extends WorkItem> {
  readonly ledger = new OwnershipLedger()
  readonly workers = new Map<string, WorkerCore<T>>()
  /** Recorded results per action id (the ledger records one; this counts reports). */
  readonly reports = new Map<string, number>()
  /** Messages sent, by kind. */
  readonly messages = { gossip: 0, stealRequests: 0, stealReplies: 0, coordinator: 0 }
  /** When the coordinator is free again (it serves messages one at a time). */
  private coordinatorFreeAt = 0

  constructor(private readonly opts: MemoryMeshOptions) {}

  add(worker: WorkerCore<T>): void {
    this.workers.set(worker.config.id, worker)
  }

  /**
   * `workerId` leaves the mesh (a drain): it stops stealing and announcing, no
   * more messages reach it, and what it held but had not started is released
   * in the ledger and returned, for the coordinator to seed again. What it is
   * running finishes and reports as usual.
   */
  remove(workerId: string): T[] {
    const w = this.workers.get(workerId)
    if (!w) return []
    this.workers.delete(workerId)
    const items = w.shutdown()
    const released = new Set(this.ledger.release(items.map((i) => i.id), workerId))
    return items.filter((i) => released.has(i.id))
  }

  /** Give `items` to `workerId`, as the coordinator seeds them. */
  seed(workerId: string, items: T[]): void {
    for (const item of items) this.ledger.seed(item.id, workerId)
    const rest = this.workers.get(workerId)!.seed(items)
    if (rest.length > 0) throw new Error(`memory mesh: ${workerId} is full; ${rest.length} actions not seeded`)
  }

  readonly port: MeshPort<T> = {
    startActions: (worker, ids) =>
      this.coordinator(() => {
        const allowed = ids.filter((id) => this.ledger.started(id, worker))
        this.opts.onStarted?.(allowed, worker)
        return allowed
      }),
    transfer: (stealId, ids, victim, thief) => this.coordinator(() => this.ledger.transfer(stealId, ids, victim, thief).accepted),
    settleSteal: (stealId) => this.coordinator(() => this.ledger.settle(stealId)),
    reportResult: (worker, item, outcome: RunOutcome) =>
      this.coordinator(() => {
        this.reports.set(item.id, (this.reports.get(item.id) ?? 0) + 1)
        const recorded = this.ledger.recordResult(item.id, worker, { key: item.id, outputs: [], exitCode: outcome.ok ? 0 : 1 })
        if (recorded === 'recorded') this.opts.onResult?.(item.id, worker, outcome)
      }),
    requestSteal: (thief, victim, req, { timeoutMs }) => this.steal(thief, victim, req, timeoutMs),
    announce: (worker, a) => this.gossip(worker, a),
    peerCount: () => this.workers.size - 1,
  }

  /** Run `fn` at the coordinator: a reliable round trip (losing the coordinator is the fault suite's subject), queued behind the messages it is already serving. */
  private coordinator<R>(fn: () => R): Promise<R> {
    this.messages.coordinator++
    const { clock } = this.opts
    const latencyMs = this.opts.coordinatorLatencyMs ?? this.opts.latencyMs
    const service = this.opts.coordinatorServiceMs ?? 0
    const arrive = clock.now() + latencyMs
    const done = Math.max(arrive, this.coordinatorFreeAt) + service
    this.coordinatorFreeAt = done
    return new Promise((resolve) =>
      clock.after(done - clock.now(), () => {
        const r = fn()
        clock.after(latencyMs, () => resolve(r))
      }),
    )
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
        const reply = w.onStealRequest(req, thief)
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

  /**
   * A broadcast reaches every other worker once (counted per receiver), after
   * the latency plus the gossip delay, unless lost for that receiver; some get
   * a second copy one delay later. One event per delivery wave, not per
   * receiver, so a 1,000-worker mesh does not drown the clock's queue.
   */
  private gossip(from: string, a: LoadAnnouncement): void {
    const { clock, rng, latencyMs, gossipDelayMs, gossipLoss, gossipDuplicate } = this.opts
    const first: WorkerCore<T>[] = []
    const again: WorkerCore<T>[] = []
    for (const [id, w] of this.workers) {
      if (id === from) continue
      this.messages.gossip++
      if (gossipLoss > 0 && rng.next() < gossipLoss) continue
      first.push(w)
      if (gossipDuplicate > 0 && rng.next() < gossipDuplicate) again.push(w)
    }
    const deliver = (to: WorkerCore<T>[]) => () => {
      // A receiver that left meanwhile gets nothing.
      for (const w of to) if (this.workers.get(w.config.id) === w) w.onAnnouncement(from, a)
    }
    if (first.length > 0) clock.after(latencyMs + gossipDelayMs, deliver(first))
    if (again.length > 0) clock.after(latencyMs + 2 * gossipDelayMs, deliver(again))
  }
}
