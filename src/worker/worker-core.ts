/**
 * The worker: a local deque, execution slots, the steal loop, and the victim's
 * side of a steal. It talks to the coordinator and its peers only through a
 * `MeshPort` (libp2p in the daemon, in memory in tests and the simulator) and
 * reads time only through a `Clock`, so the same code runs everywhere.
 *
 * Design, and what was rejected:
 *
 * - Exactly once, without trusting messages. A steal moves work in three steps:
 *   the victim takes a batch off the cold end of its deque and offers it; the
 *   thief asks the coordinator to transfer those actions to itself (the ledger
 *   accepts only actions the victim still holds, unstarted); the thief queues
 *   only what was accepted. Any message may be lost. The victim does not wait
 *   for an acknowledgement: after `offerTimeoutMs` it settles the steal with
 *   the coordinator, which answers with what the transfer moved, or, if it has
 *   not come, records that it moved nothing (a late transfer then moves
 *   nothing), and the victim takes the rest back. Settling by steal id, not by
 *   asking who holds each action now, matters: an action can be stolen and
 *   stolen back before the victim settles, and "held by me" would then put it
 *   in its queue twice. On top, a worker runs an action only after the
 *   coordinator confirms, in `startActions`, that it holds it (the ledger's
 *   `started`). So nothing is lost (the ledger always names a holder, and a
 *   dead holder's work is handed back) and nothing runs twice. Rejected: acknowledgement chains between thief and victim (every
 *   lost ack needs another timeout, and a thief that dies after acking strands
 *   the work), and letting the coordinator place work (it is meant to stay thin).
 * - Gossip is a hint. Victims are chosen from announcements, which may be late
 *   or lost; a wrong choice costs one refused request. A worker with nothing to
 *   steal from waits for the next announcement or an idle timer, never for one
 *   particular message.
 * - Owner takes from the front (the coordinator seeds by priority), thieves from
 *   the back, at most half, leaving a reserve (see deque.ts).
 * - Retries: after a refusal or timeout, back off (doubling from
 *   `retryBackoffMs`) and try another victim; after `maxRetries` failures in a
 *   row, rest for `idleBackoffMs` or until an announcement arrives. A timeout
 *   only ends the wait, not the request: it stays open as long as the victim
 *   keeps its offer (`offerTimeoutMs`), and a reply that comes meanwhile is
 *   claimed like a prompt one (as much as the queue has room for). Without
 *   that, on an 8-worker mesh sharing 2 cores, where a steal round trip now
 *   and then passes 100 ms, each timed-out batch sat at its victim for a second
 *   (bench/live-mesh, speedup part).
 */
import type { Rng, StealOutcome, Strategy } from '../../strategies/types.js'
import type { Clock } from './clock.js'
import { ActionDeque } from './deque.js'
import type { LoadAnnouncement } from './load-announcement.js'
import { PeerTable } from './peer-table.js'

export interface WorkItem {
  id: string
}

export interface StealRequest {
  stealId: string
  max: number
  /** The sandboxes the thief offers: it is given only actions it can run. */
  sandboxes?: readonly string[]
  /** The thief's platform: it is given only actions built for it. */
  platform?: string
}

export type StealReply<T> = { offered: T[] } | { refused: string }

export interface RunOutcome {
  ok: boolean
  detail?: unknown
}

/** The worker's view of the coordinator and its peers. */
export interface MeshPort<T extends WorkItem> {
  /** Which of these `worker` may start now (it still holds them, unstarted). */
  startActions(worker: string, ids: string[]): Promise<string[]>
  /** Move these from `victim` to `thief` for one steal; the ids moved. The same stealId gets the same answer. */
  transfer(stealId: string, ids: string[], victim: string, thief: string): Promise<string[]>
  /** Settle one of this worker's offers: the ids its transfer moved (none, for good, if it has not come). Same stealId, same answer. */
  settleSteal(stealId: string): Promise<string[]>
  /** A finished action, success or failure. */
  reportResult(worker: string, item: T, outcome: RunOutcome): Promise<void>
  /** Ask `victim` for work. Rejects on timeout or failure. */
  requestSteal(thief: string, victim: string, req: StealRequest, opts: { timeoutMs: number }): Promise<StealReply<T>>
  /** Gossip this worker's load; may be lost. */
  announce(worker: string, a: LoadAnnouncement): void
  /** How many other workers this one hears gossip from (those subscribed to the load topic), if the port knows. */
  peerCount?(): number
}

