/**
 * bench/live-mesh: the mesh's own costs on loopback, with real worker
 * processes and real libp2p, measured side by side in one run.
 *
 *   node dist/bench/live-mesh.js [--actions 20000] [--sleep-actions 64,256] [--speedup-workers 1,2,4,8] [--rounds 3] [--quick] [--only roundtrip|noop|speedup|rss] [--out FILE]
 *
 * 1. Round trip: a steal request/response (`/bldr/steal/1.0.0` on a reused
 *    stream, answered by a worker process) against a raw `node:net`
 *    length-prefixed echo in another process. Target: steal p50 ≤ 2.5× echo.
 *    Timed in each placement of the processes: unpinned (reported, not judged:
 *    the scheduler's choice of core moves the raw echo 3×), pinned across
 *    cores (client on CPU 0, servers on CPU 1) and pinned on one core.
 * 2. Throughput of no-op actions through a 4-worker mesh (workers run
 *    nothing, so the figure is seeding, start gate, result reports and event
 *    delivery). Target: ≥ 10,000 actions/s.
 * 3. Speedup of sleep actions at 1/2/4/8 workers, all seeded on one worker
 *    (`single`), so the others get work only by stealing; steal success rate
 *    and the round trips thieves saw. Two build sizes: 64 actions (8 per worker
 *    at 8 workers, so the build's tail dominates) and 256. Each mesh runs one
 *    build first that is not counted (it opens the streams and warms the JIT).
 *    Target: success ≥ 90%.
 * 4. Idle RSS of a real `bldr worker` process. Target: ≤ 80 MB.
 * 5. Seed windows on the live mesh: short sleep actions (25 ms) through 4
 *    workers × 2 slots, least-loaded seeding, with window 0 (free slots only:
 *    every action waits a coordinator round trip for its slot), 1, auto (the
 *    default: 1 while actions are short against the seed-to-start delay, as
 *    here) and none, alternating within each round; makespan against the
 *    ideal (actions × sleep / slots). What bench/strategies cannot show: the
 *    real cost of each window's round trips.
 *
 * Prints a table and writes bench/results/live-mesh.json.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { Socket } from 'node:net'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { createBlake3Hasher } from '../src/cas/hasher.js'
import { openCasStore, type CasStore } from '../src/cas/store.js'
import { openMeshBuild } from '../src/net/build-client.js'
import { percentile } from '../src/percentile.js'
import { startCoordinatorService, type CoordinatorService } from '../src/net/coordinator-service.js'
import { STEAL_PROTOCOL, type SeedPolicy, type WorkerStatsWire } from '../src/net/protocols.js'
import { DEFAULT_SEED_WINDOW, type SeedWindow } from '../src/net/seed-policy.js'
import { parseMultiaddr, parsePeerId } from '../src/net/node.js'
import { ProtocolClient } from '../src/net/request-response.js'
import { PLATFORM } from '../src/build/project.js'
import { WORKER_NODE_FLAGS } from '../src/net/local-mesh.js'
import { BENCH_ECHO } from './fixtures/libp2p-echo.js'
import type { ActionPayload } from '../src/worker/action-payload.js'
import { spawnUntil, stopAll } from './process-timing.js'
import { REPO, BLDR_NODE as BLDR } from './repo.js'

const { values } = parseArgs({
  options: {
    actions: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    /** Sizes of the speedup part's builds (sleep actions), comma-separated. */
    'sleep-actions': { type: 'string', default: '64,256' },
    /** Worker counts of the speedup part, comma-separated (bench/strategies checks the simulator at 2,4,8). */
    'speedup-workers': { type: 'string' },
    /** Run one part only: roundtrip, noop, speedup, rss, window. */
    only: { type: 'string' },
    out: { type: 'string', default: join(REPO, 'bench', 'results', 'live-mesh.json') },
  },
})
const quick = values.quick
const rounds = quick ? 1 : Number(values.rounds)
const noopActions = quick ? 4000 : Number(values.actions)
/** Slots of each no-op worker: enough that the start gate and result reports, not the slots, bound the rate. */
const NOOP_SLOTS = Number(process.env['BLDR_BENCH_NOOP_SLOTS'] ?? 128)

const quantile = (xs: readonly number[], q: number): number => percentile(xs, q) ?? NaN
const median = (xs: readonly number[]): number => quantile(xs, 0.5)

