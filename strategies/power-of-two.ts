/**
 * Power of two choices: sample two candidates at random, ask the one with the
 * longer queue. Nearly as good as asking the most loaded peer, without every
 * thief piling onto the same victim when the gossip view is shared and stale.
 */
import { candidates, describePeer } from './candidates.js'
import { pickIndex } from './rng.js'
import type { Strategy } from './types.js'

export const powerOfTwo: Strategy = (view, rng) => {
  const cs = candidates(view)
  if (cs.length === 0) return null
  if (cs.length === 1) return { victim: cs[0]!.peerId, reason: `power-of-two: ${describePeer(cs[0]!)}, the only candidate` }
  const i = pickIndex(rng, cs.length)
  let j = pickIndex(rng, cs.length - 1)
  if (j >= i) j++
  const a = cs[i]!
  const b = cs[j]!
  const [win, lose] = b.queueDepth > a.queueDepth ? [b, a] : [a, b]
  return { victim: win.peerId, reason: `power-of-two: ${describePeer(win)} over ${describePeer(lose)}` }
}
