/**
 * `/bldr/cas/1.0.0`: blobs by BLAKE3 digest between peers that share no disk.
 *
 * One operation per stream. The first frame is a JSON request, size-capped and
 * schema-checked:
 *   has  { op: 'has', digests }       → { have: [...] }
 *   get  { op: 'get', digest }        → { found: true, size } then the bytes in
 *                                       chunk frames, then an empty frame;
 *                                       or { found: false, reason }
 *   getMany { op: 'getMany', digests } → for each digest in order, what `get`
 *                                       answers: the blobs an action lacks
 *                                       come over one stream, not one each
 *   putMany { op: 'putMany', blobs: [{ digest, size }] } → { want: [...] }
 *                                       (those it lacks and accepts), then the
 *                                       wanted blobs in that order, each as
 *                                       chunk frames and an empty frame →
 *                                       { stored: [...], refused: [{ digest, error }] }
 * The receiver of bytes always hashes them and keeps them only if they match
 * the digest asked for (DESIGN.md, invariant 3); a mismatch names both digests.
 * A server checks a blob before serving it and drops it if it is corrupt, so it
 * is fetched from another holder or rebuilt, never passed on.
 */
import type { PeerId, Stream } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import { z } from 'zod'
import { digestSchema } from '../cas/digest-schema.js'
import type { Digest } from '../cas/hasher.js'
import type { BlobRef, CasStore } from '../cas/store.js'
import { BlobNotFoundError, DigestMismatchError } from '../errors.js'
import { FrameReader, sendFrame, sendFrames } from './frames.js'
import type { MeshNode } from './node.js'
import { ProtocolError } from './request-response.js'

export const CAS_PROTOCOL_ID = '/bldr/cas/1.0.0'
const CHUNK_BYTES = 64 * 1024
/** Largest frame: a chunk, or a request/answer (a has-list of 512 digests fits). */
const MAX_FRAME_BYTES = CHUNK_BYTES + 1024
/** Most blobs one getMany asks for, or one putMany offers. */
export const MAX_BLOBS_PER_STREAM = 512
/** Default largest blob accepted. */
export const DEFAULT_MAX_BLOB_BYTES = 4 * 1024 * 1024 * 1024

const digest = digestSchema
const requestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('has'), digests: z.array(digest).max(512) }).strict(),
  z.object({ op: z.literal('get'), digest }).strict(),
  z.object({ op: z.literal('getMany'), digests: z.array(digest).min(1).max(MAX_BLOBS_PER_STREAM) }).strict(),
  z.object({ op: z.literal('putMany'), blobs: z.array(z.object({ digest, size: z.number().int().nonnegative() }).strict()).min(1).max(MAX_BLOBS_PER_STREAM) }).strict(),
])
const hasAnswer = z.object({ have: z.array(digest) })
const getAnswer = z.union([z.object({ found: z.literal(true), size: z.number().int().nonnegative() }), z.object({ found: z.literal(false), reason: z.string() })])
const wantAnswer = z.union([z.object({ want: z.array(digest) }), z.object({ error: z.string() })])
const putManyAnswer = z.object({ stored: z.array(digest), refused: z.array(z.object({ digest, error: z.string() })) })

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const json = (v: unknown): Uint8Array => encoder.encode(JSON.stringify(v))

function parse<T>(bytes: Uint8Array, schema: z.ZodType<T>, what: string): T {
  let value: unknown
  try {
    value = JSON.parse(decoder.decode(bytes))
  } catch {
    throw new ProtocolError(`${CAS_PROTOCOL_ID}: ${what} is not valid JSON`)
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    const i = parsed.error.issues[0]
    throw new ProtocolError(`${CAS_PROTOCOL_ID}: ${what} fails its schema: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'}`)
  }
  return parsed.data
}

/**
 * Receive-side flow control. A libp2p 3 stream hands on data as it arrives,
 * and yamux grants the sender more window as data arrives, not as it is read:
 * a receiver slower than the network (its disk) piles the blob up in the
 * reader's buffer, which is aborted past 4 MiB ("Read buffer overflow"). So
 * the stream is paused while more than PAUSE_ABOVE bytes are unread, which
 * stops yamux's window updates until it is resumed below RESUME_BELOW. While
 * paused, at most the stream's window arrives (capped at 2 MiB in node.ts), so
 * the buffers stay under 4 MiB: a 24 MiB fetch into a store taking 2 ms per
 * chunk peaks at ~2.3 MiB unread (test/net/cas.test.ts).
 */
