import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { createMeshNode, fastGossipId, type MeshNode } from '../../src/net/node.js'

const TOPIC = 'bldr/test/gossip-id'

/** Peers a node forwards the topic's messages to (the gossipsub class has it; the service interface does not). */
const meshPeers = (n: MeshNode): string[] => (n.services.pubsub as unknown as { getMeshPeers(topic: string): string[] }).getMeshPeers(TOPIC)

describe('gossip message ids', () => {
  it('names a message by its sender and sequence number, not its data', () => {
    const from = new Uint8Array([0, 36, 8, 1, 18, 32, 7, 7])
    const seqno = new Uint8Array([0, 0, 0, 0, 0, 0, 1, 44])
    const id = fastGossipId({ from, seqno })
    assert.equal(fastGossipId({ from: from.slice(), seqno: seqno.slice() }), id, 'equal bytes, equal id')
    assert.notEqual(fastGossipId({ from, seqno: new Uint8Array([0, 0, 0, 0, 0, 0, 1, 45]) }), id)
    assert.notEqual(fastGossipId({ from: new Uint8Array([0, 36, 8, 1, 18, 32, 7, 8]), seqno }), id)
    // A view into a larger buffer reads only its own bytes.
    const big = new Uint8Array(32)
    big.set(from, 3)
    assert.equal(fastGossipId({ from: big.subarray(3, 3 + from.length), seqno }), id)
    // Unsigned shapes have no id: they are never remembered, so always validated (and rejected).
    assert.equal(fastGossipId({ seqno }), '')
    assert.equal(fastGossipId({ from }), '')
  })
})

describe('gossip on three connected nodes', () => {
  const nodes: MeshNode[] = []
  before(async () => {
    for (let i = 0; i < 3; i++) nodes.push(await createMeshNode())
    const [a, b, c] = nodes as [MeshNode, MeshNode, MeshNode]
    await a.dial(b.getMultiaddrs()[0]!)
    await a.dial(c.getMultiaddrs()[0]!)
    await b.dial(c.getMultiaddrs()[0]!)
    for (const n of nodes) n.services.pubsub.subscribe(TOPIC)
    // Wait until each node has the other two in its mesh for the topic (a heartbeat grafts them).
    const deadline = Date.now() + 15_000
    while (!nodes.every((n) => meshPeers(n).length === 2)) {
      if (Date.now() > deadline) throw new Error(`mesh not formed: ${nodes.map((n) => meshPeers(n).length).join(', ')}`)
      await sleep(50)
    }
  })
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()))
  })

  it('delivers each message once and checks its signature once per receiver, though copies arrive from both peers', async () => {
    const [a, b, c] = nodes as [MeshNode, MeshNode, MeshNode]
    // Count ed25519 verifications in this process (all three nodes live here) while A publishes.
    const proto = Object.getPrototypeOf((await generateKeyPair('Ed25519')).publicKey) as { verify: (...args: unknown[]) => unknown }
    const verify = proto.verify
    let verifications = 0
    proto.verify = function (this: unknown, ...args: unknown[]) {
      verifications++
      return verify.apply(this, args)
    }
    const received = new Map<MeshNode, string[]>([
      [b, []],
      [c, []],
    ])
    const listeners = [b, c].map((n) => {
      const l = (evt: CustomEvent<{ topic: string; data: Uint8Array }>): void => {
        if (evt.detail.topic === TOPIC) received.get(n)!.push(Buffer.from(evt.detail.data).toString())
      }
      n.services.pubsub.addEventListener('message', l)
      return { n, l }
    })
    const n = 20
    try {
      for (let i = 0; i < n; i++) {
        await a.services.pubsub.publish(TOPIC, Buffer.from(`m${i}`))
        await sleep(20)
      }
      // Each receiver gets every message from A and a forwarded copy from the other: wait for the copies too.
      await sleep(500)
    } finally {
      proto.verify = verify
      for (const { n: node, l } of listeners) node.services.pubsub.removeEventListener('message', l)
    }
    const expected = Array.from({ length: n }, (_, i) => `m${i}`)
    assert.deepEqual(received.get(b), expected)
    assert.deepEqual(received.get(c), expected)
    // Without the cheap id each copy is verified before it is found a duplicate: ~2 per message per receiver.
    assert.ok(verifications >= 2 * n, `every message is verified by both receivers (${verifications})`)
    assert.ok(verifications <= 2 * n + 4, `${verifications} signature checks for ${n} messages at 2 receivers: duplicates were verified`)
  })
})
