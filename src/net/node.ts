/**
 * A mesh node: the only place libp2p is configured. TCP, noise encryption,
 * yamux multiplexing (window updates at half the window, yamux-window.ts),
 * identify, and gossipsub for load announcements; short reads that build no
 * Error (short-reads.ts); no peer-store write per stream for a protocol the
 * peer's record already lists (known-protocols.ts).
 *
 * The stack is libp2p 3 with @libp2p/gossipsub (the continuation of
 * @chainsafe/libp2p-gossipsub, whose v14 works only with libp2p 2 and on 3
 * delivers nothing, silently); every @libp2p/interface in the tree is one
 * version. Node 20 needs the Promise.withResolvers polyfill (imported first).
 */
import './polyfill.js'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, type GossipSub } from '@libp2p/gossipsub'
import { identify, type Identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { createLibp2p, type Libp2p } from 'libp2p'
import { mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { isErrnoException, writeFileAtomic } from '../cas/fs-util.js'
import { DEFAULT_LIVENESS, type Liveness } from './liveness.js'
import { installHalfWindowUpdates } from './yamux-window.js'
import { installCheapShortReads } from './short-reads.js'
import { withCoalescedWrites } from './coalesced-writes.js'
import { skipKnownProtocolMerges } from './known-protocols.js'

export { DEFAULT_LIVENESS, type Liveness }

/** Largest yamux receive window of a stream. */
export const MAX_STREAM_WINDOW_BYTES = 2 * 1024 * 1024

export type MeshNode = Libp2p<{ identify: Identify; pubsub: GossipSub }>

export interface MeshNodeInit {
  /** Multiaddrs to listen on. Default: one ephemeral TCP port on 127.0.0.1. */
  listen?: string[]
  /** The node's private key is kept in this file (made on first use): a stable peer id. Default: a new key each start. */
  keyFile?: string
  /** Heartbeat interval and timeout (default DEFAULT_LIVENESS). */
  liveness?: Liveness
  /** libp2p's own way: the peer store written for every stream opened (bench/stream-open compares it with known-protocols.ts). */
  writeEveryStream?: boolean
}


/**
 * New inbound connections accepted per second from one address. libp2p's
 * default (5) refuses a local mesh whose workers all start at once.
 */
const INBOUND_CONNECTION_THRESHOLD = 1000

/**
 * Gossipsub checks a message's signature before it looks the message up among
 * those it has seen, unless it is given a cheap id to look up first. On a mesh
 * every announcement arrives from several peers (about D), so a worker verified
 * each one several times: with gossipsub's default D of 6, ed25519 verification
 * was the largest single cost of an 8-worker mesh's gossip (bench/live-mesh,
 * speedup part). The id is the sender
 * and sequence number, the fields of gossipsub's own id under StrictSign, so
 * it names the same message. Only a message that passed validation is
 * remembered by it: a forged copy sent first is still checked and rejected.
 */
export function fastGossipId(msg: { from?: Uint8Array; seqno?: Uint8Array }): string {
  if (!msg.from || !msg.seqno) return ''
  return `${Buffer.from(msg.from.buffer, msg.from.byteOffset, msg.from.byteLength).toString('base64')}/${Buffer.from(msg.seqno.buffer, msg.seqno.byteOffset, msg.seqno.byteLength).toString('hex')}`
}

/**
 * A smaller gossip mesh than gossipsub's defaults (D 6, flood publishing), made
 * for public networks under attack. Load announcements are hints that are sent
 * again on the next change or interval, on a LAN of cooperating workers, so
 * fewer copies per message is the better trade: each node receives a message
 * about D times, and each copy costs a socket write, a decrypt and a decode
 * (the socket write alone was the largest share of a worker's CPU). With 8
 * sleep-action workers on 2 cores, worker CPU per build fell from ~190 to
 * ~140 ms and the build from ~1.30 to ~1.11 s (scratch A/B, 3 runs each of 6
 * rounds). A publisher sends to its mesh peers only, and lazy gossip (IHAVE
 * to `Dlazy` others each heartbeat) repairs what a thin mesh misses.
 */
const GOSSIP_MESH = { floodPublish: false, D: 3, Dlo: 2, Dhi: 4, Dout: 1, Dscore: 2, Dlazy: 3 } as const

export async function createMeshNode(init: MeshNodeInit = {}): Promise<MeshNode> {
  const liveness = init.liveness ?? DEFAULT_LIVENESS
  // Window updates at half the window, not after every frame (see yamux-window.ts).
  installHalfWindowUpdates()
  // No new Error per message received (see short-reads.ts).
  installCheapShortReads()
  const node = await createLibp2p({
    ...(init.keyFile ? { privateKey: await loadOrCreateKey(init.keyFile) } : {}),
    addresses: { listen: init.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
    // Each tick's frames leave in one socket write (see coalesced-writes.ts).
    transports: [withCoalescedWrites(tcp())],
    connectionEncrypters: [noise()],
    // A stream's window at most 2 MiB (yamux's default 16): while a CAS receiver holds a sender back (cas-protocol.ts), what still arrives fits its 4 MiB read buffer.
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: MAX_STREAM_WINDOW_BYTES } })],
    connectionManager: { inboundConnectionThreshold: INBOUND_CONNECTION_THRESHOLD },
    connectionMonitor: {
      pingInterval: liveness.heartbeatIntervalMs,
      // A fixed timeout: libp2p's adaptive one (from 5 s, growing after failures) would make the configured one a lower bound only.
      pingTimeout: { minTimeout: liveness.workerTimeoutMs, maxTimeout: liveness.workerTimeoutMs },
      abortConnectionOnPingFailure: true,
    },
    services: {
      identify: identify(),
      // Load announcements are hints: a peer publishing before anyone listens is not an error.
      pubsub: gossipsub({ emitSelf: false, allowPublishToZeroTopicPeers: true, fastMsgIdFn: fastGossipId, ...GOSSIP_MESH }),
    },
  })
  // No peer-store write per stream for a protocol the peer's record lists (see known-protocols.ts).
  if (!init.writeEveryStream) skipKnownProtocolMerges(node.peerStore, node)
  return node
}