/** What a runner may tell the worker while an action is under way. */
export interface RunContext {
  /**
   * The action's command is done and its outputs are in the worker's store;
   * what is left (sending them to the client) needs no slot, so the next
   * action can start meanwhile. Calling it is optional; a second call does
   * nothing.
   */
  slotDone(): void
}

export type Runner<T> = (item: T, ctx: RunContext) => Promise<RunOutcome>

export interface WorkerConfig {
  id: string
  /** Actions run at once. */
  slots: number
  /** Most actions queued (the Builder seed's localQueueSize, 256). */
  queueCapacity: number
  /** Steal when fewer than this are queued and a slot is free (the seed's minLocalQueue, 2). */
  minLocalQueue: number
  /** Most actions asked for in one steal. */
  stealBatch: number
  /** A victim keeps at least this many queued (the seed's reserve, 2). */
  victimReserve: number
  /** A peer with fewer queued is not asked (the seed's 4). */
  minVictimQueue: number
  /** A victim splits its queue evenly among itself and the peers that may ask while they are at most this many, and halves it for each thief beyond (see `fairShare`). */
  maxSharers: number
  /** Per request (the seed's 100 ms). */
  stealTimeoutMs: number
  /** First wait after a failed attempt, doubling (the seed's 50 ms). */
  retryBackoffMs: number
  /** Failed attempts in a row before resting (the seed's 3). */
  maxRetries: number
  /** Rest after maxRetries failures, unless an announcement arrives first. */
  idleBackoffMs: number
  /** A victim reconciles an offer with the coordinator after this. */
  offerTimeoutMs: number
  /** Peers not heard from for this long are forgotten (the seed's 30 s). */
  staleAfterMs: number
  /** Announce at least this often (the seed's peer announce, 10 s)… */
  announceIntervalMs: number
  /** …and on a significant change, at most this often. */
  minAnnounceGapMs: number
  /**
   * A resting thief woken by an announcement waits a random time up to this
   * before it asks (0: at once). One announcement wakes every resting thief;
   * asking at once, they herd on the few victims it names, which grant the
   * first few and refuse the rest at their reserve. Spread over the
   * announcement gap, most ask after the victim's next announcement (sent at
   * most once per `minAnnounceGapMs`) has told them what is left: in
   * bench/strategies, all work seeded on one of 100 workers, steal success
   * 83% → 92% for 0.2 points of efficiency.
   */
  wakeJitterMs: number
  strategy: Strategy
  rng: Rng
  platform: string
  sandboxes: ('local' | 'bwrap' | 'docker')[]
  /** The sandbox an action needs, if it says (a thief that lacks it is not given the action). */
  sandboxOf?: (item: WorkItem) => string | undefined
  /** Workers an action should not go to (they could not run an earlier attempt), if it says: such a thief is not given it. */
  avoidOf?: (item: WorkItem) => readonly string[] | undefined
  /** The platform an action is built for, if it says (a thief on another platform is not given the action). */
  platformOf?: (item: WorkItem) => string | undefined
  /** Every steal decision and its reason, and each outcome, at debug level. */
  log?: { debug(obj: object, msg: string): void }
}

export const DEFAULT_WORKER_CONFIG = {
  queueCapacity: 256,
  minLocalQueue: 2,
  stealBatch: 32,
  victimReserve: 2,
  minVictimQueue: 4,
  maxSharers: 7,
  stealTimeoutMs: 100,
  retryBackoffMs: 50,
  maxRetries: 3,
  idleBackoffMs: 500,
  offerTimeoutMs: 1_000,
  staleAfterMs: 30_000,
  announceIntervalMs: 10_000,
  minAnnounceGapMs: 50,
  wakeJitterMs: 50,
} as const

