/**
 * Length-prefixed frames (an unsigned varint length, then that many bytes) on
 * a libp2p stream, read as the stream's messages arrive.
 *
 * @libp2p/utils' `lpStream` does the same through a general byte reader: the
 * length is read one byte per `read`, each read a promise and, with a timeout,
 * an AbortSignal raced against it. On the mesh's small request/response calls
 * (steal, start, result), that machinery was a large share of a request's
 * JavaScript on each side (a CPU profile of bench/live-mesh's bare request:
 * ~60 µs of ~300 µs per request in the client, on the 2-core VM). Here a
 * message is parsed where it is delivered and a whole frame resolves the one
 * waiting read; a timeout is one timer.
 */
import type { Stream } from '@libp2p/interface'

/** The stream ended (or was reset) before a whole frame arrived. */
export class StreamEndedError extends Error {
  override readonly name = 'StreamEndedError'
}

/** A frame's length is over the reader's cap: the stream's framing is lost. */
export class FrameTooLargeError extends Error {
  override readonly name = 'FrameTooLargeError'
}

/** No frame within the time asked for. */
export class FrameTimeoutError extends Error {
  override readonly name = 'TimeoutError'
}

/** Longest varint a length may take (2^35 bytes: far over any cap). */
const MAX_LENGTH_BYTES = 5

/** The varint encoding of `n`. */
export function encodeLength(n: number): Uint8Array {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
  return Uint8Array.from(out)
}

/** Each payload with its length in front, all in one buffer (sent in one message). */
export function encodeFrames(payloads: readonly Uint8Array[]): Uint8Array {
  const heads = payloads.map((p) => encodeLength(p.byteLength))
  const out = new Uint8Array(payloads.reduce((n, p, i) => n + heads[i]!.byteLength + p.byteLength, 0))
  let at = 0
  payloads.forEach((p, i) => {
    out.set(heads[i]!, at)
    at += heads[i]!.byteLength
    out.set(p, at)
    at += p.byteLength
  })
  return out
}

/** A reader's receive-side flow control: how far behind it may fall before the stream is paused. */
export interface FlowControl {
  /** Pause the stream while more than this many bytes are received and not yet read. */
  pauseAbove: number
  /** Resume it once fewer than this many are. */
  resumeBelow: number
}

/**
 * The frames arriving on one stream, read one at a time. Data that arrives
 * with no read waiting is kept (messages keep coming: a peer's frames are not
 * held back, unless `flow` pauses the stream), as a byte reader's buffer would.
 */
export class FrameReader {
  private chunks: Uint8Array[] = []
  private buffered = 0
  /** Bytes of whole frames waiting for a read. */
  private queuedBytes = 0
  /** Length of the frame being received, once its header is in. */
  private want = -1
  private readonly frames: Uint8Array[] = []
  private waiter: { resolve: (frame: Uint8Array) => void; reject: (err: Error) => void; timer?: NodeJS.Timeout } | undefined
  private failure: Error | undefined
  /** The peer closed its end: reads fail once nothing more is held (a paused stream still holds data). */
  private ended: Error | undefined

  constructor(
    private readonly stream: Stream,
    private readonly maxFrameBytes: number,
    private readonly flow?: FlowControl,
  ) {
    stream.addEventListener('message', (evt) => this.onData(evt.data))
    stream.addEventListener('close', (evt) => {
      if (evt.error) this.fail(new StreamEndedError(`stream closed: ${evt.error.message}`, { cause: evt.error }))
      else this.end(new StreamEndedError('stream closed'))
    })
    stream.addEventListener('remoteCloseWrite', () => this.end(new StreamEndedError('the peer closed its end of the stream')))
  }

