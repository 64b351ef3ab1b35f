/**
 * bench/faults: how long a distributed build takes to notice a dead worker and
 * to finish after it, with the default heartbeats (5 s interval, 10 s timeout)
 * and with fast ones (500 ms, 2 s); and whether heartbeats declare a worker
 * lost that is only busy (every core saturated for seconds).
 *
 *   node dist/bench/faults.js [--rounds 3] [--quick] [--only heartbeats|broken]
 *
 * Each round builds the 269-action chaos project (bench/gen-chaos-project.ts)
 * on a local mesh of 3 worker processes × 2 slots: once without a fault (the
 * baseline), once with a worker killed (SIGKILL) and once with a worker frozen
 * (SIGSTOP; woken after the build) after 60 actions are done. Detection is the
 * time from the fault to the coordinator declaring the worker lost (its
 * account in --stats); "finish after" is from then to the build's exit.
 *
 * A broken sandbox: the same project on a standing mesh (a coordinator and 3
 * `bldr worker` processes × 2 slots, fast heartbeats), once with every worker
 * healthy and once with one whose every action fails without running
 * (BLDR_FAULT_BROKEN=1): build time, retries, and when the coordinator
 * quarantined it (after 3 failures in a row).
 * Writes bench/results/faults.json.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { chaosProject } from './gen-chaos-project.js'
import { isAlive } from '../src/cas/fs-util.js'
import { tmpdir } from 'node:os'
import { childPids, makeProject, startBldr, terminate, withProject, type Started } from '../test/helpers.js'
import { REPO } from './repo.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    /** One part only: heartbeats (kill, freeze, busy) or broken (a broken sandbox on a standing mesh). */
    only: { type: 'string' },
    out: { type: 'string', default: join(REPO, 'bench', 'results', 'faults.json') },
  },
})
const rounds = values.quick ? 1 : Number(values.rounds)
if (values.only !== undefined && values.only !== 'heartbeats' && values.only !== 'broken') throw new Error(`--only: heartbeats or broken, not ${JSON.stringify(values.only)}`)
const want = (part: 'heartbeats' | 'broken'): boolean => values.only === undefined || values.only === part
const PROJECT = chaosProject()
const TRIGGER = 60
const SETTINGS = {
  default: [] as string[],
  fast: ['--heartbeat-interval', '500', '--worker-timeout', '2000'],
}
type Setting = keyof typeof SETTINGS
type Fault = 'none' | 'SIGKILL' | 'SIGSTOP'

interface Sample {
  setting: Setting
  fault: Fault
  wallMs: number
  detectMs: number | null
  finishAfterMs: number | null
  workersLost: number
}

interface StatsFile {
  ok: boolean
  mesh: { faults: { workersLost: { at: number }[] | null } }
}

/** One build of `files` on a local mesh; with a fault, it strikes once TRIGGER actions are done. */
async function build(files: Record<string, string>, total: number, setting: Setting, fault: Fault): Promise<Sample> {
  return withProject(makeProject(files), async (dir) => {
    const statsFile = join(dir, 'stats.json')
    const t0 = Date.now()
    const ready = fault === 'none' ? /^bldr: local mesh/ : new RegExp(`^\\[${TRIGGER}/${total}\\]`)
    const b = await startBldr(['build', '-C', dir, '--distributed', '--local-workers', '3', '-j', '6', '--stats', statsFile, ...SETTINGS[setting]], ready, 120_000)
    let faultAt = 0
    let victim: number | undefined
    if (fault !== 'none') {
      victim = (await childPids(b.proc.pid!))[0]!
      faultAt = Date.now()
      process.kill(victim, fault)
    }
    const code = await b.exited
    const end = Date.now()
    // The local mesh kills a worker still stopped when the build ends; if it did not, wake it.
    if (fault === 'SIGSTOP' && victim !== undefined && isAlive(victim)) process.kill(victim, 'SIGCONT')
    if (code !== 0) throw new Error(`the build failed (${code}):\n${b.output()}`)
    const stats = JSON.parse(await readFile(statsFile, 'utf8')) as StatsFile
    const lost = stats.mesh.faults.workersLost ?? []
    const at = lost[0]?.at
    return {
      setting,
      fault,
      wallMs: end - t0,
      detectMs: fault !== 'none' && at !== undefined ? at - faultAt : null,
      finishAfterMs: at !== undefined ? end - at : null,
      workersLost: lost.length,
    }
  })
}

/** Twelve actions that each keep a core busy for 3 s: 3 workers × 2 slots, more than this machine has cores, all saturated. */
function busyProject(): { files: Record<string, string>; actions: number } {
  const lines = ['actions:']
  for (let i = 0; i < 12; i++) {
    lines.push(`  spin_${i}:`, `    command: [sh, -c, "end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do :; done; echo ${i} > spin/${i}.txt"]`, `    outputs: [spin/${i}.txt]`)
  }
  return { files: { 'BUILD.yaml': `${lines.join('\n')}\n` }, actions: 12 }
}

interface BrokenSample {
  broken: boolean
  wallMs: number
  retries: number
  quarantined: number
  /** Attempts that failed on the broken worker before it was quarantined. */
  failedBeforeQuarantine: number
}

