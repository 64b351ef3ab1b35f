/**
 * No Error thrown for every message a connection receives.
 *
 * Noise reads its frames with @libp2p/utils' LengthPrefixedDecoder. After the
 * decoder has taken every whole frame out of a chunk it asks for one more
 * length, and the length decoder says "not enough bytes" by throwing a new
 * RangeError, which the decoder catches. So every TCP read of every connection
 * built an Error with its stack trace (~10-15 µs on the 2-core VM) on both
 * ends of each request: per-stage timestamps of a bare request put ~35 µs of a
 * response's handling after the frame was delivered, in unwinding past that
 * throw; a pre-made error still cost ~20 µs per read to throw and catch there.
 *
 * The rule here: a length read from an empty buffer answers 0. The decoder
 * then needs `encodingLength(0)` bytes (at least 1) for a frame, has none, and
 * waits for more data, as it does after the throw. A decoder whose
 * `encodingLength(0)` is not at least 1 is left alone (a 0 could make it loop).
 * Lengths split across chunks (a non-empty buffer too short for its length)
 * still go to the library's decoder unchanged.
 */
import { LengthPrefixedDecoder } from '@libp2p/utils'

type LengthDecoder = (data: { byteLength: number }) => number

/** The fields used here, private in the library's types. */
interface DecoderFields {
  lengthDecoder: LengthDecoder
  encodingLength: (length: number) => number
}

/** `decode` answering 0 for an empty buffer instead of throwing. */
export function zeroOnEmpty(decode: LengthDecoder): LengthDecoder {
  return (data) => (data.byteLength === 0 ? 0 : decode(data))
}

const seen = new WeakSet<object>()
let installed = false

/** Install the rule on LengthPrefixedDecoder (once per process; every mesh node does it before it starts). */
export function installCheapShortReads(): void {
  if (installed) return
  const proto = LengthPrefixedDecoder.prototype as unknown as { decode: (this: DecoderFields, buf: unknown) => Generator<unknown> }
  const original = proto.decode
  if (typeof original !== 'function') throw new Error('@libp2p/utils: LengthPrefixedDecoder has no decode (a changed version?); see src/net/short-reads.ts')
  proto.decode = function (this: DecoderFields, buf: unknown) {
    if (!seen.has(this)) {
      seen.add(this)
      if (typeof this.lengthDecoder === 'function' && typeof this.encodingLength === 'function' && this.encodingLength(0) >= 1) this.lengthDecoder = zeroOnEmpty(this.lengthDecoder)
    }
    return original.call(this, buf)
  }
  installed = true
}