const PAUSE_ABOVE = 1024 * 1024
const RESUME_BELOW = 256 * 1024

/** A CAS stream's frames: read with a timeout each, flow-controlled (above), and written one or several at a time. */
interface CasFrames {
  read(timeoutMs: number): Promise<Uint8Array>
  write(frame: Uint8Array): Promise<void>
  writeV(frames: readonly Uint8Array[]): Promise<void>
}

/** The frames of a CAS stream. Made when the stream opens, so every byte is counted. */
function flowControlled(stream: Stream): CasFrames {
  const reader = new FrameReader(stream, MAX_FRAME_BYTES, { pauseAbove: PAUSE_ABOVE, resumeBelow: RESUME_BELOW })
  return {
    read: (timeoutMs) => reader.read(timeoutMs),
    write: (frame) => sendFrame(stream, frame),
    writeV: (frames) => sendFrames(stream, frames),
  }
}

/** Chunk frames until the empty end frame. */
async function* chunksOf(lp: CasFrames, timeoutMs: number): AsyncGenerator<Uint8Array> {
  for (;;) {
    const frame = await lp.read(timeoutMs)
    if (frame.byteLength === 0) return
    yield frame
  }
}

/**
 * Fault injection (tests and benchmarks): every `every`-th non-empty blob this
 * node sends, served or pushed, has one byte flipped on the wire (the stored
 * blob is untouched). Shared by a node's server and client.
 */
export interface WireCorruption {
  every: number
  sent: number
}

/**
 * The frames that send a blob of at most the store's small size (read whole):
 * its chunks and the end frame, the first chunk corrupted when `fault` says
 * so; null for a larger blob, which is streamed. Thrown: the store's
 * BlobNotFoundError or DigestMismatchError (the blob is removed).
 */
function smallBlobFrames(cas: CasStore, d: Digest, fault: WireCorruption | undefined): Uint8Array[] | null {
  const bytes = cas.smallBlob(d)
  return bytes === undefined ? null : bytesFrames(bytes, fault)
}

/** A blob's bytes as chunk frames and the end frame. */
function bytesFrames(bytes: Uint8Array, fault: WireCorruption | undefined): Uint8Array[] {
  const frames: Uint8Array[] = []
  for (let at = 0; at < bytes.byteLength; at += CHUNK_BYTES) frames.push(bytes.subarray(at, at + CHUNK_BYTES))
  if (frames[0]) frames[0] = corruptFirst(frames[0], fault)
  frames.push(new Uint8Array(0))
  return frames
}

/** Blobs a server has outside its store (a mesh client's sources, src/build/served-sources.ts): verified bytes, or undefined. */
export interface ExtraBlobs {
  has(d: Digest): boolean
  bytesOf(d: Digest): Uint8Array | undefined
}

/**
 * Frames of small blobs gathered and written together, up to BATCH_BYTES: a
 * 200-file build sends ~1,000 blobs of a few KiB, and each write of a frame
 * costs an encryption and a yamux frame of its own.
 */
class FrameBatch {
  private frames: Uint8Array[] = []
  private bytes = 0
  constructor(private readonly lp: CasFrames) {}
  async add(frames: readonly Uint8Array[]): Promise<void> {
    for (const f of frames) {
      this.frames.push(f)
      this.bytes += f.byteLength
    }
    if (this.bytes >= BATCH_BYTES) await this.flush()
  }
  async flush(): Promise<void> {
    if (this.frames.length === 0) return
    const frames = this.frames
    this.frames = []
    this.bytes = 0
    await this.lp.writeV(frames)
  }
}

/** Bytes of small-blob frames written at once (FrameBatch). */
const BATCH_BYTES = 256 * 1024

/** The chunks of a blob as sent: the first one with a byte flipped when `fault` says this blob is to be corrupted. */
async function* sending(chunks: AsyncIterable<Uint8Array>, fault: WireCorruption | undefined): AsyncGenerator<Uint8Array> {
  let first = true
  for await (const chunk of chunks) {
    yield first ? corruptFirst(chunk, fault) : chunk
    first = false
  }
}

