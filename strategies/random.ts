/** Random: any candidate, uniformly. The baseline every other strategy must beat. */
import { candidates, describePeer } from './candidates.js'
import { pickIndex } from './rng.js'
import type { Strategy } from './types.js'

export const random: Strategy = (view, rng) => {
  const cs = candidates(view)
  if (cs.length === 0) return null
  const p = cs[pickIndex(rng, cs.length)]!
  return { victim: p.peerId, reason: `random: ${describePeer(p)}, one of ${cs.length} candidates` }
}
