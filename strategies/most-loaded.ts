/** Most loaded: the candidate with the most queued actions (ties: higher load factor, then id). */
import { candidates, describePeer, loadFactor } from './candidates.js'
import type { Strategy } from './types.js'

export const mostLoaded: Strategy = (view) => {
  const cs = candidates(view)
  if (cs.length === 0) return null
  let best = cs[0]!
  for (const p of cs) {
    if (p.queueDepth > best.queueDepth || (p.queueDepth === best.queueDepth && loadFactor(p) > loadFactor(best))) best = p
  }
  return { victim: best.peerId, reason: `most-loaded: ${describePeer(best)}, the longest queue of ${cs.length} candidates` }
}
