import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createRng, STRATEGIES, type Strategy, type StrategyName } from '../../strategies/index.js'
import { VirtualClock } from '../../src/worker/clock.js'
import { MemoryMesh } from '../../src/worker/memory-mesh.js'
import { DEFAULT_WORKER_CONFIG, WorkerCore, type MeshPort, type WorkerConfig } from '../../src/worker/worker-core.js'

interface Item {
  id: string
  durationMs: number
}

interface MeshRun {
  mesh: MemoryMesh<Item>
  executions: Map<string, number>
  executedBy: Map<string, number>
  makespanMs: number
  workers: WorkerCore<Item>[]
}

/** W workers with `slots` each, N actions of `durationMs` all seeded on w0; run until every action is recorded. */
async function runMesh(opts: { workers: number; slots: number; actions: number; durationMs: number; strategy: StrategyName; seed: number; stealLoss?: number; gossipLoss?: number; offerTimeoutMs?: number }): Promise<MeshRun> {
  const clock = new VirtualClock()
  const mesh = new MemoryMesh<Item>({
    clock,
    rng: createRng(opts.seed * 7919),
    latencyMs: 0.1,
    gossipDelayMs: 1,
    gossipLoss: opts.gossipLoss ?? 0,
    gossipDuplicate: 0.05,
    stealLoss: opts.stealLoss ?? 0,
  })
  const executions = new Map<string, number>()
  const executedBy = new Map<string, number>()
  const workers: WorkerCore<Item>[] = []
  for (let w = 0; w < opts.workers; w++) {
    const id = `w${w}`
    const worker = new WorkerCore<Item>(
      {
        ...DEFAULT_WORKER_CONFIG,
        id,
        slots: opts.slots,
        strategy: STRATEGIES[opts.strategy],
        rng: createRng(opts.seed * 31 + w),
        platform: 'linux-x64',
        sandboxes: ['local'],
        announceIntervalMs: 1_000,
        // All work seeded up front (the coordinator's backpressure is not part of this test).
        queueCapacity: 512,
        ...(opts.offerTimeoutMs !== undefined ? { offerTimeoutMs: opts.offerTimeoutMs } : {}),
      },
      mesh.port,
      (item) =>
        new Promise((resolve) =>
          clock.after(item.durationMs, () => {
            executions.set(item.id, (executions.get(item.id) ?? 0) + 1)
            executedBy.set(id, (executedBy.get(id) ?? 0) + 1)
            resolve({ ok: true })
          }),
        ),
      clock,
    )
    mesh.add(worker)
    workers.push(worker)
  }
  for (const w of workers) w.start()
  const items = Array.from({ length: opts.actions }, (_, i) => ({ id: `a${i}`, durationMs: opts.durationMs }))
  // The 'single' seeding policy: everything on one worker, the case stealing must fix.
  mesh.seed('w0', items)
  let makespanMs = 0
  for (let step = 1; step <= 600; step++) {
    await clock.run({ untilMs: step * 100 })
    if (mesh.ledger.counts().done === opts.actions) {
      makespanMs = clock.now()
      break
    }
  }
  for (const w of workers) w.stop()
  await clock.run()
  return { mesh, executions, executedBy, makespanMs, workers }
}

function assertExactlyOnce(r: MeshRun, actions: number): void {
  assert.deepEqual(r.mesh.ledger.counts(), { queued: 0, running: 0, unassigned: 0, done: actions })
  assert.equal(r.executions.size, actions, 'every action ran')
  for (const [id, n] of r.executions) assert.equal(n, 1, `${id} ran ${n} times`)
  for (const [id, n] of r.mesh.reports) assert.equal(n, 1, `${id} was reported ${n} times`)
}

