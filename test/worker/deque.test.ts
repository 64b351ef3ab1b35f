import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ActionDeque } from '../../src/worker/deque.js'
import { createRng } from '../../strategies/rng.js'

function filled(n: number, capacity = 256): ActionDeque<number> {
  const d = new ActionDeque<number>(capacity)
  for (let i = 0; i < n; i++) assert.equal(d.pushBack(i), true)
  return d
}

describe('ActionDeque', () => {
  it('the owner takes from the front, in seeding order', () => {
    const d = filled(3)
    assert.deepEqual([d.pop(), d.pop(), d.pop(), d.pop()], [0, 1, 2, undefined])
  })

  it('refuses to grow past its capacity', () => {
    const d = filled(4, 4)
    assert.equal(d.pushBack(99), false)
    assert.equal(d.length, 4)
    assert.equal(d.remainingSlots(), 0)
    assert.throws(() => new ActionDeque(0), /invalid capacity: must be an integer >= 1 \(got 0\)/)
  })

  const steals: [string, number, number, number, number[], string | undefined][] = [
    // name, queued, max, reserve, expected grant (oldest first), limitedBy
    ['half of an even queue', 10, 100, 2, [5, 6, 7, 8, 9], 'half'],
    ['half of an odd queue, rounded up', 9, 100, 2, [4, 5, 6, 7, 8], 'half'],
    ['capped by max', 20, 3, 2, [17, 18, 19], undefined],
    ['the reserve stays behind', 4, 100, 3, [3], 'reserve'],
    ['nothing above the reserve', 2, 100, 2, [], 'reserve'],
    ['an empty queue', 0, 100, 0, [], 'empty'],
    ['one action, no reserve', 1, 100, 0, [0], 'half'],
  ]
  for (const [name, queued, max, reserve, expect, limitedBy] of steals) {
    it(`stealHalf: ${name}`, () => {
      const d = filled(queued)
      const grant = d.stealHalf(max, reserve)
      assert.deepEqual(grant.items, expect)
      assert.equal(grant.limitedBy, limitedBy)
      assert.equal(d.length, queued - expect.length)
    })
  }

  it('hands back to the front and drains in order', () => {
    const d = filled(3)
    d.pop()
    assert.equal(d.pushFront([100, 101]), 2)
    assert.deepEqual(d.drain(), [100, 101, 1, 2])
    assert.equal(d.length, 0)
  })

  it('conserves every action: pushed = taken + stolen + left, none twice', () => {
    for (let seed = 0; seed < 50; seed++) {
      const rng = createRng(seed)
      const d = new ActionDeque<number>(64)
      let next = 0
      const out: number[] = []
      let pushed = 0
      for (let step = 0; step < 5000; step++) {
        const r = rng.next()
        if (r < 0.5) {
          if (d.pushBack(next)) {
            pushed++
            next++
          }
        } else if (r < 0.8) {
          const x = d.pop()
          if (x !== undefined) out.push(x)
        } else if (r < 0.97) {
          out.push(...d.stealHalf(1 + Math.floor(rng.next() * 8), Math.floor(rng.next() * 4)).items)
        } else {
          // A peer hands work back; it must not be lost either.
          const back = d.stealHalf(4, 0).items
          d.pushFront(back)
        }
      }
      out.push(...d.drain())
      assert.equal(out.length, pushed, `seed ${seed}: ${pushed} pushed, ${out.length} accounted for`)
      assert.equal(new Set(out).size, out.length, `seed ${seed}: an action came out twice`)
    }
  })
  it('stealHalf with a filter takes only what the thief accepts, from the back, and keeps the rest in order', () => {
    const d = new ActionDeque<{ id: string; sandbox: string }>(16)
    for (const [i, sandbox] of ['local', 'docker', 'local', 'docker', 'local', 'local'].entries()) d.pushBack({ id: `a${i}`, sandbox })
    const grant = d.stealHalf(2, 0, (item) => item.sandbox === 'docker')
    assert.deepEqual(grant.items.map((i) => i.id), ['a1', 'a3'])
    assert.deepEqual(d.drain().map((i) => i.id), ['a0', 'a2', 'a4', 'a5'])
    const none = new ActionDeque<{ id: string; sandbox: string }>(4)
    none.pushBack({ id: 'x', sandbox: 'local' })
    none.pushBack({ id: 'y', sandbox: 'local' })
    assert.deepEqual(none.stealHalf(4, 0, (item) => item.sandbox === 'docker').items, [])
    assert.equal(none.length, 2)
  })
})
