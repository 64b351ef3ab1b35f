import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { lpStream } from '@libp2p/utils'
import { startCoordinatorService, type CoordinatorService, type ResultEvent } from '../../src/net/coordinator-service.js'
import { STEAL_PROTOCOL } from '../../src/net/protocols.js'
import { LOAD_TOPIC } from '../../src/worker/load-announcement.js'
import { spawnReady, stopProcess } from '../helpers.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import { join } from 'node:path'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { openCasStore, type CasStore } from '../../src/cas/store.js'
import { keepBuildNode, openMeshBuild } from '../../src/net/build-client.js'
import { createMeshNode } from '../../src/net/node.js'
import { AUTO_WINDOW_RATIO } from '../../src/net/seed-policy.js'
import { PLATFORM } from '../../src/build/project.js'
import type { ActionPayload } from '../../src/worker/action-payload.js'

async function startWorker(coordinator: string, strategy: string, seed: number): Promise<{ proc: ChildProcess; id: string }> {
  const { proc, value } = await spawnReady('dist/test/net/fixtures/worker-process.js', [coordinator, strategy, String(seed)])
  return { proc, id: value }
}

/** A coordinator here, two worker processes of the fixture (2 slots each) registered with it, and a client store; all stopped after `fn`. */
async function withTwoWorkers(prefix: string, fn: (m: { coordinator: CoordinatorService; workers: { proc: ChildProcess; id: string }[]; cas: CasStore }) => Promise<void>): Promise<void> {
  const coordinator = await startCoordinatorService()
  const workers: { proc: ChildProcess; id: string }[] = []
  const casDir = await mkdtemp(join(tmpdir(), prefix))
  try {
    for (let w = 0; w < 2; w++) workers.push(await startWorker(coordinator.addrs[0]!, 'power-of-two', w + 1))
    await coordinator.waitForWorkers(2, 20_000)
    await fn({ coordinator, workers, cas: await openCasStore(casDir, await createBlake3Hasher()) })
  } finally {
    await Promise.all(workers.map((w) => stopProcess(w.proc)))
    await coordinator.stop()
    await rm(casDir, { recursive: true, force: true })
  }
}

