/**
 * Baseline: a central pull queue (the Blixard seed's design). The coordinator
 * keeps every ready task in one priority queue; each free slot of each worker
 * claims one task, runs it, reports it and claims again. A claim that finds
 * the queue empty waits at the coordinator (a long poll) and is answered when
 * a task becomes ready, so no slot polls in vain. The coordinator serves one
 * message at a time, with the same latency and service time as the mesh
 * simulation's coordinator: at scale, its queue is this design's cost.
 */
import { DEFAULT_SEED_POLICY } from '../../src/net/seed-policy.js'
import { churn, type Presence } from './membership.js'
import { commonFigures, runToEnd, setUp, type SimOptions, type SimResult } from './simulate.js'

export async function simulateCentralQueue(opts: SimOptions): Promise<SimResult> {
  const t0 = performance.now()
  const setup = setUp(opts)
  const { slots, net, clock, dag, tasks, rng, speeds } = setup
  let makespanMs = 0
  let executions = 0
  let messages = 0

  type Member = Presence
  const members: Member[] = []
  const present: Member[] = []
  /** Claims waiting for a ready task, oldest first (one per free slot). */
  let parked: Member[] = []

  let freeAt = 0
  const latencyMs = net.coordinatorLatencyMs ?? net.latencyMs
  /** A message to the coordinator: `fn` runs when it has been served, in arrival order. */
  const serve = (fn: () => void): void => {
    messages++
    const done = Math.max(clock.now() + latencyMs, freeAt) + net.coordinatorServiceMs
    freeAt = done
    clock.after(done - clock.now(), fn)
  }

  const run = (m: Member, i: number): void => {
    clock.after(latencyMs, () => {
      const ms = tasks[i]!.durationMs / m.speed
      executions++
      clock.after(ms, () => {
        m.busyMs += ms
        m.executed++
        serve(() => {
          dag.complete(i)
          if (dag.finished) makespanMs = clock.now()
          while (parked.length > 0 && dag.readyCount > 0) run(parked.shift()!, dag.pop()!)
        })
        if (m.leftAt === undefined) claim(m)
      })
    })
  }

  const claim = (m: Member): void =>
    serve(() => {
      if (m.leftAt !== undefined || dag.finished) return
      const i = dag.pop()
      if (i === undefined) parked.push(m)
      else run(m, i)
    })

  const join = (): void => {
    const m: Member = { speed: speeds[members.length % speeds.length]!, joinedAt: clock.now(), busyMs: 0, executed: 0 }
    members.push(m)
    present.push(m)
    for (let s = 0; s < slots; s++) claim(m)
  }
  for (let k = 0; k < opts.workers; k++) join()

  if (opts.churn) churn(clock, rng, opts.churn, present, () => dag.finished, (m) => (parked = parked.filter((p) => p !== m)), join)

  const events = await runToEnd(opts, setup)
  return {
    ...commonFigures(opts, setup, members, makespanMs),
    scheduler: 'central-queue',
    seedPolicy: opts.seedPolicy ?? DEFAULT_SEED_POLICY,
    seedWindow: null,
    steals: { attempted: 0, granted: 0, refused: 0, failed: 0, successRate: null, actionsStolen: 0 },
    messages: { gossip: 0, steal: 0, coordinator: messages, total: messages, perAction: messages / tasks.length },
    executions,
    // A worker claims one task per free slot, so it never holds more.
    maxHeld: setup.slots,
    events,
    wallMs: performance.now() - t0,
  }
}
