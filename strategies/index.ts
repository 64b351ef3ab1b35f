/** The victim-selection strategies by name. */
import { adaptive } from './adaptive.js'
import { leastLoaded } from './least-loaded.js'
import { mostLoaded } from './most-loaded.js'
import { powerOfTwo } from './power-of-two.js'
import { random } from './random.js'
import type { Strategy } from './types.js'

export const STRATEGIES = {
  random,
  'least-loaded': leastLoaded,
  'most-loaded': mostLoaded,
  'power-of-two': powerOfTwo,
  adaptive,
} as const satisfies Record<string, Strategy>

export type StrategyName = keyof typeof STRATEGIES

/** The default: bench/strategies finds every strategy within about a point of the best over its scenarios, and this one at the top (README, Benchmarks). */
export const DEFAULT_STRATEGY: StrategyName = 'power-of-two'

export { createRng } from './rng.js'
export type { PeerLoad, Rng, StealDecision, StealOutcome, StealView, Strategy } from './types.js'
