import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { Peer, PeerData, PeerId, PeerStore } from '@libp2p/interface'
import { createMeshNode } from '../../src/net/node.js'
import { REFRESH_MS, skipKnownProtocolMerges } from '../../src/net/known-protocols.js'

/** A peer store that keeps protocols per peer and counts the merges that reach it. */
function countingStore(): { store: PeerStore; merges: PeerData[]; protocolsOf: Map<string, string[]> } {
  const merges: PeerData[] = []
  const protocolsOf = new Map<string, string[]>()
  const store = {
    merge: async (id: PeerId, data: PeerData): Promise<Peer> => {
      merges.push(data)
      const protocols = [...new Set([...(protocolsOf.get(id.toString()) ?? []), ...(data.protocols ?? [])])]
      protocolsOf.set(id.toString(), protocols)
      return { id, protocols, addresses: [], metadata: new Map(), tags: new Map() } as Peer
    },
  } as unknown as PeerStore
  return { store, merges, protocolsOf }
}

function fakePeer(name: string): PeerId {
  return { toString: () => name } as PeerId
}

describe('protocol-only peer-store merges', () => {
  it('reach the store once per protocol and peer, again after REFRESH_MS, on a disconnect or an update that drops the protocol', async () => {
    const { store, merges } = countingStore()
    const events = new EventTarget()
    let clock = 1_000
    const stats = skipKnownProtocolMerges(store, events as never, () => clock)
    const a = fakePeer('a')
    const b = fakePeer('b')
    await store.merge(a, { protocols: ['/x/1'] })
    await store.merge(a, { protocols: ['/x/1'] })
    await store.merge(a, { protocols: ['/x/1'] })
    assert.equal(merges.length, 1, 'a known protocol is not written again')
    await store.merge(a, { protocols: ['/y/1'] })
    assert.equal(merges.length, 2, 'a new protocol is written')
    const peer = await store.merge(a, { protocols: ['/x/1'] })
    assert.deepEqual([...peer.protocols].sort(), ['/x/1', '/y/1'], 'the answer is the record as last written')
    await store.merge(b, { protocols: ['/x/1'] })
    assert.equal(merges.length, 3, 'another peer is its own')
    // Other fields always go through, even with known protocols beside them.
    await store.merge(a, { protocols: ['/x/1'], metadata: { k: new Uint8Array([1]) } })
    assert.equal(merges.length, 4)
    clock += REFRESH_MS
    await store.merge(a, { protocols: ['/x/1'] })
    assert.equal(merges.length, 5, 'a record older than REFRESH_MS is written again')
    events.dispatchEvent(new CustomEvent('peer:disconnect', { detail: a }))
    await store.merge(a, { protocols: ['/x/1'] })
    assert.equal(merges.length, 6, 'a peer that disconnected starts over')
    // An update the store announces replaces what is known: a protocol it dropped is written by the next stream.
    events.dispatchEvent(new CustomEvent('peer:update', { detail: { peer: { id: a, protocols: ['/y/1'], addresses: [], metadata: new Map(), tags: new Map() } } }))
    await store.merge(a, { protocols: ['/x/1'] })
    assert.equal(merges.length, 7)
    assert.deepEqual(stats, { skipped: 3, written: 7 })
  })

  it('leave a real node\'s record listing the protocols its streams used', async () => {
    const a = await createMeshNode({ writeEveryStream: true })
    const b = await createMeshNode()
    try {
      const stats = skipKnownProtocolMerges(a.peerStore, a)
      await b.handle('/bldr-test/echo/1', (stream) => void stream.close(), {})
      for (let i = 0; i < 5; i++) {
        const s = await a.dialProtocol(b.getMultiaddrs()[0]!, '/bldr-test/echo/1')
        await s.close()
      }
      const peer = await a.peerStore.get(b.peerId)
      assert.ok(peer.protocols.includes('/bldr-test/echo/1'), `recorded protocols: ${peer.protocols.join(', ')}`)
      assert.ok(stats.skipped >= 4, `skipped ${stats.skipped}, written ${stats.written}`)
    } finally {
      await Promise.all([a.stop(), b.stop()])
    }
  })
})
