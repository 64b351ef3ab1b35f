/**
 * The coordinator on the mesh. It serves workers on `/bldr/coordinator/1.0.0`
 * (registration, the start gate, steal transfers and settlements, results, leaving)
 * over an OwnershipLedger, and build clients on `/bldr/build/1.0.0` (open a
 * build, submit ready actions, close it). It seeds submitted actions into
 * workers' queues over `/bldr/seed/1.0.0` by the build's seed policy, and
 * pushes each action's start and result to its client over
 * `/bldr/build-events/1.0.0`.
 *
 * It stays thin: it places an action once, when it is seeded; after that the
 * workers balance themselves by stealing. It keeps back only what does not fit
 * in the workers' queues (they answer with `rest`), and seeds that as results
 * free room. The client walks the graph: it submits an action when its inputs
 * exist, so the coordinator never holds the build graph.
 */
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import { OwnershipLedger, type RecordOutcome } from '../coordinator/ledger.js'
import { reportWeight, type ResultReport } from '../worker/action-payload.js'
import { ActionDeque } from '../worker/deque.js'
import { Batcher } from './batcher.js'
import { createMeshNode, DEFAULT_LIVENESS, learnPeer, type Liveness, type MeshNode } from './node.js'
import { RECONNECT_GRACE_MS } from './liveness.js'
import { AutoSeedWindow, SINGLE_WITH_WINDOW, windowRoom, type SeedWindow } from './seed-policy.js'
import {
  BUILD_EVENTS_PROTOCOL,
  BUILD_PROTOCOL,
  COORDINATOR_PROTOCOL,
  SEED_PROTOCOL,
  STATS_PROTOCOL,
  type BuildEvent,
  type BuildRequest,
  type BuildResponse,
  type FaultAccount,
  type CoordinatorResponse,
  type SeedPolicy,
  type WireItem,
  type WorkerStatsWire,
} from './protocols.js'
import { ProtocolClient, ProtocolError, serveProtocol } from './request-response.js'

export interface ResultEvent {
  id: string
  worker: string
  report: ResultReport
  outcome: RecordOutcome
}

/**
 * The coordinator as a build client in its own process reaches it (the local
 * mesh's embedded coordinator, for the build that started it or the builds the
 * kept mesh runs): the build calls and the build's events as function calls.
 * Over loopback they were messages from the process to itself, each encrypted,
 * framed, written, read and decrypted on both sides of one event loop: 45% of
 * the client process's socket writes in a cold bench/ninja build (strace). The
 * workers reach both over the network as before.
 */
export interface InProcessCoordinator {
  /** The coordinator's peer id. */
  readonly id: string
  /** A build call from the client with peer id `from`, as BUILD_PROTOCOL answers it; a refusal is thrown as the network client throws it. */
  request(req: BuildRequest, from: string): Promise<BuildResponse>
  /** Events of builds opened by client `from` go to `sink` (undefined: over the network again). */
  attach(from: string, sink: ((events: BuildEvent[]) => Promise<void>) | undefined): void
}

export interface CoordinatorService {
  node: MeshNode
  /** This coordinator for a build client in this process. */
  inProcess: InProcessCoordinator
  ledger: OwnershipLedger
  /** Multiaddr strings workers and clients dial. */
  addrs: string[]
  /** Workers taking work, in the order they registered. */
  workers(): string[]
  /** How many times a worker was declared lost since the start (one that came back counts too). */
  losses(): number
  /** Resolves once `n` workers have registered. */
  waitForWorkers(n: number, timeoutMs: number): Promise<string[]>
  /** Give items nobody holds to a worker's queue (recorded in the ledger first). Returns ids that did not fit (given back). */
  seed(worker: string, items: WireItem[]): Promise<string[]>
  /** Called for every result report. */
  onResult(fn: (e: ResultEvent) => void): void
  /** Every registered worker's counters (null for one that did not answer). */
  workerStats(): Promise<Record<string, WorkerStatsWire | null>>
  /** An open build's `auto` seed window as measured so far (undefined: no such build, or a fixed window). */
  autoWindowOf(buildId: string): { window: 0 | 1; durationMs: number; startDelayMs: number } | undefined
  stop(): Promise<void>
}

