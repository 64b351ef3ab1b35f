import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { installCheapShortReads, zeroOnEmpty } from '../../src/net/short-reads.js'

/** Noise's frame length: 2 bytes, big-endian (a RangeError when fewer). */
function uint16BE(data: Uint8Array | { byteLength: number; subarray(): Uint8Array }): number {
  if (data.byteLength < 2) throw new RangeError('Could not decode int16BE')
  const b = data instanceof Uint8Array ? data : data.subarray()
  return (b[0]! << 8) | b[1]!
}

function noiseFrame(payload: number[]): number[] {
  return [payload.length >> 8, payload.length & 0xff, ...payload]
}

/** Every frame `chunks` decode to, as arrays of bytes. */
function decodeAll(decoder: LengthPrefixedDecoder, chunks: number[][]): number[][] {
  const out: number[][] = []
  for (const c of chunks) for (const f of decoder.decode(Uint8Array.from(c))) out.push([...f.subarray()])
  return out
}

describe('length reads from an empty buffer', () => {
  it('answer 0 instead of throwing; anything else goes to the decoder', () => {
    let calls = 0
    const d = zeroOnEmpty((data) => {
      calls++
      return data.byteLength * 10
    })
    assert.equal(d({ byteLength: 0 }), 0)
    assert.equal(calls, 0)
    assert.equal(d({ byteLength: 3 }), 30)
    assert.equal(calls, 1)
  })

  it('leave the decoder\'s frames as they were: whole, split (also inside a length), several per chunk', () => {
    installCheapShortReads()
    installCheapShortReads()
    const a = [1, 2, 3]
    const b = Array.from({ length: 300 }, (_, i) => i & 0xff)
    const c = [9]
    const bytes = [...noiseFrame(a), ...noiseFrame(b), ...noiseFrame(c)]
    const expected = [a, b, c]
    // Every way of cutting the bytes in two, and one byte per chunk.
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new LengthPrefixedDecoder({ lengthDecoder: uint16BE, encodingLength: () => 2 })
      assert.deepEqual(decodeAll(decoder, [bytes.slice(0, cut), bytes.slice(cut)]), expected, `cut at ${cut}`)
    }
    const byByte = new LengthPrefixedDecoder({ lengthDecoder: uint16BE, encodingLength: () => 2 })
    assert.deepEqual(decodeAll(byByte, bytes.map((x) => [x])), expected)
    // The default varint lengths as well.
    const varint = new LengthPrefixedDecoder()
    assert.deepEqual(decodeAll(varint, [[3, 1, 2], [3, 2, 7], [8]]), [[1, 2, 3], [7, 8]])
  })

  it('reach no length decoder after the last whole frame of a chunk', () => {
    installCheapShortReads()
    let emptyReads = 0
    const decoder = new LengthPrefixedDecoder({
      lengthDecoder: (data) => {
        if (data.byteLength === 0) emptyReads++
        return uint16BE(data as { byteLength: number; subarray(): Uint8Array })
      },
      encodingLength: () => 2,
    })
    assert.deepEqual(decodeAll(decoder, [[...noiseFrame([5]), ...noiseFrame([6])]]), [[5], [6]])
    assert.equal(emptyReads, 0)
  })

  it('leave alone a decoder for which a zero length takes no bytes (a 0 could make it loop)', () => {
    installCheapShortReads()
    let emptyReads = 0
    const decoder = new LengthPrefixedDecoder({
      lengthDecoder: (data) => {
        if (data.byteLength === 0) {
          emptyReads++
          throw new RangeError('empty')
        }
        return (data as { subarray(): Uint8Array }).subarray()[0]!
      },
      encodingLength: (n) => (n === 0 ? 0 : 1),
    })
    assert.deepEqual(decodeAll(decoder, [[2, 7, 8]]), [[7, 8]])
    assert.equal(emptyReads, 1, 'the library\'s own read, throw and all')
  })
})
