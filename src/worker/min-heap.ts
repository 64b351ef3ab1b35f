/** A binary min-heap: the virtual clock's event queue and the simulator's ready queues. */
/** Ordered by `cmp` (negative: `a` comes first). */
export class MinHeap<T> {
  private readonly h: T[] = []

  constructor(private readonly cmp: (a: T, b: T) => number) {}

  get size(): number {
    return this.h.length
  }

  /** The first, left in place. */
  peek(): T | undefined {
    return this.h[0]
  }

  push(x: T): void {
    const h = this.h
    h.push(x)
    let k = h.length - 1
    while (k > 0) {
      const p = (k - 1) >> 1
      if (this.cmp(h[k]!, h[p]!) >= 0) break
      ;[h[p], h[k]] = [h[k]!, h[p]!]
      k = p
    }
  }

  pop(): T | undefined {
    const h = this.h
    if (h.length === 0) return undefined
    const top = h[0]!
    const last = h.pop()!
    if (h.length > 0) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && this.cmp(h[l]!, h[m]!) < 0) m = l
        if (r < h.length && this.cmp(h[r]!, h[m]!) < 0) m = r
        if (m === i) break
        ;[h[m], h[i]] = [h[i]!, h[m]!]
        i = m
      }
    }
    return top
  }
}