describe('WorkerCore on an in-memory mesh (virtual time)', () => {
  for (const strategy of Object.keys(STRATEGIES) as StrategyName[]) {
    it(`${strategy}: all work seeded on one worker is spread by stealing and runs exactly once`, async () => {
      const r = await runMesh({ workers: 4, slots: 2, actions: 400, durationMs: 50, strategy, seed: 1 })
      assert.ok(r.makespanMs > 0, 'the build finished')
      assertExactlyOnce(r, 400)
      for (let w = 1; w < 4; w++) assert.ok((r.executedBy.get(`w${w}`) ?? 0) > 40, `w${w} ran only ${r.executedBy.get(`w${w}`) ?? 0} actions`)
      // Lower bound: 400 × 50 ms over 8 slots = 2.5 s.
      const efficiency = 2_500 / r.makespanMs
      assert.ok(efficiency > 0.7, `${strategy}: efficiency ${efficiency.toFixed(2)} (makespan ${r.makespanMs} ms)`)
      const granted = r.workers.reduce((n, w) => n + w.stats.stealsGranted, 0)
      assert.ok(granted > 0)
    })
  }

  it('nothing is lost or run twice when steal messages and gossip are lost', async () => {
    // Every seed: the build finishes, each action once. Over the seeds, losses happened: steals timed out and offers were taken back.
    let failed = 0
    let takenBack = 0
    for (const seed of [1, 2, 3]) {
      const r = await runMesh({ workers: 4, slots: 2, actions: 300, durationMs: 20, strategy: 'power-of-two', seed, stealLoss: 0.3, gossipLoss: 0.3 })
      assert.ok(r.makespanMs > 0, `seed ${seed}: the build finished`)
      assertExactlyOnce(r, 300)
      failed += r.workers.reduce((n, w) => n + w.stats.stealsFailed, 0)
      takenBack += r.workers.reduce((n, w) => n + w.stats.actionsTakenBack, 0)
    }
    assert.ok(failed > 0, 'some steals timed out')
    assert.ok(takenBack > 0, 'some offers were taken back after a lost reply')
  })

  it('an offer settled before its transfer lands: taken back whole, the late transfer moves nothing, each action runs once', async () => {
    // The victim settles 0.05 ms after offering: its request reaches the coordinator before the thief's transfer.
    let takenBack = 0
    let refused = 0
    for (const seed of [1, 2, 3, 4]) {
      const r = await runMesh({ workers: 4, slots: 2, actions: 200, durationMs: 5, strategy: 'most-loaded', seed, offerTimeoutMs: 0.05 })
      assert.ok(r.makespanMs > 0, `seed ${seed}: the build finished`)
      assertExactlyOnce(r, 200)
      takenBack += r.workers.reduce((n, w) => n + w.stats.actionsTakenBack, 0)
      refused += r.workers.reduce((n, w) => n + w.stats.notStarted, 0)
    }
    assert.ok(takenBack > 0, 'the race happened: victims took offers back')
    assert.equal(refused, 0, 'no action was ever held by two workers, so the start gate refused none')
  })

  it('a lone worker runs everything itself and never steals', async () => {
    const r = await runMesh({ workers: 1, slots: 2, actions: 50, durationMs: 10, strategy: 'power-of-two', seed: 4 })
    assertExactlyOnce(r, 50)
    assert.equal(r.workers[0]!.stats.stealsAttempted, 0)
  })
  it('a slot is free when the runner says its command is done: the next action starts while the last one\'s outputs are sent, and its result is reported only after', async () => {
    const clock = new VirtualClock()
    const reported: { id: string; atMs: number }[] = []
    const port: MeshPort<Item> = { ...quietPort(), reportResult: async (_w, item) => void reported.push({ id: item.id, atMs: clock.now() }) }
    const started: { id: string; atMs: number }[] = []
    const worker = new WorkerCore<Item>(
      { ...DEFAULT_WORKER_CONFIG, id: 'w0', slots: 1, strategy: STRATEGIES['power-of-two'], rng: createRng(1), platform: 'linux-x64', sandboxes: ['local'] },
      port,
      // 10 ms of command, then 30 ms of sending outputs that needs no slot.
      (item, ctx) =>
        new Promise((resolve) => {
          started.push({ id: item.id, atMs: clock.now() })
          clock.after(10, () => {
            ctx.slotDone()
            clock.after(30, () => resolve({ ok: true }))
          })
        }),
      clock,
    )
    worker.start()
    worker.seed([{ id: 'a', durationMs: 0 }, { id: 'b', durationMs: 0 }, { id: 'c', durationMs: 0 }])
    await clock.run({ untilMs: 500 })
    worker.stop()
    assert.equal(started.length, 3)
    for (let i = 1; i < started.length; i++) assert.equal(started[i]!.atMs - started[i - 1]!.atMs, 10, `each action started when the one before freed its slot: ${JSON.stringify(started)}`)
    assert.deepEqual(reported.map((r) => r.atMs - started.find((s) => s.id === r.id)!.atMs), [40, 40, 40], `each result went out when its runner finished: ${JSON.stringify(reported)}`)
    assert.equal(worker.stats.executed, 3)
    assert.ok(worker.idle)
  })

  it('a load change inside the announce gap is announced when the gap ends, so peers do not keep a stale queue depth', async () => {
    const clock = new VirtualClock()
    const sent: { atMs: number; queueDepth: number }[] = []
    const port: MeshPort<Item> = {
      startActions: async (_w, ids) => ids,
      transfer: async () => [],
      settleSteal: async () => [],
      reportResult: async () => {},
      requestSteal: async () => ({ refused: 'test' }),
      announce: (_w, a) => sent.push({ atMs: clock.now(), queueDepth: a.queueDepth }),
    }
    const worker = new WorkerCore<Item>(
      { ...DEFAULT_WORKER_CONFIG, id: 'w0', slots: 1, strategy: STRATEGIES['power-of-two'], rng: createRng(1), platform: 'linux-x64', sandboxes: ['local'], minAnnounceGapMs: 50, announceIntervalMs: 10_000 },
      port,
      (item) => new Promise((resolve) => clock.after(item.durationMs, () => resolve({ ok: true }))),
      clock,
    )
    worker.start()
    clock.after(100, () => {
      // Ten actions of 1 ms: announced at once (queue 10), and empty 10 ms later, well inside the 50 ms gap.
      worker.seed(Array.from({ length: 10 }, (_, i) => ({ id: `a${i}`, durationMs: 1 })))
    })
    await clock.run({ untilMs: 300 })
    worker.stop()
    assert.deepEqual(
      sent.map((a) => a.queueDepth),
      [9, 0],
      `nothing at the start (not worth asking), the seeded queue, then empty: ${JSON.stringify(sent)}`,
    )
    assert.equal(sent[1]!.atMs, 150, `the empty queue went out when the gap ended, not at the next interval: ${JSON.stringify(sent)}`)
    for (let i = 1; i < sent.length; i++) assert.ok(sent[i]!.atMs - sent[i - 1]!.atMs >= 50, `rate limit kept: ${JSON.stringify(sent)}`)
  })
  it('the periodic announcement comes only from a worker worth asking; the rest stay quiet until that changes', async () => {
    const clock = new VirtualClock()
    const sent: { atMs: number; queueDepth: number }[] = []
    const port: MeshPort<Item> = { ...quietPort(), announce: (_w, a) => sent.push({ atMs: clock.now(), queueDepth: a.queueDepth }) }
    const worker = new WorkerCore<Item>(
      { ...DEFAULT_WORKER_CONFIG, id: 'w0', slots: 1, strategy: STRATEGIES['power-of-two'], rng: createRng(1), platform: 'linux-x64', sandboxes: ['local'], announceIntervalMs: 1_000 },
      port,
      (item) => new Promise((resolve) => clock.after(item.durationMs, () => resolve({ ok: true }))),
      clock,
    )
    worker.start()
    // Idle for 5 intervals: not worth asking, so not a word, not even at the start.
    clock.after(5_500, () => worker.seed(Array.from({ length: 10 }, (_, i) => ({ id: `a${i}`, durationMs: 100_000 }))))
    await clock.run({ untilMs: 8_700 })
    worker.stop()
    assert.deepEqual(
      sent.map((a) => [a.atMs, a.queueDepth]),
      [
        [5_500, 9],
        [6_000, 9],
        [7_000, 9],
        [8_000, 9],
      ],
    )
    assert.equal(worker.stats.queueDepthSamples.length, 9, 'the queue is sampled at every interval (8) and announcement (1), announced or not')
  })

  it('an announcement of a short queue does not wake a resting thief; one with work to spare does', async () => {
    const clock = new VirtualClock()
    const asked: number[] = []
    let decisions = 0
    const counting: Strategy = (view, rng) => {
      decisions++
      return STRATEGIES['power-of-two'](view, rng)
    }
    const port: MeshPort<Item> = {
      ...quietPort(),
      requestSteal: async () => {
        asked.push(clock.now())
        return { refused: 'test' }
      },
    }
    const thief = new WorkerCore<Item>({ ...DEFAULT_WORKER_CONFIG, wakeJitterMs: 0, id: 't', slots: 1, strategy: counting, rng: createRng(3), platform: 'linux-x64', sandboxes: ['local'] }, port, async () => ({ ok: true }), clock)
    thief.start()
    thief.seed([]) // an idle worker looks for work, finds no peer, and rests
    const base = { v: 1 as const, incarnation: 'p-1', sentAtMs: 0, executing: 1, capacity: 1, loadFactor: 1, sandboxes: ['local' as const], platform: 'linux-x64' }
    clock.after(10, () => thief.onAnnouncement('p', { ...base, seq: 1, queueDepth: 1 }))
    clock.after(20, () => thief.onAnnouncement('p', { ...base, seq: 2, queueDepth: 10 }))
    await clock.run({ untilMs: 30 })
    thief.stop()
    assert.equal(decisions, 2, 'one decision at the start, none for the short queue, one for the queue of 10')
    assert.deepEqual(asked, [20], 'asked the peer as soon as it said it had work to spare')
    assert.equal(thief.peers.view().length, 0, 'a victim that refused is dropped until it announces again')
  })

  it('a woken thief asks after a random wait within the wake jitter, and later announcements do not put it off again', async () => {
    const clock = new VirtualClock()
    const asked: number[] = []
    const port: MeshPort<Item> = {
      ...quietPort(),
      requestSteal: async () => {
        asked.push(clock.now())
        return { refused: 'test' }
      },
    }
    const base = { v: 1 as const, incarnation: 'p-1', sentAtMs: 0, executing: 1, capacity: 1, loadFactor: 1, sandboxes: ['local' as const], platform: 'linux-x64' }
    const waits: number[] = []
    for (let seed = 1; seed <= 8; seed++) {
      asked.length = 0
      const start = clock.now()
      const thief = new WorkerCore<Item>({ ...DEFAULT_WORKER_CONFIG, id: 't', slots: 1, strategy: STRATEGIES['power-of-two'], rng: createRng(seed), platform: 'linux-x64', sandboxes: ['local'] }, port, async () => ({ ok: true }), clock)
      thief.start()
      thief.seed([])
      clock.after(10, () => thief.onAnnouncement('p', { ...base, seq: 1, queueDepth: 10 }))
      // A stream of further news for twice the jitter: each would restart a naive timer, putting the first request past it.
      const jitter = DEFAULT_WORKER_CONFIG.wakeJitterMs
      for (let k = 1; k <= jitter; k++) clock.after(10 + 2 * k, () => thief.onAnnouncement('p', { ...base, seq: 1 + k, queueDepth: 10 + k }))
      await clock.run({ untilMs: start + 10 + jitter + 1 })
      thief.stop()
      await clock.run()
      assert.ok(asked.length >= 1, `seed ${seed}: asked within the jitter`)
      waits.push(asked[0]! - start - 10)
    }
    for (const w of waits) assert.ok(w >= 0 && w <= DEFAULT_WORKER_CONFIG.wakeJitterMs, `waited ${w} ms`)
    assert.ok(new Set(waits.map(Math.round)).size >= 4, `the waits are spread, not one fixed delay: ${waits.map(Math.round)}`)
  })

  it('a victim gives a thief only actions whose sandbox the thief offers', () => {
    type Boxed = Item & { sandbox: string }
    const victim = stealOnlyVictim<Boxed>({ sandboxes: ['local', 'docker'], sandboxOf: (i) => (i as Boxed).sandbox })
    victim.seed(['docker', 'local', 'docker', 'local', 'local', 'docker', 'local', 'local'].map((sandbox, i) => ({ id: `a${i}`, durationMs: 1, sandbox })))
    const toLocal = victim.onStealRequest({ stealId: 's1', max: 8, sandboxes: ['local'] })
    assert.ok('offered' in toLocal)
    assert.ok(toLocal.offered.length > 0 && toLocal.offered.every((i) => i.sandbox === 'local'), JSON.stringify(toLocal))
    const toBwrap = victim.onStealRequest({ stealId: 's2', max: 8, sandboxes: ['bwrap'] })
    assert.ok('refused' in toBwrap, JSON.stringify(toBwrap))
    victim.stop()
  })

  it('a victim gives a thief only actions built for its platform', () => {
    type Built = Item & { platform: string }
    const victim = stealOnlyVictim<Built>({ platformOf: (i) => (i as Built).platform })
    victim.seed(['linux-x64', 'linux-arm64', 'linux-x64', 'linux-arm64', 'linux-arm64', 'linux-x64'].map((platform, i) => ({ id: `a${i}`, durationMs: 1, platform })))
    const toArm = victim.onStealRequest({ stealId: 's1', max: 8, sandboxes: ['local'], platform: 'linux-arm64' })
    assert.ok('offered' in toArm)
    assert.ok(toArm.offered.length > 0 && toArm.offered.every((i) => i.platform === 'linux-arm64'), JSON.stringify(toArm))
    const toMac = victim.onStealRequest({ stealId: 's2', max: 8, platform: 'darwin-arm64' })
    assert.ok('refused' in toMac, JSON.stringify(toMac))
    // A thief that does not say is given anything (the coordinator already placed the build).
    const unsaid = victim.onStealRequest({ stealId: 's3', max: 8 })
    assert.ok('offered' in unsaid && unsaid.offered.length > 0, JSON.stringify(unsaid))
    victim.stop()
  })

  it('a victim does not give a thief an action that avoids it (it could not run an earlier attempt)', () => {
    type Retried = Item & { avoid?: string[] }
    const victim = stealOnlyVictim<Retried>({ avoidOf: (i) => (i as Retried).avoid })
    victim.seed(Array.from({ length: 8 }, (_, i) => ({ id: `a${i}`, durationMs: 1, ...(i % 2 === 0 ? { avoid: ['broken'] } : {}) })))
    const toBroken = victim.onStealRequest({ stealId: 's1', max: 8 }, 'broken')
    assert.ok('offered' in toBroken)
    assert.ok(toBroken.offered.length > 0 && toBroken.offered.every((i) => i.avoid === undefined), JSON.stringify(toBroken))
    const toOther = victim.onStealRequest({ stealId: 's2', max: 8 }, 'healthy')
    assert.ok('offered' in toOther && toOther.offered.some((i) => i.avoid !== undefined), 'another thief may take them')
    victim.stop()
  })
})