/** A blob's first chunk as sent: a copy with a byte flipped when `fault` says this (non-empty) blob is to be corrupted. */
function corruptFirst(chunk: Uint8Array, fault: WireCorruption | undefined): Uint8Array {
  if (!fault || fault.every <= 0 || chunk.byteLength === 0 || ++fault.sent % fault.every !== 0) return chunk
  const bad = Uint8Array.from(chunk)
  bad[0] = bad[0]! ^ 0xff
  return bad
}

export interface CasServerOptions {
  /** Fault injection: corrupt some blobs sent. */
  corruptSent?: WireCorruption
  maxBlobBytes?: number
  /** Longest wait for the next frame of a put. */
  frameTimeoutMs?: number
  /** Blobs served beside the store's (a mesh client's sources). */
  extra?: ExtraBlobs
  log?: Logger
}

/** What a CAS server serves: a store, and blobs beside it. */
export interface CasSource {
  cas: CasStore
  extra?: ExtraBlobs
}

/** Serve this node's CAS to its peers. */
export async function serveCas(node: MeshNode, cas: CasStore, opts: CasServerOptions = {}): Promise<void> {
  const source: CasSource = { cas, ...(opts.extra ? { extra: opts.extra } : {}) }
  await serveCasFrom(node, () => source, opts)
}

/**
 * Serve, on each stream, what `source` gives when it opens: a node kept between
 * builds serves the build open on it (src/net/build-client.ts); none open, a
 * request is answered with an error.
 */
export async function serveCasFrom(node: MeshNode, source: () => CasSource | undefined, opts: Omit<CasServerOptions, 'extra'> = {}): Promise<void> {
  const maxBlobBytes = opts.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES
  const frameTimeoutMs = opts.frameTimeoutMs ?? 10_000
  /** A get's answer: the head, then (if found) the chunks and the end frame; a small blob's frames join `batch`. */
  const serveBlob = async ({ cas, extra: extraBlobs }: CasSource, lp: CasFrames, d: Digest, batch: FrameBatch): Promise<void> => {
    let small: Uint8Array[] | null
    try {
      small = smallBlobFrames(cas, d, opts.corruptSent)
    } catch (err) {
      if (err instanceof BlobNotFoundError) {
        const extra = extraBlobs?.bytesOf(d)
        if (extra) return batch.add([json({ found: true, size: extra.byteLength }), ...bytesFrames(extra, opts.corruptSent)])
        return batch.add([json({ found: false, reason: 'not here' })])
      }
      if (!(err instanceof DigestMismatchError)) throw err
      opts.log?.error({ err }, 'a stored blob is corrupt; removed, not served')
      return batch.add([json({ found: false, reason: 'corrupt here (removed)' })])
    }
    if (small) return batch.add([json({ found: true, size: small.reduce((n, f) => n + f.byteLength, 0) }), ...small])
    await batch.flush()
    const ok = await checkBeforeServing(cas, d, opts.log)
    if (!ok.found) {
      await lp.write(json(ok))
      return
    }
    await lp.write(json({ found: true, size: ok.size }))
    for await (const chunk of sending(cas.readChunks(d, CHUNK_BYTES), opts.corruptSent)) await lp.write(chunk)
    await lp.write(new Uint8Array(0))
  }
  await node.handle(CAS_PROTOCOL_ID, async (stream, connection) => {
    const from = connection.remotePeer.toString()
    const lp = flowControlled(stream)
    try {
      let req: z.infer<typeof requestSchema>
      const serving = source()
      try {
        req = parse(await lp.read(frameTimeoutMs), requestSchema, 'request')
        if (!serving) throw new Error('no build is open on this node')
      } catch (err) {
        opts.log?.warn({ err, from }, 'rejected a CAS request')
        await lp.write(json({ error: (err as Error).message }))
        await stream.close()
        return
      }
      const { cas, extra } = serving
      if (req.op === 'has') {
        const have: Digest[] = []
        for (const d of req.digests) if ((await cas.has(d)) || extra?.has(d)) have.push(d)
        await lp.write(json({ have }))
      } else if (req.op === 'get' || req.op === 'getMany') {
        const batch = new FrameBatch(lp)
        for (const d of req.op === 'get' ? [req.digest] : req.digests) await serveBlob(serving, lp, d, batch)
        await batch.flush()
      } else {
        const refused: { digest: Digest; error: string }[] = []
        const want = new Map<Digest, number>()
        for (const b of req.blobs) {
          if (b.size > maxBlobBytes) refused.push({ digest: b.digest, error: `blob of ${b.size} bytes is over the ${maxBlobBytes}-byte limit` })
          else if (!(await cas.has(b.digest))) want.set(b.digest, b.size)
        }
        await lp.write(json({ want: [...want.keys()] }))
        const stored: Digest[] = []
        for (const [digest, size] of want) {
          try {
            await cas.putStream(digest, chunksOf(lp, frameTimeoutMs), { maxBytes: size, where: `peer ${from}` })
            stored.push(digest)
          } catch (err) {
            // A mismatch is found after the end frame, so the next blob follows; more bytes than announced leave the stream out of step.
            if (!(err instanceof DigestMismatchError)) throw err
            opts.log?.warn({ err, from }, 'refused a blob that does not match its digest')
            refused.push({ digest, error: err.message })
          }
        }
        await lp.write(json({ stored, refused }))
      }
      await stream.close()
    } catch (err) {
      opts.log?.warn({ err, from }, 'CAS stream failed')
      stream.abort(err as Error)
    }
  })
}

