/**
 * What both simulations (the mesh and the central queue) keep about each
 * worker, the churn that makes workers leave and join, and the figures taken
 * from them at the end.
 */
import type { Rng } from '../../strategies/types.js'
import type { VirtualClock } from '../../src/worker/clock.js'

export interface Presence {
  speed: number
  joinedAt: number
  leftAt?: number
  busyMs: number
  executed: number
}

/**
 * Every `everyMs` one present worker, chosen with `rng`, leaves (`leave` does
 * what the scheduler needs); a new one joins `downMs` later. Stops once `done`.
 */
export function churn<M extends Presence>(clock: VirtualClock, rng: Rng, opts: { everyMs: number; downMs: number }, present: M[], done: () => boolean, leave: (m: M) => void, join: () => void): void {
  const leaveOne = (): void => {
    if (done()) return
    if (present.length > 1) {
      const m = present[Math.floor(rng.next() * present.length)]!
      present.splice(present.indexOf(m), 1)
      m.leftAt = clock.now()
      leave(m)
      clock.after(opts.downMs, () => {
        if (!done()) join()
      })
    }
    clock.after(opts.everyMs, leaveOne)
  }
  clock.after(opts.everyMs, leaveOne)
}

/** Idle share of slot time while in the mesh, tasks per worker, joins and leaves. */
export function presenceFigures(members: readonly Presence[], slots: number, makespanMs: number): { idleShare: number; executedPerWorker: { min: number; max: number }; membership: { joined: number; left: number } } {
  const slotTime = members.reduce((a, m) => a + slots * (Math.min(m.leftAt ?? makespanMs, makespanMs) - Math.min(m.joinedAt, makespanMs)), 0)
  const busy = members.reduce((a, m) => a + m.busyMs, 0)
  const executed = members.map((m) => m.executed)
  return {
    idleShare: slotTime > 0 ? Math.max(0, 1 - busy / slotTime) : 0,
    executedPerWorker: { min: Math.min(...executed), max: Math.max(...executed) },
    membership: { joined: members.length, left: members.filter((m) => m.leftAt !== undefined).length },
  }
}
