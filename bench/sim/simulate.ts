/**
 * The steal-strategy simulator: a build of a workload on N workers, in
 * virtual time. The workers are the daemon's own `WorkerCore` (deque, slots,
 * steal loop, victim side, announcements) running the daemon's `strategies/`,
 * on the daemon's `OwnershipLedger`; only the wire is replaced, by
 * `MemoryMesh` (one-way latency, gossip delay and loss, a coordinator that
 * serves one message at a time). A run is reproducible from its seed.
 *
 * Modelled: steal round trips, gossip delay and loss, worker speeds (a task of
 * d ms takes d / speed), workers leaving (a drain: queued work goes back to the
 * coordinator) and joining, and the coordinator seeding ready tasks by
 * priority with its seed policy. Not modelled: fetching inputs (every task is
 * as if its inputs were local), CPU contention within a worker, crashes (the
 * fault suite covers those on the real mesh).
 *
 * Baselines run the same graph: `no-stealing` is the same mesh with a strategy
 * that never picks a victim (static seeding only); `central-queue` is one
 * queue at the coordinator that every free slot claims from (central-queue.ts).
 */
import { createRng, STRATEGIES, type StrategyName } from '../../strategies/index.js'
import type { Strategy } from '../../strategies/types.js'
import { VirtualClock } from '../../src/worker/clock.js'
import { MemoryMesh } from '../../src/worker/memory-mesh.js'
import { DEFAULT_WORKER_CONFIG, WorkerCore, type WorkerConfig } from '../../src/worker/worker-core.js'
import { AutoSeedWindow, DEFAULT_SEED_POLICY, DEFAULT_SEED_WINDOW, windowRoom, type SeedPolicy, type SeedWindow } from '../../src/net/seed-policy.js'
import { DagState, MinHeap } from './dag-state.js'
import { churn, presenceFigures, type Presence } from './membership.js'
import { simulateCentralQueue } from './central-queue.js'
import type { Workload } from './workloads.js'

export const BASELINES = ['no-stealing', 'central-queue'] as const
export type Scheduler = StrategyName | (typeof BASELINES)[number]
export const SCHEDULERS: readonly Scheduler[] = [...(Object.keys(STRATEGIES) as StrategyName[]), ...BASELINES]

export interface Network {
  /** One-way latency of a direct message, ms. */
  latencyMs: number
  /** One-way latency of a message to or from the coordinator (seeds, start requests, results), ms; default `latencyMs`. */
  coordinatorLatencyMs?: number
  /** Extra delay of a gossip message, ms. */
  gossipDelayMs: number
  /** Share of gossip deliveries lost. */
  gossipLoss: number
  /** Share of steal requests and replies lost. */
  stealLoss: number
  /** The coordinator's work per message, ms (it serves one at a time). */
  coordinatorServiceMs: number
}

/**
 * Loopback-like defaults, from bench/live-mesh: a steal round trip under load
 * is about 0.5 ms, a gossipsub message a few ms, and the coordinator handles
 * about 12,600 no-op actions/s at several messages each.
 */
export const DEFAULT_NETWORK: Network = { latencyMs: 0.25, gossipDelayMs: 2, gossipLoss: 0.01, stealLoss: 0, coordinatorServiceMs: 0.02 }

export interface SimOptions {
  workload: Workload
  workers: number
  /** Execution slots per worker. */
  slots?: number
  scheduler: Scheduler
  /** How the coordinator places ready tasks (default: the CLI's). */
  seedPolicy?: SeedPolicy
  /**
   * Seed a worker at most this many queued actions per slot beyond those it
   * runs (the rest wait at the coordinator, most urgent first, until results
   * free room), as the real coordinator does (seed-policy.ts). Unset: the
   * CLI's default (DEFAULT_SEED_WINDOW; none under `single`); null: no window,
   * up to the worker's queue capacity; 'auto': 0 or 1 by measured action
   * times (AutoSeedWindow, fed the same events as the real coordinator's).
   */
  seedWindow?: SeedWindow | null
  /** Worker speeds: all 1, or mixed (a quarter at 0.5, half at 1, a quarter at 2). */
  speeds?: 'uniform' | 'mixed'
  /** Every `everyMs` one worker (chosen at random) leaves; a new one joins `downMs` later. */
  churn?: { everyMs: number; downMs: number }
  network?: Partial<Network>
  /** Overrides of the daemon's worker defaults. */
  worker?: Partial<Omit<WorkerConfig, 'id' | 'slots' | 'strategy' | 'rng'>>
  seed: number
  /** Give up after this much virtual time (a scheduler that strands work would never finish). */
  maxMs?: number
}

