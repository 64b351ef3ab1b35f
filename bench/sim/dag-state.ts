/**
 * The coordinator's side of a simulated build: which tasks are ready, in
 * priority order (longest remaining path first, as the coordinator seeds), and
 * which become ready as results come in. Shared by the mesh simulation and the
 * central-queue baseline, so both schedule the same graph the same way.
 */
import type { Workload } from './workloads.js'

export class DagState {
  private readonly waiting: Int32Array
  private readonly dependants: number[][]
  /** Ready task indices, most urgent first: highest bottom level (ties: lower index). */
  private readonly heap: MinHeap<number>
  done = 0

  constructor(readonly workload: Workload) {
    const n = workload.tasks.length
    this.waiting = new Int32Array(n)
    this.dependants = Array.from({ length: n }, () => [])
    const bl = workload.bottomLevelMs
    this.heap = new MinHeap<number>((a, b) => bl[b]! - bl[a]! || a - b)
    workload.tasks.forEach((t, i) => {
      this.waiting[i] = t.deps.length
      for (const d of t.deps) this.dependants[d]!.push(i)
      if (t.deps.length === 0) this.push(i)
    })
  }

  get size(): number {
    return this.workload.tasks.length
  }

  get readyCount(): number {
    return this.heap.size
  }

  get finished(): boolean {
    return this.done === this.size
  }

  /** Task `i` has a recorded result: its dependants with nothing else to wait for become ready. */
  complete(i: number): void {
    this.done++
    for (const d of this.dependants[i]!) if (--this.waiting[d]! === 0) this.push(d)
  }

  /** The most urgent ready task. */
  pop(): number | undefined {
    return this.heap.pop()
  }

  /** A task handed back (its worker left) is ready again. */
  push(i: number): void {
    this.heap.push(i)
  }
}

/** A binary min-heap by `cmp` (negative: `a` comes first). */
export class MinHeap<T> {
  private readonly h: T[] = []

  constructor(private readonly cmp: (a: T, b: T) => number) {}

  get size(): number {
    return this.h.length
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
