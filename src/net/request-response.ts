/**
 * Request/response over a reused libp2p stream, the shape of the direct
 * protocols (`/bldr/steal/1.0.0`, `/bldr/result/1.0.0`, …).
 *
 * Frames are length-prefixed (varint) UTF-8 JSON, capped at `maxFrameBytes`
 * and checked against a schema on decode. A request that is not valid JSON or
 * fails its schema gets an error response and the stream goes on; a frame over
 * the cap leaves the stream's framing unknown, so that stream is closed. Either
 * way the node stays up and keeps serving other streams (DESIGN.md, invariant 6).
 */
import type { PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { z } from 'zod'
import { encodeTextFrame, FrameReader, FrameTimeoutError, FrameTooLargeError, sendFrame, sendFramed } from './frames.js'
import type { MeshNode } from './node.js'

export interface ProtocolSpec<Req, Res> {
  /** Versioned protocol id, e.g. `/bldr/steal/1.0.0`. */
  id: string
  /** Largest frame accepted or sent, in bytes. */
  maxFrameBytes: number
  request: z.ZodType<Req, z.ZodTypeDef, unknown>
  response: z.ZodType<Res, z.ZodTypeDef, unknown>
}

/** What a server answers when a request frame is bad. */
export interface ErrorResponse {
  error: string
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError'
}

const errorResponseSchema = z.object({ error: z.string() })

const decoder = new TextDecoder()

/** `value` as a JSON frame, its length in front, ready to send. */
function encodeFrame(value: unknown, max: number, protocol: string): Uint8Array {
  const { frame, payloadBytes } = encodeTextFrame(JSON.stringify(value), max)
  if (payloadBytes > max) throw new ProtocolError(`${protocol}: frame of ${payloadBytes} bytes is over the ${max}-byte cap`)
  return frame
}

type Decoded<T> = { ok: true; value: T } | { ok: false; error: string }

function decodeFrame<T>(bytes: Uint8Array, schema: z.ZodType<T, z.ZodTypeDef, unknown>): Decoded<T> {
  let json: unknown
  try {
    json = JSON.parse(decoder.decode(bytes))
  } catch {
    return { ok: false, error: 'frame is not valid JSON' }
  }
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    const first = parsed.error.issues[0]
    return { ok: false, error: `frame fails its schema: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : 'invalid'}` }
  }
  return { ok: true, value: parsed.data }
}

/** Serve a protocol: `handler` answers each request on every inbound stream. */
export async function serveProtocol<Req, Res>(
  node: MeshNode,
  spec: ProtocolSpec<Req, Res>,
  handler: (req: Req, from: string) => Promise<Res> | Res,
  log?: Logger,
): Promise<void> {
  await node.handle(spec.id, async (stream, connection) => {
    const from = connection.remotePeer.toString()
    const frames = new FrameReader(stream, spec.maxFrameBytes)
    for (;;) {
      let frame: Uint8Array
      try {
        frame = await frames.read()
      } catch (err) {
        // End of stream, or a frame over the cap (the reader has closed the stream): this stream's framing is gone.
        if (err instanceof FrameTooLargeError) log?.warn({ err, protocol: spec.id, from }, 'bad frame; closing the stream')
        return
      }
      const req = decodeFrame(frame, spec.request)
      let reply: Res | ErrorResponse
      if (!req.ok) {
        log?.warn({ protocol: spec.id, from, error: req.error }, 'rejected a request')
        reply = { error: req.error }
      } else {
        try {
          reply = await handler(req.value, from)
        } catch (err) {
          log?.error({ err, protocol: spec.id, from }, 'request handler failed')
          reply = { error: `handler failed: ${(err as Error).message}` }
        }
      }
      try {
        await sendFramed(stream, encodeFrame(reply, spec.maxFrameBytes, spec.id))
      } catch (err) {
        // A peer that gave up waiting (its timeout) closes its stream: routine, not a fault here.
        if (isEndOfStream(err)) log?.debug({ err, protocol: spec.id, from }, 'the peer closed the stream before the response')
        else log?.warn({ err, protocol: spec.id, from }, 'could not send a response; closing the stream')
        stream.abort(err as Error)
        return
      }
    }
  })
}

function isEndOfStream(err: unknown): boolean {
  const name = (err as Error)?.name
  return name === 'StreamEndedError' || name === 'StreamResetError' || name === 'StreamClosedError' || name === 'StreamStateError'
}