export interface SimResult {
  workload: string
  workers: number
  slots: number
  scheduler: Scheduler
  seedPolicy: SeedPolicy
  seedWindow: SeedWindow | null
  /** Under 'auto': the window when the build ended. */
  autoWindowAtEnd?: 0 | 1
  speeds: 'uniform' | 'mixed'
  churn: boolean
  /** Workers that were in the mesh at some time, and those that left before the end. */
  membership: { joined: number; left: number }
  tasks: number
  makespanMs: number
  /** max(critical path at the fastest speed, total work / total capacity). */
  lowerBoundMs: number
  efficiency: number
  steals: { attempted: number; granted: number; refused: number; failed: number; successRate: number | null; actionsStolen: number }
  /** A request and its reply count as one message; a gossip broadcast counts once per receiver. */
  messages: { gossip: number; steal: number; coordinator: number; total: number; perAction: number }
  /** Share of slot time (while a worker was in the mesh) spent not running a task. */
  idleShare: number
  /** Tasks each worker ran: fewest and most. */
  executedPerWorker: { min: number; max: number }
  /** The most tasks one worker held (queued or running) at once, as the coordinator seeded it. */
  maxHeld: number
  /** Times a task was run; more than the task count would be a duplicate. */
  executions: number
  /** Simulator cost, for the report: events run and host wall time. */
  events: number
  wallMs: number
}

interface Item {
  id: string
  index: number
}

const never: Strategy = () => null

/** The window a run seeds with: the CLI's default unless the options say (none under `single`). */
export function seedWindowOf(opts: SimOptions): SeedWindow | undefined {
  if (opts.seedWindow === null) return undefined
  if (opts.seedWindow !== undefined) return opts.seedWindow
  return (opts.seedPolicy ?? DEFAULT_SEED_POLICY) === 'single' ? undefined : DEFAULT_SEED_WINDOW
}

/** Per-worker speeds: deterministic from the seed. */
export function speedsFor(n: number, kind: 'uniform' | 'mixed', seed: number): number[] {
  if (kind === 'uniform') return Array(n).fill(1)
  const rng = createRng(seed ^ 0x5bd1e995)
  return Array.from({ length: n }, () => {
    const u = rng.next()
    return u < 0.25 ? 0.5 : u < 0.75 ? 1 : 2
  })
}

export function lowerBound(workload: Workload, workers: number, slots: number, speeds: number[]): number {
  const capacity = speeds.slice(0, workers).reduce((a, s) => a + s * slots, 0)
  return Math.max(workload.criticalPathMs / Math.max(...speeds), workload.totalWorkMs / capacity)
}

/** Virtual time after which a run is declared stuck: three times the whole build run serially at the slowest speed, plus a minute. */
export function defaultLimitMs(workload: Workload): number {
  return 3 * (workload.totalWorkMs / 0.5 + workload.criticalPathMs) + 60_000
}

/** What every simulated run starts from: its clock, graph state, seeded random source and worker speeds. */
export function setUp(opts: SimOptions) {
  const speedKind = opts.speeds ?? 'uniform'
  return {
    slots: opts.slots ?? 1,
    speedKind,
    net: { ...DEFAULT_NETWORK, ...opts.network },
    clock: new VirtualClock(),
    dag: new DagState(opts.workload),
    tasks: opts.workload.tasks,
    rng: createRng(opts.seed),
    // Speeds for the workers that join later too (churn).
    speeds: speedsFor(opts.workers + 1024, speedKind, opts.seed),
  }
}

