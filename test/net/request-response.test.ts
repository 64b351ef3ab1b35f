import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { after, before, describe, it } from 'node:test'
import { createMeshNode, parseMultiaddr, type MeshNode } from '../../src/net/node.js'
import { ProtocolClient } from '../../src/net/request-response.js'
import { spawnReady, stopProcess } from '../helpers.js'
import { TEST_BIG_ECHO, TEST_ECHO } from './fixtures/protocol.js'
import type { Multiaddr } from '@multiformats/multiaddr'

async function startPeer(): Promise<{ proc: ChildProcess; addr: Multiaddr }> {
  const { proc, value } = await spawnReady('dist/test/net/fixtures/echo-peer.js', [])
  return { proc, addr: parseMultiaddr(value) }
}

describe('request/response between two processes over libp2p', { timeout: 60_000 }, () => {
  let peer: { proc: ChildProcess; addr: Multiaddr }
  let node: MeshNode
  let client: ProtocolClient<{ n: number; text: string }, { n: number; text: string }>

  before(async () => {
    peer = await startPeer()
    node = await createMeshNode()
    client = new ProtocolClient(node, TEST_ECHO)
  })
  after(async () => {
    client.close()
    await node.stop()
    await stopProcess(peer.proc)
  })

  it('answers many requests in order on one reused stream', async () => {
    for (let n = 0; n < 300; n++) {
      const res = await client.request(peer.addr, { n, text: `hello ${n}` }, { timeoutMs: 5000 })
      assert.deepEqual(res, { n, text: `HELLO ${n}` })
    }
    const streams = node.getConnections().flatMap((c) => c.streams).filter((s) => s.protocol === TEST_ECHO.id)
    assert.equal(streams.length, 1, 'one stream carried every request')
  })

  it('answers a malformed frame with an error and keeps serving', async () => {
    const notJson = await client.rawExchange(peer.addr, new TextEncoder().encode('{not json'), { timeoutMs: 5000 })
    assert.deepEqual(JSON.parse(notJson), { error: 'frame is not valid JSON' })
    const wrongShape = await client.rawExchange(peer.addr, new TextEncoder().encode('{"n":"one","text":"x"}'), { timeoutMs: 5000 })
    assert.match(JSON.parse(wrongShape).error, /^frame fails its schema: n: Expected number, received string$/)
    assert.deepEqual(await client.request(peer.addr, { n: 1, text: 'still there' }, { timeoutMs: 5000 }), { n: 1, text: 'STILL THERE' })
  })

  it('closes a stream that sends an oversized frame and keeps serving others', async () => {
    const big = new TextEncoder().encode(JSON.stringify({ n: 1, text: 'x'.repeat(TEST_ECHO.maxFrameBytes) }))
    await assert.rejects(client.rawExchange(peer.addr, big, { timeoutMs: 5000 }))
    assert.deepEqual(await client.request(peer.addr, { n: 2, text: 'after the big one' }, { timeoutMs: 5000 }), { n: 2, text: 'AFTER THE BIG ONE' })
  })

  it('carries frames up to the protocol\'s cap, past the stream\'s default 4 MiB read buffer, both ways', async () => {
    const big = new ProtocolClient(node, TEST_BIG_ECHO)
    try {
      const text = 'x'.repeat(12 * 1024 * 1024)
      const res = await big.request(peer.addr, { n: 7, text }, { timeoutMs: 20_000 })
      assert.equal(res.n, 7)
      assert.equal(res.text, text.toUpperCase())
    } finally {
      big.close()
    }
  })

  it('carries gossip both ways', async () => {
    node.services.pubsub.subscribe('bldr/test/echo')
    const heard = new Promise<string>((resolve) => {
      node.services.pubsub.addEventListener('message', (evt) => {
        if (evt.detail.topic === 'bldr/test/echo') resolve(new TextDecoder().decode(evt.detail.data))
      })
    })
    // The gossip mesh forms on a heartbeat: announce until the peer answers (a hint may be lost, by design).
    const timer = setInterval(() => void node.services.pubsub.publish('bldr/test/1', new TextEncoder().encode('load 3')).catch(() => {}), 100)
    let expire: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      expire = setTimeout(() => reject(new Error('no gossip answer within 15 s')), 15_000)
    })
    try {
      assert.equal(await Promise.race([heard, deadline]), 'echo:load 3')
    } finally {
      clearInterval(timer)
      clearTimeout(expire)
    }
  })
})