export interface WorkerStats {
  executed: number
  /** Actions this worker held but was not allowed to start (another worker held them by then). */
  notStarted: number
  stealsAttempted: number
  stealsGranted: number
  stealsRefused: number
  stealsFailed: number
  /** Steal requests not answered within `stealTimeoutMs` (the thief moved on); each is also counted as granted, refused or failed once its reply comes or the request gives up. */
  stealsLate: number
  actionsStolen: number
  /** As a victim. */
  offers: number
  actionsOffered: number
  actionsTakenBack: number
  stealRoundTripsMs: number[]
  /** Round trips of start requests (the coordinator's clearance to run), one sample per batch. */
  startRoundTripsMs: number[]
  announcements: number
  /** Results the coordinator did not take (the daemon's port retries; these gave up). */
  reportFailures: number
  /** Queue depth at each load announcement (the last MAX_SAMPLES). */
  queueDepthSamples: number[]
}

/** Most round-trip and queue-depth samples kept (the oldest go first). */
const MAX_SAMPLES = 10_000

export class WorkerCore<T extends WorkItem> {
  readonly deque: ActionDeque<T>
  readonly peers: PeerTable
  readonly stats: WorkerStats = {
    executed: 0,
    notStarted: 0,
    stealsAttempted: 0,
    stealsGranted: 0,
    stealsRefused: 0,
    stealsFailed: 0,
    stealsLate: 0,
    actionsStolen: 0,
    offers: 0,
    actionsOffered: 0,
    actionsTakenBack: 0,
    stealRoundTripsMs: [],
    startRoundTripsMs: [],
    announcements: 0,
    reportFailures: 0,
    queueDepthSamples: [],
  }

  /** Running or being cleared to start. */
  private busy = 0
  /** Results being reported. */
  private reporting = 0
  /** Ids being started, running or being reported. */
  private readonly live = new Set<string>()
  private stealing = false
  /** A timer before the next steal attempt is pending. */
  private waitingToSteal: (() => void) | undefined
  /** Waiting out a wake jitter (later announcements do not restart it). */
  private waking = false
  private retries = 0
  /** Victims that failed in the current run of attempts. */
  private readonly failedThisRound = new Set<string>()
  private readonly recent: StealOutcome[] = []
  private readonly offered = new Map<string, T[]>()
  /** Thieves this worker gave work to, and when, until they announce again (or `offerTimeoutMs` passes): they will not come asking meanwhile. */
  private readonly served = new Map<string, number>()
  private stealCounter = 0
  private stopped = false
  private readonly quietWaiters: (() => void)[] = []
  /** Pending reconciliations of offers (cancelled on stop). */
  private readonly reconcileTimers = new Set<() => void>()
  private readonly incarnation: string
  private seq = 0
  private lastAnnounced: { at: number; queueDepth: number; executing: number } | undefined
  private cancelAnnounce: (() => void) | undefined
  /** An announcement is due when the rate limit's gap ends. */
  private trailingAnnounce = false

  constructor(
    readonly config: WorkerConfig,
    private readonly port: MeshPort<T>,
    private readonly runner: Runner<T>,
    private readonly clock: Clock,
  ) {
    this.deque = new ActionDeque<T>(config.queueCapacity)
    this.peers = new PeerTable(config.id, config.staleAfterMs)
    this.incarnation = `${config.id}-${Math.floor(config.rng.next() * 0xffffffff).toString(16)}`
  }

  /**
   * Start announcing. A worker with nothing worth stealing says nothing yet:
   * a peer that has not heard of it treats it as not worth asking, which is
   * what it would say (on a 10,000-worker mesh those first announcements were
   * 10^8 deliveries, and every peer's table held every worker). It announces
   * when it becomes worth asking.
   */
  start(): void {
    if (this.deque.length >= this.config.minVictimQueue) this.announce()
    else this.lastAnnounced = { at: this.clock.now() - this.config.minAnnounceGapMs, queueDepth: 0, executing: 0 }
    this.scheduleAnnounce()
  }