/** A blob is served only if it still matches its name; a corrupt one is dropped. */
async function checkBeforeServing(cas: CasStore, d: Digest, log?: Logger): Promise<{ found: true; size: number } | { found: false; reason: string }> {
  try {
    await cas.verify(d)
    return { found: true, size: (await cas.getSize(d)) ?? 0 }
  } catch (err) {
    if (err instanceof BlobNotFoundError) return { found: false, reason: 'not here' }
    if (err instanceof DigestMismatchError) {
      log?.error({ err }, 'a stored blob is corrupt; removed, not served')
      await cas.remove(d)
      return { found: false, reason: 'corrupt here (removed)' }
    }
    throw err
  }
}

export interface CasClientOptions {
  /** Fault injection: corrupt some blobs pushed. */
  corruptSent?: WireCorruption
  /** Longest wait to open a stream or for the next frame. */
  timeoutMs?: number
  maxBlobBytes?: number
}

/** Fetch blobs from peers into a local CAS, and push local blobs to peers. */
export class CasClient {
  private readonly timeoutMs: number
  private readonly maxBlobBytes: number
  private readonly corruptSent: WireCorruption | undefined

  constructor(
    private readonly node: MeshNode,
    private readonly cas: CasStore,
    opts: CasClientOptions = {},
  ) {
    this.timeoutMs = opts.timeoutMs ?? 10_000
    this.maxBlobBytes = opts.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES
    this.corruptSent = opts.corruptSent
  }

  /** Which of `digests` the peer holds. */
  async has(peer: PeerId | Multiaddr, digests: Digest[]): Promise<Digest[]> {
    return this.exchange(peer, async (lp) => {
      await lp.write(json({ op: 'has', digests }))
      return parse(await this.read(lp), hasAnswer, 'answer').have
    })
  }

  /** Fetch a blob into the local CAS, verified. DigestMismatchError if the peer sent other bytes. */
  async fetch(peer: PeerId | Multiaddr, d: Digest): Promise<BlobRef> {
    return this.exchange(peer, async (lp) => {
      await lp.write(json({ op: 'get', digest: d }))
      return this.receive(lp, peer, d)
    })
  }

  /**
   * Fetch up to MAX_BLOBS_PER_STREAM blobs over one stream into the local CAS, each
   * verified. Per digest: its ref, or why the peer did not give it (a
   * BlobNotFoundError, or a DigestMismatchError if it sent other bytes); the
   * call rejects only when the stream fails.
   */
  async fetchMany(peer: PeerId | Multiaddr, digests: readonly Digest[]): Promise<Map<Digest, BlobRef | BlobNotFoundError | DigestMismatchError>> {
    if (digests.length > MAX_BLOBS_PER_STREAM) throw new RangeError(`getMany asks for at most ${MAX_BLOBS_PER_STREAM} blobs, not ${digests.length}`)
    return this.exchange(peer, async (lp) => {
      await lp.write(json({ op: 'getMany', digests }))
      const got = new Map<Digest, BlobRef | BlobNotFoundError | DigestMismatchError>()
      for (const d of digests) {
        try {
          got.set(d, await this.receive(lp, peer, d))
        } catch (err) {
          // Either leaves the stream at the next answer: not found sends no bytes, a mismatch is found after the end frame.
          if (!(err instanceof BlobNotFoundError) && !(err instanceof DigestMismatchError)) throw err
          got.set(d, err)
        }
      }
      return got
    })
  }