const SEED_TIMEOUT_MS = 10_000
const EVENTS_TIMEOUT_MS = 10_000
const STATS_TIMEOUT_MS = 5_000
/** Attempts to deliver a batch of events to a client before giving the build up. */
const EVENT_ATTEMPTS = 3
/** Most actions seeded to one worker in one call. */
const SEED_BATCH = 512
/** A worker that could not be seeded is passed over for this long. */
const SEED_FAILURE_PAUSE_MS = 1_000
/**
 * A worker that could not run this many actions in a row (no run to report:
 * its sandbox would not start, its inputs could not be fetched) is quarantined:
 * not seeded and not given stolen work for QUARANTINE_MS, doubled each time
 * again (at most QUARANTINE_MAX_MS), and what it has queued goes elsewhere.
 * A broken worker fails fast, so as the least loaded it would draw work on.
 * Never the last worker able to run a build.
 */
const QUARANTINE_AFTER = 3
const QUARANTINE_MS = 30_000
const QUARANTINE_MAX_MS = 5 * 60_000

interface Build {
  id: string
  client: string
  policy: SeedPolicy
  /** Seed a worker at most this many queued actions per slot beyond what it runs (undefined: up to its room; 'auto': see `auto`). */
  seedWindow: SeedWindow | undefined
  /** Under the 'auto' window: what measures it, and the window last logged. */
  auto: { window: AutoSeedWindow; logged: 0 | 1 } | undefined
  /** The sandbox its actions need. */
  sandbox: string
  /** The platform they are built for (the client's). */
  platform: string
  /** Submitted, not yet in any worker's queue. */
  pending: ActionDeque<WireItem>
  /** Submitted attempts that avoid workers (those that failed an earlier attempt), not yet in any queue: placed before `pending`. */
  avoiding: WireItem[]
  events: Batcher<BuildEvent, void>
  /** Next worker in round-robin order. */
  cursor: number
  /** Workers whose addresses the client was sent. */
  toldAddrs: Set<string>
  /** What went wrong while it ran, and what was done: given to the client when it closes the build. */
  account: FaultAccount
}

export interface CoordinatorServiceOptions {
  listen?: string[]
  /** Keep the node's key here, so its peer id (and so its address) survives restarts. */
  dataDir?: string
  /** Heartbeats: a worker whose heartbeat goes unanswered for `workerTimeoutMs`, or whose connection stays closed for min(2 s, that), is declared lost. */
  liveness?: Liveness
  log?: Logger
}