/** Bench fixtures run with the local mesh's worker flags, as `bldr build --distributed` runs its workers. */
const node = (script: string, args: string[]): Promise<{ proc: ChildProcess; value: string }> =>
  spawnUntil(process.execPath, [...WORKER_NODE_FLAGS, ...EXTRA_NODE_FLAGS, join(REPO, 'dist', 'bench', 'fixtures', script), ...args], /^READY (\S+)$/)
/** More node flags for fixture processes, e.g. BLDR_BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the workers. */
const EXTRA_NODE_FLAGS = (process.env['BLDR_BENCH_NODE_FLAGS'] ?? '').split(' ').filter(Boolean)

/** A coordinator here and `n` bench workers (noop or sleep), registered. */
async function mesh(n: number, mode: 'noop' | 'sleep', slots: number, strategy = 'power-of-two'): Promise<{ coordinator: CoordinatorService; workers: { proc: ChildProcess; id: string }[]; stop: () => Promise<void> }> {
  const coordinator = await startCoordinatorService({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  const addr = coordinator.addrs[0]!
  const started = await Promise.all(Array.from({ length: n }, (_, i) => node('mesh-worker.js', [addr, mode, String(slots), strategy, String(i + 1)])))
  await coordinator.waitForWorkers(n, 60_000)
  return {
    coordinator,
    workers: started.map((s) => ({ proc: s.proc, id: s.value })),
    stop: async () => {
      await stopAll(started.map((s) => s.proc))
      await coordinator.stop()
    },
  }
}

// ---------------------------------------------------------------- 1. round trips
async function rawEchoRoundTrips(port: number, frame: Buffer, n: number): Promise<number[]> {
  const socket = new Socket()
  socket.setNoDelay(true)
  await new Promise<void>((resolve, reject) => socket.connect(port, '127.0.0.1', resolve).once('error', reject))
  const msg = Buffer.alloc(4 + frame.length)
  msg.writeUInt32BE(frame.length, 0)
  frame.copy(msg, 4)
  const samples: number[] = []
  let buf = Buffer.alloc(0)
  let waiting: (() => void) | undefined
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk])
    if (buf.length >= msg.length) {
      buf = buf.subarray(msg.length)
      waiting?.()
    }
  })
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await new Promise<void>((resolve) => {
      waiting = resolve
      socket.write(msg)
    })
    samples.push((performance.now() - t0) * 1000)
  }
  socket.destroy()
  return samples
}

/**
 * Where the round-trip processes run. Unpinned, the scheduler puts each server
 * on the client's core or the other one, and which it picks changes from run
 * to run and from server to server: on the 2-core VM a raw echo measured 22 µs
 * with both ends on one core and 73-81 µs across cores (a wake-up across cores
 * costs the VM an interrupt), so an unpinned ratio compared placements more
 * than protocols (1.5× to 6× in one afternoon). Each pinned placement puts all
 * three servers where it says, so the three paths are timed alike.
 */
type Placement = { name: 'across cores' | 'one core' | 'unpinned'; client: string | null; server: string | null }

function placements(): Placement[] {
  const unpinned: Placement = { name: 'unpinned', client: null, server: null }
  if (availableParallelism() < 2 || !canPin()) return [unpinned]
  // Unpinned first: once pinned, processes stay where they were put.
  return [unpinned, { name: 'across cores', client: '0', server: '1' }, { name: 'one core', client: '0', server: '0' }]
}

function canPin(): boolean {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Move every thread of `pid` to the CPUs in `cpus` (null: all of them). */
function pin(pid: number, cpus: string | null): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus ?? `0-${availableParallelism() - 1}`, String(pid)], { stdio: 'ignore' })
}

type RoundTripFigures = { p50: number; p99: number }
export interface PlacementRoundTrips {
  placement: Placement['name']
  samples: number
  rawEchoUs: RoundTripFigures
  bareLibp2pUs: RoundTripFigures
  stealUs: RoundTripFigures
  ratioP50: number
  stealOverBareP50: number
  bareOverRawP50: number
}