/**
 * The client side: one stream per peer, reused for every request, requests
 * sent one at a time in order. A failed stream is dropped and the next request
 * opens a new one.
 */
export class ProtocolClient<Req, Res> {
  private readonly streams = new Map<string, { stream: Stream; frames: FrameReader; busy: Promise<unknown> }>()

  constructor(
    private readonly node: MeshNode,
    private readonly spec: ProtocolSpec<Req, Res>,
  ) {}

  /** Send one request and wait for its response, at most `timeoutMs`. A peer's `{ error }` reply is thrown as a ProtocolError. */
  async request(peer: Multiaddr | PeerId, req: Req, opts: { timeoutMs: number }): Promise<Res> {
    const key = peer.toString()
    let entry = this.streams.get(key)
    if (!entry) {
      const stream = await this.node.dialProtocol(peer, this.spec.id, { signal: AbortSignal.timeout(opts.timeoutMs) })
      entry = { stream, frames: new FrameReader(stream, this.spec.maxFrameBytes), busy: Promise.resolve() }
      this.streams.set(key, entry)
    }
    const e = entry
    const run = e.busy.then(async () => {
      // One timer for the whole exchange: on expiry the stream is closed, which ends a wait to send as well as the read.
      const timer = setTimeout(() => e.stream.abort(new FrameTimeoutError(`${this.spec.id}: no answer from ${key} within ${opts.timeoutMs} ms`)), opts.timeoutMs)
      try {
        await sendFramed(e.stream, encodeFrame(req, this.spec.maxFrameBytes, this.spec.id))
        const bytes = await e.frames.read()
        const res = decodeFrame(bytes, this.spec.response)
        if (res.ok) return res.value
        const refusal = decodeFrame(bytes, errorResponseSchema)
        if (refusal.ok) throw new ProtocolError(`${this.spec.id}: ${key} answered: ${refusal.value.error}`)
        throw new ProtocolError(`${this.spec.id}: bad response from ${key}: ${res.error}`)
      } catch (err) {
        // An error reply leaves the stream in step; anything else (timeout, reset, bad frame) does not.
        if (!(err instanceof ProtocolError && /answered:/.test(err.message))) {
          this.streams.delete(key)
          e.stream.abort(err as Error)
        }
        throw err
      } finally {
        clearTimeout(timer)
      }
    })
    e.busy = run.catch(() => {})
    return run
  }

  /** Send raw bytes as one frame on a fresh stream and read one reply (tests of bad input use this). */
  async rawExchange(peer: Multiaddr, frame: Uint8Array, opts: { timeoutMs: number }): Promise<string> {
    const stream = await this.node.dialProtocol(peer, this.spec.id, { signal: AbortSignal.timeout(opts.timeoutMs) })
    const frames = new FrameReader(stream, Math.max(this.spec.maxFrameBytes, frame.byteLength) + 16)
    try {
      await sendFrame(stream, frame)
      return decoder.decode(await frames.read(opts.timeoutMs))
    } finally {
      stream.abort(new Error('done'))
    }
  }

  close(): void {
    for (const e of this.streams.values()) e.stream.abort(new Error('client closed'))
    this.streams.clear()
  }
}

export interface RetryOptions {
  /** Per attempt. */
  timeoutMs: number
  attempts: number
  /** Wait before the second attempt, doubling after each. */
  backoffMs: number
  /** Told of each failed attempt that will be retried. */
  onRetry?: (err: unknown, attempt: number) => void
}

/**
 * A request whose answer must be of type `expect`, retried on timeouts and
 * broken streams, never on an error answer or an answer of another type. Only
 * for requests that are safe to repeat (idempotent).
 */
export async function requestExpecting<Req extends { type: string }, Res extends { type: string }, K extends Res['type']>(
  client: ProtocolClient<Req, Res>,
  peer: Multiaddr | PeerId,
  req: Req,
  expect: K,
  opts: RetryOptions,
): Promise<Extract<Res, { type: K }>> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await client.request(peer, req, { timeoutMs: opts.timeoutMs })
      if (res.type !== expect) throw new ProtocolError(`${peer.toString()} answered ${res.type} to ${req.type}`)
      return res as Extract<Res, { type: K }>
    } catch (err) {
      if (err instanceof ProtocolError || attempt >= opts.attempts) throw err
      opts.onRetry?.(err, attempt)
      await new Promise((resolve) => setTimeout(resolve, opts.backoffMs * 2 ** (attempt - 1)))
    }
  }
}
