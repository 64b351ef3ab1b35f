/**
 * Victim selection for work stealing: the interface every strategy implements.
 *
 * A strategy is a pure function of what the thief knows and a seeded random
 * source: the same code runs in the worker daemon and in the simulator, and a
 * seed reproduces a simulation exactly (DESIGN.md, invariant 5). It reads no
 * clock, calls no Math.random, mutates nothing and touches no network.
 *
 * The strategies themselves (random, least-loaded, most-loaded, power-of-two,
 * adaptive) are built with the mesh (issue 3); this file fixes their shape.
 */

/** What the thief knows about one peer, from gossip (a hint, possibly stale). */
export interface PeerLoad {
  peerId: string
  /** Actions waiting in the peer's local queue. */
  queueDepth: number
  /** Actions the peer is running. */
  executing: number
  /** Execution slots the peer has. */
  capacity: number
  /** Time of the announcement, in the caller's clock (ms). */
  announcedAtMs: number
}

/** Everything a strategy may look at. */
export interface StealView {
  /** The thief itself. */
  selfId: string
  /** Known peers, the thief excluded. */
  peers: readonly PeerLoad[]
  /** Now, in the same clock as `announcedAtMs` (passed in, never read). */
  nowMs: number
  /** Recent steal outcomes per peer, newest last, for strategies that learn. */
  recent: readonly { peerId: string; granted: number; atMs: number }[]
}

/** A seeded source of randomness in [0, 1). */
export interface Rng {
  next(): number
}

export interface StealDecision {
  victim: string
  /** Why this victim, in words, for logs and `--explain`. */
  reason: string
}

export type Strategy = (view: StealView, rng: Rng) => StealDecision | null
