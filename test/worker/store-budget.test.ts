import assert from 'node:assert/strict'
import { mkdtemp, rm, utimes } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createBlake3Hasher } from '../../src/cas/hasher.js'
import { openCasStore } from '../../src/cas/store.js'
import { StoreBudget } from '../../src/worker/store-budget.js'

describe("a worker's store budget", () => {
  it('evicts the least recently used unpinned blobs down to 90% of the budget; blobs from before start count oldest first', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bldr-budget-'))
    try {
      const cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher())
      const d: string[] = []
      for (let i = 0; i < 5; i++) {
        d.push((await cas.putBytes(String(i).repeat(10_000))).digest)
        await utimes(cas.pathOf(d[i]!), 1000 + i, 1000 + i) // blob i is older than blob i+1
      }
      const budget = new StoreBudget(cas, 35_000)
      assert.equal(budget.bytes, 50_000, 'the store as found')
      budget.touch([d[0]!]) // used now: the newest
      budget.pin([d[1]!]) // an action running here needs it
      await budget.enforce()
      // Down to ≤ 31,500 bytes: d2 and d3 go (the oldest unpinned), d1 pinned, d0 just used, d4 newer.
      assert.deepEqual(await Promise.all(d.map((x) => cas.has(x))), [true, true, false, false, true])
      assert.equal(budget.bytes, 30_000)
      assert.deepEqual(budget.evicted, { blobs: 2, bytes: 20_000 })
      budget.unpin([d[1]!])
      await budget.enforce()
      assert.equal(budget.bytes, 30_000, 'within the budget: nothing more goes')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
