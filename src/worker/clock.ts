/**
 * Time, passed in: decision code never reads the clock itself, so the same
 * worker logic runs on real time in the daemon and on virtual time in tests
 * and the simulator.
 */
import { MinHeap } from './min-heap.js'

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number
  /** Call `fn` after `ms`; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void
}

export const systemClock: Clock = {
  now: () => performance.now(),
  after: (ms, fn) => {
    const t = setTimeout(fn, ms)
    return () => clearTimeout(t)
  },
}

/**
 * Discrete-event virtual time: events run in time order (ties in the order they
 * were scheduled), and `now` jumps from one to the next. Promise continuations
 * between events run before the next event, so async code behaves as it would
 * on real time, only without waiting.
 */
export class VirtualClock implements Clock {
  private t = 0
  private seq = 0
  /** Pending events, by (time, seq). */
  private readonly heap = new MinHeap<Event>((a, b) => a.at - b.at || a.seq - b.seq)

  now(): number {
    return this.t
  }

  after(ms: number, fn: () => void): () => void {
    const ev = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.heap.push(ev)
    return () => {
      ev.cancelled = true
    }
  }

  /** Events waiting (cancelled ones included until they are reached). */
  get pending(): number {
    return this.heap.size
  }

  /**
   * Run events until none are left, or until `untilMs` of virtual time. Returns
   * the number of events run. `maxEvents` guards against a loop that never ends.
   */
  async run(opts: { untilMs?: number; maxEvents?: number } = {}): Promise<number> {
    const max = opts.maxEvents ?? 10_000_000
    let n = 0
    await settle()
    for (let top = this.heap.peek(); top; top = this.heap.peek()) {
      if (opts.untilMs !== undefined && top.at > opts.untilMs) {
        this.t = opts.untilMs
        break
      }
      this.heap.pop()
      if (top.cancelled) continue
      this.t = top.at
      top.fn()
      await settle()
      if (++n >= max) throw new Error(`VirtualClock: more than ${max} events; is something rescheduling itself forever?`)
    }
    return n
  }
}

interface Event {
  at: number
  seq: number
  fn: () => void
  cancelled: boolean
}

/**
 * Let every pending promise continuation run: Node drains the whole microtask
 * queue (chains included) before it reaches the next macrotask, so one
 * setImmediate is enough, and cheaper than rounds of awaits (the simulator runs
 * millions of events).
 */
function settle(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve))
}
