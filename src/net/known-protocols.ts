/**
 * No peer-store write for a stream whose protocol the peer's record already lists.
 *
 * libp2p records a stream's protocol in the peer store every time a stream
 * opens, outbound and inbound (its connection.ts: `await peerStore.merge(peer,
 * { protocols: [protocol] })`, before the stream is handed over). Each such
 * merge takes the peer's write lock, reads the record from the datastore,
 * decodes it (its addresses parsed into multiaddrs), merges, encodes and
 * writes it back: on a mesh every output push, input fetch, seed and result
 * opens a stream on each end, and from the second stream of a protocol on the
 * record is the same afterwards, but for its update time. In a warm
 * incremental build on a kept local mesh, opening an output push's stream took
 * 2.7-7.4 ms (scratch timestamps) of the push on the build's critical path.
 *
 * The rule here: a merge that only adds protocols is answered at once, with
 * the record as last seen, when that record lists all of them and was written
 * (by a merge that went through, or any update the store announced) less than
 * `REFRESH_MS` ago. Otherwise it goes to the store as before. Every update the
 * store announces (`peer:update`, e.g. identify replacing a peer's protocols)
 * replaces what is known; a peer's entry is dropped when it disconnects. So a
 * new protocol is always written, a removed one is written again by its next
 * stream, and a peer's record is still refreshed while streams use it (once a
 * minute instead of per stream), so the store does not age it out.
 *
 * Only libp2p's own per-stream merges are protocol-only; bldr's own merges
 * (addresses, learnPeer) and every other peer-store call pass through.
 */
import type { Peer, PeerData, PeerId, PeerStore, TypedEventTarget, Libp2pEvents } from '@libp2p/interface'

/** A record written longer ago than this is written again by the next protocol-only merge. */
export const REFRESH_MS = 60_000

export interface KnownProtocolStats {
  /** Protocol-only merges answered without the store. */
  skipped: number
  /** Merges that went to the store. */
  written: number
}

/**
 * Install the rule on `store` (a node's peer store, the object libp2p's
 * connections call), following `events` (the node). Returns live counters.
 */
export function skipKnownProtocolMerges(
  store: PeerStore,
  events: TypedEventTarget<Libp2pEvents>,
  now: () => number = Date.now,
): KnownProtocolStats {
  const stats: KnownProtocolStats = { skipped: 0, written: 0 }
  /** Peer id → its record as last written or announced, and when. */
  const known = new Map<string, { peer: Peer; at: number }>()
  events.addEventListener('peer:update', (evt) => known.set(evt.detail.peer.id.toString(), { peer: evt.detail.peer, at: now() }))
  events.addEventListener('peer:disconnect', (evt) => known.delete(evt.detail.toString()))
  const merge = store.merge.bind(store)
  store.merge = async (id: PeerId, data: PeerData, options?: Parameters<PeerStore['merge']>[2]): Promise<Peer> => {
    const key = id.toString()
    const protocols = protocolsOnly(data)
    const seen = protocols ? known.get(key) : undefined
    const started = now()
    if (protocols && seen && started - seen.at < REFRESH_MS && protocols.every((p) => seen.peer.protocols.includes(p))) {
      stats.skipped++
      return seen.peer
    }
    stats.written++
    const peer = await merge(id, data, options)
    // An update announced while this merge waited is newer than its answer; keep that one.
    const latest = known.get(key)
    if (!latest || latest.at <= started) known.set(key, { peer, at: now() })
    return peer
  }
  return stats
}

/** The protocols of a merge that adds nothing else, or undefined. */
function protocolsOnly(data: PeerData): readonly string[] | undefined {
  const fields = Object.entries(data).filter(([, v]) => v !== undefined)
  if (fields.length !== 1 || fields[0]?.[0] !== 'protocols') return undefined
  const protocols = data.protocols
  return protocols && protocols.length > 0 ? protocols : undefined
}