/** Run the clock until the build is done; a run that strands work fails at its virtual-time limit. Returns the events run. */
export async function runToEnd(opts: SimOptions, run: ReturnType<typeof setUp>): Promise<number> {
  const maxMs = opts.maxMs ?? defaultLimitMs(opts.workload)
  const events = await run.clock.run({ untilMs: maxMs, maxEvents: Number.MAX_SAFE_INTEGER })
  const { dag } = run
  if (!dag.finished) throw new Error(`simulation of ${opts.workload.name} on ${opts.workers} workers with ${opts.scheduler} did not finish within ${maxMs} ms of virtual time (${dag.done}/${dag.size} done)`)
  return events
}

/** The figures every scheduler reports the same way. */
export function commonFigures(opts: SimOptions, run: ReturnType<typeof setUp>, members: readonly Presence[], makespanMs: number) {
  const lb = lowerBound(opts.workload, opts.workers, run.slots, run.speeds)
  return {
    workload: opts.workload.name,
    workers: opts.workers,
    slots: run.slots,
    speeds: run.speedKind,
    churn: !!opts.churn,
    tasks: run.tasks.length,
    makespanMs,
    lowerBoundMs: lb,
    efficiency: lb / makespanMs,
    ...presenceFigures(members, run.slots, makespanMs),
  }
}

