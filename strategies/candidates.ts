/** The peers worth asking, shared by every strategy: not the thief, heard from lately, with work to spare. */
import type { PeerLoad, StealView } from './types.js'

export function candidates(view: StealView): PeerLoad[] {
  return view.peers
    .filter((p) => p.peerId !== view.selfId && view.nowMs - p.announcedAtMs <= view.staleAfterMs && p.queueDepth >= view.minVictimQueue)
    .sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)) // order-independent results
}

/** (queued + executing) / capacity: 1.0 is a peer whose slots are all busy with nothing waiting. */
export function loadFactor(p: PeerLoad): number {
  return (p.queueDepth + p.executing) / Math.max(1, p.capacity)
}

export function describePeer(p: PeerLoad): string {
  return `${p.peerId} (queue ${p.queueDepth}, executing ${p.executing}/${p.capacity})`
}