export function parseMultiaddr(text: string): Multiaddr {
  return multiaddr(text)
}

/** Peers each node was told of: their parsed ids, and whether their addresses are in its peer store. */
const learned = new WeakMap<MeshNode, Map<string, { peer: PeerId; stored: boolean }>>()

/**
 * Tell `node` where peer `id` listens (once per peer), so it can be dialled by
 * its peer id; returns that peer id. With no addresses it relies on what the
 * node already knows (an open connection, identify). The parsed id is kept:
 * a client calls this for every result event, and decoding a peer id's
 * base58 text cost ~10% of a no-op build's client CPU (bench/live-mesh).
 */
export async function learnPeer(node: MeshNode, id: string, addrs: readonly string[] = []): Promise<PeerId> {
  let known = learned.get(node)
  if (!known) learned.set(node, (known = new Map()))
  let entry = known.get(id)
  if (!entry) known.set(id, (entry = { peer: peerIdFromString(id), stored: false }))
  if (addrs.length > 0 && !entry.stored) {
    await node.peerStore.merge(entry.peer, { multiaddrs: addrs.map((a) => multiaddr(a)) })
    entry.stored = true
  }
  return entry.peer
}

/** The peer id a multiaddr names (its `/p2p/` part), if it names one. */
export function peerIdOfAddr(addr: Multiaddr): string | undefined {
  return addr.getComponents().find((c) => c.name === 'p2p')?.value
}

/** A peer id from its string form (what the ledger and the wire carry). */
export function parsePeerId(text: string): PeerId {
  return peerIdFromString(text)
}

/** The key in `file`, or a new Ed25519 key written there (mode 0600). */
async function loadOrCreateKey(file: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(readFileSync(file))
  } catch (err) {
    if (!isErrnoException(err, 'ENOENT')) throw new Error(`cannot read the node key ${file}: ${(err as Error).message}`, { cause: err })
  }
  const key = await generateKeyPair('Ed25519')
  mkdirSync(dirname(file), { recursive: true })
  writeFileAtomic(file, privateKeyToProtobuf(key), 0o600)
  return key
}