  /** The next frame. Rejects when the stream ends first, when a frame is over the cap, or after `timeoutMs`. */
  read(timeoutMs?: number): Promise<Uint8Array> {
    const ready = this.frames.shift()
    if (ready) {
      this.queuedBytes -= ready.byteLength
      this.resumeIfCaughtUp()
      return Promise.resolve(ready)
    }
    if (this.failure) return Promise.reject(this.failure)
    if (this.waiter) return Promise.reject(new Error('FrameReader: one read at a time'))
    const waiting = new Promise<Uint8Array>((resolve, reject) => {
      const waiter: NonNullable<FrameReader['waiter']> = { resolve, reject }
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          if (this.waiter === waiter) this.takeWaiter()?.reject(new FrameTimeoutError(`no frame within ${timeoutMs} ms`))
        }, timeoutMs)
      }
      this.waiter = waiter
    })
    this.settleEnded()
    return waiting
  }

  private onData(data: Uint8Array | { subarray(): Uint8Array }): void {
    if (this.failure) return
    const bytes = data instanceof Uint8Array ? data : data.subarray()
    if (bytes.byteLength === 0) return
    this.chunks.push(bytes)
    this.buffered += bytes.byteLength
    try {
      this.parse()
    } catch (err) {
      this.fail(err as Error)
      // The framing is gone: nothing more on this stream can be read.
      this.stream.abort(err as Error)
      return
    }
    // After the dispatch, not in it: resume() dispatches what was held and then
    // tells the muxer to resume, which would undo a pause made inside that dispatch.
    if (this.flow && this.unread > this.flow.pauseAbove) queueMicrotask(() => this.pauseIfBehind())
    if (this.ended) this.settleEnded()
  }

  /** Bytes received and not yet read. */
  private get unread(): number {
    return this.buffered + this.queuedBytes
  }

  private pauseIfBehind(): void {
    if (this.flow && this.unread > this.flow.pauseAbove && this.stream.readStatus === 'readable') this.stream.pause()
  }

  private resumeIfCaughtUp(): void {
    if (this.flow && this.unread < this.flow.resumeBelow && this.stream.readStatus === 'paused') this.stream.resume()
  }

  /** Take every whole frame out of the buffered chunks. */
  private parse(): void {
    for (;;) {
      if (this.want < 0 && !this.readHeader()) return
      if (this.buffered < this.want) return
      const frame = this.take(this.want)
      this.want = -1
      this.deliver(frame)
    }
  }

  /** Read a frame's length off the front of the buffer; false while it is incomplete. */
  private readHeader(): boolean {
    let value = 0
    let scale = 1
    let i = 0
    for (const chunk of this.chunks) {
      for (let j = 0; j < chunk.byteLength; j++, i++) {
        if (i >= MAX_LENGTH_BYTES) throw new FrameTooLargeError(`a frame length over ${MAX_LENGTH_BYTES} bytes (the cap is ${this.maxFrameBytes} bytes)`)
        const b = chunk[j]!
        value += (b & 0x7f) * scale
        scale *= 128
        if (b < 0x80) {
          if (value > this.maxFrameBytes) throw new FrameTooLargeError(`a frame of ${value} bytes is over the ${this.maxFrameBytes}-byte cap`)
          this.take(i + 1)
          this.want = value
          return true
        }
      }
    }
    return false
  }

  /** Remove and return the first `n` buffered bytes (no copy when one chunk holds them). */
  private take(n: number): Uint8Array {
    this.buffered -= n
    const first = this.chunks[0]
    if (n === 0) return new Uint8Array(0)
    if (first && first.byteLength >= n) {
      if (first.byteLength === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
      return first.subarray(0, n)
    }
    const out = new Uint8Array(n)
    let at = 0
    while (at < n) {
      const chunk = this.chunks[0]!
      const part = Math.min(chunk.byteLength, n - at)
      out.set(chunk.subarray(0, part), at)
      at += part
      if (part === chunk.byteLength) this.chunks.shift()
      else this.chunks[0] = chunk.subarray(part)
    }
    return out
  }

  /** The waiting read, no longer waiting (its timer cleared), if there is one. */
  private takeWaiter(): FrameReader['waiter'] {
    const w = this.waiter
    this.waiter = undefined
    if (w?.timer) clearTimeout(w.timer)
    return w
  }

  private deliver(frame: Uint8Array): void {
    const w = this.takeWaiter()
    if (w) return w.resolve(frame)
    this.frames.push(frame)
    this.queuedBytes += frame.byteLength
  }

  /** The peer will send nothing more. */
  private end(err: Error): void {
    this.ended ??= err
    this.settleEnded()
  }

  /** After the peer's end, a waiting read gets what the stream still holds, or fails when nothing is left. */
  private settleEnded(): void {
    if (!this.ended || !this.waiter) return
    // resume() hands on what a paused stream held, which may settle the read.
    if (this.stream.readStatus === 'paused') this.stream.resume()
    if (!this.waiter || this.stream.readBufferLength > 0) return
    this.takeWaiter()?.reject(this.ended)
  }

  private fail(err: Error): void {
    if (this.failure) return
    this.failure = err
    this.takeWaiter()?.reject(err)
  }
}

/** Send one frame; waits for the stream to drain when its buffer is full. */
export function sendFrame(stream: Stream, payload: Uint8Array): Promise<void> {
  return sendFrames(stream, [payload])
}

/** Send several frames in one message (one yamux frame and encryption while they fit); waits for the stream to drain when its buffer is full. */
export function sendFrames(stream: Stream, payloads: readonly Uint8Array[]): Promise<void> {
  return sendFramed(stream, encodeFrames(payloads))
}

/** One frame of `text` as UTF-8, its length in front, in one buffer; the payload's byte length is checked against `max` first. */
export function encodeTextFrame(text: string, max: number): { frame: Uint8Array; payloadBytes: number } {
  const n = Buffer.byteLength(text)
  if (n > max) return { frame: new Uint8Array(0), payloadBytes: n }
  const head = encodeLength(n)
  const frame = Buffer.allocUnsafe(head.byteLength + n)
  frame.set(head, 0)
  frame.write(text, head.byteLength, 'utf8')
  return { frame, payloadBytes: n }
}

/** Send bytes that are already framed (see `encodeFrames`, `encodeTextFrame`); waits for the stream to drain when its buffer is full. */
export async function sendFramed(stream: Stream, framed: Uint8Array): Promise<void> {
  if (stream.send(framed)) return
  await new Promise<void>((resolve, reject) => {
    const onDrain = (): void => {
      stream.removeEventListener('close', onClose)
      resolve()
    }
    const onClose = (): void => {
      stream.removeEventListener('drain', onDrain)
      reject(new StreamEndedError('stream closed while waiting to send'))
    }
    stream.addEventListener('drain', onDrain, { once: true })
    stream.addEventListener('close', onClose, { once: true })
  })
}
