/**
 * bench/strategies (`npm run bench`): the victim-selection strategies and two
 * baselines compared in the simulator (bench/sim: the daemon's WorkerCore and
 * strategies in virtual time), and the simulator checked against the live
 * mesh. Reproducible from --seed.
 *
 *   npm run bench [-- --quick] [--seed N] [--out DIR] [--skip-live] [--scale]
 *
 * 1. Scenarios at one mesh size, every scheduler: uniform and heavy-tailed
 *    independent tasks, all work seeded on one worker, the monorepo DAG, the
 *    DAG on workers of mixed speeds, the DAG with churn, and all work on one
 *    worker with lossy, slow gossip.
 * 2. The headline table: the monorepo DAG on 1, 10, 50, 100 and 1,000 workers
 *    → speedup and efficiency per scheduler.
 * 3. Seed policies: the default strategy on the DAG under each policy; and
 *    seed windows (how far ahead the coordinator seeds: 0, 1, 2 queued actions, auto
 *    per slot (the default, measured per build), or a worker's whole queue) at 100 and 1,000 workers.
 * 4. With --scale: the DAG on 10,000 workers. Not in a default run: every
 *    simulated worker keeps a table of every peer it has heard from, and the
 *    first run of it exhausted a 4 GB heap (see the README).
 * 5. The simulator against the live mesh (bench/live-mesh's speedup part:
 *    real worker processes, libp2p on loopback) at 2, 4 and 8 workers on the
 *    same workload; makespans within 15% is the target.
 *
 * Efficiency = lower bound / makespan, lower bound = max(critical path,
 * total work / capacity). Prints tables, writes bench/results/strategies.json
 * and SVG plots (bench/results/strategies-*.svg). --quick runs in under two
 * minutes on two cores.
 */
import { spawn } from 'node:child_process'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_STRATEGY, STRATEGIES, type StrategyName } from '../strategies/index.js'
import { DEFAULT_SEED_POLICY, DEFAULT_SEED_WINDOW, SEED_POLICIES, type SeedWindow } from '../src/net/seed-policy.js'
import { DEFAULT_NETWORK, SCHEDULERS, simulate, type Scheduler, type SimOptions, type SimResult } from './sim/simulate.js'
import { percentile } from '../src/percentile.js'
import { barChart, lineChart } from './sim/svg.js'
import { heavyTailed, monorepo, sleeps, uniform, type Workload } from './sim/workloads.js'
import { REPO } from './repo.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: join(REPO, 'bench', 'results') },
    'skip-live': { type: 'boolean', default: false },
    scale: { type: 'boolean' },
  },
})
const quick = values.quick
const seed = Number(values.seed)
if (!Number.isInteger(seed)) throw new Error(`--seed: expected an integer, got ${values.seed}`)

const cfg = quick
  ? { dagActions: 5_000, indepTasks: 2_000, compareWorkers: 50, headline: [1, 10, 50, 100, 1000], scale: values.scale ? 10_000 : 0, liveRounds: 1 }
  : { dagActions: 50_000, indepTasks: 10_000, compareWorkers: 100, headline: [1, 10, 50, 100, 1000], scale: values.scale ? 10_000 : 0, liveRounds: 5 }

