import assert from 'node:assert/strict'
import type { Stream } from '@libp2p/interface'
import { after, before, describe, it } from 'node:test'
import { encodeFrames, encodeLength, encodeTextFrame, FrameReader, FrameTooLargeError, sendFrame } from '../../src/net/frames.js'
import { createMeshNode, type MeshNode } from '../../src/net/node.js'

const PROTOCOL = '/bldr/test-frames/1.0.0'
const CAP = 64 * 1024

/** Decode a varint the plain way, to check encodeLength against. */
function decodeLength(bytes: Uint8Array): number {
  let value = 0
  let scale = 1
  for (const b of bytes) {
    value += (b & 0x7f) * scale
    scale *= 128
    if (b < 0x80) return value
  }
  throw new Error('unterminated varint')
}

describe('length-prefixed frames on a libp2p stream', { timeout: 60_000 }, () => {
  let a: MeshNode
  let b: MeshNode
  /** Each inbound stream at b, with a reader made the moment it opens. */
  const inbound: { stream: Stream; frames: FrameReader }[] = []
  let arrived: (() => void) | undefined

  before(async () => {
    a = await createMeshNode()
    b = await createMeshNode()
    await b.handle(PROTOCOL, (stream) => {
      inbound.push({ stream, frames: new FrameReader(stream, CAP) })
      arrived?.()
    })
  })
  after(async () => {
    await a.stop()
    await b.stop()
  })

  /** A stream from a to b, and b's reader of it. */
  async function open(): Promise<{ out: Stream; frames: FrameReader; at: Stream }> {
    const seen = inbound.length
    const there = new Promise<void>((resolve) => (arrived = resolve))
    const out = await a.dialProtocol(b.getMultiaddrs()[0]!, PROTOCOL)
    // The remote stream opens with the first data frame: send nothing yet, wait for its handler.
    out.send(new Uint8Array(0))
    if (inbound.length === seen) await there
    const { stream, frames } = inbound[inbound.length - 1]!
    return { out, frames, at: stream }
  }

  it('encodes lengths as unsigned varints', () => {
    for (const n of [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_151, 2_097_152, 4 * 1024 * 1024, 2 ** 31 + 5]) {
      assert.equal(decodeLength(encodeLength(n)), n, `length ${n}`)
    }
    assert.deepEqual([...encodeLength(300)], [0xac, 0x02])
  })

  it('reads frames split at every byte, and several frames sent as one message, in order', async () => {
    const { out, frames } = await open()
    const payloads = [new TextEncoder().encode('first'), new Uint8Array(300).map((_, i) => i & 0xff), new Uint8Array(0), new TextEncoder().encode('last')]
    // The first two frames one byte per message: the 2-byte length of the 300-byte frame is split too.
    for (const p of payloads.slice(0, 2)) for (const byte of encodeFrames([p])) out.send(Uint8Array.of(byte))
    // The last two in one message.
    const tail = [...encodeFrames([payloads[2]!]), ...encodeFrames([payloads[3]!])]
    out.send(Uint8Array.from(tail))
    for (const p of payloads) assert.deepEqual(Buffer.from(await frames.read(5000)), Buffer.from(p))
    out.abort(new Error('done'))
  })

  it('rejects a frame over the cap and closes the stream', async () => {
    const { out, frames, at } = await open()
    const closed = new Promise<void>((resolve) => out.addEventListener('close', () => resolve(), { once: true }))
    out.send(encodeLength(CAP + 1))
    await assert.rejects(frames.read(5000), FrameTooLargeError)
    await closed
    assert.notEqual(at.status, 'open')
  })

  it('times a read out, and reads the next frame after it', async () => {
    const { out, frames } = await open()
    await assert.rejects(frames.read(50), { name: 'TimeoutError' })
    await sendFrame(out, new TextEncoder().encode('late'))
    assert.equal(new TextDecoder().decode(await frames.read(5000)), 'late')
    out.abort(new Error('done'))
  })

  it('gives frames that arrived before the peer closed, then ends', async () => {
    const { out, frames } = await open()
    await sendFrame(out, new TextEncoder().encode('one'))
    await sendFrame(out, new TextEncoder().encode('two'))
    await out.close()
    assert.equal(new TextDecoder().decode(await frames.read(5000)), 'one')
    assert.equal(new TextDecoder().decode(await frames.read(5000)), 'two')
    await assert.rejects(frames.read(5000), { name: 'StreamEndedError' })
  })

  it('holds a fast sender back while its reader is behind, and reads everything it sent before closing', async () => {
    const { out, at } = await open()
    // A second reader on the same stream would see the data too: this one replaces the handler's (no reads on that).
    const frames = new FrameReader(at, CAP, { pauseAbove: 256 * 1024, resumeBelow: 64 * 1024 })
    const chunk = new Uint8Array(32 * 1024)
    const count = 128 // 4 MiB
    const sent = (async () => {
      for (let i = 0; i < count; i++) {
        chunk[0] = i & 0xff
        await sendFrame(out, chunk)
      }
      await out.close()
    })()
    let pausedSeen = false
    for (let i = 0; i < count; i++) {
      const f = await frames.read(10_000)
      assert.equal(f.byteLength, chunk.byteLength)
      assert.equal(f[0], i & 0xff, `frame ${i} in order`)
      if (at.readStatus === 'paused') pausedSeen = true
      // A reader slower than the network: a turn of the event loop per frame.
      await new Promise((resolve) => setImmediate(resolve))
    }
    await sent
    await assert.rejects(frames.read(10_000), { name: 'StreamEndedError' })
    assert.ok(pausedSeen, 'the stream was paused while the reader was behind')
  })

  it('fails a waiting read when the peer resets the stream', async () => {
    const { out, frames } = await open()
    const pending = frames.read(5000)
    out.abort(new Error('gone'))
    await assert.rejects(pending, { name: 'StreamEndedError' })
  })
})

describe('a text frame encoded in one buffer', () => {
  it('is the UTF-8 bytes with their varint length in front, as encodeFrames makes them', () => {
    for (const text of ['', 'a', 'x'.repeat(127), 'x'.repeat(128), 'é'.repeat(100), '{"k":"✓ 🚀"}', 'y'.repeat(20_000)]) {
      const { frame, payloadBytes } = encodeTextFrame(text, CAP)
      const utf8 = new TextEncoder().encode(text)
      assert.equal(payloadBytes, utf8.byteLength)
      assert.deepEqual(new Uint8Array(frame), encodeFrames([utf8]), `${text.length} characters`)
    }
  })

  it('over the cap says how many bytes the payload has and encodes nothing', () => {
    const { frame, payloadBytes } = encodeTextFrame('é'.repeat(40), 79)
    assert.equal(payloadBytes, 80)
    assert.equal(frame.byteLength, 0)
  })
})
