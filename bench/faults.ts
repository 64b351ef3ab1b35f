/**
 * bench/faults: how long a distributed build takes to notice a dead worker and
 * to finish after it, with the default heartbeats (5 s interval, 10 s timeout)
 * and with fast ones (500 ms, 2 s); and whether heartbeats declare a worker
 * lost that is only busy (every core saturated for seconds).
 *
 *   node dist/bench/faults.js [--rounds 3] [--quick]
 *
 * Each round builds the 269-action chaos project (bench/gen-chaos-project.ts)
 * on a local mesh of 3 worker processes × 2 slots: once without a fault (the
 * baseline), once with a worker killed (SIGKILL) and once with a worker frozen
 * (SIGSTOP; woken after the build) after 60 actions are done. Detection is the
 * time from the fault to the coordinator declaring the worker lost (its
 * account in --stats); "finish after" is from then to the build's exit.
 * Writes bench/results/faults.json.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { chaosProject } from './gen-chaos-project.js'
import { isAlive } from '../sandbox/scratch.js'
import { childPids, makeProject, startBldr, withProject } from '../test/helpers.js'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: join(REPO, 'bench', 'results', 'faults.json') },
  },
})
const rounds = values.quick ? 1 : Number(values.rounds)
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

const median = (xs: number[]): number | null => {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor((s.length - 1) / 2)]!
}
const max = (xs: number[]): number | null => (xs.length === 0 ? null : Math.max(...xs))

const samples: Sample[] = []
for (let r = 0; r < rounds; r++) {
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
for (let r = 0; r < rounds; r++) loaded.push(await build(busy.files, busy.actions, 'fast', 'none'))

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
process.stdout.write(`\nbench/faults: ${PROJECT.actions} actions, 3 local workers × 2 slots, fault after ${TRIGGER} actions done\n`)
for (const row of table) process.stdout.write(`${row.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}\n`)
process.stdout.write(`false losses with 2 s timeout, every core busy (${busy.actions} × 3 s spinning actions, ${rounds} build${rounds === 1 ? '' : 's'}): ${falseLosses}\n`)
await mkdir(dirname(values.out!), { recursive: true })
await writeFile(values.out!, `${JSON.stringify({ rounds, trigger: TRIGGER, actions: PROJECT.actions, rows, falseLosses, samples, loaded }, null, 2)}\n`)
