import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { adaptive, EXPLORE } from '../../strategies/adaptive.js'
import { createRng, DEFAULT_STRATEGY, STRATEGIES, type PeerLoad, type StealView, type StrategyName } from '../../strategies/index.js'

const NOW = 100_000

function peer(peerId: string, queueDepth: number, opts: Partial<PeerLoad> = {}): PeerLoad {
  return { peerId, queueDepth, executing: 8, capacity: 8, announcedAtMs: NOW - 1000, ...opts }
}

function view(peers: PeerLoad[], extra: Partial<StealView> = {}): StealView {
  return { selfId: 'me', peers, nowMs: NOW, staleAfterMs: 30_000, minVictimQueue: 4, recent: [], ...extra }
}

const NAMES = Object.keys(STRATEGIES) as StrategyName[]

describe('steal strategies', () => {
  it('the seeded source is uniform from the first draw, across nearby seeds', () => {
    const buckets = [0, 0, 0, 0]
    for (let seed = 0; seed < 4000; seed++) buckets[Math.floor(createRng(seed).next() * 4)]!++
    for (const b of buckets) assert.ok(Math.abs(b - 1000) < 120, `first draws by quarter: ${buckets.join(' ')}`)
  })

  it('power-of-two is the default', () => {
    assert.equal(DEFAULT_STRATEGY, 'power-of-two')
  })

  // Table: each strategy on fixed views; random-based ones checked over many seeds.
  const table: { name: string; peers: PeerLoad[]; expect: Partial<Record<StrategyName, string | null | string[]>> }[] = [
    {
      name: 'no peers',
      peers: [],
      expect: { random: null, 'least-loaded': null, 'most-loaded': null, 'power-of-two': null, adaptive: null },
    },
    {
      name: 'only the thief itself, stale and short-queued peers',
      peers: [peer('me', 50), peer('old', 50, { announcedAtMs: NOW - 31_000 }), peer('short', 3)],
      expect: { random: null, 'least-loaded': null, 'most-loaded': null, 'power-of-two': null, adaptive: null },
    },
    {
      name: 'one candidate',
      peers: [peer('a', 10), peer('short', 2)],
      expect: { random: 'a', 'least-loaded': 'a', 'most-loaded': 'a', 'power-of-two': 'a', adaptive: 'a' },
    },
    {
      name: 'three candidates',
      peers: [peer('a', 5, { executing: 1 }), peer('b', 40), peer('c', 12)],
      expect: { 'least-loaded': 'a', 'most-loaded': 'b', random: ['a', 'b', 'c'], 'power-of-two': ['b', 'c'], adaptive: ['a', 'b', 'c'] },
    },
  ]
  for (const row of table) {
    for (const name of NAMES) {
      if (!(name in row.expect)) continue
      it(`${name}: ${row.name}`, () => {
        const want = row.expect[name]
        const seen = new Set<string | null>()
        for (let seed = 0; seed < 200; seed++) seen.add(STRATEGIES[name](view(row.peers), createRng(seed))?.victim ?? null)
        if (Array.isArray(want)) assert.deepEqual([...seen].sort(), [...want].sort())
        else assert.deepEqual([...seen], [want])
      })
    }
  }

  it('power-of-two never picks the shortest of three queues, and prefers the longest', () => {
    const v = view([peer('a', 5), peer('b', 40), peer('c', 12)])
    const counts = new Map<string, number>()
    for (let seed = 0; seed < 3000; seed++) {
      const d = STRATEGIES['power-of-two'](v, createRng(seed))!
      counts.set(d.victim, (counts.get(d.victim) ?? 0) + 1)
    }
    assert.equal(counts.get('a'), undefined)
    // b wins both pairs it is in (2 of 3 pairs), c one of 3.
    assert.ok(Math.abs((counts.get('b') ?? 0) / 3000 - 2 / 3) < 0.05, JSON.stringify([...counts]))
  })

  it('properties over random views: never self, never stale, never short, a reason always, same seed same pick', () => {
    const gen = createRng(7)
    for (let round = 0; round < 2000; round++) {
      const n = Math.floor(gen.next() * 12)
      const peers: PeerLoad[] = []
      for (let i = 0; i < n; i++) {
        peers.push(peer(i === 0 && gen.next() < 0.3 ? 'me' : `p${i}`, Math.floor(gen.next() * 20), { announcedAtMs: NOW - Math.floor(gen.next() * 60_000), executing: Math.floor(gen.next() * 9) }))
      }
      const v = view(peers, { recent: [{ peerId: 'p1', granted: 0, atMs: NOW - 100 }] })
      for (const name of NAMES) {
        const d = STRATEGIES[name](v, createRng(round))
        const again = STRATEGIES[name](v, createRng(round))
        assert.deepEqual(d, again, `${name} is not reproducible from its seed`)
        if (!d) {
          assert.ok(!peers.some((p) => p.peerId !== 'me' && NOW - p.announcedAtMs <= 30_000 && p.queueDepth >= 4), `${name} found nothing among candidates`)
          continue
        }
        const chosen = peers.find((p) => p.peerId === d.victim)!
        assert.notEqual(d.victim, 'me', `${name} picked itself`)
        assert.ok(NOW - chosen.announcedAtMs <= 30_000, `${name} picked a stale peer`)
        assert.ok(chosen.queueDepth >= 4, `${name} picked a peer below the minimum queue`)
        assert.ok(d.reason.startsWith(`${name}: `) && d.reason.includes(d.victim), `${name} gave no useful reason: ${d.reason}`)
      }
    }
  })

  it('strategies do not change the view they are given', () => {
    const peers = [peer('a', 5), peer('b', 40), peer('c', 12)]
    const v = view(peers, { recent: [{ peerId: 'b', granted: 2, atMs: NOW - 10 }] })
    const before = JSON.stringify(v)
    for (const name of NAMES) STRATEGIES[name](v, createRng(1))
    assert.equal(JSON.stringify(v), before)
  })
})