/** One build of the chaos project on a standing mesh of 3 workers; with `broken`, the first one fails everything. */
async function brokenBuild(broken: boolean): Promise<BrokenSample> {
  const data = await mkdtemp(join(tmpdir(), 'bldr-bench-broken-'))
  const procs: Started[] = []
  try {
    const coord = await startBldr(['coordinator', '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(data, 'coordinator'), '--log-level', 'warn', ...SETTINGS.fast], /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\S+$/)
    procs.push(coord)
    const addr = coord.match[0]
    for (const n of [1, 2, 3]) {
      const args = ['worker', '--coordinator', addr, '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(data, `worker-${n}`), '--parallelism', '2', '--sandbox', 'local', '--log-level', 'info', ...SETTINGS.fast]
      procs.push(await startBldr(args, /"msg":"worker ready"/, 30_000, { env: broken && n === 1 ? { BLDR_FAULT_BROKEN: '1' } : {} }))
    }
    return await withProject(makeProject(PROJECT.files), async (dir) => {
      const statsFile = join(dir, 'stats.json')
      const t0 = Date.now()
      const b = await startBldr(['build', '-C', dir, '--coordinator', addr, '--stats', statsFile], /^bldr: mesh at/, 60_000)
      const code = await b.exited
      const wallMs = Date.now() - t0
      if (code !== 0) throw new Error(`the build failed (${code}):\n${b.output()}`)
      const stats = JSON.parse(await readFile(statsFile, 'utf8')) as { mesh: { faults: { retries: unknown[]; workersQuarantined: { failures: number }[] | null } } }
      const q = stats.mesh.faults.workersQuarantined ?? []
      return { broken, wallMs, retries: stats.mesh.faults.retries.length, quarantined: q.length, failedBeforeQuarantine: q[0]?.failures ?? 0 }
    })
  } finally {
    await Promise.all(procs.map((p) => terminate(p.proc)))
    await rm(data, { recursive: true, force: true })
  }
}

const median = (xs: number[]): number | null => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor((s.length - 1) / 2)]!
}
const max = (xs: number[]): number | null => (xs.length === 0 ? null : Math.max(...xs))

const samples: Sample[] = []
for (let r = 0; r < rounds && want('heartbeats'); r++) {
  for (const setting of Object.keys(SETTINGS) as Setting[]) {
    for (const fault of ['none', 'SIGKILL', 'SIGSTOP'] as Fault[]) {
      const s = await build(PROJECT.files, PROJECT.actions, setting, fault)
      samples.push(s)
      process.stderr.write(`round ${r + 1}: ${setting} ${fault}: ${s.wallMs} ms, detect ${s.detectMs ?? '-'} ms, finish after ${s.finishAfterMs ?? '-'} ms\n`)
    }
  }
}
// False losses: the fast heartbeats (2 s timeout) on workers whose cores are all busy.
const busy = busyProject()
const loaded: Sample[] = []
for (let r = 0; r < rounds && want('heartbeats'); r++) loaded.push(await build(busy.files, busy.actions, 'fast', 'none'))

// A broken sandbox on one worker of a standing mesh, against all healthy, alternating.
const brokenSamples: BrokenSample[] = []
for (let r = 0; r < rounds && want('broken'); r++) {
  for (const broken of [false, true]) {
    const s = await brokenBuild(broken)
    brokenSamples.push(s)
    process.stderr.write(`round ${r + 1}: standing mesh, ${broken ? 'one worker broken' : 'all healthy'}: ${s.wallMs} ms, ${s.retries} retries, ${s.quarantined} quarantined\n`)
  }
}

const rows = (Object.keys(SETTINGS) as Setting[]).flatMap((setting) =>
  (['none', 'SIGKILL', 'SIGSTOP'] as Fault[]).map((fault) => {
    const ss = samples.filter((s) => s.setting === setting && s.fault === fault)
    const pick = (f: (s: Sample) => number | null): number[] => ss.map(f).filter((v): v is number => v !== null)
    return {
      setting,
      fault,
      rounds: ss.length,
      wallMs: median(pick((s) => s.wallMs)),
      detectMs: median(pick((s) => s.detectMs)),
      detectMaxMs: max(pick((s) => s.detectMs)),
      finishAfterMs: median(pick((s) => s.finishAfterMs)),
    }
  }),
)
const falseLosses = loaded.reduce((n, s) => n + s.workersLost, 0)

const header = ['heartbeats', 'fault', 'rounds', 'build ms (median)', 'detect ms (median)', 'detect ms (max)', 'finish after ms (median)']
const table = [header, ...rows.map((r) => [r.setting === 'default' ? 'default 5 s / 10 s' : 'fast 0.5 s / 2 s', r.fault, r.rounds, r.wallMs, r.detectMs ?? '-', r.detectMaxMs ?? '-', r.finishAfterMs ?? '-'].map(String))]
const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)))
if (want('heartbeats')) {
  process.stdout.write(`\nbench/faults: ${PROJECT.actions} actions, 3 local workers × 2 slots, fault after ${TRIGGER} actions done\n`)
  for (const row of table) process.stdout.write(`${row.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}\n`)
  process.stdout.write(`false losses with 2 s timeout, every core busy (${busy.actions} × 3 s spinning actions, ${rounds} build${rounds === 1 ? '' : 's'}): ${falseLosses}\n`)
}
if (want('broken')) {
  for (const broken of [false, true]) {
    const ss = brokenSamples.filter((s) => s.broken === broken)
    process.stdout.write(
      `standing mesh, 3 workers × 2 slots, ${broken ? 'one with a broken sandbox' : 'all healthy'}: build ${median(ss.map((s) => s.wallMs))} ms (median of ${ss.length}), retries ${ss.map((s) => s.retries).join('/')}, quarantined ${ss.map((s) => s.quarantined).join('/')}\n`,
    )
  }
}
await mkdir(dirname(values.out!), { recursive: true })
await writeFile(values.out!, `${JSON.stringify({ rounds, trigger: TRIGGER, actions: PROJECT.actions, rows, falseLosses, samples, loaded, brokenSandbox: brokenSamples }, null, 2)}\n`)
