import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { OwnershipLedger, RETIRED_STEALS, type RecordedResult } from '../../src/coordinator/ledger.js'
import { createRng } from '../../strategies/rng.js'
import type { Rng } from '../../strategies/types.js'

const result = (id: string): RecordedResult => ({ key: `key-${id}`, outputs: [`digest-${id}`], exitCode: 0 })

describe('OwnershipLedger', () => {
  it('moves queued actions to a thief once per steal, and answers a retried steal the same way', () => {
    const l = new OwnershipLedger()
    for (const id of ['a', 'b', 'c']) l.seed(id, 'w1')
    assert.equal(l.started('c', 'w1'), true)
    const answer = l.transfer('s1', ['a', 'b', 'c', 'zz'], 'w1', 'w2')
    assert.deepEqual(answer.accepted, ['a', 'b'])
    assert.deepEqual(answer.rejected, [
      { id: 'c', reason: 'already running' },
      { id: 'zz', reason: 'unknown action' },
    ])
    assert.deepEqual(l.transfer('s1', ['a', 'b'], 'w1', 'w2'), answer, 'a retried request gets the first answer')
    assert.deepEqual(l.transfer('s2', ['a'], 'w1', 'w3').rejected, [{ id: 'a', reason: 'held by w2, not w1' }])
    assert.equal(l.started('a', 'w1'), false, 'the old holder may not run it')
    assert.equal(l.started('a', 'w2'), true)
    assert.equal(l.started('a', 'w2'), true, 'the holder asking again (its answer was lost) gets yes again')
    assert.equal(l.started('a', 'w3'), false)
  })

  it('releases seeded actions a worker could not take, and only those', () => {
    const l = new OwnershipLedger()
    for (const id of ['a', 'b', 'c']) l.seed(id, 'w1')
    l.started('c', 'w1')
    assert.deepEqual(l.release(['a', 'c', 'zz'], 'w1'), ['a'])
    assert.equal(l.stateOf('a'), 'unassigned')
    assert.equal(l.release(['b'], 'w2').length, 0, 'not held by w2')
    l.seed('a', 'w2')
    assert.equal(l.ownerOf('a'), 'w2')
  })

  it('records one result; a repeat is a duplicate, a different one a conflict', () => {
    const l = new OwnershipLedger()
    l.seed('a', 'w1')
    l.started('a', 'w1')
    assert.equal(l.recordResult('a', 'w1', result('a')), 'recorded')
    assert.equal(l.recordResult('a', 'w1', result('a')), 'duplicate')
    assert.equal(l.recordResult('a', 'w2', { ...result('a'), outputs: ['other'] }), 'conflict')
    assert.deepEqual(l.resultOf('a')?.outputs, ['digest-a'])
    assert.equal(l.recordResult('nope', 'w1', result('nope')), 'unknown')
  })

  it('hands back the queued and running actions of a lost worker, and takes a late result once', () => {
    const l = new OwnershipLedger()
    for (const id of ['a', 'b', 'c']) l.seed(id, 'w1')
    l.started('a', 'w1')
    l.started('b', 'w1')
    assert.equal(l.recordResult('b', 'w1', result('b')), 'recorded')
    assert.deepEqual(l.workerLost('w1'), ['a', 'c'])
    assert.equal(l.stateOf('a'), 'unassigned')
    assert.throws(() => l.seed('b', 'w2'), /already held by nobody \(done\)/)
    l.seed('a', 'w2')
    // w1 was only slow: its late result for a arrives before w2 finishes.
    assert.equal(l.recordResult('a', 'w1', result('a')), 'recorded')
    l.started('a', 'w2')
    assert.equal(l.recordResult('a', 'w2', result('a')), 'duplicate')
    assert.deepEqual(l.counts(), { queued: 0, running: 0, unassigned: 1, done: 2 })
  })

  it('takes a failure to run from the holder only: from a lost worker it is stale, for the action is elsewhere or done', () => {
    const l = new OwnershipLedger()
    for (const id of ['a', 'b', 'c']) l.seed(id, 'w1')
    for (const id of ['a', 'b', 'c']) l.started(id, 'w1')
    assert.deepEqual(l.workerLost('w1'), ['a', 'b', 'c'])
    for (const id of ['a', 'b']) l.seed(id, 'w2')
    // w1 was frozen: woken, its fetches time out and it reports that it could not run a, b and c.
    assert.equal(l.recordFailure('a', 'w1'), 'stale', 'a is held by w2 now')
    assert.equal(l.recordFailure('c', 'w1'), 'stale', 'c is held by nobody, waiting to be seeded again')
    assert.equal(l.stateOf('a'), 'queued')
    assert.equal(l.stateOf('c'), 'unassigned')
    assert.equal(l.recordResult('b', 'w2', result('b')), 'recorded')
    assert.equal(l.recordFailure('b', 'w1'), 'stale', 'b is done')
    assert.equal(l.recordFailure('b', 'w2'), 'stale', 'a failure after the result is not a second result')
    assert.equal(l.recordResult('a', 'w2', result('a')), 'recorded', 'the result of the holder stands, with no conflict')
    // The holder's own failure is its result: the client tries again as a new attempt.
    l.seed('d', 'w2')
    assert.equal(l.recordFailure('d', 'w2'), 'recorded')
    assert.equal(l.resultOf('d')?.exitCode, -1)
    assert.equal(l.recordFailure('nope', 'w2'), 'unknown')
  })

  it('conservation under random steals, deaths and late results: every action recorded exactly once', () => {
    for (let seed = 0; seed < 40; seed++) {
      const rng = createRng(seed)
      const pick = <T>(xs: readonly T[], r: Rng = rng): T => xs[Math.floor(r.next() * xs.length)] as T
      const l = new OwnershipLedger()
      const workers = ['w0', 'w1', 'w2', 'w3']
      const alive = new Set(workers)
      const actions = Array.from({ length: 60 }, (_, i) => `act${i}`)
      for (const id of actions) l.seed(id, pick(workers))
      const recorded = new Map<string, number>()
      const lateResults: { id: string; by: string }[] = []
      let stealN = 0
      for (let step = 0; step < 4000 && l.counts().done < actions.length; step++) {
        const r = rng.next()
        const id = pick(actions)
        const owner = l.ownerOf(id)
        if (r < 0.3) {
          // A steal: a thief asks for a few actions of a victim; the request may be retried.
          const victim = pick(workers)
          const thief = pick(workers)
          const ids = actions.filter(() => rng.next() < 0.1)
          const stealId = `steal-${stealN++}`
          const first = l.transfer(stealId, ids, victim, thief)
          if (rng.next() < 0.3) assert.deepEqual(l.transfer(stealId, ids, victim, thief), first)
        } else if (r < 0.55) {
          if (owner && alive.has(owner)) l.started(id, owner)
        } else if (r < 0.8) {
          if (owner && alive.has(owner) && l.stateOf(id) === 'running') {
            const outcome = l.recordResult(id, owner, result(id))
            if (outcome === 'recorded') recorded.set(id, (recorded.get(id) ?? 0) + 1)
          }
        } else if (r < 0.83) {
          // A worker is declared dead; what it ran may still report late.
          const dead = pick(workers)
          for (const lost of l.workerLost(dead)) {
            if (rng.next() < 0.5) lateResults.push({ id: lost, by: dead })
            l.seed(lost, pick(workers.filter((w) => w !== dead)))
          }
        } else if (r < 0.9 && lateResults.length > 0) {
          const late = lateResults.shift()!
          const outcome = l.recordResult(late.id, late.by, result(late.id))
          if (outcome === 'recorded') recorded.set(late.id, (recorded.get(late.id) ?? 0) + 1)
          else assert.equal(outcome, 'duplicate')
        }
      }
      // Finish: every open action runs on its holder (or is reseeded) and reports.
      for (const id of actions) {
        if (l.stateOf(id) === 'unassigned') l.seed(id, 'w0')
        const owner = l.ownerOf(id)
        if (owner) {
          l.started(id, owner)
          if (l.recordResult(id, owner, result(id)) === 'recorded') recorded.set(id, (recorded.get(id) ?? 0) + 1)
        }
      }
      assert.deepEqual(l.counts(), { queued: 0, running: 0, unassigned: 0, done: actions.length }, `seed ${seed}`)
      for (const id of actions) assert.equal(recorded.get(id), 1, `seed ${seed}: ${id} recorded ${recorded.get(id) ?? 0} times`)
    }
  })
  it('counts what each worker holds through seeds, steals, results, releases and losses', () => {
    const l = new OwnershipLedger()
    for (const id of ['a', 'b', 'c', 'd']) l.seed(id, 'w1')
    l.seed('e', 'w2')
    assert.deepEqual([l.held('w1'), l.held('w2')], [4, 1])
    l.transfer('s1', ['c', 'd'], 'w1', 'w2')
    assert.deepEqual([l.held('w1'), l.held('w2')], [2, 3])
    assert.ok(l.started('a', 'w1'))
    l.recordResult('a', 'w1', { key: 'a', outputs: [], exitCode: 0 })
    assert.equal(l.held('w1'), 1)
    l.release(['b'], 'w1')
    assert.equal(l.held('w1'), 0)
    l.workerLost('w2')
    assert.equal(l.held('w2'), 0)
  })

  it('forgets a finished build: its actions and steals, counting the ones left open', () => {
    const l = new OwnershipLedger()
    l.seed('b1/x', 'w1')
    l.seed('b1/y', 'w1')
    l.seed('b2/x', 'w1')
    l.transfer('s1', ['b1/y'], 'w1', 'w2')
    l.recordResult('b1/x', 'w1', { key: 'k', outputs: [], exitCode: 0 })
    assert.equal(l.forget('b1/'), 1, 'b1/y was still queued')
    assert.equal(l.stateOf('b1/x'), undefined)
    assert.equal(l.stateOf('b2/x'), 'queued')
    assert.deepEqual([l.held('w1'), l.held('w2')], [1, 0])
    // The steal's answer outlives the build: the victim, settling late, still learns what moved (not "nothing", which would queue b1/y again).
    assert.deepEqual(l.settle('s1'), ['b1/y'])
    assert.deepEqual(l.transfer('s1', ['b1/y'], 'w1', 'w2').accepted, ['b1/y'], 'a repeated transfer gets the same answer')
  })

  it('forgets one build without the others: a steal that named two builds is retired with the first, and one naming only forgotten actions is retired at once', () => {
    const l = new OwnershipLedger()
    for (const id of ['b1/x', 'b1/y', 'b2/x', 'b2/y']) l.seed(id, 'v')
    l.transfer('both', ['b1/x', 'b2/x'], 'v', 't')
    l.transfer('b2-only', ['b2/y'], 'v', 't')
    assert.equal(l.forget('b1/'), 2, 'b1/x (at the thief) and b1/y were still queued')
    assert.equal(l.stateOf('b1/x'), undefined)
    assert.equal(l.stateOf('b2/x'), 'queued')
    assert.equal(l.ownerOf('b2/x'), 't')
    assert.deepEqual(l.settle('both'), ['b1/x', 'b2/x'], 'retired, still answered')
    assert.equal(l.forget('b2/'), 2)
    assert.deepEqual(l.settle('b2-only'), ['b2/y'])
    assert.equal(l.forget('b2/'), 0, 'a build forgotten twice holds nothing')
    // A late transfer for actions of forgotten builds moves nothing, and its answer stays (retired, not with the open builds' steals).
    assert.deepEqual(l.transfer('late', ['b1/y'], 'v', 't'), { accepted: [], rejected: [{ id: 'b1/y', reason: 'unknown action' }] })
    assert.deepEqual(l.settle('late'), [])
    assert.deepEqual([l.held('v'), l.held('t')], [0, 0])
  })

  it('forget takes a build\'s prefix, "<buildId>/", and nothing else', () => {
    const l = new OwnershipLedger()
    for (const bad of ['b1', 'a/b/', '', '/']) assert.throws(() => l.forget(bad), /forget takes a build's prefix/, JSON.stringify(bad))
  })

  it('keeps the answers of forgotten builds (and of steals settled with nothing moved) up to a bound, oldest dropped first', () => {
    const l = new OwnershipLedger()
    l.seed('old/a', 'v')
    l.transfer('first', ['old/a'], 'v', 't')
    l.forget('old/')
    assert.deepEqual(l.settle('nothing-came'), [])
    // RETIRED_STEALS more steals settled with nothing moved push both out.
    for (let i = 0; i < RETIRED_STEALS; i++) l.settle(`s${i}`)
    assert.deepEqual(l.settle(`s${RETIRED_STEALS - 1}`), [], 'the newest is kept')
    // The first answer is gone: its id is a new question (settling it now records that nothing moved).
    assert.deepEqual(l.settle('first'), [])
    l.seed('new/a', 'v')
    assert.deepEqual(l.transfer('nothing-came', ['new/a'], 'v', 't').accepted, ['new/a'], 'an evicted settle no longer blocks its id')
  })
  it('settles a steal once: what the transfer moved, or nothing for good if it has not come', () => {
    const l = new OwnershipLedger()
    for (const id of ['a', 'b', 'c']) l.seed(id, 'v')
    // The transfer came first: the victim learns what moved.
    assert.deepEqual(l.transfer('s1', ['a', 'b'], 'v', 't').accepted, ['a', 'b'])
    assert.deepEqual(l.settle('s1'), ['a', 'b'])
    // Stolen back by the victim before it settles s1: settling still says a and b moved (so it does not queue them twice).
    assert.deepEqual(l.transfer('s2', ['a'], 't', 'v').accepted, ['a'])
    assert.deepEqual(l.settle('s1'), ['a', 'b'])
    // The victim settles before the transfer arrives: nothing moved, and the late transfer moves nothing.
    assert.deepEqual(l.settle('s3'), [])
    assert.deepEqual(l.transfer('s3', ['c'], 'v', 't').accepted, [])
    assert.equal(l.ownerOf('c'), 'v')
  })
})
