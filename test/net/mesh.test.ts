import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { describe, it } from 'node:test'
import { startCoordinatorService, type ResultEvent } from '../../src/net/coordinator-service.js'
import { spawnReady, stopProcess } from '../helpers.js'

async function startWorker(coordinator: string, strategy: string, seed: number): Promise<{ proc: ChildProcess; id: string }> {
  const { proc, value } = await spawnReady('dist/test/net/fixtures/worker-process.js', [coordinator, strategy, String(seed)])
  return { proc, id: value }
}

describe('the mesh across OS processes (real libp2p over TCP)', { timeout: 90_000 }, () => {
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
