/**
 * A seeded random source for strategies and the simulator: the same seed, the
 * same sequence. Mersenne Twister (pure-rand's `mersenne`): its initialization
 * spreads nearby seeds well. xoroshiro128+ and xorshift128+ were rejected: for
 * small consecutive seeds (0, 1, 2, …) their first output always fell in the
 * top quarter of the range, which skewed every first choice.
 */
import { mersenne } from 'pure-rand'
import type { Rng } from './types.js'

export function createRng(seed: number): Rng {
  const gen = mersenne(seed)
  return {
    // unsafeNext gives a signed 32-bit integer; map it to [0, 1).
    next: () => (gen.unsafeNext() >>> 0) / 0x1_0000_0000,
  }
}

/** An integer in [0, n). */
export function pickIndex(rng: Rng, n: number): number {
  return Math.min(n - 1, Math.floor(rng.next() * n))
}