/** Run one simulated build. */
export async function simulate(opts: SimOptions): Promise<SimResult> {
  if (opts.scheduler === 'central-queue') {
    return simulateCentralQueue(opts)
  }
  const t0 = performance.now()
  const setup = setUp(opts)
  const { slots, net, clock, dag, tasks, rng, speeds } = setup
  const policy = opts.seedPolicy ?? DEFAULT_SEED_POLICY
  let makespanMs = 0
  let executions = 0
  let maxHeld = 0

  const window = seedWindowOf(opts)
  const auto = window === 'auto' ? new AutoSeedWindow() : undefined
  const mesh = new MemoryMesh<Item>({
    clock,
    rng: createRng(opts.seed * 7919 + 1),
    latencyMs: net.latencyMs,
    ...(net.coordinatorLatencyMs !== undefined ? { coordinatorLatencyMs: net.coordinatorLatencyMs } : {}),
    gossipDelayMs: net.gossipDelayMs,
    gossipLoss: net.gossipLoss,
    gossipDuplicate: 0,
    stealLoss: net.stealLoss,
    coordinatorServiceMs: net.coordinatorServiceMs,
    onStarted: (ids) => {
      if (auto) for (const id of ids) auto.started(id, clock.now())
    },
    onResult: (id) => {
      auto?.finished(id, clock.now())
      dag.complete(Number(id))
      if (dag.finished) {
        makespanMs = clock.now()
        for (const w of present) w.core.stop()
      } else dispatchSoon()
    },
  })

  interface Member extends Presence {
    core: WorkerCore<Item>
  }
  const members: Member[] = []
  /** Workers in the mesh, in join order (the coordinator's registration order). */
  const present: Member[] = []
  const strategy = opts.scheduler === 'no-stealing' ? never : STRATEGIES[opts.scheduler]
  const roomOf = (m: Member): number => Math.min(m.core.config.queueCapacity + slots, windowRoom(slots, auto ? auto.window : (window as number | undefined))) - mesh.ledger.held(m.core.config.id)

  const join = (): void => {
    const k = members.length
    const id = `w${k}`
    const member: Member = { core: undefined as never, speed: speeds[k % speeds.length]!, joinedAt: clock.now(), busyMs: 0, executed: 0 }
    member.core = new WorkerCore<Item>(
      { ...DEFAULT_WORKER_CONFIG, platform: 'sim', sandboxes: ['local'], ...opts.worker, id, slots, strategy, rng: createRng(opts.seed * 100_003 + k) },
      mesh.port,
      (item) =>
        new Promise((resolve) => {
          const ms = tasks[item.index]!.durationMs / member.speed
          clock.after(ms, () => {
            member.busyMs += ms
            member.executed++
            executions++
            resolve({ ok: true })
          })
        }),
      clock,
    )
    members.push(member)
    present.push(member)
    mesh.add(member.core)
    member.core.start()
  }

  // The coordinator: deal ready tasks, most urgent first, to workers with room, by the seed policy.
  let cursor = 0
  let dispatchPending = false
  const dispatchSoon = (): void => {
    if (dispatchPending) return
    dispatchPending = true
    clock.after(0, () => {
      dispatchPending = false
      dispatch()
    })
  }
  const dispatch = (): void => {
    if (dag.readyCount === 0 || present.length === 0) return
    const share = new Map<Member, Item[]>()
    const give = (m: Member, i: number): void => {
      const item = { id: String(i), index: i }
      auto?.seeded(item.id, clock.now(), mesh.ledger.held(m.core.config.id) < slots)
      mesh.ledger.seed(item.id, m.core.config.id)
      maxHeld = Math.max(maxHeld, mesh.ledger.held(m.core.config.id))
      const list = share.get(m)
      if (list) list.push(item)
      else share.set(m, [item])
    }
    if (policy === 'single') {
      const first = present[0]!
      while (dag.readyCount > 0 && roomOf(first) > 0) give(first, dag.pop()!)
    } else if (policy === 'least-loaded') {
      // The least-held worker with room first (ties: registration order), kept in a heap: O(log n) a task on 1,000 workers.
      const heap = new MinHeap<{ m: Member; held: number; order: number }>((a, b) => a.held - b.held || a.order - b.order)
      present.forEach((m, order) => roomOf(m) > 0 && heap.push({ m, held: mesh.ledger.held(m.core.config.id), order }))
      while (dag.readyCount > 0 && heap.size > 0) {
        const top = heap.pop()!
        give(top.m, dag.pop()!)
        top.held++
        if (roomOf(top.m) > 0) heap.push(top)
      }
    } else {
      let full = 0
      while (dag.readyCount > 0 && full < present.length) {
        const m = present[cursor++ % present.length]!
        if (roomOf(m) <= 0) {
          full++
          continue
        }
        full = 0
        give(m, dag.pop()!)
      }
    }
    for (const [m, items] of share) {
      mesh.messages.coordinator++
      clock.after(net.coordinatorLatencyMs ?? net.latencyMs, () => {
        if (m.leftAt !== undefined) {
          // It left on the way: the ledger takes the tasks back, and they are dealt again.
          for (const id of mesh.ledger.release(items.map((x) => x.id), m.core.config.id)) dag.push(Number(id))
          dispatchSoon()
          return
        }
        const rest = m.core.seed(items)
        for (const id of mesh.ledger.release(rest.map((x) => x.id), m.core.config.id)) dag.push(Number(id))
        if (rest.length > 0) dispatchSoon()
      })
    }
  }

  for (let k = 0; k < opts.workers; k++) join()

  if (opts.churn) {
    churn(clock, rng, opts.churn, present, () => dag.finished, (m) => {
      for (const item of mesh.remove(m.core.config.id)) dag.push(item.index)
      dispatchSoon()
    }, () => {
      join()
      dispatchSoon()
    })
  }

  dispatch()
  const events = await runToEnd(opts, setup)
  for (const m of members) m.core.stop()
  await clock.run()

  const stats = members.map((m) => m.core.stats)
  const sum = (f: (s: (typeof stats)[number]) => number): number => stats.reduce((a, s) => a + f(s), 0)
  const attempted = sum((s) => s.stealsAttempted)
  const granted = sum((s) => s.stealsGranted)
  const messages = { gossip: mesh.messages.gossip, steal: mesh.messages.stealRequests, coordinator: mesh.messages.coordinator, total: 0, perAction: 0 }
  messages.total = messages.gossip + messages.steal + messages.coordinator
  messages.perAction = messages.total / tasks.length
  return {
    ...commonFigures(opts, setup, members, makespanMs),
    scheduler: opts.scheduler,
    seedPolicy: policy,
    seedWindow: window ?? null,
    ...(auto ? { autoWindowAtEnd: auto.window } : {}),
    steals: { attempted, granted, refused: sum((s) => s.stealsRefused), failed: sum((s) => s.stealsFailed), successRate: attempted > 0 ? granted / attempted : null, actionsStolen: sum((s) => s.actionsStolen) },
    messages,
    executions,
    maxHeld,
    events,
    wallMs: performance.now() - t0,
  }
}
