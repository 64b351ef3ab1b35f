/**
 * Least loaded: the candidate with the lowest load factor. As a victim choice it
 * is mostly a foil (a lightly loaded peer has little to give); it is in the
 * Builder seed's list and the benchmark shows what it costs.
 */
import { candidates, describePeer, loadFactor } from './candidates.js'
import type { Strategy } from './types.js'

export const leastLoaded: Strategy = (view) => {
  const cs = candidates(view)
  if (cs.length === 0) return null
  let best = cs[0]!
  for (const p of cs) if (loadFactor(p) < loadFactor(best)) best = p
  return { victim: best.peerId, reason: `least-loaded: ${describePeer(best)}, load ${loadFactor(best).toFixed(2)}` }
}
