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

/** The default until the steal-strategy benchmark (issue 6) shows a better one. */
export const DEFAULT_STRATEGY: StrategyName = 'power-of-two'

export { createRng } from './rng.js'
export type { PeerLoad, Rng, StealDecision, StealOutcome, StealView, Strategy } from './types.js'
