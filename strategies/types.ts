/**
 * Victim selection for work stealing: the interface every strategy implements.
 *
 * A strategy is a pure function of what the thief knows and a seeded random
 * source: the same code runs in the worker daemon and in the simulator, and a
 * seed reproduces a simulation exactly (DESIGN.md, invariant 5). It reads no
 * clock, uses no global random source, mutates nothing and touches no network.
 *
 * Implementations: random.ts, least-loaded.ts, most-loaded.ts,
 * power-of-two.ts, adaptive.ts; index.ts names them.
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

/** How one steal attempt ended. */
export interface StealOutcome {
  peerId: string
  /** Actions granted; 0 when refused, timed out or failed. */
  granted: number
  atMs: number
}

/** Everything a strategy may look at. */
export interface StealView {
  /** The thief itself (never a victim, even if it appears in `peers`). */
  selfId: string
  /** Known peers, as last announced. */
  peers: readonly PeerLoad[]
  /** Now, in the same clock as `announcedAtMs` (passed in, never read). */
  nowMs: number
  /** A peer not heard from for longer than this is not a candidate. */
  staleAfterMs: number
  /** A peer with fewer queued actions is not worth asking (it keeps a reserve). */
  minVictimQueue: number
  /** Recent steal outcomes, oldest first, for strategies that learn. */
  recent: readonly StealOutcome[]
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
