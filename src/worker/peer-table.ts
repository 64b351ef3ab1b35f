/**
 * What a worker knows of its peers' load, from gossip. Keeps the newest
 * announcement per peer (by incarnation and sequence number, so a late or
 * duplicated one never overwrites a newer one), and forgets peers not heard
 * from within `staleAfterMs` of this worker's own clock: the sender's clock is
 * never compared with ours, so clock skew between machines cannot make a peer
 * look fresh or stale.
 */
import type { PeerLoad } from '../../strategies/types.js'
import type { LoadAnnouncement } from './load-announcement.js'

export type RecordOutcome = 'accepted' | 'duplicate' | 'older' | 'self'

interface Entry {
  announcement: LoadAnnouncement
  /** Our clock when it arrived. */
  receivedAtMs: number
  /** The strategies' view of it, updated in place. */
  load: PeerLoad
}

export class PeerTable {
  private readonly peers = new Map<string, Entry>()
  /** `view()` without a filter, kept between calls (rebuilt when a peer comes or goes): a thief on a 1,000-worker mesh asks for it on every attempt. */
  private all: PeerLoad[] | undefined

  constructor(
    readonly selfId: string,
    /** A peer not heard from for this long is dropped (the Builder seed's 30 s). */
    readonly staleAfterMs: number,
  ) {}

  record(peerId: string, a: LoadAnnouncement, receivedAtMs: number): RecordOutcome {
    if (peerId === this.selfId) return 'self'
    const known = this.peers.get(peerId)
    if (known && known.announcement.incarnation === a.incarnation) {
      if (a.seq === known.announcement.seq) return 'duplicate'
      if (a.seq < known.announcement.seq) return 'older'
    }
    // A new peer, a newer announcement, or a restarted peer (new incarnation).
    const load = { peerId, queueDepth: a.queueDepth, executing: a.executing, capacity: a.capacity, announcedAtMs: receivedAtMs }
    if (known) {
      known.announcement = a
      known.receivedAtMs = receivedAtMs
      Object.assign(known.load, load)
    } else {
      this.peers.set(peerId, { announcement: a, receivedAtMs, load })
      this.all = undefined
    }
    return 'accepted'
  }

  /** Drop peers not heard from within the stale timeout; returns their ids. */
  prune(nowMs: number): string[] {
    const gone: string[] = []
    for (const [id, e] of this.peers) {
      if (nowMs - e.receivedAtMs > this.staleAfterMs) {
        this.peers.delete(id)
        this.all = undefined
        gone.push(id)
      }
    }
    return gone
  }

  /** A peer left (disconnect, drain): forget it now rather than at the timeout. */
  forget(peerId: string): void {
    if (this.peers.delete(peerId)) this.all = undefined
  }

  /** One peer as strategies see it, if known. */
  get(peerId: string): PeerLoad | undefined {
    return this.peers.get(peerId)?.load
  }

  get size(): number {
    return this.peers.size
  }

  /** The peers as strategies see them, in our clock, optionally only those offering a sandbox. Read it before the next `record`: entries are updated in place. */
  view(opts: { sandbox?: string } = {}): readonly PeerLoad[] {
    if (!opts.sandbox) return (this.all ??= [...this.peers.values()].map((e) => e.load))
    const out: PeerLoad[] = []
    for (const { announcement: a, load } of this.peers.values()) if (a.sandboxes.includes(opts.sandbox as never)) out.push(load)
    return out
  }
}
