/**
 * Time, passed in: decision code never reads the clock itself, so the same
 * worker logic runs on real time in the daemon and on virtual time in tests
 * and the simulator.
 */

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
  /** A binary heap of pending events, by (time, seq). */
  private heap: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = []

  now(): number {
    return this.t
  }

  after(ms: number, fn: () => void): () => void {
    const ev = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false }
    this.push(ev)
    return () => {
      ev.cancelled = true
    }
  }

  /** Events waiting (cancelled ones included until they are reached). */
  get pending(): number {
    return this.heap.length
  }

  /**
   * Run events until none are left, or until `untilMs` of virtual time. Returns
   * the number of events run. `maxEvents` guards against a loop that never ends.
   */
  async run(opts: { untilMs?: number; maxEvents?: number } = {}): Promise<number> {
    const max = opts.maxEvents ?? 10_000_000
    let n = 0
    await settle()
    while (this.heap.length > 0) {
      const top = this.heap[0]!
      if (opts.untilMs !== undefined && top.at > opts.untilMs) {
        this.t = opts.untilMs
        break
      }
      this.pop()
      if (top.cancelled) continue
      this.t = top.at
      top.fn()
      await settle()
      if (++n >= max) throw new Error(`VirtualClock: more than ${max} events; is something rescheduling itself forever?`)
    }
    return n
  }

  private push(ev: (typeof this.heap)[number]): void {
    const h = this.heap
    h.push(ev)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (before(h[p]!, h[i]!)) break
      ;[h[p], h[i]] = [h[i]!, h[p]!]
      i = p
    }
  }

  private pop(): void {
    const h = this.heap
    const last = h.pop()!
    if (h.length === 0) return
    h[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < h.length && before(h[l]!, h[m]!)) m = l
      if (r < h.length && before(h[r]!, h[m]!)) m = r
      if (m === i) return
      ;[h[m], h[i]] = [h[i]!, h[m]!]
      i = m
    }
  }
}

function before(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq)
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