  stop(): void {
    this.stopped = true
    for (const cancel of this.reconcileTimers) cancel()
    this.reconcileTimers.clear()
    this.cancelAnnounce?.()
    this.waitingToSteal?.()
    this.waitingToSteal = undefined
  }

  /** The coordinator seeds work. Returns what did not fit (the coordinator keeps it). */
  seed(items: readonly T[]): T[] {
    if (this.stopped) return [...items]
    const rest: T[] = []
    for (const item of items) if (!this.deque.pushBack(item)) rest.push(item)
    this.pump()
    this.maybeAnnounce()
    return rest
  }

  /** A load announcement arrived from `peerId`. */
  onAnnouncement(peerId: string, a: LoadAnnouncement): void {
    if (this.peers.record(peerId, a, this.clock.now()) !== 'accepted') return
    // A peer with work to spare: a resting thief may try again now. An
    // announcement of a short queue wakes nobody (it names no new victim, and
    // on a large mesh every idle thief would wake for it and find nothing).
    if (a.queueDepth < this.config.minVictimQueue) return
    if (this.waking) return
    if (this.retries === 0 || this.waitingToSteal) {
      this.waitingToSteal?.()
      this.waitingToSteal = undefined
      this.retries = 0
      this.failedThisRound.clear()
      const jitter = this.config.wakeJitterMs * this.config.rng.next()
      if (jitter <= 0) {
        this.maybeSteal()
        return
      }
      this.waking = true
      this.rest(jitter)
    }
  }

  /**
   * Which queued actions a thief may be given: those whose sandbox and
   * platform it offers (all, when it does not say), and not those that avoid
   * it (it could not run an earlier attempt).
   */
  private thiefCanRun(req: StealRequest, thief: string | undefined): ((item: T) => boolean) | undefined {
    const { sandboxOf, platformOf, avoidOf } = this.config
    const offers = req.sandboxes
    const platform = req.platform
    const checkAvoid = thief !== undefined && avoidOf !== undefined
    if (!(offers && sandboxOf) && !(platform && platformOf) && !checkAvoid) return undefined
    return (item) => {
      const s = offers && sandboxOf ? sandboxOf(item) : undefined
      const p = platform && platformOf ? platformOf(item) : undefined
      return (s === undefined || offers!.includes(s)) && (p === undefined || p === platform) && !(checkAvoid && avoidOf(item)?.includes(thief))
    }
  }

  /** A peer (`thief`, when known) asks this worker for work (the victim's side). */
  onStealRequest(req: StealRequest, thief?: string): StealReply<T> {
    const again = this.offered.get(req.stealId)
    if (again) return { offered: again }
    if (this.stopped) return { refused: 'stopping' }
    const share = this.deque.length > this.config.victimReserve ? this.fairShare() : Infinity
    const max = Math.max(1, Math.min(req.max, this.config.stealBatch, share))
    const accept = this.thiefCanRun(req, thief)
    const grant = this.deque.stealHalf(max, this.config.victimReserve, accept)
    if (grant.items.length === 0) return { refused: `nothing to spare: ${this.deque.length} queued, reserve ${this.config.victimReserve}` }
    this.offered.set(req.stealId, grant.items)
    if (thief !== undefined) this.served.set(thief, this.clock.now())
    this.stats.offers++
    this.stats.actionsOffered += grant.items.length
    this.reconcileLater(req.stealId)
    this.maybeAnnounce()
    return { offered: grant.items }
  }

