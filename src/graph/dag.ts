/**
 * The action graph: edges come from data (an action that consumes a file
 * another action produces depends on it). Built once, validated (no cycles),
 * then read-only.
 */
import type { Action } from './action.js'

export class BuildGraph {
  /** Action ids this action waits for. */
  private readonly deps = new Map<string, string[]>()
  /** Action ids waiting for this action. */
  private readonly dependants = new Map<string, string[]>()
  private readonly producers = new Map<string, Action>()

  /**
   * @param actions every action, by id
   * @param targets each name a user can ask for → the action ids that make it
   */
  constructor(
    readonly actions: ReadonlyMap<string, Action>,
    readonly targets: ReadonlyMap<string, readonly string[]>,
    /** Targets built when none are named (ninja's `default`); undefined: every action. */
    readonly defaults?: readonly string[],
  ) {
    for (const a of actions.values()) for (const out of a.outputs) this.producers.set(out, a)
    for (const a of actions.values()) {
      const ds = new Set<string>()
      for (const input of a.orderOnly ? [...a.inputs, ...a.orderOnly] : a.inputs) {
        const p = this.producers.get(input)
        if (p && p.id !== a.id) ds.add(p.id)
      }
      const list = [...ds].sort()
      this.deps.set(a.id, list)
      for (const d of list) {
        let r = this.dependants.get(d)
        if (!r) this.dependants.set(d, (r = []))
        r.push(a.id)
      }
    }
  }

  get(id: string): Action {
    const a = this.actions.get(id)
    if (!a) throw new Error(`no action ${id}`)
    return a
  }

  /** The action that produces `path`, if any (else the path is a source file). */
  producerOf(path: string): Action | undefined {
    return this.producers.get(path)
  }

  depsOf(id: string): readonly string[] {
    return this.deps.get(id) ?? []
  }

  dependantsOf(id: string): readonly string[] {
    return this.dependants.get(id) ?? []
  }

  /** The actions needed to make `roots`: the roots and everything they depend on. */
  closure(roots: Iterable<string>): Set<string> {
    const seen = new Set<string>()
    const stack = [...roots]
    while (stack.length > 0) {
      const id = stack.pop() as string
      if (seen.has(id)) continue
      seen.add(id)
      stack.push(...this.depsOf(id))
    }
    return seen
  }

  /** One dependency cycle as a list of action ids (first repeated at the end), or null if there is none. */
  findCycle(): string[] | null {
    const WHITE = 0
    const GREY = 1
    const BLACK = 2
    const color = new Map<string, number>()
    for (const start of [...this.actions.keys()].sort()) {
      if ((color.get(start) ?? WHITE) !== WHITE) continue
      // Iterative DFS; `path` holds the grey chain from `start`.
      const path: string[] = [start]
      const iters: number[] = [0]
      color.set(start, GREY)
      while (path.length > 0) {
        const top = path[path.length - 1] as string
        const ds = this.depsOf(top)
        const i = iters[iters.length - 1] as number
        if (i >= ds.length) {
          color.set(top, BLACK)
          path.pop()
          iters.pop()
          continue
        }
        iters[iters.length - 1] = i + 1
        const next = ds[i] as string
        const c = color.get(next) ?? WHITE
        if (c === GREY) {
          // `top` needs `next`, which is already on the chain: report it in "needs" order.
          const from = path.indexOf(next)
          return [...path.slice(from), next]
        }
        if (c === WHITE) {
          color.set(next, GREY)
          path.push(next)
          iters.push(0)
        }
      }
    }
    return null
  }

  /**
   * The longest chain of `weight` (e.g. this build's action durations) through
   * `ids`: the least wall time the build could take with unlimited parallelism.
   */
  criticalPath(ids: Iterable<string>, weight: (id: string) => number): { totalMs: number; actions: string[] } {
    const order = this.topologicalOrder(ids)
    const idSet = new Set(order)
    const best = new Map<string, { total: number; prev: string | undefined }>()
    let end: string | undefined
    let endTotal = 0
    for (const id of order) {
      let prev: string | undefined
      let prevTotal = 0
      for (const d of this.depsOf(id)) {
        const b = idSet.has(d) ? best.get(d) : undefined
        if (b && (prev === undefined || b.total > prevTotal)) {
          prevTotal = b.total
          prev = d
        }
      }
      const total = prevTotal + weight(id)
      best.set(id, { total, prev })
      if (end === undefined || total > endTotal) {
        endTotal = total
        end = id
      }
    }
    const chain: string[] = []
    for (let cur = end; cur !== undefined; cur = best.get(cur)?.prev) chain.push(cur)
    return { totalMs: endTotal, actions: chain.reverse() }
  }

  /** `ids` ordered so every action comes after the actions it depends on (Kahn's algorithm). */
  topologicalOrder(ids: Iterable<string>): string[] {
    const idSet = new Set(ids)
    const waiting = new Map<string, number>()
    const ready: string[] = []
    for (const id of idSet) {
      const n = this.depsOf(id).filter((d) => idSet.has(d)).length
      waiting.set(id, n)
      if (n === 0) ready.push(id)
    }
    const order: string[] = []
    while (ready.length > 0) {
      const id = ready.pop() as string
      order.push(id)
      for (const r of this.dependantsOf(id)) {
        const n = waiting.get(r)
        if (n === undefined) continue
        waiting.set(r, n - 1)
        if (n === 1) ready.push(r)
      }
    }
    if (order.length !== idSet.size) throw new Error('topologicalOrder: the graph has a cycle')
    return order
  }
}
