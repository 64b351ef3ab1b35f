/**
 * The coordinator's side of a simulated build: which tasks are ready, in
 * priority order (longest remaining path first, as the coordinator seeds), and
 * which become ready as results come in. Shared by the mesh simulation and the
 * central-queue baseline, so both schedule the same graph the same way.
 */
import { MinHeap } from '../../src/worker/min-heap.js'
import type { Workload } from './workloads.js'

export { MinHeap }

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
