import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AUTO_WINDOW_RATIO, AutoSeedWindow, windowRoom } from '../../src/net/seed-policy.js'

/** Feed `n` actions that start `delayMs` after their seed (to a free slot) and run `durationMs`, from `t0`. */
function feed(w: AutoSeedWindow, n: number, delayMs: number, durationMs: number, t0 = 0, prefix = 'a'): number {
  let t = t0
  for (let i = 0; i < n; i++) {
    const id = `${prefix}${i}`
    w.seeded(id, t, true)
    w.started(id, t + delayMs)
    w.finished(id, t + delayMs + durationMs)
    t += delayMs + durationMs
  }
  return t
}

describe('the auto seed window', () => {
  it('holds one queued action per slot until it has measured both an action and a start', () => {
    const w = new AutoSeedWindow()
    assert.equal(w.window, 1)
    w.seeded('a', 0, true)
    w.started('a', 2)
    assert.equal(w.window, 1, 'a start delay alone says nothing about action times')
    w.finished('a', 10_000)
    assert.equal(w.window, 0, 'a 10 s action against a 2 ms start')
  })

  it('is 0 for actions long against the seed-to-start delay and 1 for short ones, at the ratio', () => {
    const long = new AutoSeedWindow()
    feed(long, 20, 2, 2 * AUTO_WINDOW_RATIO + 1)
    assert.equal(long.window, 0)
    const short = new AutoSeedWindow()
    feed(short, 20, 2, 2 * AUTO_WINDOW_RATIO - 1)
    assert.equal(short.window, 1)
  })

  it('follows recent actions: a build whose actions turn short goes back to 1', () => {
    const w = new AutoSeedWindow()
    const t = feed(w, 30, 1, 2_000)
    assert.equal(w.window, 0)
    feed(w, 60, 1, 5, t, 'b')
    assert.equal(w.window, 1, `means now ${JSON.stringify(w.means)}`)
  })

  it('takes the typical start delay, not the mean: a few slow starts (the first streams being set up) do not decide', () => {
    const w = new AutoSeedWindow()
    let t = 0
    for (let i = 0; i < 9; i++) {
      w.seeded(`s${i}`, t, true)
      w.started(`s${i}`, t + (i < 3 ? 400 : 2))
      t += 1_000
    }
    assert.equal(w.means.startDelayMs, 2)
    w.started('s8', t)
    w.finished('s8', t + 1_000)
    assert.equal(w.window, 0, '1 s actions against a 2 ms start; the mean start (134 ms) would have said 1')
  })

  it('measures the start delay only from actions seeded to a free slot (a queued one waits for its slot, not for the mesh)', () => {
    const w = new AutoSeedWindow()
    w.seeded('q', 0, false)
    w.started('q', 5_000)
    w.finished('q', 6_000)
    assert.ok(Number.isNaN(w.means.startDelayMs))
    assert.equal(w.means.durationMs, 1_000)
    assert.equal(w.window, 1)
  })

  it('forgets actions that never start or finish (a lost worker\'s) without growing without bound', () => {
    const w = new AutoSeedWindow()
    for (let i = 0; i < 100_000; i++) w.seeded(`x${i}`, i, true)
    w.started('x99999', 100_001)
    assert.equal(w.means.startDelayMs, 2)
    w.started('x0', 100_002)
    assert.equal(w.means.startDelayMs, 2, 'the oldest was dropped')
  })

  it('windowRoom: slots × (1 + window), no cap without a window', () => {
    assert.equal(windowRoom(2, 0), 2)
    assert.equal(windowRoom(2, 1), 4)
    assert.equal(windowRoom(2, undefined), Infinity)
  })
})