async function roundTrips(): Promise<PlacementRoundTrips[]> {
  const n = quick ? 500 : 3000
  const echo = await node('raw-echo.js', [])
  const bare = await node('libp2p-echo.js', [])
  const m = await mesh(1, 'noop', 1)
  const servers = [echo.proc.pid!, bare.proc.pid!, m.workers[0]!.proc.pid!]
  const places = placements()
  try {
    const client = new ProtocolClient(m.coordinator.node, STEAL_PROTOCOL)
    const bareClient = new ProtocolClient(m.coordinator.node, BENCH_ECHO)
    const bareAddr = parseMultiaddr(bare.value)
    const victim = parsePeerId(m.workers[0]!.id)
    const frame = Buffer.from(JSON.stringify({ stealId: '12D3KooWxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx:123', max: 32 }))
    const timeRequests = async (count: number, tag: string, request: (id: string) => Promise<unknown>): Promise<number[]> => {
      const out: number[] = []
      for (let i = 0; i < count; i++) {
        const t0 = performance.now()
        await request(`${tag}:${i}`)
        out.push((performance.now() - t0) * 1000)
      }
      return out
    }
    const steal = (id: string): Promise<unknown> => client.request(victim, { stealId: id, max: 32 }, { timeoutMs: 5000 })
    const bareEcho = (id: string): Promise<unknown> => bareClient.request(bareAddr, { stealId: id, max: 32 }, { timeoutMs: 5000 })
    // Warm every path alike (as many round trips as are measured: V8 compiles the libp2p
    // stack's hot code over the first ~2,000 requests, so a cold start measures the JIT,
    // not a steady mesh).
    await timeRequests(n, 'warm', bareEcho)
    await timeRequests(n, 'warm', steal)
    await rawEchoRoundTrips(Number(echo.value), frame, n)
    const results: PlacementRoundTrips[] = []
    for (const place of places) {
      pin(process.pid, place.client)
      for (const pid of servers) pin(pid, place.server)
      // A short warm-up in the new placement, then alternate in blocks so drift hits all three alike.
      await rawEchoRoundTrips(Number(echo.value), frame, n / 10)
      await timeRequests(n / 10, 'settle', steal)
      await timeRequests(n / 10, 'settle', bareEcho)
      const echoes: number[] = []
      const steals: number[] = []
      const bares: number[] = []
      for (let block = 0; block < 10; block++) {
        echoes.push(...(await rawEchoRoundTrips(Number(echo.value), frame, n / 10)))
        steals.push(...(await timeRequests(n / 10, `b${block}`, steal)))
        bares.push(...(await timeRequests(n / 10, `b${block}`, bareEcho)))
      }
      results.push({
        placement: place.name,
        samples: n,
        rawEchoUs: { p50: median(echoes), p99: quantile(echoes, 0.99) },
        bareLibp2pUs: { p50: median(bares), p99: quantile(bares, 0.99) },
        stealUs: { p50: median(steals), p99: quantile(steals, 0.99) },
        ratioP50: median(steals) / median(echoes),
        stealOverBareP50: median(steals) / median(bares),
        bareOverRawP50: median(bares) / median(echoes),
      })
    }
    client.close()
    bareClient.close()
    return results
  } finally {
    if (places.length > 1) pin(process.pid, null)
    await m.stop()
    await stopAll([echo.proc, bare.proc])
  }
}

// ---------------------------------------------------------------- 2. no-op throughput
async function noopThroughput(): Promise<object> {
  const m = await mesh(4, 'noop', NOOP_SLOTS)
  const casDir = await mkdtemp(join(tmpdir(), 'bldr-bench-cas-'))
  const perRound: number[] = []
  let warmUp = 0
  try {
    const cas = await openCasStore(casDir, await createBlake3Hasher())
    // Round 0 warms the JIT of every process (a standing mesh is warm) and is not counted.
    for (let r = 0; r <= rounds; r++) {
      const session = await openMeshBuild({ coordinator: m.coordinator.addrs[0]!, cas, policy: 'round-robin', seedWindow: DEFAULT_SEED_WINDOW, sandbox: 'local', platform: PLATFORM })
      let done = 0
      let finish: () => void = () => {}
      const all = new Promise<void>((resolve) => (finish = resolve))
      session.setHandlers({
        started: () => {},
        result: () => {
          if (++done === noopActions) finish()
        },
      })
      const t0 = performance.now()
      for (let i = 0; i < noopActions; i++) void session.submit({ id: `${session.buildId}/n${i}`, payload: {} as ActionPayload })
      await all
      const s = (performance.now() - t0) / 1000
      if (r === 0) warmUp = noopActions / s
      else perRound.push(noopActions / s)
      await session.close()
    }
    return { actions: noopActions, workers: 4, slotsPerWorker: NOOP_SLOTS, actionsPerSecond: median(perRound), perRound, warmUpRound: warmUp }
  } finally {
    await m.stop()
    await rm(casDir, { recursive: true, force: true })
  }
}