  /**
   * One thief's share of the queue: an equal part for this worker and each peer
   * that may come asking, at least one (the asker). That is every peer but
   * those whose last announcement offered work (`minVictimQueue` or more
   * queued) and those given work here since they last announced. Below
   * `minVictimQueue` a worker announces nothing more (nor before it first has
   * work, see `start`), so a victim cannot tell a peer with 3 queued from one
   * that has since run dry, and counts it.
   *
   * Halving alone serves thieves that come together 32, 16, 8, 4, 1 and
   * refuses the rest at the reserve: on a mesh with all work seeded on one of
   * 8 workers, 2 of the first 7 requests were refused (bench/live-mesh, speedup
   * part) and the first thief's 32 were stolen again. A wrong guess costs a
   * smaller grant, never a refusal. Served thieves are left out so the victim
   * does not keep shares for thieves that already have theirs (it kept ~40% of
   * its queue, and in bench/sim at 20 ms latency, 64 actions on 8 workers took
   * 1.72 s against halving's 1.58 s; now 1.30 s).
   *
   * With more than `maxSharers` peers that may ask, the victim halves: thieves
   * given half become victims in turn, so work spreads in a tree instead of
   * through one victim's round trips. In bench/sim, all work seeded on one of
   * 50 or 100 workers, any split (up to 4, 8 or 16 ways) cost 1-2 points of
   * efficiency against halving (while raising steal success, 77% → 93% at 100).
   */
  private fairShare(): number {
    const peers = this.port.peerCount?.()
    if (peers === undefined) return Infinity
    const min = this.config.minVictimQueue
    let notAsking = 0
    for (const p of this.peers.view()) if (p.queueDepth >= min) notAsking++
    const now = this.clock.now()
    for (const [id, at] of this.served) {
      const known = this.peers.get(id)
      // Its announcement since then says what it has (and is counted above if it offers work).
      if (now - at > this.config.offerTimeoutMs || (known && known.announcedAtMs > at)) this.served.delete(id)
      else if (!known || known.queueDepth < min) notAsking++
    }
    const asking = Math.max(peers - notAsking, 1)
    return asking > this.config.maxSharers ? Infinity : Math.ceil(this.deque.length / (asking + 1))
  }

  /**
   * Leave the mesh: stop stealing and announcing, and hand back everything
   * queued or offered to a thief (the caller gives it back to the coordinator,
   * which takes only what this worker still holds). Running actions finish and
   * report; `executing` says how many are left.
   */
  shutdown(): T[] {
    this.stop()
    const offered = [...this.offered.values()].flat()
    this.offered.clear()
    return [...this.deque.drain(), ...offered]
  }

  /** Actions running or being cleared to start. */
  get executing(): number {
    return this.busy
  }

  /** Resolves when nothing is running and every result is reported (at once if so). */
  whenNothingRuns(): Promise<void> {
    if (this.busy === 0 && this.reporting === 0) return Promise.resolve()
    return new Promise((resolve) => this.quietWaiters.push(resolve))
  }

  private release(n: number): void {
    this.busy -= n
    this.notifyQuiet()
  }

  private notifyQuiet(): void {
    if (this.busy === 0 && this.reporting === 0) for (const w of this.quietWaiters.splice(0)) w()
  }

  /** Nothing queued, running, being reported or offered. */
  get idle(): boolean {
    return this.deque.length === 0 && this.busy === 0 && this.reporting === 0 && this.offered.size === 0
  }

  /** Start queued actions while slots are free; steal when the queue runs low. */
  private pump(): void {
    if (this.stopped) return
    const free = this.config.slots - this.busy
    if (free > 0 && this.deque.length > 0) {
      const batch: T[] = []
      while (batch.length < free && this.deque.length > 0) {
        const item = this.deque.pop()!
        // A second copy of an action this worker is already starting or running
        // (a seed retried after a lost reply can deliver one) is dropped here; the
        // ledger refuses a copy that comes up after the result is recorded.
        if (this.live.has(item.id)) {
          this.stats.notStarted++
          continue
        }
        this.live.add(item.id)
        batch.push(item)
      }
      if (batch.length === 0) return this.maybeSteal()
      this.busy += batch.length
      const t0 = this.clock.now()
      void this.port.startActions(this.config.id, batch.map((i) => i.id)).then(
        (allowed) => {
          pushSample(this.stats.startRoundTripsMs, this.clock.now() - t0)
          const ok = new Set(allowed)
          for (const item of batch) {
            if (ok.has(item.id)) void this.run(item)
            else {
              this.live.delete(item.id)
              this.release(1)
              this.stats.notStarted++
            }
          }
          this.pump()
        },
        () => {
          // The coordinator did not answer: keep the actions, try again shortly.
          this.release(batch.length)
          for (const item of batch) this.live.delete(item.id)
          this.deque.pushFront(batch)
          this.clock.after(this.config.retryBackoffMs, () => this.pump())
        },
      )
    }
    this.maybeSteal()
  }

