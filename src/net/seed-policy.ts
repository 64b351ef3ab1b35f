/** How the coordinator first places ready actions (after that, workers steal). A leaf module: the CLI reads it without loading libp2p. */
export const SEED_POLICIES = ['round-robin', 'least-loaded', 'single'] as const
export type SeedPolicy = (typeof SEED_POLICIES)[number]
/**
 * Least-loaded: the coordinator's ledger knows exactly how many actions each
 * worker holds, so it can hand each ready action to the least-held worker at no
 * cost. bench/strategies measured it against round-robin on the monorepo DAG:
 * 92% against 87% efficiency at 50 workers, 100% against 87% at 1,000.
 */
export const DEFAULT_SEED_POLICY: SeedPolicy = 'least-loaded'

/**
 * The seed window: the coordinator seeds a worker at most `window` queued
 * actions per slot beyond the actions it runs (room = slots × (1 + window)),
 * and keeps the rest until results free room. Without a window a worker is
 * seeded up to its whole queue (256 by default), and on a mesh whose room
 * exceeds the ready work, actions wait behind long ones on busy workers while
 * others go idle, where no thief may take them (a victim keeps a reserve):
 * bench/strategies measured 61–65% efficiency at 1,000 workers on the
 * monorepo DAG without a window, 82.5% with 1 per slot and 99.8% with 0.
 *
 * The default is 1 per slot, not 0: with 0 no worker ever holds a queue, so
 * the coordinator would choose a worker for every action at run time (a
 * central queue, which DESIGN.md leaves to the workers) and every action would
 * wait a coordinator round trip for its slot.
 *
 * `single` puts everything on one worker to make the others steal; a window
 * would leave that worker the only one with work, so it takes no window.
 */
export const DEFAULT_SEED_WINDOW = 1
export const SINGLE_WITH_WINDOW = 'a seed window cannot be combined with seed policy single (single seeds one worker for the others to steal from; a window would leave it the only one with work)'

/** Most actions a worker with `slots` slots may hold under a window (undefined: no cap). */
export function windowRoom(slots: number, window: number | undefined): number {
  return window === undefined ? Infinity : slots * (1 + window)
}
