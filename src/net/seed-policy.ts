/** How the coordinator first places ready actions (after that, workers steal). A leaf module: the CLI reads it without loading libp2p. */
export const SEED_POLICIES = ['round-robin', 'least-loaded', 'single'] as const
export type SeedPolicy = (typeof SEED_POLICIES)[number]
/**
 * Least-loaded: the coordinator's ledger knows exactly how many actions each
 * worker holds, so it can hand each ready action to the least-held worker at no
 * cost. bench/strategies measured it against round-robin on the monorepo DAG:
 * 92% against 87% efficiency at 50 workers, 100% against 87% at 1,000.
 */
import { percentile } from '../percentile.js'

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
 * A fixed window is a bet on action times. A queued action saves its slot one
 * coordinator round trip when a slot frees (with 0, the slot waits for the
 * result to reach the coordinator and the next seed to arrive), and it pays
 * when it waits behind a long action while another worker idles. The first
 * matters for short actions (25 ms sleeps on the live mesh: 0.86 s with 1,
 * 0.94 s with 0), the second for long ones on large meshes (the 82.5% above).
 * So the default, `auto`, measures both per build (AutoSeedWindow) and holds
 * 1 queued action per slot only while actions are short against the round trip.
 *
 * `single` puts everything on one worker to make the others steal; a window
 * would leave that worker the only one with work, so it takes no window.
 */
export type SeedWindow = number | 'auto'
export const DEFAULT_SEED_WINDOW: SeedWindow = 'auto'

/**
 * `auto` holds no queued action once the mean action time is at least this many
 * times the typical seed-to-start delay: window 0 then costs a slot about 1.5 of
 * those delays per action (the result's trip, the seed, the start), under 3%.
 */
export const AUTO_WINDOW_RATIO = 50
/** Weight of the newest action time in its moving mean (recent actions count most). */
const AUTO_WINDOW_WEIGHT = 1 / 16
/** Start delays kept: their median is the typical one (the first ones include setting up streams, and one slow start is not the rule). */
const AUTO_WINDOW_DELAYS = 31
/** Actions whose times are followed at once, at most (older ones are dropped, as from a lost worker). */
const AUTO_WINDOW_TRACKED = 65_536

/**
 * The `auto` seed window of one build, from the coordinator's own clock: how
 * long actions run (start allowed → result recorded, a moving mean) and how
 * long an action seeded to a free slot takes to start (seed sent → start
 * asked, the median of the last few). 1 per slot until both are known, or while actions are short;
 * 0 once they are long (AUTO_WINDOW_RATIO). Pure bookkeeping: the coordinator
 * and the simulator (bench/sim) feed it the same events.
 */
export class AutoSeedWindow {
  private durationMs = NaN
  /** The last AUTO_WINDOW_DELAYS start delays, oldest first. */
  private readonly delays: number[] = []
  private startDelayMs = NaN
  private readonly seededAt = new Map<string, number>()
  private readonly startedAt = new Map<string, number>()

  /** The window now: queued actions per slot. */
  get window(): 0 | 1 {
    return this.durationMs >= AUTO_WINDOW_RATIO * this.startDelayMs ? 0 : 1
  }

  /** What it measured, for logs (NaN until known): the mean action time and the median start delay. */
  get means(): { durationMs: number; startDelayMs: number } {
    return { durationMs: this.durationMs, startDelayMs: this.startDelayMs }
  }

  /** `id` was seeded at `now`; only an action given a free slot measures the start delay (a queued one waits for its slot). */
  seeded(id: string, now: number, toFreeSlot: boolean): void {
    if (toFreeSlot) track(this.seededAt, id, now)
  }

  started(id: string, now: number): void {
    const seeded = this.seededAt.get(id)
    if (seeded !== undefined) {
      this.seededAt.delete(id)
      this.delays.push(now - seeded)
      if (this.delays.length > AUTO_WINDOW_DELAYS) this.delays.shift()
      this.startDelayMs = percentile(this.delays, 0.5) ?? Number.NaN
    }
    track(this.startedAt, id, now)
  }

  finished(id: string, now: number): void {
    this.seededAt.delete(id)
    const started = this.startedAt.get(id)
    if (started === undefined) return
    this.startedAt.delete(id)
    this.durationMs = mean(this.durationMs, now - started)
  }
}

function track(m: Map<string, number>, id: string, now: number): void {
  if (m.size >= AUTO_WINDOW_TRACKED) m.delete(m.keys().next().value!)
  m.set(id, now)
}

function mean(old: number, sample: number): number {
  return Number.isNaN(old) ? sample : old + AUTO_WINDOW_WEIGHT * (sample - old)
}
export const SINGLE_WITH_WINDOW = 'a seed window cannot be combined with seed policy single (single seeds one worker for the others to steal from; a window would leave it the only one with work)'

/** Most actions a worker with `slots` slots may hold under a window (undefined: no cap). */
export function windowRoom(slots: number, window: number | undefined): number {
  return window === undefined ? Infinity : slots * (1 + window)
}
