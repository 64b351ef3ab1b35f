import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { decodeAnnouncement, encodeAnnouncement, MAX_ANNOUNCEMENT_BYTES, type LoadAnnouncement } from '../../src/worker/load-announcement.js'
import { PeerTable } from '../../src/worker/peer-table.js'

function ann(seq: number, extra: Partial<LoadAnnouncement> = {}): LoadAnnouncement {
  return { v: 1, incarnation: 'i1', seq, sentAtMs: 5, queueDepth: 10, executing: 2, capacity: 4, loadFactor: 3, sandboxes: ['local'], platform: 'linux-x64', ...extra }
}

describe('load announcements', () => {
  it('round-trip and stay well under the cap', () => {
    const bytes = encodeAnnouncement(ann(7))
    assert.ok(bytes.byteLength < 512, `${bytes.byteLength} bytes`)
    assert.deepEqual(decodeAnnouncement(bytes), { ok: true, value: ann(7) })
  })

  const bad: [string, Uint8Array, RegExp][] = [
    ['oversized', new Uint8Array(MAX_ANNOUNCEMENT_BYTES + 1), /^over the 2048-byte cap \(2049 bytes\)$/],
    ['not JSON', new TextEncoder().encode('load: high'), /^not UTF-8 JSON$/],
    ['not UTF-8', new Uint8Array([0xff, 0xfe, 0x7b]), /^not UTF-8 JSON$/],
    ['an unknown field', new TextEncoder().encode(JSON.stringify({ ...ann(1), extra: 1 })), /^fails its schema: \(root\): Unrecognized key/],
    ['a negative queue', new TextEncoder().encode(JSON.stringify(ann(1, { queueDepth: -1 }))), /^fails its schema: queueDepth: /],
    ['another version', new TextEncoder().encode(JSON.stringify({ ...ann(1), v: 2 })), /^fails its schema: v: /],
  ]
  for (const [what, bytes, re] of bad) {
    it(`rejects ${what}`, () => {
      const d = decodeAnnouncement(bytes)
      assert.equal(d.ok, false)
      assert.match((d as { error: string }).error, re)
    })
  }
})

describe('PeerTable', () => {
  it('keeps the newest announcement: late and duplicated ones do not overwrite', () => {
    const t = new PeerTable('me', 30_000)
    assert.equal(t.record('a', ann(2, { queueDepth: 20 }), 100), 'accepted')
    assert.equal(t.record('a', ann(1, { queueDepth: 99 }), 110), 'older')
    assert.equal(t.record('a', ann(2, { queueDepth: 99 }), 120), 'duplicate')
    assert.equal(t.view()[0]?.queueDepth, 20)
    assert.equal(t.record('a', ann(3, { queueDepth: 5 }), 130), 'accepted')
    assert.equal(t.view()[0]?.queueDepth, 5)
  })

  it('accepts a restarted peer whose sequence starts again', () => {
    const t = new PeerTable('me', 30_000)
    t.record('a', ann(50), 100)
    assert.equal(t.record('a', ann(0, { incarnation: 'i2', queueDepth: 1 }), 200), 'accepted')
    assert.equal(t.view()[0]?.queueDepth, 1)
  })

  it('ignores itself and judges staleness by its own clock', () => {
    const t = new PeerTable('me', 30_000)
    assert.equal(t.record('me', ann(1), 0), 'self')
    // The sender's clock is far in the future; it does not matter.
    t.record('a', ann(1, { sentAtMs: 9e12 }), 1_000)
    t.record('b', ann(1), 20_000)
    assert.deepEqual(t.prune(31_000), [], 'exactly the timeout is not yet stale')
    assert.deepEqual(t.prune(31_001), ['a'])
    assert.deepEqual(t.view().map((p) => p.peerId), ['b'])
    assert.equal(t.view()[0]?.announcedAtMs, 20_000)
  })

  it('filters by the sandbox a peer offers, and forgets a peer that left', () => {
    const t = new PeerTable('me', 30_000)
    t.record('plain', ann(1, { sandboxes: ['local'] }), 0)
    t.record('dock', ann(1, { sandboxes: ['local', 'docker'] }), 0)
    assert.deepEqual(t.view({ sandbox: 'docker' }).map((p) => p.peerId), ['dock'])
    t.forget('dock')
    assert.equal(t.size, 1)
  })
})
