/**
 * A worker's local queue of actions, with the verbs of a work-stealing deque.
 *
 * The owner takes from the front: the coordinator seeds ready actions in
 * priority order (longest remaining path first), so the front is the work that
 * matters most to the build, and what this worker's warm caches just staged
 * for. Thieves take from the back, the cold end, at most half of the queue and
 * never the last `reserve` actions, so a victim is not stripped to idle by the
 * request that made the thief busy.
 *
 * Single-threaded (one JS event loop per worker), so no atomics: the invariant
 * that matters is conservation, tested as pushed = taken + stolen + remaining.
 */

export interface StealGrant<T> {
  items: T[]
  /** Why fewer than asked were granted, when that happened. */
  limitedBy?: 'empty' | 'reserve' | 'half' | 'max'
}

export class ActionDeque<T> {
  /** The queue, front first. */
  private items: T[] = []
  /** Index of the front within `items` (shifting an array per pop is O(n)). */
  private head = 0

  constructor(
    /** Most actions held; the coordinator does not seed beyond it. */
    readonly capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`invalid capacity: must be an integer >= 1 (got ${capacity})`)
  }

  get length(): number {
    return this.items.length - this.head
  }

  /** Room left before the queue is full. */
  remainingSlots(): number {
    return this.capacity - this.length
  }

  /** Add at the back. Returns false (and adds nothing) when full. */
  pushBack(item: T): boolean {
    if (this.length >= this.capacity) return false
    this.items.push(item)
    return true
  }

  /** Put actions back at the front, in order (e.g. handed back by a draining peer). */
  pushFront(items: readonly T[]): number {
    const n = Math.min(items.length, this.remainingSlots())
    this.compact()
    this.items.unshift(...items.slice(0, n))
    return n
  }

  /** The owner's next action, from the front. */
  pop(): T | undefined {
    if (this.length === 0) return undefined
    const item = this.items[this.head] as T
    this.items[this.head] = undefined as T
    this.head++
    if (this.head > 1024 && this.head * 2 > this.items.length) this.compact()
    return item
  }

  /**
   * A thief's share, from the back: at most `max`, at most half the queue
   * (rounded up, so a queue of 1 above the reserve can still give 1), and never
   * below `reserve` left behind. Returned oldest first.
   */
  stealHalf(max: number, reserve: number, accept?: (item: T) => boolean): StealGrant<T> {
    const available = this.length - reserve
    if (this.length === 0) return { items: [], limitedBy: 'empty' }
    if (available <= 0) return { items: [], limitedBy: 'reserve' }
    const half = Math.ceil(this.length / 2)
    const n = Math.min(max, half, available)
    if (accept) return this.stealMatching(n, accept)
    const items = this.items.splice(this.items.length - n, n)
    const limitedBy = n === max ? undefined : n === half ? 'half' : n === available ? 'reserve' : 'max'
    return limitedBy ? { items, limitedBy } : { items }
  }

  /** Up to `n` items the thief accepts, from the back, returned oldest first; the others stay in order. */
  private stealMatching(n: number, accept: (item: T) => boolean): StealGrant<T> {
    const taken: T[] = []
    for (let i = this.items.length - 1; i >= this.head && taken.length < n; i--) {
      if (!accept(this.items[i] as T)) continue
      taken.push(this.items[i] as T)
      this.items.splice(i, 1)
    }
    taken.reverse()
    return taken.length === 0 ? { items: [], limitedBy: 'empty' } : { items: taken }
  }

  /** Everything queued, front first, removed (a draining worker hands it back). */
  drain(): T[] {
    const all = this.items.slice(this.head)
    this.items = []
    this.head = 0
    return all
  }

  private compact(): void {
    if (this.head === 0) return
    this.items = this.items.slice(this.head)
    this.head = 0
  }
}
