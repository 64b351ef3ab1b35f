/**
 * Workloads for the steal-strategy simulator: tasks with durations and
 * dependencies, generated from a seed, with their total work and critical path
 * computed exactly (the lower bound every efficiency figure is taken against).
 *
 * - uniform: independent tasks, durations uniform in [½, 1½] × the mean.
 * - heavy-tailed: independent tasks, Pareto durations (α = 1.5: a few tasks
 *   take tens of times the median, as a slow test or a giant translation unit
 *   does).
 * - monorepo: a synthetic monorepo of packages, in the shape a Bazel or CMake
 *   graph has: each package has a code-generation step that needs its
 *   dependencies' generated headers (the chain that makes the critical path), a
 *   compile per source (fan-out; log-normal durations, so heavy-tailed), an
 *   archive of its objects (fan-in), and for some packages a binary linked
 *   against its own and its dependencies' archives (wider fan-in) and a test
 *   that runs it. Dependencies favour the early, foundational packages, so a
 *   few are used by many (the fan-out of a `base` or `util` library).
 */
import { createRng, type Rng } from '../../strategies/index.js'

export interface Task {
  durationMs: number
  /** Indices of tasks this one needs; always lower than its own index (so index order is a topological order). */
  deps: number[]
}

export interface Workload {
  name: string
  description: string
  tasks: Task[]
  totalWorkMs: number
  /** The longest chain of durations through the dependencies. */
  criticalPathMs: number
  /** Per task: its duration plus the longest chain below it (its priority: longest remaining path first). */
  bottomLevelMs: Float64Array
}

export function finish(name: string, description: string, tasks: Task[]): Workload {
  const n = tasks.length
  const below = new Float64Array(n)
  const bottom = new Float64Array(n)
  let total = 0
  let cp = 0
  for (let i = n - 1; i >= 0; i--) {
    const t = tasks[i]!
    for (const d of t.deps) if (d < 0 || d >= i) throw new Error(`workload ${name}: task ${i} depends on ${d}, not an earlier task`)
    bottom[i] = t.durationMs + below[i]!
    total += t.durationMs
    if (bottom[i]! > cp) cp = bottom[i]!
    for (const d of t.deps) if (bottom[i]! > below[d]!) below[d] = bottom[i]!
  }
  return { name, description, tasks, totalWorkMs: total, criticalPathMs: cp, bottomLevelMs: bottom }
}

export function uniform(n: number, meanMs: number, seed: number): Workload {
  const rng = createRng(seed)
  const tasks = Array.from({ length: n }, () => ({ durationMs: meanMs * (0.5 + rng.next()), deps: [] }))
  return finish('uniform', `${n} independent tasks, uniform ${meanMs / 2}–${(meanMs * 3) / 2} ms`, tasks)
}

/** Pareto(α, x_m) with the given median, capped at `cap` × the median. */
function pareto(rng: Rng, alpha: number, medianMs: number, cap: number): number {
  const xm = medianMs / 2 ** (1 / alpha)
  const u = 1 - rng.next() // (0, 1]
  return Math.min(cap * medianMs, xm / u ** (1 / alpha))
}

export function heavyTailed(n: number, medianMs: number, seed: number): Workload {
  const rng = createRng(seed)
  const tasks = Array.from({ length: n }, () => ({ durationMs: pareto(rng, 1.5, medianMs, 100), deps: [] }))
  return finish('heavy-tailed', `${n} independent tasks, Pareto α 1.5, median ${medianMs} ms, capped at 100× the median`, tasks)
}

/** A standard normal deviate (Box–Muller). */
function normal(rng: Rng): number {
  const u = 1 - rng.next()
  const v = rng.next()
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v)
}

function logNormal(rng: Rng, medianMs: number, sigma: number, capMs: number): number {
  return Math.min(capMs, medianMs * Math.exp(sigma * normal(rng)))
}

export interface MonorepoShape {
  /** About this many tasks (the last package may end a few past it). */
  actions: number
  seed: number
}

export function monorepo({ actions, seed }: MonorepoShape): Workload {
  const rng = createRng(seed)
  const tasks: Task[] = []
  const add = (durationMs: number, deps: number[]): number => tasks.push({ durationMs, deps }) - 1
  /** Per package: its code-generation task, its archive, and its direct dependencies. */
  const pkgs: { gen: number; archive: number; deps: number[] }[] = []
  while (tasks.length < actions) {
    const p = pkgs.length
    // Up to 5 dependencies among earlier packages, biased to the early (foundational) ones.
    const deps = new Set<number>()
    const want = p === 0 ? 0 : Math.min(p, Math.floor(rng.next() * 6))
    while (deps.size < want) deps.add(Math.floor(p * rng.next() ** 2))
    const direct = [...deps].sort((a, b) => a - b)
    const gen = add(200 + 400 * rng.next(), direct.map((d) => pkgs[d]!.gen))
    const sources = Math.max(1, Math.min(60, Math.round(logNormal(rng, 6, 0.8, 60))))
    const objects: number[] = []
    for (let s = 0; s < sources; s++) objects.push(add(logNormal(rng, 800, 0.9, 30_000), [gen]))
    const archive = add(100 + 10 * sources, objects)
    pkgs.push({ gen, archive, deps: direct })
    if (rng.next() < 0.3) {
      // A binary: linked against this package's archive and its dependencies' (two levels, at most 64).
      const libs = new Set<number>([archive])
      for (const d of direct) {
        libs.add(pkgs[d]!.archive)
        for (const dd of pkgs[d]!.deps) if (libs.size < 64) libs.add(pkgs[dd]!.archive)
      }
      const link = add(1_000 + 3_000 * rng.next(), [...libs].sort((a, b) => a - b))
      add(logNormal(rng, 2_000, 0.8, 60_000), [link])
    }
  }
  return finish('monorepo', `a synthetic monorepo: ${pkgs.length} packages, ${tasks.length} actions (codegen → compiles → archive → link → test)`, tasks)
}

/** `n` independent tasks of exactly `ms` each: the live mesh's sleep actions (bench/live-mesh), for checking the simulator against it. */
export function sleeps(n: number, ms: number): Workload {
  return finish('sleeps', `${n} independent tasks of ${ms} ms`, Array.from({ length: n }, () => ({ durationMs: ms, deps: [] })))
}