export async function startCoordinatorService(opts: CoordinatorServiceOptions = {}): Promise<CoordinatorService> {
  const log = opts.log?.child({ component: 'coordinator' })
  const liveness = opts.liveness ?? DEFAULT_LIVENESS
  const node = await createMeshNode({ ...(opts.listen ? { listen: opts.listen } : {}), ...(opts.dataDir ? { keyFile: join(opts.dataDir, 'peer-key') } : {}), liveness })
  const ledger = new OwnershipLedger()
  /** Workers taking work, with their addresses, room (queue plus slots), slots and sandboxes, in registration order. */
  const registered = new Map<string, { addrs: string[]; room: number; slots: number; sandboxes: string[]; platform: string }>()
  const builds = new Map<string, Build>()
  /** Payloads of submitted actions not yet finished, by id: seeded again if a leaving worker gives them back. */
  const submitted = new Map<string, WireItem>()
  const resultListeners: ((e: ResultEvent) => void)[] = []
  const registrationWaiters: (() => void)[] = []
  const seeder = new ProtocolClient(node, SEED_PROTOCOL)
  const eventSender = new ProtocolClient(node, BUILD_EVENTS_PROTOCOL)
  /** Clients in this process (InProcessCoordinator.attach): their events are handed over, not sent. */
  const localSinks = new Map<string, (events: BuildEvent[]) => Promise<void>>()
  const statsClient = new ProtocolClient(node, STATS_PROTOCOL)
  /** Workers with a seed call in flight (one at a time each, so `held` stays a fair guess). */
  const seeding = new Set<string>()
  const pausedUntil = new Map<string, number>()
  /** Workers' failures to run in a row, the last reason, and their quarantine (until, and how many so far). */
  const failing = new Map<string, { inARow: number; why: string; until: number; times: number }>()
  const quarantined = (w: string, now: number): boolean => (failing.get(w)?.until ?? 0) > now
  let stopped = false
  // The coordinator does not subscribe to load gossip: it does not act on it, and
  // workers are connected to each other, so it need not relay (verifying every
  // signed announcement cost it ~8% of its CPU under load).

  /**
   * A registered worker whose connection closed (it crashed, was killed, or was
   * cut off) is declared lost unless it is back within the grace period; what
   * it held, queued or running, is handed back and seeded elsewhere. A late
   * result from it is still accepted once (see the ledger).
   */
  const lossTimers = new Map<string, NodeJS.Timeout>()
  /** Workers declared lost (one that registers again is back). */
  const lost = new Set<string>()
  let losses = 0
  const declareLost = (worker: string, why: string): void => {
    lossTimers.delete(worker)
    if (stopped || !registered.delete(worker)) return
    lost.add(worker)
    losses++
    const back = ledger.workerLost(worker)
    const handedBack = requeue(back)
    const at = Date.now()
    for (const b of builds.values()) b.account.workersLost.push({ worker, why, at, handedBack: handedBack.get(b) ?? 0 })
    log?.warn({ worker, handedBack: back.length, why }, 'worker lost; its actions are seeded elsewhere')
    // A build that still has work and that no remaining worker can run would wait for ever: tell its client.
    for (const b of builds.values()) {
      if ([...registered.values()].some((w) => canRun(w, b))) continue
      if (!b.pending.length && ![...submitted.keys()].some((id) => id.startsWith(`${b.id}/`))) continue
      emit(b, { type: 'stalled', reason: `worker ${worker} was lost and ${noWorkerFor(b)}` })
    }
    dispatch()
  }
  node.addEventListener('peer:disconnect', (evt) => {
    const worker = evt.detail.toString()
    if (!registered.has(worker) || lossTimers.has(worker)) return
    const graceMs = Math.min(RECONNECT_GRACE_MS, liveness.workerTimeoutMs)
    lossTimers.set(worker, setTimeout(() => declareLost(worker, `connection closed (crashed, cut off, or no heartbeat answer within ${liveness.workerTimeoutMs} ms) and not back within ${graceMs} ms`), graceMs).unref())
  })
  node.addEventListener('peer:connect', (evt) => {
    const worker = evt.detail.toString()
    clearTimeout(lossTimers.get(worker))
    lossTimers.delete(worker)
  })

  /** Actions handed back by a worker (lost or leaving) go to the front of their builds' queues; how many per build. */
  const requeue = (ids: readonly string[]): Map<Build, number> => {
    const perBuild = new Map<Build, number>()
    for (const id of ids) {
      const b = buildOf(id)
      const item = submitted.get(id)
      if (!b || !item) continue
      putBack(b, [item])
      perBuild.set(b, (perBuild.get(b) ?? 0) + 1)
    }
    return perBuild
  }

  /** Most actions `w` may hold for `build`: its room, or less under the build's seed window. */
  const roomOf = (w: string, build: Build): number => {
    const r = registered.get(w)
    return r ? Math.min(r.room, windowRoom(r.slots, windowOf(build))) : 0
  }
  /** The build's window now (an 'auto' one changes as it measures; logged when it does). */
  const windowOf = (build: Build): number | undefined => {
    if (build.seedWindow !== 'auto') return build.seedWindow
    const auto = build.auto!
    const w = auto.window.window
    if (w !== auto.logged) {
      auto.logged = w
      const { durationMs, startDelayMs } = auto.window.means
      log?.info({ build: build.id, window: w, meanActionMs: Math.round(durationMs), typicalStartDelayMs: Number(startDelayMs.toFixed(2)) }, `seed window auto: now ${w} queued per slot`)
    }
    return w
  }
  const buildOf = (actionId: string): Build | undefined => builds.get(actionId.slice(0, actionId.indexOf('/')))

  const seed = async (worker: string, offered: WireItem[]): Promise<string[]> => {
    // Only actions nobody holds: one handed back twice (its worker was lost while
    // a seed to it was in flight, and the seed then failed) is seeded once, and
    // one whose late result came meanwhile not at all.
    const items = offered.filter((i) => {
      const state = ledger.stateOf(i.id)
      return state === undefined || state === 'unassigned'
    })
    if (items.length === 0) return []
    for (const item of items) ledger.seed(item.id, worker)
    let rest: string[]
    try {
      rest = (await seeder.request(peerIdFromString(worker), { items }, { timeoutMs: SEED_TIMEOUT_MS })).rest
    } catch (err) {
      // Not delivered (or not known to be): the ledger takes back what the worker
      // still holds (a lost worker's were handed back already). If the worker did
      // get them, it cannot start them: the start gate refuses.
      throw new SeedError(
        ledger.release(
          items.map((i) => i.id),
          worker,
        ),
        err,
      )
    }
    return ledger.release(rest, worker)
  }

  /** Workers that offer the build's sandbox on its platform, in registration order. */
  const ableFor = (build: Build): string[] => [...registered].filter(([, w]) => canRun(w, build)).map(([id]) => id)
  /** Of those, the ones that may be seeded now (not being seeded, not passed over, not quarantined unless all are). */
  const openOf = (able: readonly string[]): string[] => {
    const now = Date.now()
    const healthy = able.some((w) => !quarantined(w, now))
    return able.filter((w) => !seeding.has(w) && (pausedUntil.get(w) ?? 0) <= now && !(healthy && quarantined(w, now)))
  }
  /** Another registered worker is not quarantined (the last one is never benched). */
  const benchable = (w: string, now: number): boolean => [...registered.keys()].some((o) => o !== w && !quarantined(o, now))
  /** Whether `w` is quarantined and another registered worker is not. */
  const benched = (w: string): boolean => {
    const now = Date.now()
    return quarantined(w, now) && benchable(w, now)
  }
  /** Count a worker's failure to run (or, with `why` undefined, a run): quarantine it after QUARANTINE_AFTER in a row. */
  const countFailure = (w: string, why: string | undefined): void => {
    const f = failing.get(w) ?? { inARow: 0, why: '', until: 0, times: 0 }
    failing.set(w, f)
    if (why === undefined) {
      f.inARow = 0
      return
    }
    f.inARow++
    f.why = why
    const now = Date.now()
    if (f.inARow < QUARANTINE_AFTER || quarantined(w, now) || !benchable(w, now)) return
    const forMs = Math.min(QUARANTINE_MAX_MS, QUARANTINE_MS * 2 ** f.times)
    f.until = now + forMs
    f.times++
    f.inARow = 0
    const back = ledger.release(ledger.queuedOf(w), w)
    const handedBack = requeue(back)
    for (const b of builds.values()) b.account.workersQuarantined.push({ worker: w, failures: QUARANTINE_AFTER, why: f.why, forMs, handedBack: handedBack.get(b) ?? 0 })
    log?.warn({ worker: w, failures: QUARANTINE_AFTER, why: f.why, forMs, handedBack: back.length }, 'worker quarantined: it could not run several actions in a row')
    setTimeout(dispatch, forMs).unref()
  }
  /** Which of the open workers get the next items of `build`, by its policy; [] when none has room. */
  const targets = (build: Build, able: readonly string[], open: readonly string[]): string[] => {
    const room = (w: string): number => roomOf(w, build) - ledger.held(w)
    switch (build.policy) {
      case 'single': {
        // Always the first registered worker (that can run the build, and is not quarantined unless all are): the case stealing must fix.
        const now = Date.now()
        const first = able.find((w) => !quarantined(w, now)) ?? able[0]
        return first !== undefined && open.includes(first) && room(first) > 0 ? [first] : []
      }
      case 'least-loaded':
        return open.filter((w) => room(w) > 0).sort((a, b) => ledger.held(a) - ledger.held(b))
      case 'round-robin':
        return open.filter((w) => room(w) > 0)
    }
  }

  /** Into a build's queue (new ones at the back, ones coming back at the front): attempts that avoid workers to their own list. */
  const enqueue = (build: Build, items: readonly WireItem[], end: 'front' | 'back'): void => {
    const plain = items.filter((i) => !i.avoid?.length)
    if (end === 'back') for (const i of plain) build.pending.pushBack(i)
    else if (plain.length > 0) build.pending.pushFront(plain)
    for (const i of items) if (i.avoid?.length) build.avoiding.push(i)
  }
  const putBack = (build: Build, items: readonly WireItem[]): void => enqueue(build, items, 'front')

  /**
   * Attempts that avoid workers go, whatever the policy, to the least-held
   * open worker with room that is not avoided. If every worker able to run
   * the build is avoided, the list is ignored (better a worker that failed
   * once than none). One that fits nowhere yet waits for the next dispatch.
   */
  const placeAvoiding = (build: Build, able: readonly string[], open: readonly string[], share: Map<string, WireItem[]>): void => {
    const load = (w: string): number => ledger.held(w) + (share.get(w)?.length ?? 0)
    const waiting: WireItem[] = []
    for (const item of build.avoiding) {
      const avoid = new Set(item.avoid)
      const honoured = able.some((w) => !avoid.has(w))
      let best: string | undefined
      for (const w of open) {
        if ((honoured && avoid.has(w)) || load(w) >= roomOf(w, build) || (share.get(w)?.length ?? 0) >= SEED_BATCH) continue
        if (best === undefined || load(w) < load(best)) best = w
      }
      if (best === undefined) waiting.push(item)
      else {
        const list = share.get(best)
        if (list) list.push(item)
        else share.set(best, [item])
      }
    }
    build.avoiding = waiting
  }

  /** Split `build`'s pending actions over the targets, by policy, and seed them. */
  const dispatch = (): void => {
    if (stopped) return
    for (const build of builds.values()) {
      if (build.pending.length === 0 && build.avoiding.length === 0) continue
      const able = ableFor(build)
      const open = openOf(able)
      const share = new Map<string, WireItem[]>()
      if (build.avoiding.length > 0) placeAvoiding(build, able, open, share)
      const ws = targets(build, able, open)
      for (const w of ws) if (!share.has(w)) share.set(w, [])
      if (build.policy === 'least-loaded') {
        // Fill the least-held worker first, one action at a time.
        const load = new Map(ws.map((w) => [w, ledger.held(w) + share.get(w)!.length]))
        while (build.pending.length > 0) {
          let best: string | undefined
          for (const w of ws) if (load.get(w)! < roomOf(w, build) && share.get(w)!.length < SEED_BATCH && (best === undefined || load.get(w)! < load.get(best)!)) best = w
          if (best === undefined) break
          share.get(best)!.push(build.pending.pop()!)
          load.set(best, load.get(best)! + 1)
        }
      } else {
        // Round-robin (and single, with one target): deal in turn, from where the last deal stopped.
        const room = new Map(ws.map((w) => [w, Math.min(SEED_BATCH, roomOf(w, build) - ledger.held(w))]))
        // What avoiding attempts took counts against the room (the deal below fills each list up to it).
        let full = 0
        while (build.pending.length > 0 && full < ws.length) {
          const w = ws[build.cursor++ % ws.length]!
          const list = share.get(w)!
          if (list.length >= room.get(w)!) {
            full++
            continue
          }
          full = 0
          list.push(build.pending.pop()!)
        }
      }
      for (const [w, items] of share) if (items.length > 0) void seedTo(build, w, items)
    }
  }

  const seedTo = async (build: Build, worker: string, items: WireItem[]): Promise<void> => {
    seeding.add(worker)
    if (build.auto) {
      // Those that fill free slots start at once: they measure the seed-to-start delay.
      const now = performance.now()
      const free = (registered.get(worker)?.slots ?? 0) - ledger.held(worker)
      items.forEach((i, k) => build.auto!.window.seeded(i.id, now, k < free))
    }
    try {
      const rest = new Set(await seed(worker, items))
      if (rest.size > 0) putBack(build, items.filter((i) => rest.has(i.id)))
      log?.debug({ worker: worker.slice(-8), seeded: items.length - rest.size, rest: rest.size, build: build.id }, 'seeded')
    } catch (err) {
      log?.warn({ err, worker, actions: items.length }, 'could not seed a worker; passing it over for a while')
      const back = new Set(err instanceof SeedError ? err.released : [])
      putBack(build, items.filter((i) => back.has(i.id)))
      pausedUntil.set(worker, Date.now() + SEED_FAILURE_PAUSE_MS)
      setTimeout(dispatch, SEED_FAILURE_PAUSE_MS).unref()
    } finally {
      seeding.delete(worker)
    }
    dispatch()
  }

  const newBuild = (buildId: string, client: string, policy: SeedPolicy, seedWindow: SeedWindow | undefined, sandbox: string, platform: string): Build => {
    const build: Build = {
      id: buildId,
      client,
      policy,
      seedWindow,
      auto: seedWindow === 'auto' ? { window: new AutoSeedWindow(), logged: 1 } : undefined,
      sandbox,
      platform,
      pending: new ActionDeque<WireItem>(Number.MAX_SAFE_INTEGER),
      avoiding: [],
      cursor: 0,
      toldAddrs: new Set(),
      account: { workersLost: [], workersBack: [], workersLeft: [], workersQuarantined: [], lateResults: 0, duplicatesIgnored: 0, conflicts: 0, staleFailures: 0, submitted: 0, recorded: 0, open: 0 },
      events: new Batcher<BuildEvent, void>(async (events) => {
        const sink = localSinks.get(client)
        if (sink) {
          try {
            await sink(events)
          } catch (err) {
            // As when a client over the network keeps refusing them (it failed on them: no retry helps).
            log?.error({ err, build: buildId, client }, 'the build client does not take events; closing its build')
            closeBuild(buildId)
            throw err
          }
          return events.map(() => undefined)
        }
        for (let attempt = 1; ; attempt++) {
          try {
            await eventSender.request(peerIdFromString(client), { events }, { timeoutMs: EVENTS_TIMEOUT_MS })
            return events.map(() => undefined)
          } catch (err) {
            if (attempt >= EVENT_ATTEMPTS || !builds.has(buildId)) {
              log?.error({ err, build: buildId, client }, 'the build client does not take events; closing its build')
              closeBuild(buildId)
              throw err
            }
          }
        }
      }, 4096, 1, { of: (e) => (e.type === 'result' ? reportWeight(e.report) : 256 + 100 * (e.type === 'started' ? e.ids.length : 0)), max: BUILD_EVENTS_PROTOCOL.maxFrameBytes / 2 }),
    }
    return build
  }

  const closeBuild = (buildId: string): FaultAccount | undefined => {
    const build = builds.get(buildId)
    if (!build) return undefined
    builds.delete(buildId)
    for (const id of submitted.keys()) if (id.startsWith(`${buildId}/`)) submitted.delete(id)
    build.account.open = ledger.forget(`${buildId}/`)
    log?.info({ build: buildId, ...build.account }, 'build closed')
    return build.account
  }

  const emit = (build: Build | undefined, event: BuildEvent): void => {
    if (build) build.events.add(event).catch(() => {})
  }

  await serveProtocol(
    node,
    COORDINATOR_PROTOCOL,
    (req, from): CoordinatorResponse => {
      switch (req.type) {
        case 'register': {
          const peers = [...registered].filter(([id]) => id !== from).map(([id, w]) => ({ id, addrs: w.addrs }))
          registered.set(from, { addrs: req.addrs, room: req.room, slots: req.slots, sandboxes: req.sandboxes, platform: req.platform })
          pausedUntil.delete(from)
          if (lost.delete(from)) {
            // Declared lost, and back (it was frozen, or cut off): what it held went elsewhere; it takes new work.
            for (const b of builds.values()) b.account.workersBack.push(from)
            log?.warn({ worker: from, workers: registered.size }, 'a lost worker is back; it takes work again')
          } else log?.info({ worker: from, workers: registered.size }, 'worker registered')
          for (const w of registrationWaiters.splice(0)) w()
          dispatch()
          return { type: 'registered', peers }
        }
        case 'start': {
          const allowed = req.ids.filter((id) => ledger.started(id, from))
          const byBuild = new Map<Build, string[]>()
          const now = performance.now()
          for (const id of allowed) {
            const b = buildOf(id)
            if (!b) continue
            b.auto?.window.started(id, now)
            const list = byBuild.get(b)
            if (list) list.push(id)
            else byBuild.set(b, [id])
          }
          for (const [b, ids] of byBuild) emit(b, { type: 'started', ids, worker: from })
          return { type: 'allowed', ids: allowed }
        }
        case 'transfer':
          // A quarantined thief is given nothing (recorded for the steal id, so the victim's settle agrees).
          return { type: 'accepted', ids: ledger.transfer(req.stealId, benched(from) ? [] : req.ids, req.victim, from).accepted }
        case 'settle':
          return { type: 'settled', moved: ledger.settle(req.stealId) }
        case 'release': {
          // A leaving worker: no more seeding to it; what it had queued is seeded elsewhere.
          registered.delete(from)
          const back = ledger.release(req.ids, from)
          const handedBack = requeue(back)
          for (const b of builds.values()) b.account.workersLeft.push({ worker: from, handedBack: handedBack.get(b) ?? 0 })
          log?.info({ worker: from, handedBack: back.length }, 'worker left')
          dispatch()
          return { type: 'released', ids: back }
        }
        case 'results': {
          const outcomes = req.results.map(({ id, report }) => {
            const exec = report.exec
            // Late: from a worker that no longer holds the action (it was declared lost and the action handed out again), and it came first.
            const late = ledger.ownerOf(id) !== from
            // Failed with no run to report (the worker could not run it): only the holder's word counts.
            const couldNotRun = !report.ok && !exec
            const outcome = couldNotRun ? ledger.recordFailure(id, from) : ledger.recordResult(id, from, { key: id, outputs: exec?.outputs.map((o) => o.digest) ?? [], exitCode: exec?.exitCode ?? -1 })
            if (outcome === 'recorded') countFailure(from, couldNotRun ? (report.error ?? 'no report of the run') : undefined)
            const account = buildOf(id)?.account
            if (account) {
              if (outcome === 'recorded') {
                account.recorded++
                if (late) account.lateResults++
              } else if (outcome === 'duplicate') account.duplicatesIgnored++
              else if (outcome === 'conflict') account.conflicts++
              else if (outcome === 'stale') account.staleFailures++
            }
            if (outcome === 'recorded') {
              submitted.delete(id)
              const b = buildOf(id)
              b?.auto?.window.finished(id, performance.now())
              // A worker's addresses go to a client once per build (it dials the worker for outputs only if a push failed).
              const addrs = b && !b.toldAddrs.has(from) ? (b.toldAddrs.add(from), registered.get(from)?.addrs ?? []) : []
              emit(b, { type: 'result', id, worker: from, addrs, report })
            } else log?.warn({ action: id, worker: from, outcome }, 'a result was not recorded as new')
            for (const l of resultListeners) l({ id, worker: from, report, outcome })
            return outcome
          })
          dispatch()
          return { type: 'recorded', outcomes }
        }
      }
    },
    log,
  )

  /** What to tell a client whose sandbox and platform no worker offers: what the mesh has instead. */
  const noWorkerFor = (need: { sandbox: string; platform: string }): string => {
    const offered = new Map<string, number>()
    for (const w of registered.values()) for (const s of w.sandboxes) offered.set(`${s} on ${w.platform}`, (offered.get(`${s} on ${w.platform}`) ?? 0) + 1)
    const has = [...offered].map(([s, n]) => `${s} (${n} worker${n === 1 ? '' : 's'})`).join(', ')
    return `no worker in this mesh offers sandbox ${need.sandbox} on ${need.platform} (the mesh has ${has || 'no workers'})`
  }

  const workerStats = async (): Promise<Record<string, WorkerStatsWire | null>> => {
    const ids = [...registered.keys()]
    const answers = await Promise.all(
      ids.map((w) =>
        statsClient.request(peerIdFromString(w), {}, { timeoutMs: STATS_TIMEOUT_MS }).catch((err: unknown) => {
          log?.warn({ err, worker: w }, 'a worker did not send its stats')
          return null
        }),
      ),
    )
    return Object.fromEntries(ids.map((w, i) => [w, answers[i] ?? null]))
  }

  const buildCall = async (req: BuildRequest, from: string): Promise<BuildResponse> => {
    switch (req.type) {
      case 'open': {
        if (builds.has(req.buildId)) throw new Error(`build ${req.buildId} is already open`)
        // Fail fast, not hang: a build whose sandbox no worker offers could never run.
        if (![...registered.values()].some((w) => canRun(w, req))) throw new Error(noWorkerFor(req))
        await learnPeer(node, from, req.addrs)
        if (req.policy === 'single' && req.seedWindow !== undefined) throw new Error(SINGLE_WITH_WINDOW)
        builds.set(req.buildId, newBuild(req.buildId, from, req.policy, req.seedWindow, req.sandbox, req.platform))
        log?.info({ build: req.buildId, client: from, policy: req.policy, seedWindow: req.seedWindow, workers: registered.size }, 'build opened')
        return { type: 'opened', workers: registered.size }
      }
      case 'submit': {
        const build = builds.get(req.buildId)
        if (!build || build.client !== from) throw new Error(`no open build ${req.buildId} from this client`)
        const bad = req.items.find((i) => !i.id.startsWith(`${req.buildId}/`))
        if (bad) throw new Error(`action id ${JSON.stringify(bad.id)} does not start with "${req.buildId}/"`)
        for (const item of req.items as WireItem[]) {
          // A submit retried after a lost answer repeats items: each is taken once.
          if (submitted.has(item.id) || ledger.stateOf(item.id) !== undefined) continue
          submitted.set(item.id, item)
          build.account.submitted++
          enqueue(build, [item], 'back')
        }
        dispatch()
        return { type: 'submitted', n: req.items.length }
      }
      case 'close': {
        const build = builds.get(req.buildId)
        const account = build && build.client === from ? closeBuild(req.buildId) : undefined
        return { type: 'closed', ...(account ? { account } : {}) }
      }
      case 'status': {
        const build = builds.get(req.buildId)
        return { type: 'status', open: build !== undefined && build.client === from }
      }
      case 'stats':
        return { type: 'stats', workers: await workerStats() }
    }
  }
  await serveProtocol(node, BUILD_PROTOCOL, buildCall, log)

  const inProcess: InProcessCoordinator = {
    id: node.peerId.toString(),
    request: async (req, from) => {
      try {
        return await buildCall(req, from)
      } catch (err) {
        // As a network client gets a handler's failure (request-response.ts).
        throw new ProtocolError(`${BUILD_PROTOCOL.id}: ${node.peerId.toString()} answered: handler failed: ${(err as Error).message}`)
      }
    },
    attach: (from, sink) => {
      if (sink) localSinks.set(from, sink)
      else localSinks.delete(from)
    },
  }

  return {
    node,
    inProcess,
    ledger,
    addrs: node.getMultiaddrs().map((a) => a.toString()),
    workers: () => [...registered.keys()],
    losses: () => losses,
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
    seed,
    onResult: (fn) => {
      resultListeners.push(fn)
    },
    workerStats,
    autoWindowOf: (buildId) => {
      const auto = builds.get(buildId)?.auto?.window
      return auto && { window: auto.window, ...auto.means }
    },
    stop: async () => {
      stopped = true
      for (const t of lossTimers.values()) clearTimeout(t)
      seeder.close()
      eventSender.close()
      statsClient.close()
      await node.stop()
    },
  }
}

/** A seed that failed; `released`: the actions given back to the coordinator (to be seeded again). */
class SeedError extends Error {
  constructor(
    readonly released: string[],
    cause: unknown,
  ) {
    super(`seeding failed: ${(cause as Error).message}`, { cause })
  }
}

/** Whether a worker offers what a build's actions need: its sandbox, on its platform. */
function canRun(worker: { sandboxes: readonly string[]; platform: string }, need: { sandbox: string; platform: string }): boolean {
  return worker.sandboxes.includes(need.sandbox) && worker.platform === need.platform
}
