import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { DagState } from '../../bench/sim/dag-state.js'
import { SCHEDULERS, simulate } from '../../bench/sim/simulate.js'
import { barChart, lineChart } from '../../bench/sim/svg.js'
import { finish, heavyTailed, monorepo, sleeps, uniform } from '../../bench/sim/workloads.js'
import { DEFAULT_SEED_WINDOW } from '../../src/net/seed-policy.js'
import { DEFAULT_WORKER_CONFIG } from '../../src/worker/worker-core.js'

describe('simulator workloads', () => {
  it('computes total work, the critical path and each task\'s remaining path exactly', () => {
    // 0 (1) → 1 (5) → 3 (2); 0 → 2 (1) → 3; 4 (3) alone.
    const w = finish('t', 'hand-made', [
      { durationMs: 1, deps: [] },
      { durationMs: 5, deps: [0] },
      { durationMs: 1, deps: [0] },
      { durationMs: 2, deps: [1, 2] },
      { durationMs: 3, deps: [] },
    ])
    assert.equal(w.totalWorkMs, 12)
    assert.equal(w.criticalPathMs, 8)
    assert.deepEqual([...w.bottomLevelMs], [8, 7, 3, 2, 3])
    assert.throws(() => finish('bad', '', [{ durationMs: 1, deps: [0] }]), /task 0 depends on 0, not an earlier task/)
  })

  it('generates the monorepo DAG from a seed: the same seed the same graph, dependencies always earlier', () => {
    const a = monorepo({ actions: 2_000, seed: 7 })
    const b = monorepo({ actions: 2_000, seed: 7 })
    const c = monorepo({ actions: 2_000, seed: 8 })
    assert.deepEqual(a.tasks, b.tasks)
    assert.notDeepEqual(a.tasks, c.tasks)
    assert.ok(a.tasks.length >= 2_000 && a.tasks.length < 2_200, `${a.tasks.length} tasks`)
    a.tasks.forEach((t, i) => t.deps.forEach((d) => assert.ok(d < i)))
    const fanIn = Math.max(...a.tasks.map((t) => t.deps.length))
    assert.ok(fanIn >= 10, `some task gathers many inputs (largest fan-in ${fanIn})`)
    assert.ok(a.criticalPathMs > 5_000 && a.criticalPathMs < a.totalWorkMs / 10, `critical path ${a.criticalPathMs} ms of ${a.totalWorkMs} ms`)
  })

  it('gives heavy-tailed durations a long tail and uniform ones none', () => {
    const sorted = (xs: number[]): number[] => [...xs].sort((p, q) => p - q)
    const h = sorted(heavyTailed(5_000, 500, 1).tasks.map((t) => t.durationMs))
    const u = sorted(uniform(5_000, 1_000, 1).tasks.map((t) => t.durationMs))
    assert.ok(Math.abs(h[2_500]! - 500) < 50, `median ${h[2_500]}`)
    assert.ok(h.at(-1)! > 20 * h[2_500]!, `longest ${h.at(-1)} vs median ${h[2_500]}`)
    assert.ok(u[0]! >= 500 && u.at(-1)! <= 1_500)
  })

  it('releases ready tasks most urgent first, and dependants once all their inputs are done', () => {
    const d = new DagState(finish('t', '', [
      { durationMs: 1, deps: [] },
      { durationMs: 9, deps: [] },
      { durationMs: 1, deps: [0, 1] },
    ]))
    assert.equal(d.pop(), 1, 'the longer remaining path first')
    assert.equal(d.pop(), 0)
    assert.equal(d.pop(), undefined)
    d.complete(0)
    assert.equal(d.readyCount, 0, 'task 2 still waits for task 1')
    d.complete(1)
    assert.equal(d.pop(), 2)
  })
})