const STRATEGY_NAMES = Object.keys(STRATEGIES) as StrategyName[]
const fmt = (x: number | null | undefined, d = 2): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d))
const pct = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '—' : `${(x * 100).toFixed(1)}%`)
const started = performance.now()
const progress = (msg: string): void => void process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`)

async function run(label: string, opts: SimOptions): Promise<SimResult> {
  const r = await simulate(opts)
  if (r.executions !== r.tasks) throw new Error(`${label}: ${r.executions} executions of ${r.tasks} tasks (a task lost or run twice)`)
  progress(`${label.padEnd(34)} ${String(opts.workers).padStart(5)} workers  ${opts.scheduler.padEnd(13)} efficiency ${fmt(r.efficiency, 3)}  (${(r.wallMs / 1000).toFixed(1)} s)`)
  return r
}

function table(title: string, rows: SimResult[]): void {
  console.log(`\n${title}`)
  console.log('  scheduler       makespan s  efficiency  steals (granted/attempted)  success  msgs/action  idle share')
  for (const r of rows) {
    const steals = r.steals.attempted > 0 ? `${r.steals.granted}/${r.steals.attempted}` : '—'
    console.log(`  ${r.scheduler.padEnd(14)}  ${fmt(r.makespanMs / 1000, 1).padStart(10)}  ${pct(r.efficiency).padStart(10)}  ${steals.padStart(26)}  ${pct(r.steals.successRate).padStart(7)}  ${fmt(r.messages.perAction, 1).padStart(11)}  ${pct(r.idleShare).padStart(10)}`)
  }
}

// ------------------------------------------------------------ workloads
const dag = monorepo({ actions: cfg.dagActions, seed })
const scenarios: { key: string; title: string; workload: Workload; opts: Partial<SimOptions> }[] = [
  { key: 'uniform', title: 'uniform tasks', workload: uniform(cfg.indepTasks, 1_000, seed), opts: {} },
  { key: 'heavy-tailed', title: 'heavy-tailed tasks', workload: heavyTailed(cfg.indepTasks, 500, seed), opts: {} },
  { key: 'single-seeded', title: 'all seeded on one worker', workload: uniform(cfg.indepTasks, 1_000, seed), opts: { seedPolicy: 'single' } },
  { key: 'monorepo', title: 'monorepo DAG', workload: dag, opts: {} },
  { key: 'mixed-speeds', title: 'monorepo DAG, mixed speeds', workload: dag, opts: { speeds: 'mixed' } },
  { key: 'churn', title: 'monorepo DAG, churn', workload: dag, opts: { churn: { everyMs: 2_000, downMs: 5_000 } } },
  { key: 'lossy-gossip', title: 'one worker seeded, gossip 20% lost, 50 ms late', workload: uniform(cfg.indepTasks, 1_000, seed), opts: { seedPolicy: 'single', network: { gossipLoss: 0.2, gossipDelayMs: 50 } } },
]

const report: Record<string, unknown> = {
  date: new Date().toISOString(),
  quick,
  seed,
  network: DEFAULT_NETWORK,
  defaultStrategy: DEFAULT_STRATEGY,
  defaultSeedPolicy: DEFAULT_SEED_POLICY,
  workloads: Object.fromEntries([...new Map(scenarios.map((s) => [s.workload, s])).keys()].map((w) => [w.name === 'uniform' ? 'uniform' : w.name, { description: w.description, tasks: w.tasks.length, totalWorkMs: w.totalWorkMs, criticalPathMs: w.criticalPathMs }])),
}
await mkdir(values.out, { recursive: true })
const svg = (name: string, text: string): Promise<void> => writeFile(join(values.out, `strategies-${name}.svg`), text)
console.log(`bench/strategies: seed ${seed}${quick ? ', quick' : ''}; monorepo DAG: ${dag.description}, critical path ${fmt(dag.criticalPathMs / 1000, 1)} s, total work ${fmt(dag.totalWorkMs / 1000, 0)} s`)

// ------------------------------------------------------------ 1. scenarios
const byScenario: Record<string, SimResult[]> = {}
for (const sc of scenarios) {
  byScenario[sc.key] = []
  for (const scheduler of SCHEDULERS) byScenario[sc.key]!.push(await run(sc.title, { workload: sc.workload, workers: cfg.compareWorkers, scheduler, seed, ...sc.opts }))
  table(`${sc.title}: ${sc.workload.description}, ${cfg.compareWorkers} workers`, byScenario[sc.key]!)
}
report['scenarios'] = Object.fromEntries(scenarios.map((sc) => [sc.key, { title: sc.title, workers: cfg.compareWorkers, results: byScenario[sc.key] }]))
const cats = scenarios.map((s) => s.key)
await svg(
  'scenarios-efficiency',
  barChart({ title: `Efficiency by scenario, ${cfg.compareWorkers} workers`, yLabel: 'efficiency (lower bound / makespan)', categories: cats, series: SCHEDULERS.map((s) => ({ name: s, values: cats.map((c) => byScenario[c]!.find((r) => r.scheduler === s)!.efficiency) })), yMax: 1.05 }),
)
await svg(
  'scenarios-steal-success',
  barChart({ title: `Steal success by scenario, ${cfg.compareWorkers} workers`, yLabel: 'granted / attempted', categories: cats, series: STRATEGY_NAMES.map((s) => ({ name: s, values: cats.map((c) => byScenario[c]!.find((r) => r.scheduler === s)!.steals.successRate ?? NaN) })), yMax: 1.05, guide: { y: 0.9, label: 'target 90%' } }),
)
await svg(
  'scenarios-idle',
  barChart({ title: `Idle share by scenario, ${cfg.compareWorkers} workers`, yLabel: 'share of slot time idle', categories: cats, series: SCHEDULERS.map((s) => ({ name: s, values: cats.map((c) => byScenario[c]!.find((r) => r.scheduler === s)!.idleShare) })) }),
)

// ------------------------------------------------------------ 2. headline
const headline = new Map<Scheduler, SimResult[]>()
for (const scheduler of SCHEDULERS) {
  const rows: SimResult[] = []
  for (const workers of cfg.headline) rows.push(await run('headline: monorepo DAG', { workload: dag, workers, scheduler, seed }))
  headline.set(scheduler, rows)
}
const speedupOf = (rows: SimResult[], r: SimResult): number => rows[0]!.makespanMs / r.makespanMs
console.log(`\nHeadline: monorepo DAG (${dag.tasks.length} actions, critical path ${fmt(dag.criticalPathMs / 1000, 1)} s), 1 slot per worker, ${DEFAULT_SEED_POLICY} seeding, seed window ${DEFAULT_SEED_WINDOW}: speedup over one worker / efficiency`)
console.log(`  workers  ${SCHEDULERS.map((s) => s.padStart(18)).join('')}`)
cfg.headline.forEach((w, i) => {
  console.log(`  ${String(w).padStart(7)}  ${SCHEDULERS.map((s) => { const rows = headline.get(s)!; const r = rows[i]!; return `${fmt(speedupOf(rows, r), 1)}× ${pct(r.efficiency)}`.padStart(18) }).join('')}`)
})
console.log(`  steal success at ${cfg.headline.at(-1)}: ${STRATEGY_NAMES.map((s) => `${s} ${pct(headline.get(s)!.at(-1)!.steals.successRate)}`).join(', ')}`)
console.log(`  messages per action at ${cfg.headline.at(-1)}: ${SCHEDULERS.map((s) => `${s} ${fmt(headline.get(s)!.at(-1)!.messages.perAction, 1)}`).join(', ')}`)
report['headline'] = { workload: 'monorepo', workers: cfg.headline, results: Object.fromEntries([...headline].map(([s, rows]) => [s, rows.map((r) => ({ ...r, speedup: speedupOf(rows, r) }))])) }
const vsWorkers = (f: (r: SimResult, rows: SimResult[]) => number, names: readonly Scheduler[] = SCHEDULERS) => names.map((s) => ({ name: s, points: headline.get(s)!.map((r) => [r.workers, f(r, headline.get(s)!)] as const) }))
await svg('headline-efficiency', lineChart({ title: 'Efficiency vs workers, monorepo DAG', xLabel: 'workers (log scale)', yLabel: 'efficiency', xLog: true, yMin: 0, yMax: 1.05, series: vsWorkers((r) => r.efficiency), guide: { y: 0.9, label: 'target at 1,000: 90%' } }))
await svg('headline-speedup', lineChart({ title: 'Speedup over one worker, monorepo DAG', xLabel: 'workers (log scale)', yLabel: 'speedup', xLog: true, series: vsWorkers((r, rows) => speedupOf(rows, r)) }))
await svg('headline-steal-success', lineChart({ title: 'Steal success vs workers, monorepo DAG', xLabel: 'workers (log scale)', yLabel: 'granted / attempted', xLog: true, yMin: 0, yMax: 1.05, series: vsWorkers((r) => r.steals.successRate ?? NaN, STRATEGY_NAMES), guide: { y: 0.9, label: 'target 90%' } }))
await svg('headline-messages', lineChart({ title: 'Messages per action vs workers, monorepo DAG', xLabel: 'workers (log scale)', yLabel: 'messages per action', xLog: true, series: vsWorkers((r) => r.messages.perAction) }))
await svg('headline-idle', lineChart({ title: 'Idle share vs workers, monorepo DAG', xLabel: 'workers (log scale)', yLabel: 'share of slot time idle', xLog: true, yMin: 0, series: vsWorkers((r) => r.idleShare) }))

// ------------------------------------------------------------ 3. seed policies
const policyRows: (SimResult & { policy: string })[] = []
// 'single' on 1,000 workers takes a minute of host time (every thief herds on a few victims): full runs only.
for (const workers of quick ? [cfg.compareWorkers, 100] : [cfg.compareWorkers, 1000]) {
  for (const policy of SEED_POLICIES) if (!(quick && workers > cfg.compareWorkers && policy === 'single')) policyRows.push({ ...(await run(`seed policy ${policy}`, { workload: dag, workers, scheduler: DEFAULT_STRATEGY, seedPolicy: policy, seed })), policy })
}
console.log(`\nSeed policies, monorepo DAG, ${DEFAULT_STRATEGY}`)
console.log('  workers  policy                                   efficiency  steal success  msgs/action')
for (const r of policyRows) console.log(`  ${String(r.workers).padStart(7)}  ${r.policy.padEnd(39)}  ${pct(r.efficiency).padStart(10)}  ${pct(r.steals.successRate).padStart(13)}  ${fmt(r.messages.perAction, 1).padStart(11)}`)
report['seedPolicies'] = policyRows

// ------------------------------------------------------------ 3b. seed windows
// How far ahead the coordinator seeds (seed-policy.ts): queued actions per slot beyond those running, or no window (a worker's whole queue).
const windowRows: SimResult[] = []
const SEED_WINDOWS: (SeedWindow | null)[] = [0, 1, 2, 'auto', null]
const windowShapes = quick ? [{ workers: 100, slots: 1 }, { workers: 1000, slots: 1 }] : [{ workers: 100, slots: 1 }, { workers: 1000, slots: 1 }, { workers: 125, slots: 8 }]
for (const shape of windowShapes) {
  for (const seedWindow of SEED_WINDOWS) windowRows.push(await run(`seed window ${seedWindow ?? 'none'}, ${shape.slots} slot${shape.slots > 1 ? 's' : ''}`, { workload: dag, ...shape, scheduler: DEFAULT_STRATEGY, seedWindow, seed }))
}
console.log(`\nSeed windows, monorepo DAG, ${DEFAULT_STRATEGY}, ${DEFAULT_SEED_POLICY} seeding (window: queued actions per slot beyond those running; default ${DEFAULT_SEED_WINDOW})`)
console.log('  workers × slots  window  efficiency  steals (granted/attempted)  success  msgs/action  idle share')
for (const r of windowRows) {
  const steals = r.steals.attempted > 0 ? `${r.steals.granted}/${r.steals.attempted}` : '—'
  console.log(`  ${`${r.workers} × ${r.slots}`.padStart(15)}  ${String(r.seedWindow ?? 'none').padStart(6)}  ${pct(r.efficiency).padStart(10)}  ${steals.padStart(26)}  ${pct(r.steals.successRate).padStart(7)}  ${fmt(r.messages.perAction, 1).padStart(11)}  ${pct(r.idleShare).padStart(10)}`)
}
report['seedWindows'] = windowRows
await svg(
  'seed-windows',
  barChart({
    title: `Efficiency by seed window, monorepo DAG, ${DEFAULT_STRATEGY}`,
    yLabel: 'efficiency (lower bound / makespan)',
    categories: windowShapes.map((s) => `${s.workers} × ${s.slots}`),
    series: SEED_WINDOWS.map((w) => ({ name: w === null ? 'no window' : `window ${w}`, values: windowShapes.map((s) => windowRows.find((r) => r.workers === s.workers && r.slots === s.slots && r.seedWindow === w)!.efficiency) })),
    yMax: 1.05,
    guide: { y: 0.9, label: 'target at 1,000: 90%' },
  }),
)

// ------------------------------------------------------------ 4. scale
if (cfg.scale > 0) {
  const big = monorepo({ actions: 100_000, seed })
  const rows: SimResult[] = []
  for (const scheduler of [DEFAULT_STRATEGY, 'central-queue'] as const) rows.push(await run('scale: 100k-action DAG', { workload: big, workers: cfg.scale, scheduler, seed }))
  table(`Scale: ${big.description} on ${cfg.scale} workers`, rows)
  report['scale'] = { workers: cfg.scale, workload: big.description, results: rows }
}

// ------------------------------------------------------------ 5. simulator vs live mesh
if (!values['skip-live']) {
  const n = 64
  const sleepMs = 100
  const liveOut = join(tmpdir(), `bldr-bench-strategies-live-${process.pid}.json`)
  progress(`live mesh: ${n} sleep actions of ${sleepMs} ms at 2, 4, 8 worker processes (bench/live-mesh)`)
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'dist', 'bench', 'live-mesh.js'), '--only', 'speedup', '--sleep-actions', String(n), '--speedup-workers', '2,4,8', '--rounds', String(cfg.liveRounds), '--out', liveOut], { stdio: ['ignore', 'ignore', 'inherit'] })
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`bench/live-mesh exited with ${code}`))))
  })
  const live = JSON.parse(await readFile(liveOut, 'utf8')) as { speedup: Record<string, { rows: { workers: number; seconds: number; stealRttP50Ms: number | null; startRttP50Ms: number | null }[] }> }
  await rm(liveOut, { force: true })
  const liveRows = live.speedup[`actions${n}`]!.rows
  // The simulator is given the latencies the live mesh had at each size, as
  // half the round trips its workers measured (a request and a reply): steal
  // requests for peer messages, start requests for the coordinator's. On two
  // cores, 8 worker processes and the coordinator contend for the CPU, so every
  // message waits longer than at 2 workers; the two kinds wait differently
  // (steals come in bursts at one victim). A size with no sample of a kind takes
  // the median of the other sizes.
  const half = (xs: (number | null)[]): number | undefined => {
    const v = percentile(xs.filter((x): x is number => x !== null), 0.5)
    return v === undefined ? undefined : v / 2
  }
  const stealFallback = half(liveRows.map((r) => r.stealRttP50Ms)) ?? DEFAULT_NETWORK.latencyMs
  const startFallback = half(liveRows.map((r) => r.startRttP50Ms)) ?? stealFallback
  const rows: { workers: number; liveS: number; simS: number; diff: number; within15: boolean; latencyMs: number; coordinatorLatencyMs: number }[] = []
  for (const lr of liveRows) {
    const latencyMs = lr.stealRttP50Ms !== null ? lr.stealRttP50Ms / 2 : stealFallback
    const coordinatorLatencyMs = lr.startRttP50Ms !== null ? lr.startRttP50Ms / 2 : startFallback
    const r = await run('simulator vs live', { workload: sleeps(n, sleepMs), workers: lr.workers, scheduler: 'power-of-two', seedPolicy: 'single', seed, network: { latencyMs, coordinatorLatencyMs } })
    const simS = r.makespanMs / 1000
    const diff = (simS - lr.seconds) / lr.seconds
    rows.push({ workers: lr.workers, liveS: lr.seconds, simS, diff, within15: Math.abs(diff) <= 0.15, latencyMs, coordinatorLatencyMs })
  }
  console.log(`\nSimulator vs live mesh: ${n} sleep actions of ${sleepMs} ms, all seeded on one worker, power-of-two (one-way latencies: half the live round trips at each size)`)
  console.log('  workers  peer / coordinator latency ms  live s  sim s   difference  within 15%')
  for (const r of rows) console.log(`  ${String(r.workers).padStart(7)}  ${`${fmt(r.latencyMs, 2)} / ${fmt(r.coordinatorLatencyMs, 2)}`.padStart(29)}  ${fmt(r.liveS).padStart(6)}  ${fmt(r.simS).padStart(5)}  ${`${r.diff >= 0 ? '+' : ''}${(r.diff * 100).toFixed(1)}%`.padStart(10)}  ${r.within15 ? 'yes' : 'NO'}`)
  report['simVsLive'] = { actions: n, sleepMs, latency: 'half the live round trips (p50) at each size: steal requests for peer messages, start requests for coordinator messages', rows }
  await svg(
    'sim-vs-live',
    barChart({ title: `Simulator vs live mesh, ${n} × ${sleepMs} ms, single-seeded`, yLabel: 'makespan, s', categories: rows.map((r) => `${r.workers} workers`), series: [{ name: 'live mesh', values: rows.map((r) => r.liveS) }, { name: 'simulator', values: rows.map((r) => r.simS) }] }),
  )
}

// ------------------------------------------------------------ verdict
const at = (s: Scheduler, w: number): SimResult | undefined => headline.get(s)!.find((r) => r.workers === w)
const best = (w: number): StrategyName => STRATEGY_NAMES.reduce((a, b) => ((at(b, w)?.efficiency ?? 0) > (at(a, w)?.efficiency ?? 0) ? b : a))
const b100 = at(best(100), 100)!
const b1000 = at(best(1000), 1000)!
// The strategy the benchmark supports: the best mean efficiency over the scenarios and the headline's multi-worker points.
const score = (s: StrategyName): number => {
  const effs = [...Object.values(byScenario).map((rows) => rows.find((r) => r.scheduler === s)!.efficiency), ...headline.get(s)!.slice(1).map((r) => r.efficiency)]
  return effs.reduce((a, x) => a + x, 0) / effs.length
}
const ranked = [...STRATEGY_NAMES].sort((a, b) => score(b) - score(a))
console.log('\nTargets (monorepo DAG):')
console.log(`  best strategy at 100 workers: ${best(100)}, efficiency ${pct(b100.efficiency)} (target ≥ 95%), steal success ${pct(b100.steals.successRate)} (target ≥ 90%)`)
console.log(`  best strategy at 1,000 workers: ${best(1000)}, efficiency ${pct(b1000.efficiency)} (target ≥ 90%), steal success ${pct(b1000.steals.successRate)} (target ≥ 90%)`)
console.log(`  mean efficiency over every scenario and mesh size: ${ranked.map((s) => `${s} ${pct(score(s))}`).join(', ')}`)
// One point of mean efficiency is within what another seed moves: below that, the benchmark does not call for a change.
const margin = score(ranked[0]!) - score(DEFAULT_STRATEGY)
const supported = margin > 0.01 ? ranked[0]! : DEFAULT_STRATEGY
console.log(
  margin > 0.01
    ? `  the benchmark supports ${ranked[0]} as the default strategy, ${fmt(margin * 100, 1)} points above the default ${DEFAULT_STRATEGY}`
    : `  the default strategy ${DEFAULT_STRATEGY} is within 1 point of the best (${ranked[0]}): the benchmark supports keeping it`,
)
report['verdict'] = {
  best100: { strategy: best(100), efficiency: b100.efficiency, stealSuccess: b100.steals.successRate },
  best1000: { strategy: best(1000), efficiency: b1000.efficiency, stealSuccess: b1000.steals.successRate },
  meanEfficiency: Object.fromEntries(ranked.map((s) => [s, score(s)])),
  supportedDefault: supported,
  currentDefault: DEFAULT_STRATEGY,
}
const jsonPath = join(values.out, 'strategies.json')
await writeFile(jsonPath, `${JSON.stringify(report, null, 2)}\n`)
console.log(`\nwrote ${jsonPath} and ${values.out}/strategies-*.svg in ${((performance.now() - started) / 1000).toFixed(0)} s`)