  private async run(item: T): Promise<void> {
    this.maybeAnnounce()
    // The slot is free as soon as the command is done (the runner says when,
    // or it returns): sending the outputs and the report go on meanwhile. The
    // port batches reports, and outputs go to the client in a round trip of
    // their own, so waiting for either would idle the slot once per action.
    let freed = false
    const slotDone = (): void => {
      if (freed) return
      freed = true
      this.reporting++
      this.release(1)
      this.pump()
      this.maybeAnnounce()
    }
    let outcome: RunOutcome
    try {
      outcome = await this.runner(item, { slotDone })
    } catch (err) {
      outcome = { ok: false, detail: err }
    }
    this.stats.executed++
    slotDone()
    try {
      await this.port.reportResult(this.config.id, item, outcome)
    } catch {
      // Counted, not lost: the coordinator hands the action out again when it finds this worker's results missing.
      this.stats.reportFailures++
    } finally {
      this.live.delete(item.id)
      this.reporting--
      this.notifyQuiet()
    }
  }

  private maybeSteal(): void {
    if (this.stopped || this.stealing || this.waitingToSteal) return
    if (this.deque.length >= this.config.minLocalQueue || this.busy >= this.config.slots) return
    void this.stealOnce()
  }

  private async stealOnce(): Promise<void> {
    this.stealing = true
    try {
      const all = this.peers.view()
      const peers = this.failedThisRound.size > 0 ? all.filter((p) => !this.failedThisRound.has(p.peerId)) : all
      const decision = this.config.strategy(
        {
          selfId: this.config.id,
          peers,
          nowMs: this.clock.now(),
          staleAfterMs: this.config.staleAfterMs,
          minVictimQueue: this.config.minVictimQueue,
          recent: this.recent,
        },
        this.config.rng,
      )
      if (!decision) {
        this.config.log?.debug({ peers: peers.length, queued: this.deque.length }, 'steal: no victim worth asking')
        this.rest(this.config.idleBackoffMs)
        return
      }
      this.config.log?.debug({ victim: decision.victim, reason: decision.reason }, 'steal: decision')
      const stealId = `${this.config.id}:${++this.stealCounter}`
      const room = Math.min(this.config.stealBatch, this.deque.remainingSlots())
      this.stats.stealsAttempted++
      const t0 = this.clock.now()
      // The thief waits `stealTimeoutMs` for the reply, but the request lives as
      // long as the victim keeps an offer open (`offerTimeoutMs`): a reply that
      // comes late is still claimed, so a slow moment on a loaded mesh does not
      // strand the offered batch until the victim takes it back.
      const request = this.port.requestSteal(this.config.id, decision.victim, { stealId, max: room, sandboxes: this.config.sandboxes, platform: this.config.platform }, { timeoutMs: this.config.offerTimeoutMs })
      const first = await this.untilDeadline(request, this.config.stealTimeoutMs)
      if (first === 'late') {
        this.config.log?.debug({ victim: decision.victim, waitedMs: this.config.stealTimeoutMs }, 'steal: no reply in time; moving on, a late one is still claimed')
        this.stats.stealsLate++
        this.failed(decision.victim)
        void request.then(
          (reply) => this.settleReply(stealId, decision.victim, reply, t0, true),
          (err: unknown) => this.settleReply(stealId, decision.victim, { error: err }, t0, true),
        )
        return
      }
      await this.settleReply(stealId, decision.victim, first, t0, false)
    } finally {
      this.stealing = false
    }
    this.pump()
  }