/** One build of `n` sleep actions of `sleepMs` on the mesh at `coordinator`, seeded as `seeding` says: seconds from the first submit to the last result. */
async function sleepBuild(coordinator: string, cas: CasStore, seeding: { policy: SeedPolicy; seedWindow?: SeedWindow }, n: number, sleepMs: number): Promise<number> {
  const session = await openMeshBuild({ coordinator, cas, ...seeding, sandbox: 'local', platform: PLATFORM })
  let done = 0
  let finish: () => void = () => {}
  const all = new Promise<void>((resolve) => (finish = resolve))
  session.setHandlers({ started: () => {}, result: () => void (++done === n && finish()) })
  const t0 = performance.now()
  for (let i = 0; i < n; i++) void session.submit({ id: `${session.buildId}/s${i}`, payload: { sleepMs } as unknown as ActionPayload })
  await all
  const seconds = (performance.now() - t0) / 1000
  await session.close()
  return seconds
}

// ---------------------------------------------------------------- 3. speedup
async function speedup(n: number): Promise<object> {
  const counts = values['speedup-workers'] ? values['speedup-workers'].split(',').map(Number) : quick ? [1, 2, 4] : [1, 2, 4, 8]
  const sleepMs = 100
  const policy: SeedPolicy = 'single'
  const rows: { workers: number; seconds: number; speedup?: number; efficiency?: number; attempted: number; granted: number; refused: number; failed: number; stolen: number; stealRttMs: number[]; startRttMs: number[] }[] = []
  const casDir = await mkdtemp(join(tmpdir(), 'bldr-bench-cas-'))
  try {
    const cas = await openCasStore(casDir, await createBlake3Hasher())
    for (const w of counts) {
      const m = await mesh(w, 'sleep', 1)
      try {
        const times: number[] = []
        let last: Record<string, WorkerStatsWire | null> = {}
        // One build first, not counted: a new mesh's first build also opens its streams (steal, coordinator, events) and warms the JIT.
        await sleepBuild(m.coordinator.addrs[0]!, cas, { policy }, n, sleepMs)
        let first: Record<string, WorkerStatsWire | null> = await m.coordinator.workerStats()
        for (let r = 0; r < rounds; r++) {
          times.push(await sleepBuild(m.coordinator.addrs[0]!, cas, { policy }, n, sleepMs))
        }
        last = await m.coordinator.workerStats()
        const agg = { attempted: 0, granted: 0, refused: 0, failed: 0, stolen: 0, stealRttMs: [] as number[], startRttMs: [] as number[] }
        for (const [id, s] of Object.entries(last)) {
          const b = first[id]
          if (!s) continue
          agg.attempted += s.stealsAttempted - (b?.stealsAttempted ?? 0)
          agg.granted += s.stealsGranted - (b?.stealsGranted ?? 0)
          agg.refused += s.stealsRefused - (b?.stealsRefused ?? 0)
          agg.failed += s.stealsFailed - (b?.stealsFailed ?? 0)
          agg.stolen += s.actionsStolen - (b?.actionsStolen ?? 0)
          agg.stealRttMs.push(...s.stealRoundTripsMs.slice(b?.stealRoundTripsMs.length ?? 0))
          agg.startRttMs.push(...(s.startRoundTripsMs ?? []).slice(b?.startRoundTripsMs?.length ?? 0))
        }
        first = last
        rows.push({ workers: w, seconds: median(times), ...agg })
      } finally {
        await m.stop()
      }
    }
  } finally {
    await rm(casDir, { recursive: true, force: true })
  }
  // Speedup over one worker, when one worker was measured.
  const t1 = rows[0]!.workers === 1 ? rows[0]!.seconds : NaN
  for (const r of rows) {
    r.speedup = t1 / r.seconds
    r.efficiency = r.speedup / r.workers
  }
  const stealRows = rows.filter((r) => r.workers > 1)
  const attempted = stealRows.reduce((a, r) => a + r.attempted, 0)
  const granted = stealRows.reduce((a, r) => a + r.granted, 0)
  const rtts = stealRows.flatMap((r) => r.stealRttMs)
  return {
    actions: n,
    sleepMs,
    policy,
    rows: rows.map(({ stealRttMs, startRttMs, ...r }) => ({ ...r, stealRttP50Ms: stealRttMs.length ? median(stealRttMs) : null, startRttP50Ms: startRttMs.length ? median(startRttMs) : null })),
    stealSuccessRate: attempted ? granted / attempted : null,
    stealsAttempted: attempted,
    stealRttUnderLoadMs: rtts.length ? { p50: median(rtts), p99: quantile(rtts, 0.99), n: rtts.length } : null,
  }
}