  /** One get's answer into the local CAS. */
  private async receive(lp: CasFrames, peer: PeerId | Multiaddr, d: Digest): Promise<BlobRef> {
    const head = parse(await this.read(lp), getAnswer, 'answer')
    if (!head.found) throw new BlobNotFoundError(d, `peer ${peer.toString()} (${head.reason})`)
    if (head.size > this.maxBlobBytes) throw new ProtocolError(`${CAS_PROTOCOL_ID}: blob of ${head.size} bytes is over the ${this.maxBlobBytes}-byte limit`)
    return this.cas.putStream(d, chunksOf(lp, this.timeoutMs), { maxBytes: head.size, where: `peer ${peer.toString()}` })
  }

  /**
   * Send up to MAX_BLOBS_PER_STREAM local blobs to a peer over one stream: it says
   * which it lacks, those are sent, and it verifies each. Resolves with those
   * it refused (their bytes did not match on arrival, or too large), by digest.
   */
  async pushMany(peer: PeerId | Multiaddr, digests: readonly Digest[]): Promise<Map<Digest, ProtocolError>> {
    const unique = [...new Set(digests)]
    if (unique.length > MAX_BLOBS_PER_STREAM) throw new RangeError(`putMany offers at most ${MAX_BLOBS_PER_STREAM} blobs, not ${unique.length}`)
    const blobs = await Promise.all(
      unique.map(async (d) => {
        const size = await this.cas.getSize(d)
        if (size === undefined) throw new BlobNotFoundError(d, this.cas.root)
        return { digest: d, size }
      }),
    )
    return this.exchange(peer, async (lp) => {
      await lp.write(json({ op: 'putMany', blobs }))
      const wanted = parse(await this.read(lp), wantAnswer, 'answer')
      if ('error' in wanted) throw new ProtocolError(`${CAS_PROTOCOL_ID}: peer ${peer.toString()} refused the blobs: ${wanted.error}`)
      const offered = new Set(unique)
      const batch = new FrameBatch(lp)
      for (const d of wanted.want) {
        if (!offered.has(d)) throw new ProtocolError(`${CAS_PROTOCOL_ID}: peer ${peer.toString()} wants blake3 ${d}, which was not offered`)
        const small = smallBlobFrames(this.cas, d, this.corruptSent)
        if (small) {
          await batch.add(small)
          continue
        }
        await batch.flush()
        for await (const chunk of sending(this.cas.readChunks(d, CHUNK_BYTES), this.corruptSent)) await lp.write(chunk)
        await lp.write(new Uint8Array(0))
      }
      await batch.flush()
      const answer = parse(await this.read(lp), putManyAnswer, 'answer')
      return new Map(answer.refused.map((r) => [r.digest, new ProtocolError(`${CAS_PROTOCOL_ID}: peer ${peer.toString()} refused blake3 ${r.digest}: ${r.error}`)]))
    })
  }

  private read(lp: CasFrames): Promise<Uint8Array> {
    return lp.read(this.timeoutMs)
  }

  private async exchange<R>(peer: PeerId | Multiaddr, fn: (lp: CasFrames, stream: Stream) => Promise<R>): Promise<R> {
    // The protocol id goes out with the first request instead of in a round trip of its own (every
    // output push and input fetch opens a stream); a peer that does not serve it resets the stream.
    const stream = await this.node.dialProtocol(peer, CAS_PROTOCOL_ID, { signal: AbortSignal.timeout(this.timeoutMs), negotiateFully: false })
    const lp = flowControlled(stream)
    try {
      const result = await fn(lp, stream)
      await stream.close()
      return result
    } catch (err) {
      stream.abort(err as Error)
      throw err
    }
  }
}