  /** Resolves to what `p` gives (an error as `{ error }`), or 'late' if it has not settled within `ms`. */
  private untilDeadline<R>(p: Promise<R>, ms: number): Promise<R | { error: unknown } | 'late'> {
    return new Promise((resolve) => {
      let done = false
      const cancel = this.clock.after(ms, () => {
        if (done) return
        done = true
        resolve('late')
      })
      p.then(
        (v) => {
          if (done) return
          done = true
          cancel()
          resolve(v)
        },
        (error: unknown) => {
          if (done) return
          done = true
          cancel()
          resolve({ error })
        },
      )
    })
  }

  /**
   * What a steal request came to: take what was offered (as much as fits now),
   * or count the refusal or failure. A `late` reply comes after the thief moved
   * on (it was already counted as a failed try for backing off): only the items
   * and the counters are settled then.
   */
  private async settleReply(stealId: string, victim: string, reply: StealReply<T> | { error: unknown }, t0: number, late: boolean): Promise<void> {
    if ('error' in reply) {
      this.config.log?.debug({ victim, err: reply.error, late }, 'steal: request failed')
      this.stats.stealsFailed++
      if (!late) this.failed(victim)
      return
    }
    pushSample(this.stats.stealRoundTripsMs, this.clock.now() - t0)
    if ('refused' in reply) {
      this.config.log?.debug({ victim, refused: reply.refused, late }, 'steal: refused')
      this.stats.stealsRefused++
      // It has nothing to spare: no longer a candidate until it announces that it is again.
      this.peers.forget(victim)
      if (!late) this.failed(victim)
      return
    }
    // Late, the queue may have filled meanwhile (or the worker stopped): claim only what fits; the victim takes the rest back when it settles.
    const claim = this.stopped ? [] : late ? reply.offered.slice(0, this.deque.remainingSlots()) : reply.offered
    let moved: Set<string>
    try {
      moved = claim.length > 0 ? new Set(await this.port.transfer(stealId, claim.map((i) => i.id), victim, this.config.id)) : new Set()
    } catch {
      // The victim takes its offer back when it reconciles.
      this.stats.stealsFailed++
      if (!late) this.failed(victim)
      return
    }
    const got = claim.filter((i) => moved.has(i.id))
    for (const item of got) this.deque.pushBack(item)
    this.recent.push({ peerId: victim, granted: got.length, atMs: this.clock.now() })
    this.trimRecent()
    this.config.log?.debug({ victim, offered: reply.offered.length, moved: got.length, roundTripMs: this.clock.now() - t0, late }, 'steal: granted')
    if (got.length > 0) {
      this.stats.stealsGranted++
      this.stats.actionsStolen += got.length
      this.retries = 0
      this.failedThisRound.clear()
      if (late) this.pump()
    } else {
      this.stats.stealsFailed++
      if (!late) this.failed(victim)
    }
  }

  /** A failed attempt: remember it, back off, try another victim. */
  private failed(victim: string): void {
    this.recent.push({ peerId: victim, granted: 0, atMs: this.clock.now() })
    this.trimRecent()
    this.failedThisRound.add(victim)
    this.retries++
    if (this.retries >= this.config.maxRetries) {
      this.retries = 0
      this.failedThisRound.clear()
      this.rest(this.config.idleBackoffMs)
    } else {
      this.rest(this.config.retryBackoffMs * 2 ** (this.retries - 1))
    }
  }

  private rest(ms: number): void {
    if (this.stopped) return
    this.waitingToSteal?.()
    const cancel = this.clock.after(ms, () => {
      if (this.waitingToSteal !== cancel) return
      this.waitingToSteal = undefined
      this.waking = false
      this.pump()
    })
    this.waitingToSteal = cancel
  }

  private trimRecent(): void {
    // Strategies look at a few seconds at most; keep the list short.
    const horizon = this.clock.now() - 10_000
    while (this.recent.length > 0 && (this.recent[0]!.atMs < horizon || this.recent.length > 256)) this.recent.shift()
  }

  private reconcileLater(stealId: string): void {
    if (this.stopped) return
    const cancel = this.clock.after(this.config.offerTimeoutMs, () => {
      this.reconcileTimers.delete(cancel)
      void this.reconcile(stealId)
    })
    this.reconcileTimers.add(cancel)
  }