// ---------------------------------------------------------------- 4. idle RSS
async function idleRss(): Promise<object> {
  const coordinator = await startCoordinatorService({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  const data = await mkdtemp(join(tmpdir(), 'bldr-bench-rss-'))
  const procs: ChildProcess[] = []
  // One worker as an operator starts it (node's defaults), one as the local mesh does (its V8 flags).
  const variants = [{ name: 'node defaults', flags: [] as string[] }, { name: `local mesh (${WORKER_NODE_FLAGS.join(' ')})`, flags: WORKER_NODE_FLAGS }]
  try {
    for (const [w, v] of variants.entries()) {
      const p = spawn(
        process.execPath,
        [...v.flags, BLDR, 'worker', '--coordinator', coordinator.addrs[0]!, '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(data, `w${w}`), '--parallelism', '2', '--log-level', 'warn', '--stop-when-stdin-closes'],
        { stdio: ['pipe', 'ignore', 'inherit'] },
      )
      procs.push(p)
    }
    await coordinator.waitForWorkers(procs.length, 60_000)
    // Idle for a few announce and gossip heartbeats.
    await new Promise((resolve) => setTimeout(resolve, quick ? 2000 : 5000))
    const rss: Record<string, number> = {}
    for (const [i, p] of procs.entries()) {
      const status = await readFile(`/proc/${p.pid}/status`, 'utf8')
      rss[variants[i]!.name] = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024
    }
    return { rssMB: rss }
  } finally {
    await stopAll(procs)
    await coordinator.stop()
    await rm(data, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------- 5. seed windows
async function seedWindows(): Promise<object> {
  const n = quick ? 120 : 240
  const sleepMs = 25
  const workers = 4
  const slots = 2
  const windows: (SeedWindow | undefined)[] = [0, 1, 'auto', undefined]
  const m = await mesh(workers, 'sleep', slots)
  const casDir = await mkdtemp(join(tmpdir(), 'bldr-bench-cas-'))
  const times = new Map<SeedWindow | undefined, number[]>(windows.map((w) => [w, []]))
  try {
    const cas = await openCasStore(casDir, await createBlake3Hasher())
    // Round 0 warms every process up and is not counted.
    for (let r = 0; r <= rounds; r++) {
      for (const seedWindow of windows) {
        const seconds = await sleepBuild(m.coordinator.addrs[0]!, cas, { policy: 'least-loaded', ...(seedWindow !== undefined ? { seedWindow } : {}) }, n, sleepMs)
        if (r > 0) times.get(seedWindow)!.push(seconds)
      }
    }
  } finally {
    await m.stop()
    await rm(casDir, { recursive: true, force: true })
  }
  const idealS = (n * sleepMs) / (workers * slots) / 1000
  return { actions: n, sleepMs, workers, slots, idealS, rows: windows.map((w) => ({ seedWindow: w ?? null, seconds: median(times.get(w)!), perRound: times.get(w)!, overIdeal: median(times.get(w)!) / idealS })) }
}

const fmt = (n: number, d = 1): string => (Number.isFinite(n) ? n.toFixed(d) : '—')

const want = (part: string): boolean => values.only === undefined || values.only === part
const report: Record<string, unknown> = { date: new Date().toISOString(), quick }

if (want('roundtrip')) {
  const rts = await roundTrips()
  report['roundTrips'] = rts
  const row = (name: string, p: RoundTripFigures, extra: string): void => console.log(`round trip   ${name.padEnd(22)} p50 ${fmt(p.p50, 0).padStart(5)} µs  p99 ${fmt(p.p99, 0).padStart(6)} µs  ${extra}`)
  for (const rt of rts) {
    console.log(`round trip   ${rt.placement}${rt.placement === 'unpinned' ? ' (where the scheduler puts them; not judged when a pinned placement ran)' : rt.placement === 'across cores' ? ' (client on CPU 0, every server on CPU 1)' : ' (client and every server on CPU 0)'}`)
    row('raw node:net echo', rt.rawEchoUs, '')
    row('bare libp2p request', rt.bareLibp2pUs, `${fmt(rt.bareOverRawP50, 2)}× raw`)
    row('steal (/bldr/steal)', rt.stealUs, `${fmt(rt.ratioP50, 2)}× raw${rts.length === 1 || rt.placement !== 'unpinned' ? ' (target ≤ 2.5×)' : ''}, ${fmt(rt.stealOverBareP50, 2)}× bare libp2p`)
  }
}
if (want('noop')) {
  const tp = (await noopThroughput()) as { actionsPerSecond: number; perRound: number[]; warmUpRound: number }
  report['noopThroughput'] = tp
  console.log(`no-op        ${fmt(tp.actionsPerSecond, 0)} actions/s through 4 workers (median; rounds ${tp.perRound.map((x) => fmt(x, 0)).join(', ')}; warm-up round ${fmt(tp.warmUpRound, 0)}, not counted; target ≥ 10000)`)
}
if (want('speedup')) {
  type Row = { workers: number; seconds: number; speedup: number; efficiency: number; attempted: number; granted: number; stolen: number; stealRttP50Ms: number | null; startRttP50Ms: number | null }
  const sizes = quick ? [32] : values['sleep-actions'].split(',').map(Number)
  const all: Record<string, unknown> = {}
  for (const n of sizes) {
    const sp = (await speedup(n)) as { rows: Row[]; stealSuccessRate: number | null; stealRttUnderLoadMs: { p50: number; p99: number } | null }
    all[`actions${n}`] = sp
    console.log(`speedup      ${n} actions of 100 ms, all seeded on one worker`)
    console.log('             workers  seconds  speedup  efficiency  steals granted/attempted  actions stolen  steal / start round trip p50, ms')
    for (const r of sp.rows) console.log(`             ${String(r.workers).padStart(7)}  ${fmt(r.seconds, 2).padStart(7)}  ${fmt(r.speedup, 2).padStart(7)}  ${fmt(r.efficiency, 2).padStart(10)}  ${`${r.granted}/${r.attempted}`.padStart(24)}  ${String(r.stolen).padStart(14)}  ${`${r.stealRttP50Ms === null ? '—' : fmt(r.stealRttP50Ms, 1)} / ${r.startRttP50Ms === null ? '—' : fmt(r.startRttP50Ms, 1)}`.padStart(32)}`)
    console.log(`             steal success ${sp.stealSuccessRate === null ? '—' : `${fmt(sp.stealSuccessRate * 100, 1)}%`} (target ≥ 90%); thieves' round trip under load p50 ${sp.stealRttUnderLoadMs ? fmt(sp.stealRttUnderLoadMs.p50, 2) : '—'} ms`)
  }
  report['speedup'] = all
}
if (want('rss')) {
  const rss = (await idleRss()) as { rssMB: Record<string, number> }
  report['idleRss'] = rss
  console.log(`idle RSS     bldr worker: ${Object.entries(rss.rssMB).map(([k, x]) => `${fmt(x)} MB with ${k}`).join('; ')} (target ≤ 80 MB)`)
}

if (want('window')) {
  const sw = (await seedWindows()) as { actions: number; sleepMs: number; workers: number; slots: number; idealS: number; rows: { seedWindow: number | null; seconds: number; overIdeal: number }[] }
  report['seedWindows'] = sw
  console.log(`seed window  ${sw.actions} actions of ${sw.sleepMs} ms through ${sw.workers} workers × ${sw.slots} slots, least-loaded (ideal ${fmt(sw.idealS, 2)} s)`)
  for (const r of sw.rows) console.log(`             window ${String(r.seedWindow ?? 'none').padEnd(4)}  ${fmt(r.seconds, 2).padStart(5)} s  ${fmt(r.overIdeal, 2)}× the ideal`)
}

await mkdir(dirname(values.out), { recursive: true })
await writeFile(values.out, `${JSON.stringify(report, null, 2)}\n`)
console.log(`wrote ${values.out}`)
process.exit(0)