describe('a victim shares its queue among the peers that may come asking', () => {
  const announce = (queueDepth: number, executing: number, seq = 1) => ({ v: 1 as const, incarnation: 'i', seq, sentAtMs: 0, queueDepth, executing, capacity: 1, loadFactor: queueDepth + executing, sandboxes: ['local' as const], platform: 'linux-x64' })
  const grants = (victim: WorkerCore<Item>, thieves: number): number[] =>
    Array.from({ length: thieves }, (_, i) => {
      const reply = victim.onStealRequest({ stealId: `s${i}`, max: 32 }, `t${i}`)
      return 'offered' in reply ? reply.offered.length : 0
    })
  const seeded = (victim: WorkerCore<Item>, n: number): WorkerCore<Item> => {
    victim.seed(Array.from({ length: n }, (_, i) => ({ id: `a${i}`, durationMs: 1 })))
    return victim
  }

  it('seven silent peers asking at once each get an eighth, and none is refused', () => {
    // One of the 64 went to the victim's own slot; of the 63 queued, each thief gets an equal part of what is left
    // among the victim and those not yet served, and the victim keeps its own.
    const victim = seeded(stealOnlyVictim<Item>({ victimReserve: 2 }, () => 7), 64)
    assert.deepEqual(grants(victim, 7), [8, 8, 8, 8, 8, 8, 8])
    victim.stop()
  })

  it('halves for each thief when more than maxSharers peers may ask, so thieves become victims in turn', () => {
    assert.equal(DEFAULT_WORKER_CONFIG.maxSharers, 7)
    const victim = seeded(stealOnlyVictim<Item>({ victimReserve: 2 }, () => 40), 64)
    assert.deepEqual(grants(victim, 3), [32, 16, 8])
    victim.stop()
  })

  it('gives a thief it served no share again until it announces (it will not ask meanwhile)', () => {
    const victim = seeded(stealOnlyVictim<Item>({ victimReserve: 2 }, () => 3), 64)
    // 63 queued, three silent peers: t0 gets a quarter; then two may still ask, so t1 a third of the rest, t2 half of what is left.
    assert.deepEqual(grants(victim, 3), [16, 16, 16])
    victim.stop()
  })

  it('without a peer count, or with every other peer offering work, it halves as before and refuses at the reserve', () => {
    const blind = seeded(stealOnlyVictim<Item>({ victimReserve: 2 }), 64)
    assert.deepEqual(grants(blind, 7), [32, 16, 8, 4, 1, 0, 0])
    blind.stop()
    const told = seeded(stealOnlyVictim<Item>({ victimReserve: 2 }, () => 7), 64)
    for (let p = 0; p < 7; p++) told.onAnnouncement(`p${p}`, announce(4, 1))
    assert.deepEqual(grants(told, 7), [32, 16, 8, 4, 1, 0, 0])
    told.stop()
  })

  it('does not count a peer whose last announcement offered work; counts one below that, which may have run dry since', () => {
    const victim = seeded(stealOnlyVictim<Item>({ victimReserve: 2 }, () => 4), 60)
    victim.onAnnouncement('p0', announce(0, 0))
    victim.onAnnouncement('p1', announce(5, 1))
    victim.onAnnouncement('p2', announce(3, 1))
    victim.onAnnouncement('p3', announce(9, 1))
    // p0 and p2 may ask (p2's 3 queued may be gone by now); p1 and p3 have work to give. So the victim and two thieves share 59.
    assert.deepEqual(grants(victim, 1), [20])
    victim.stop()
  })
})