  /** Take back what an offer did not move, as the coordinator settles it. */
  private async reconcile(stealId: string): Promise<void> {
    const items = this.offered.get(stealId)
    if (!items) return
    let moved: Set<string>
    try {
      moved = new Set(await this.port.settleSteal(stealId))
    } catch {
      this.reconcileLater(stealId)
      return
    }
    this.offered.delete(stealId)
    const back = items.filter((i) => !moved.has(i.id))
    if (back.length > 0) {
      this.stats.actionsTakenBack += back.length
      const n = this.deque.pushFront(back)
      // Seeded work may have filled the queue meanwhile: keep the rest (settled, so only ours) and try again later.
      if (n < back.length) {
        this.offered.set(stealId, back.slice(n))
        this.reconcileLater(stealId)
      }
      this.pump()
    }
  }

  private announcement(): LoadAnnouncement {
    const executing = this.busy
    return {
      v: 1,
      incarnation: this.incarnation,
      seq: ++this.seq,
      sentAtMs: this.clock.now(),
      queueDepth: this.deque.length,
      executing,
      capacity: this.config.slots,
      loadFactor: (this.deque.length + executing) / Math.max(1, this.config.slots),
      sandboxes: this.config.sandboxes,
      platform: this.config.platform,
    }
  }

  private announce(): void {
    if (this.stopped) return
    const a = this.announcement()
    this.lastAnnounced = { at: this.clock.now(), queueDepth: a.queueDepth, executing: a.executing }
    this.stats.announcements++
    pushSample(this.stats.queueDepthSamples, a.queueDepth)
    this.port.announce(this.config.id, a)
  }

  /**
   * The periodic announcement keeps a worker that is worth asking fresh in its
   * peers' tables (they drop it after `staleAfterMs`). One that is not worth
   * asking said so when it stopped being so, and stays quiet until that
   * changes: on a 1,000-worker mesh the idle majority's heartbeats were most of
   * the gossip (bench/strategies). Its queue depth is sampled either way.
   */
  private scheduleAnnounce(): void {
    this.cancelAnnounce = this.clock.after(this.config.announceIntervalMs, () => {
      if (this.deque.length >= this.config.minVictimQueue) this.announce()
      else pushSample(this.stats.queueDepthSamples, this.deque.length)
      this.scheduleAnnounce()
    })
  }

  /**
   * Announce if the load changed significantly since the last announcement,
   * at most once per `minAnnounceGapMs`. A change that comes sooner is announced
   * when the gap ends (if it still stands), so peers never keep a stale figure
   * until the next interval: that is what thieves would keep asking in vain.
   */
  private maybeAnnounce(): void {
    const last = this.lastAnnounced
    if (!last || this.stopped || !this.loadChangedSince(last)) return
    const wait = last.at + this.config.minAnnounceGapMs - this.clock.now()
    if (wait <= 0) {
      this.announce()
      return
    }
    if (this.trailingAnnounce) return
    this.trailingAnnounce = true
    this.clock.after(wait, () => {
      this.trailingAnnounce = false
      this.maybeAnnounce()
    })
  }

  /**
   * A change worth a message is one thieves act on: becoming worth asking (a
   * queue of at least `minVictimQueue`) or ceasing to be, or, while worth
   * asking, a queue that grew or shrank by a quarter. Below the threshold no
   * thief asks, so 0 → 1 → 3 → 0 is no news: on a 1,000-worker mesh, where
   * every announcement reaches every peer, announcing it cost hundreds of
   * gossip messages per action (bench/strategies).
   */
  private loadChangedSince(last: { queueDepth: number }): boolean {
    const q = this.deque.length
    const min = this.config.minVictimQueue
    if (q >= min !== last.queueDepth >= min) return true
    return q >= min && Math.abs(q - last.queueDepth) >= Math.max(2, last.queueDepth / 4)
  }
}


function pushSample(samples: number[], value: number): void {
  if (samples.length >= MAX_SAMPLES) samples.shift()
  samples.push(value)
}
