import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Batcher } from '../../src/net/batcher.js'

describe('Batcher', () => {
  it('sends items added in one tick together, and those added while a batch is in flight in the next', async () => {
    const batches: number[][] = []
    let release: (() => void) | undefined
    const b = new Batcher<number, number>(async (items) => {
      batches.push(items)
      if (batches.length === 1) await new Promise<void>((resolve) => (release = resolve))
      return items.map((i) => i * 10)
    }, 100)
    const first = [b.add(1), b.add(2), b.add(3)]
    await new Promise((resolve) => setImmediate(resolve))
    assert.deepEqual(batches, [[1, 2, 3]])
    const second = [b.add(4), b.add(5)]
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(batches.length, 1, 'nothing more is sent while a batch is in flight')
    release!()
    assert.deepEqual(await Promise.all([...first, ...second]), [10, 20, 30, 40, 50])
    assert.deepEqual(batches, [[1, 2, 3], [4, 5]])
  })

  it('splits at maxBatch and rejects every item of a failed batch', async () => {
    const sizes: number[] = []
    const b = new Batcher<number, number>(async (items) => {
      sizes.push(items.length)
      if (items.includes(7)) throw new Error('peer gone')
      return items
    }, 3)
    const all = Array.from({ length: 8 }, (_, i) => b.add(i).then((v) => `ok ${v}`, (e: Error) => `failed ${e.message}`))
    assert.deepEqual(await Promise.all(all), ['ok 0', 'ok 1', 'ok 2', 'ok 3', 'ok 4', 'ok 5', 'failed peer gone', 'failed peer gone'])
    assert.deepEqual(sizes, [3, 3, 2])
  })

  it('closes a batch before its items weigh more than the limit, and sends one heavier than the limit alone', async () => {
    const batches: number[][] = []
    const b = new Batcher<number, number>(
      async (items) => {
        batches.push(items)
        return items
      },
      100,
      1,
      { of: (n) => n, max: 10 },
    )
    assert.deepEqual(await Promise.all([4, 5, 1, 3, 12, 2, 9].map((n) => b.add(n))), [4, 5, 1, 3, 12, 2, 9])
    assert.deepEqual(batches, [[4, 5, 1], [3], [12], [2], [9]])
  })

  it('rejects a batch whose answers do not match its items', async () => {
    const b = new Batcher<number, number>(async () => [1], 10)
    await assert.rejects(Promise.all([b.add(1), b.add(2)]), /batch of 2 got 1 answers/)
  })
})