describe('adaptive', () => {
  const peers = [peer('big', 40), peer('mid', 20)]
  const pick = (recent: StealView['recent'], nowMs = NOW): Map<string, number> => {
    const counts = new Map<string, number>()
    for (let seed = 0; seed < 1000; seed++) {
      const d = adaptive(view(peers, { recent, nowMs }), createRng(seed))!
      counts.set(d.victim, (counts.get(d.victim) ?? 0) + 1)
    }
    return counts
  }

  it('asks the peer with the most expected work when it knows nothing', () => {
    const counts = pick([])
    assert.ok((counts.get('big') ?? 0) > 900)
  })

  it('turns away from a peer that has been refusing lately', () => {
    const refusals = Array.from({ length: 6 }, (_, i) => ({ peerId: 'big', granted: 0, atMs: NOW - 100 * (i + 1) }))
    const counts = pick(refusals)
    assert.ok((counts.get('mid') ?? 0) > 1000 * (1 - EXPLORE) - 50, JSON.stringify([...counts]))
  })

  it('forgets refusals older than its window: not a cumulative rate', () => {
    const old = Array.from({ length: 50 }, (_, i) => ({ peerId: 'big', granted: 0, atMs: NOW - 6_000 - i }))
    const counts = pick(old)
    assert.ok((counts.get('big') ?? 0) > 900, JSON.stringify([...counts]))
  })

  it('weighs recent outcomes more than older ones inside the window', () => {
    // Old refusals, then recent grants: the recent grants win.
    const recent = [
      ...Array.from({ length: 6 }, (_, i) => ({ peerId: 'big', granted: 0, atMs: NOW - 4_000 - i })),
      ...Array.from({ length: 3 }, (_, i) => ({ peerId: 'big', granted: 4, atMs: NOW - 50 - i })),
    ]
    assert.ok((pick(recent).get('big') ?? 0) > 900)
  })
})
