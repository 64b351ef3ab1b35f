/**
 * Adaptive: prefers peers whose recent steals succeeded, and learns from a
 * window, not from all history (the Builder seed's Adaptive used a cumulative
 * rate, so a peer that failed once early was avoided forever, and one that had
 * gone dry was still chased).
 *
 * Rule: each outcome in the last WINDOW_MS counts with weight 2^(-age/HALF_LIFE_MS).
 * A peer's success rate is (weighted grants + 1) / (weighted attempts + 2)
 * (a Laplace prior: an unknown peer scores 0.5). Its score is that rate times
 * its queue depth: the expected work one request brings back. The best score
 * wins; with probability EXPLORE the choice is random instead, so a peer that
 * was refusing gets probed again before the window forgets it.
 */
import { candidates, describePeer } from './candidates.js'
import { pickIndex } from './rng.js'
import type { PeerLoad, Strategy, StealView } from './types.js'

export const WINDOW_MS = 5_000
export const HALF_LIFE_MS = 1_000
export const EXPLORE = 0.1

export function successRate(view: StealView, peerId: string): { rate: number; attempts: number } {
  let grants = 0
  let attempts = 0
  for (const o of view.recent) {
    if (o.peerId !== peerId) continue
    const age = view.nowMs - o.atMs
    if (age < 0 || age > WINDOW_MS) continue
    const w = 2 ** (-age / HALF_LIFE_MS)
    attempts += w
    if (o.granted > 0) grants += w
  }
  return { rate: (grants + 1) / (attempts + 2), attempts }
}

export const adaptive: Strategy = (view, rng) => {
  const cs = candidates(view)
  if (cs.length === 0) return null
  if (cs.length > 1 && rng.next() < EXPLORE) {
    const p = cs[pickIndex(rng, cs.length)]!
    return { victim: p.peerId, reason: `adaptive: exploring ${describePeer(p)}` }
  }
  let best: PeerLoad = cs[0]!
  let bestScore = -1
  let bestRate = { rate: 0, attempts: 0 }
  for (const p of cs) {
    const r = successRate(view, p.peerId)
    const score = r.rate * p.queueDepth
    if (score > bestScore) {
      best = p
      bestScore = score
      bestRate = r
    }
  }
  return {
    victim: best.peerId,
    reason: `adaptive: ${describePeer(best)}, recent success ${bestRate.rate.toFixed(2)} over ${bestRate.attempts.toFixed(1)} weighted attempts, expected ${bestScore.toFixed(1)} actions`,
  }
}