describe('the mesh across OS processes (real libp2p over TCP)', { timeout: 90_000 }, () => {
  it('a worker drops malformed and oversized gossip and steal frames, and keeps serving', async () => {
    const coordinator = await startCoordinatorService()
    const workers: { proc: ChildProcess; id: string }[] = []
    try {
      for (let w = 0; w < 2; w++) workers.push(await startWorker(coordinator.addrs[0]!, 'power-of-two', w + 1))
      await coordinator.waitForWorkers(2, 20_000)
      const target = peerIdFromString(workers[0]!.id)
      // Bad gossip: not JSON, wrong schema, oversized; published from the coordinator's node until
      // the worker reports it dropped each kind (gossip may be lost, so keep publishing).
      const pubsub = coordinator.node.services.pubsub
      const dropped = new Set<string>()
      const allDropped = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the worker reported only ${[...dropped].join(' | ') || 'nothing'}`)), 20_000)
        createInterface({ input: workers[0]!.proc.stdout! }).on('line', (line) => {
          const reason = /^DROPPED (not UTF-8 JSON|fails its schema|over the \d+-byte cap)/.exec(line)?.[1]
          if (!reason) return
          dropped.add(reason.startsWith('over') ? 'oversized' : reason)
          if (dropped.size === 3) {
            clearTimeout(timer)
            resolve()
          }
        })
      })
      const publisher = setInterval(() => {
        for (const bad of ['{not json', JSON.stringify({ v: 9, queueDepth: -1 }), 'x'.repeat(5000)]) {
          void pubsub.publish(LOAD_TOPIC, new TextEncoder().encode(bad)).catch(() => {})
        }
      }, 200)
      try {
        await allDropped
      } finally {
        clearInterval(publisher)
      }
      // Bad steal frames: malformed JSON gets an error answer; an oversized frame closes only that stream.
      const stream = await coordinator.node.dialProtocol(target, STEAL_PROTOCOL.id)
      const lp = lpStream(stream)
      await lp.write(new TextEncoder().encode('{"stealId": 5}'))
      assert.match(JSON.parse(new TextDecoder().decode((await lp.read()).subarray())).error, /^frame fails its schema/)
      const big = await coordinator.node.dialProtocol(target, STEAL_PROTOCOL.id)
      const bigLp = lpStream(big, { maxDataLength: 8 * 1024 * 1024 })
      await bigLp.write(new Uint8Array(STEAL_PROTOCOL.maxFrameBytes + 1))
      await assert.rejects(bigLp.read({ signal: AbortSignal.timeout(5000) }))
      // The worker still does its job: a small build completes on it.
      const done = new Promise<void>((resolve) => coordinator.onResult(() => coordinator.ledger.counts().done === 10 && resolve()))
      await coordinator.seed(workers[0]!.id, Array.from({ length: 10 }, (_, i) => ({ id: `b${i}`, payload: { sleepMs: 5 } })))
      await done
      assert.equal(coordinator.ledger.counts().done, 10)
    } finally {
      await Promise.all(workers.map((w) => stopProcess(w.proc)))
      await coordinator.stop()
    }
  })

  it('a build\'s seed window caps what the coordinator seeds a worker: 0 its free slots, 1 one more per slot, none its queue', async () => {
    // Two worker processes of 2 slots each, 40 actions of 30 ms: a backlog well beyond 4 slots.
    await withTwoWorkers('bldr-window-', async ({ coordinator, workers, cas }) => {
      const mostHeld = async (seedWindow: number | undefined): Promise<number> => {
        const session = await openMeshBuild({ coordinator: coordinator.addrs[0]!, cas, policy: 'least-loaded', ...(seedWindow !== undefined ? { seedWindow } : {}), sandbox: 'local', platform: PLATFORM })
        let most = 0
        const sample = (): void => {
          for (const w of workers) most = Math.max(most, coordinator.ledger.held(w.id))
        }
        const N = 40
        let done = 0
        const all = new Promise<void>((resolve) => session.setHandlers({ started: sample, result: () => (sample(), ++done === N && resolve()) }))
        const ticker = setInterval(sample, 2)
        try {
          for (let i = 0; i < N; i++) void session.submit({ id: `${session.buildId}/a${i}`, payload: { sleepMs: 30 } as unknown as ActionPayload })
          await all
        } finally {
          clearInterval(ticker)
          await session.close()
        }
        return most
      }
      assert.equal(await mostHeld(0), 2, 'window 0: never more than the 2 slots')
      const one = await mostHeld(1)
      assert.ok(one > 2 && one <= 4, `window 1: up to one queued per slot (held ${one})`)
      assert.ok((await mostHeld(undefined)) >= 15, 'no window: the backlog goes into the queues')
    })
  })

  it("builds one after another on a node kept between them (the kept mesh's): each hears its own actions, one at a time, and the node stays up", async () => {
    await withTwoWorkers('bldr-kept-node-', async ({ coordinator, cas }) => {
      const kept = await keepBuildNode(await createMeshNode({ listen: ['/ip4/127.0.0.1/tcp/0'] }))
      const open = (): ReturnType<typeof openMeshBuild> => openMeshBuild({ coordinator: coordinator.addrs[0]!, cas, policy: 'least-loaded', sandbox: 'local', platform: PLATFORM, node: kept })
      try {
        for (let b = 0; b < 3; b++) {
          const session = await open()
          assert.equal(session.clientId, kept.node.peerId.toString())
          await assert.rejects(open(), /^Error: build [0-9a-f]+ is still open on this node; one build at a time$/)
          // The coordinator sends each build's events over the stream it keeps to the node: they must reach this build, not the one before.
          const N = 6
          const heard: string[] = []
          const all = new Promise<void>((resolve, reject) => {
            const late = setTimeout(() => reject(new Error(`build ${b + 1} heard ${heard.length} of its ${N} results in 20 s`)), 20_000)
            session.setHandlers({ started: () => {}, result: (id) => void (heard.push(id) === N && (clearTimeout(late), resolve())) })
          })
          for (let i = 0; i < N; i++) void session.submit({ id: `${session.buildId}/a${i}`, payload: { sleepMs: 10 } as unknown as ActionPayload })
          await all
          assert.deepEqual(heard.filter((id) => !id.startsWith(`${session.buildId}/`)), [])
          await session.close()
          assert.equal(kept.node.status, 'started')
        }
      } finally {
        await kept.node.stop()
      }
    })
  })

  it('with the coordinator in this process (the local mesh\'s): the build calls it and hears its events without a connection to it, and a refusal reads as over the network', async () => {
    await withTwoWorkers('bldr-in-process-', async ({ coordinator, cas }) => {
      const kept = await keepBuildNode(await createMeshNode({ listen: ['/ip4/127.0.0.1/tcp/0'] }), undefined, coordinator.inProcess)
      const toCoordinator = (node: { getConnections(): { remotePeer: { toString(): string } }[] }): number => node.getConnections().filter((c) => c.remotePeer.toString() === coordinator.inProcess.id).length
      try {
        // Twice on the kept node, and once on a node of the build's own (given the coordinator as an option).
        for (const own of [false, false, true]) {
          const session = await openMeshBuild({ coordinator: coordinator.addrs[0]!, cas, policy: 'least-loaded', sandbox: 'local', platform: PLATFORM, ...(own ? { inProcess: coordinator.inProcess } : { node: kept }) })
          const N = 6
          const heard: string[] = []
          const all = new Promise<void>((resolve, reject) => {
            const late = setTimeout(() => reject(new Error(`heard ${heard.length} of ${N} results in 20 s`)), 20_000)
            session.setHandlers({ started: () => {}, result: (id) => void (heard.push(id) === N && (clearTimeout(late), resolve())) })
          })
          for (let i = 0; i < N; i++) void session.submit({ id: `${session.buildId}/a${i}`, payload: { sleepMs: 10 } as unknown as ActionPayload })
          await all
          assert.deepEqual(heard.sort(), Array.from({ length: N }, (_, i) => `${session.buildId}/a${i}`).sort())
          assert.equal(toCoordinator(session.node), 0, 'no connection to the coordinator: its calls and events are function calls')
          assert.ok(Object.keys(await session.workerStats()).length === 2, "the workers' counters, through the coordinator")
          const account = await session.close()
          assert.equal(account?.recorded, N, "the coordinator's account of the build")
        }
        const refusal = /^Error: the coordinator at \S+ refused the build: no worker in this mesh offers sandbox docker on \S+ \(the mesh has local on \S+ \(2 workers\)\)$/
        await assert.rejects(openMeshBuild({ coordinator: coordinator.addrs[0]!, cas, policy: 'least-loaded', sandbox: 'docker', platform: PLATFORM }), refusal)
        await assert.rejects(openMeshBuild({ coordinator: coordinator.addrs[0]!, cas, policy: 'least-loaded', sandbox: 'docker', platform: PLATFORM, inProcess: coordinator.inProcess }), refusal)
      } finally {
        await kept.node.stop()
      }
    })
  })

  it('the auto seed window queues one action per slot while actions are short and none once they run long', async (t) => {
    await withTwoWorkers('bldr-auto-window-', async ({ coordinator, workers, cas }) => {
      /**
       * The most any worker held before the first result, and once the first 4 results are in (the
       * first wave on 2 workers × 2 slots): by then the actions the first deal queued (under the
       * initial window of 1) have started, so what a worker holds was seeded under the measured window.
       */
      const held = async (n: number, sleepMs: number): Promise<{ before: number; after: number; slowStarts: string | undefined }> => {
        const session = await openMeshBuild({ coordinator: coordinator.addrs[0]!, cas, policy: 'least-loaded', seedWindow: 'auto', sandbox: 'local', platform: PLATFORM })
        /** slowStarts: what the coordinator measured when it still held window 1 after the first results (starts too slow for the actions' length), if it did. */
        const most = { before: 0, after: 0, slowStarts: undefined as string | undefined }
        let wrongWindow: string | undefined
        let done = 0
        const sample = (): void => {
          const measured = done >= 4 ? coordinator.autoWindowOf(session.buildId) : undefined
          if (measured?.window === 1) {
            most.slowStarts ??= `start delays of ${measured.startDelayMs.toFixed(1)} ms against ${Math.round(measured.durationMs)} ms actions`
            // Window 1 only while starts take over 1/AUTO_WINDOW_RATIO of an action's time.
            if (!(measured.startDelayMs * AUTO_WINDOW_RATIO > measured.durationMs)) wrongWindow ??= most.slowStarts
          }
          for (const w of workers) {
            const h = coordinator.ledger.held(w.id)
            if (done === 0) most.before = Math.max(most.before, h)
            else if (done >= 4) most.after = Math.max(most.after, h)
          }
        }
        const all = new Promise<void>((resolve) => session.setHandlers({ started: sample, result: () => (sample(), ++done, sample(), done === n && resolve()) }))
        const ticker = setInterval(sample, 2)
        try {
          for (let i = 0; i < n; i++) void session.submit({ id: `${session.buildId}/a${i}`, payload: { sleepMs } as unknown as ActionPayload })
          await all
          assert.equal(wrongWindow, undefined, `window 1 with ${wrongWindow}`)
        } finally {
          clearInterval(ticker)
          await session.close()
        }
        return most
      }
      // 2 workers × 2 slots. Actions of 3 s, 50 times a typical start delay of up to 60 ms (a few ms
      // here; the first, with the streams' set-up, ~25 ms): after the first wave nobody holds a queue.
      // Twelve: the first deal (window 1 until measured) places eight, so four are seeded under the measured window.
      const long = await held(12, 3_000)
      assert.ok(long.before > 2, `before any result, one queued per slot (held ${long.before})`)
      if (long.slowStarts === undefined) {
        assert.ok(long.after <= 2, `once an action has been measured, only the free slots are seeded (held ${long.after})`)
      } else {
        // A machine so busy (other tests, the host) that seeds took over 60 ms to start: the window rightly stayed 1 (and may have queued).
        t.diagnostic(`${long.slowStarts}: window 1 was right, so the long-action case is not checked in this run (held ${long.after})`)
      }
      // Instant actions: the start delay is as long as the action, so a queue is kept.
      const short = await held(200, 0)
      assert.ok(short.after > 2 && short.after <= 4, `short actions keep one queued per slot (held ${short.after})`)
    })
  })

  it('a worker stopped past the heartbeat timeout, then woken: its failure to run the action it lost is stale, and the new holder\'s result stands', async () => {
    const liveness = { heartbeatIntervalMs: 300, workerTimeoutMs: 1000 }
    const coordinator = await startCoordinatorService({ liveness })
    const workers: { proc: ChildProcess; id: string }[] = []
    const casDir = await mkdtemp(join(tmpdir(), 'bldr-stale-'))
    const stopped: ChildProcess[] = []
    try {
      for (let w = 0; w < 2; w++) workers.push(await startWorker(coordinator.addrs[0]!, 'power-of-two', w + 1))
      await coordinator.waitForWorkers(2, 20_000)
      const events: ResultEvent[] = []
      coordinator.onResult((e) => events.push(e))
      const cas = await openCasStore(casDir, await createBlake3Hasher())
      const session = await openMeshBuild({ coordinator: coordinator.addrs[0]!, cas, policy: 'single', sandbox: 'local', platform: PLATFORM, liveness })
      try {
        const id = `${session.buildId}/x`
        const starts: string[] = []
        const reports: { worker: string; ok: boolean }[] = []
        let startedOnce!: () => void
        let resulted!: () => void
        const firstStart = new Promise<void>((r) => (startedOnce = r))
        const result = new Promise<void>((r) => (resulted = r))
        session.setHandlers({
          started: (_ids, worker) => (starts.push(worker), startedOnce()),
          result: (_id, worker, report) => (reports.push({ worker, ok: report.ok }), resulted()),
        })
        const running = new Map<ChildProcess, Promise<void>>(
          workers.map((w) => [w.proc, new Promise<void>((resolve) => createInterface({ input: w.proc.stdout! }).on('line', (l) => l === `RUNNING ${id}` && resolve()))]),
        )
        void session.submit({ id, payload: { sleepMs: 4000, failIfStopped: true } as unknown as ActionPayload })
        await firstStart
        const first = workers.find((w) => w.id === starts[0])!
        // Stopped while it runs the action (the start event can come before the run begins).
        await running.get(first.proc)
        first.proc.kill('SIGSTOP')
        stopped.push(first.proc)
        // Lost, and the action running on the other worker: then wake the stopped one, whose failure to run it comes first.
        const other = workers.find((w) => w !== first)!.id
        const deadline = Date.now() + 15_000
        while (!(coordinator.ledger.ownerOf(id) === other && coordinator.ledger.stateOf(id) === 'running')) {
          assert.ok(Date.now() < deadline, `the action did not move to the other worker (held by ${coordinator.ledger.ownerOf(id)}, ${coordinator.ledger.stateOf(id)})`)
          await delay(20)
        }
        first.proc.kill('SIGCONT')
        stopped.pop()
        await result
        const stale = Date.now() + 5_000
        while (!events.some((e) => e.outcome === 'stale')) {
          assert.ok(Date.now() < stale, `no stale failure from the woken worker ${first.id}: ${JSON.stringify(events.map((e) => [e.worker, e.outcome, e.report]))}`)
          await delay(20)
        }
        assert.deepEqual(reports, [{ worker: other, ok: true }], 'the client got one result, the new holder\'s success')
        assert.deepEqual(
          events.map((e) => [e.worker, e.report.ok, e.outcome]),
          [[first.id, false, 'stale'], [other, true, 'recorded']],
          'the woken worker\'s failure came first and was not recorded',
        )
        const account = await session.close()
        assert.equal(account?.conflicts, 0)
        assert.equal(account?.staleFailures, 1)
        assert.equal(account?.workersLost.length, 1)
      } finally {
        await session.close()
      }
    } finally {
      for (const p of stopped) p.kill('SIGCONT')
      await Promise.all(workers.map((w) => stopProcess(w.proc)))
      await coordinator.stop()
      await rm(casDir, { recursive: true, force: true })
    }
  })

  for (const strategy of ['power-of-two', 'adaptive']) {
    it(`${strategy}: work seeded on one of 3 worker processes is stolen by the others and recorded exactly once`, async () => {
      const coordinator = await startCoordinatorService()
      const workers: { proc: ChildProcess; id: string }[] = []
      try {
        for (let w = 0; w < 3; w++) workers.push(await startWorker(coordinator.addrs[0]!, strategy, w + 1))
        await coordinator.waitForWorkers(3, 20_000)
        const N = 90
        const events: ResultEvent[] = []
        const allDone = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`only ${events.length} of ${N} results within 45 s`)), 45_000)
          coordinator.onResult((e) => {
            events.push(e)
            if (coordinator.ledger.counts().done === N) {
              clearTimeout(timer)
              resolve()
            }
          })
        })
        const items = Array.from({ length: N }, (_, i) => ({ id: `a${i}`, payload: { sleepMs: 40 } }))
        const rest = await coordinator.seed(workers[0]!.id, items)
        assert.deepEqual(rest, [], 'the first worker took every action')
        await allDone

        assert.deepEqual(coordinator.ledger.counts(), { queued: 0, running: 0, unassigned: 0, done: N })
        assert.equal(events.filter((e) => e.outcome === 'recorded').length, N, 'every action recorded')
        assert.equal(events.filter((e) => e.outcome !== 'recorded').length, 0, 'no duplicate or conflicting result')
        const byWorker = new Map<string, number>()
        for (const i of items) {
          const by = coordinator.ledger.resultOf(i.id)!.by
          byWorker.set(by, (byWorker.get(by) ?? 0) + 1)
        }
        const elsewhere = N - (byWorker.get(workers[0]!.id) ?? 0)
        assert.ok(byWorker.size >= 2 && elsewhere >= N / 6, `stealing spread the work: ${JSON.stringify([...byWorker.values()])}`)
      } finally {
        await Promise.all(workers.map((w) => stopProcess(w.proc)))
        await coordinator.stop()
      }
    })
  }
})