describe('simulator', () => {
  const dag = monorepo({ actions: 400, seed: 3 })

  for (const scheduler of SCHEDULERS) {
    it(`${scheduler}: runs every task of a DAG exactly once, never faster than the lower bound`, async () => {
      const r = await simulate({ workload: dag, workers: 8, scheduler, seed: 1 })
      assert.equal(r.executions, dag.tasks.length)
      assert.equal(r.tasks, dag.tasks.length)
      assert.ok(r.makespanMs >= r.lowerBoundMs, `makespan ${r.makespanMs} < lower bound ${r.lowerBoundMs}`)
      assert.ok(r.efficiency > 0.3 && r.efficiency <= 1, `efficiency ${r.efficiency}`)
      assert.ok(r.idleShare >= 0 && r.idleShare < 1)
      assert.ok(r.messages.coordinator >= dag.tasks.length, 'every result reaches the coordinator')
    })
  }

  it('is reproducible from its seed, and another seed gives another run', async () => {
    const w = uniform(300, 100, 1)
    const run = (seed: number) => simulate({ workload: w, workers: 6, scheduler: 'power-of-two', seedPolicy: 'single', seed })
    const [a, b, c] = [await run(5), await run(5), await run(6)]
    const key = (r: Awaited<typeof a>) => JSON.stringify({ m: r.makespanMs, s: r.steals, g: r.messages, e: r.executedPerWorker })
    assert.equal(key(a), key(b))
    assert.notEqual(key(a), key(c))
  })

  it('seeds within the window: 0 fills free slots only, 1 one more per slot, none up to the queue (1-slot workers)', async () => {
    const w = heavyTailed(300, 100, 3)
    const run = (seedWindow: number | null) => simulate({ workload: w, workers: 20, scheduler: 'power-of-two', seedWindow, seed: 1 })
    const [zero, one, none, byDefault] = [await run(0), await run(1), await run(null), await simulate({ workload: w, workers: 20, scheduler: 'power-of-two', seed: 1 })]
    assert.equal(zero.maxHeld, 1)
    assert.equal(one.maxHeld, 2)
    assert.ok(none.maxHeld >= 10, `no window: ${none.maxHeld}`)
    assert.deepEqual([zero.seedWindow, one.seedWindow, none.seedWindow, byDefault.seedWindow], [0, 1, null, DEFAULT_SEED_WINDOW])
    // The default (auto) measured tasks of ~100 ms against a sub-millisecond start: it holds no queue.
    assert.equal(byDefault.autoWindowAtEnd, 0)
    assert.ok(byDefault.maxHeld <= 2, `auto starts at 1 per slot until it has measured: held ${byDefault.maxHeld}`)
    assert.ok(byDefault.efficiency >= one.efficiency, `auto ${byDefault.efficiency} against window 1 ${one.efficiency}`)
    for (const r of [zero, one, none]) assert.equal(r.executions, 300)
    // Heavy-tailed tasks queued deep behind long ones: the window is what keeps them movable.
    assert.ok(zero.efficiency > none.efficiency && one.efficiency > none.efficiency, `${zero.efficiency} ${one.efficiency} ${none.efficiency}`)
  })

  it('thieves woken by one announcement spread their requests over the wake jitter: far fewer are refused', async () => {
    const w = uniform(2000, 1000, 1)
    const run = (wakeJitterMs: number) => simulate({ workload: w, workers: 50, scheduler: 'power-of-two', seedPolicy: 'single', seed: 1, worker: { wakeJitterMs } })
    const [herd, spread] = [await run(0), await run(DEFAULT_WORKER_CONFIG.wakeJitterMs)]
    for (const r of [herd, spread]) assert.equal(r.executions, 2000)
    assert.ok(spread.steals.successRate! >= 0.9, `steal success with the default jitter: ${spread.steals.successRate}`)
    assert.ok(spread.steals.successRate! > herd.steals.successRate! + 0.05, `${spread.steals.successRate} against ${herd.steals.successRate} asking at once`)
    assert.ok(spread.efficiency > herd.efficiency - 0.01, `efficiency ${spread.efficiency} against ${herd.efficiency}`)
  })

  it('spreads work seeded on one worker only by stealing', async () => {
    const w = uniform(400, 100, 1)
    const stealing = await simulate({ workload: w, workers: 8, scheduler: 'power-of-two', seedPolicy: 'single', seed: 1 })
    const none = await simulate({ workload: w, workers: 8, scheduler: 'no-stealing', seedPolicy: 'single', seed: 1 })
    assert.equal(none.executedPerWorker.max, 400, 'without stealing one worker runs everything')
    assert.equal(none.executedPerWorker.min, 0)
    assert.ok(stealing.executedPerWorker.min > 20, `every worker got work by stealing: ${JSON.stringify(stealing.executedPerWorker)}`)
    assert.ok(stealing.steals.granted > 7 && stealing.steals.actionsStolen > 300, JSON.stringify(stealing.steals))
    assert.ok(stealing.efficiency > 0.8 && none.efficiency < 0.15, `${stealing.efficiency} vs ${none.efficiency}`)
  })

  it('finishes with workers leaving and joining: what a leaver held is run once elsewhere', async () => {
    for (const scheduler of ['power-of-two', 'central-queue'] as const) {
      const r = await simulate({ workload: dag, workers: 8, scheduler, seed: 2, churn: { everyMs: 1_000, downMs: 2_000 } })
      assert.equal(r.executions, dag.tasks.length, scheduler)
      // Up to two leavers are still away when the build ends (down 2 s, one leaves a second).
      assert.ok(r.membership.left >= 5 && r.membership.joined >= 8 + r.membership.left - 2, `${scheduler}: ${JSON.stringify(r.membership)}`)
    }
  })

  it('models the network: steal round trips take two one-way latencies, and slower gossip costs stealing', async () => {
    const w = sleeps(64, 100)
    const near = await simulate({ workload: w, workers: 4, scheduler: 'random', seedPolicy: 'single', seed: 1, network: { latencyMs: 0.25 } })
    const far = await simulate({ workload: w, workers: 4, scheduler: 'random', seedPolicy: 'single', seed: 1, network: { latencyMs: 20 } })
    assert.ok(far.makespanMs > near.makespanMs + 40, `${far.makespanMs} vs ${near.makespanMs}`)
    assert.ok(near.makespanMs >= 1_600 && near.makespanMs < 1_900, `64 × 100 ms on 4 workers: ${near.makespanMs}`)
  })

  it('a central queue on one worker runs the tasks back to back', async () => {
    const w = sleeps(50, 10)
    const r = await simulate({ workload: w, workers: 1, scheduler: 'central-queue', seed: 1, network: { latencyMs: 1, coordinatorServiceMs: 0 } })
    // Each task: claim (1 ms there, then the task sent back: 1 ms), 10 ms of work; the report travels while the next claim does.
    assert.equal(Math.round(r.makespanMs), 50 * 12 + 1)
    assert.equal(r.messages.coordinator, 100 + 1, 'a claim and a report per task, and the last claim')
  })
})

describe('report charts', () => {
  it('draws one line per series and one bar per value, escaping names', () => {
    const line = lineChart({ title: 'a < b', xLabel: 'x', yLabel: 'y', xLog: true, series: [{ name: 's&1', points: [[1, 0.5], [10, 0.9]] }, { name: 's2', points: [[1, 1], [10, NaN]] }] })
    assert.match(line, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    assert.equal(line.match(/<polyline/g)?.length, 2)
    assert.equal(line.match(/<circle/g)?.length, 3, 'a missing value is not drawn')
    assert.ok(line.includes('a &lt; b') && line.includes('s&amp;1') && !line.includes('NaN'))
    const bars = barChart({ title: 't', yLabel: 'y', categories: ['a', 'b'], series: [{ name: 'p', values: [1, 2] }, { name: 'q', values: [3, NaN] }] })
    assert.equal(bars.match(/<rect x=/g)?.length, 3 + 2, 'three bars and two legend keys')
    assert.ok(bars.trimEnd().endsWith('</svg>'))
  })
})