describe('a steal reply that comes after the thief stopped waiting', () => {
  /** w0 holds `actions`; w1, empty, steals over a link whose round trip (120 ms) is past the steal timeout (100 ms) but well inside the victim's offer timeout (1 s). */
  async function slowLink(opts: { actions: number; thiefCapacity?: number; onRequest?: (mesh: MemoryMesh<Item>, clock: VirtualClock) => void }) {
    const clock = new VirtualClock()
    const mesh = new MemoryMesh<Item>({ clock, rng: createRng(5), latencyMs: 60, coordinatorLatencyMs: 0.1, gossipDelayMs: 1, gossipLoss: 0, gossipDuplicate: 0, stealLoss: 0 })
    const executions = new Map<string, number>()
    const port: MeshPort<Item> = {
      ...mesh.port,
      requestSteal: (...args) => {
        opts.onRequest?.(mesh, clock)
        return mesh.port.requestSteal(...args)
      },
    }
    const workers = ['w0', 'w1'].map(
      (id) =>
        new WorkerCore<Item>(
          { ...DEFAULT_WORKER_CONFIG, id, slots: 1, strategy: STRATEGIES['power-of-two'], rng: createRng(id === 'w0' ? 1 : 2), platform: 'linux-x64', sandboxes: ['local'], queueCapacity: id === 'w1' ? (opts.thiefCapacity ?? 256) : 256 },
          port,
          (item) =>
            new Promise((resolve) =>
              clock.after(item.durationMs, () => {
                executions.set(item.id, (executions.get(item.id) ?? 0) + 1)
                resolve({ ok: true })
              }),
            ),
          clock,
        ),
    )
    for (const w of workers) mesh.add(w)
    for (const w of workers) w.start()
    mesh.seed('w0', Array.from({ length: opts.actions }, (_, i) => ({ id: `a${i}`, durationMs: 200 })))
    const pending = (): number => {
      const c = mesh.ledger.counts()
      return c.queued + c.running + c.unassigned
    }
    for (let step = 1; step <= 400 && pending() > 0; step++) await clock.run({ untilMs: step * 100 })
    for (const w of workers) w.stop()
    await clock.run()
    return { mesh, executions, victim: workers[0]!, thief: workers[1]! }
  }

  it('is still claimed: the offered batch moves to the thief at once instead of waiting at the victim for its offer timeout', async () => {
    const r = await slowLink({ actions: 20 })
    assert.deepEqual(r.mesh.ledger.counts(), { queued: 0, running: 0, unassigned: 0, done: 20 })
    for (const [id, n] of r.executions) assert.equal(n, 1, `${id} ran ${n} times`)
    assert.equal(r.executions.size, 20)
    assert.ok(r.thief.stats.stealsLate >= 1, `the reply came late: ${JSON.stringify(r.thief.stats)}`)
    assert.ok(r.thief.stats.stealsGranted >= 1 && r.thief.stats.executed > 0, `the late grant was claimed and run: ${JSON.stringify(r.thief.stats)}`)
    assert.equal(r.victim.stats.actionsTakenBack, 0, 'nothing offered sat out the offer timeout to be taken back')
    assert.equal(r.thief.stats.stealsAttempted, r.thief.stats.stealsGranted + r.thief.stats.stealsRefused + r.thief.stats.stealsFailed, 'each attempt ended one way, once')
    assert.ok(Math.max(...r.thief.stats.stealRoundTripsMs) >= 120, `the late round trips are sampled: ${r.thief.stats.stealRoundTripsMs.join(', ')}`)
  })

  it('claims only what fits in a queue that filled meanwhile; the victim takes the rest back', async () => {
    let seeded = false
    const r = await slowLink({
      actions: 20,
      thiefCapacity: 4,
      onRequest: (mesh, clock) => {
        if (seeded) return
        seeded = true
        // While the first request is out, the coordinator seeds the thief 3 actions of its own.
        clock.after(110, () => mesh.seed('w1', Array.from({ length: 3 }, (_, i) => ({ id: `own${i}`, durationMs: 200 }))))
      },
    })
    assert.deepEqual(r.mesh.ledger.counts(), { queued: 0, running: 0, unassigned: 0, done: 23 })
    for (const [id, n] of r.executions) assert.equal(n, 1, `${id} ran ${n} times`)
    assert.equal(r.executions.size, 23)
    assert.ok(r.thief.stats.stealsLate >= 1, JSON.stringify(r.thief.stats))
    assert.ok(r.victim.stats.actionsTakenBack > 0, `what did not fit went back to the victim: ${JSON.stringify(r.victim.stats)}`)
  })
})

/** A worker on linux-x64 that only answers steal requests (its port does nothing, its actions never end): the victim side alone. */
function stealOnlyVictim<T extends Item>(config: Partial<WorkerConfig>, peerCount?: () => number): WorkerCore<T> {
  const port: MeshPort<T> = {
    startActions: () => new Promise(() => {}),
    transfer: async () => [],
    settleSteal: async () => [],
    reportResult: async () => {},
    requestSteal: async () => ({ refused: 'test' }),
    announce: () => {},
    ...(peerCount ? { peerCount } : {}),
  }
  return new WorkerCore<T>(
    { ...DEFAULT_WORKER_CONFIG, id: 'v', slots: 1, strategy: STRATEGIES['power-of-two'], rng: createRng(2), platform: 'linux-x64', sandboxes: ['local'], victimReserve: 0, ...config },
    port,
    () => new Promise(() => {}),
    new VirtualClock(),
  )
}

/** A port that accepts everything and says nothing. */
function quietPort<T extends Item>(): MeshPort<T> {
  return {
    startActions: async (_w, ids) => ids,
    transfer: async () => [],
    settleSteal: async () => [],
    reportResult: async () => {},
    requestSteal: async () => ({ refused: 'test' }),
    announce: () => {},
  }
}
