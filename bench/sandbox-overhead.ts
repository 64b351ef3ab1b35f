/**
 * bench/sandbox-overhead: what each sandbox backend adds to one trivial compile
 * over a plain spawn of the same command, side by side in one run.
 *
 *   node dist/bench/sandbox-overhead.js [--actions 200] [--rounds 4] [--only docker-warm,bwrap]
 *
 * Each action compiles its own one-line C file (`cc -c a.c -o a.o`), one at a
 * time (latency, not throughput). Variants: plain spawn (the baseline: the same
 * command started from this process in a folder holding the source), local,
 * bwrap, docker warm (the pool of long-lived containers), docker cold (a fresh
 * container per action). A sandbox action is timed from `run()` to its result:
 * staging the input from the store, the command, storing the output. The
 * actions are split into rounds and the variants take turns within each round,
 * so machine drift hits all of them. Overhead = the variant's p50 minus the
 * plain spawn's p50 (also p90).
 *
 * Prints a table and writes JSON to bench/results/sandbox-overhead.json.
 * Targets (issue 4): docker warm <= 5 ms p50 overhead; bwrap <= 8 ms.
 */
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { createBlake3Hasher } from '../src/cas/hasher.js'
import { openCasStore, type CasStore } from '../src/cas/store.js'
import { DEFAULT_CAPABILITIES, HERMETIC_ENV } from '../src/graph/action.js'
import { percentile } from '../src/percentile.js'
import { createBwrapSandbox } from '../sandbox/bwrap.js'
import { createDockerSandbox } from '../sandbox/docker.js'
import { createLocalSandbox } from '../sandbox/local.js'
import type { Sandbox, SandboxSpec } from '../sandbox/types.js'
import { REPO } from './repo.js'

const VARIANTS = ['plain', 'local', 'bwrap', 'docker-warm', 'docker-cold'] as const
type Variant = (typeof VARIANTS)[number]

const { values } = parseArgs({
  options: {
    actions: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '4' },
    only: { type: 'string' },
    out: { type: 'string', default: join(REPO, 'bench', 'results', 'sandbox-overhead.json') },
  },
})
const actions = Number(values.actions)
const rounds = Math.max(1, Number(values.rounds))
const only = values.only ? new Set(values.only.split(',')) : undefined
const variants = VARIANTS.filter((v) => v === 'plain' || !only || only.has(v))
for (const v of only ?? []) if (!(VARIANTS as readonly string[]).includes(v)) throw new Error(`unknown variant ${v}: one of ${VARIANTS.join(', ')}`)

const source = (i: number): string => `int f${i}(int x) { return x * ${i} + 1; }\n`
const ARGV = ['cc', '-c', 'a.c', '-o', 'a.o']

function plainSpawn(dir: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(ARGV[0]!, ARGV.slice(1), { cwd: dir, env: { ...HERMETIC_ENV }, stdio: ['ignore', 'pipe', 'pipe'] })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`cc exited ${code}`))))
  })
}

async function sandboxRun(s: Sandbox, cas: CasStore, i: number): Promise<number> {
  const src = await cas.putBytes(source(i))
  const spec: SandboxSpec = {
    actionId: `cc-${i}`,
    argv: ARGV,
    env: { ...HERMETIC_ENV },
    inputs: [{ path: 'a.c', digest: src.digest, executable: false }],
    outputs: ['a.o'],
    timeoutMs: 60_000,
    capabilities: { ...DEFAULT_CAPABILITIES, readPaths: [], writePaths: [] },
  }
  const t0 = performance.now()
  const r = await s.run(spec)
  const ms = performance.now() - t0
  if (r.exitCode !== 0 || r.outputs.length !== 1) throw new Error(`${s.name} action ${i} failed: exit ${r.exitCode} ${r.stderr.toString()}`)
  return ms
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bldr-bench-sandbox-'))
  const cas = await openCasStore(join(dir, 'cas'), await createBlake3Hasher())
  const init = (name: string): { cas: CasStore; scratchRoot: string; slots: number } => ({ cas, scratchRoot: join(dir, 'scratch', name), slots: 1 })
  const sandboxes = new Map<Variant, Sandbox>()
  if (variants.includes('local')) sandboxes.set('local', createLocalSandbox(init('local')))
  if (variants.includes('bwrap')) sandboxes.set('bwrap', createBwrapSandbox(init('bwrap')))
  if (variants.includes('docker-warm')) sandboxes.set('docker-warm', createDockerSandbox(init('docker-warm')))
  if (variants.includes('docker-cold')) sandboxes.set('docker-cold', createDockerSandbox({ ...init('docker-cold'), maxUses: 1 }))
  const plainDir = join(dir, 'plain')
  await mkdir(plainDir, { recursive: true })
  const times = new Map<Variant, number[]>(variants.map((v) => [v, []]))
  try {
    // Warm-up, not counted: starts the runners and the warm containers, fills the page cache.
    for (const v of variants) await runOne(v, actions + 1 + variants.indexOf(v))
    const perRound = Math.ceil(actions / rounds)
    for (let round = 0; round < rounds; round++) {
      process.stderr.write(`round ${round + 1}/${rounds}\n`)
      for (const v of variants) {
        for (let k = 0; k < perRound && times.get(v)!.length < actions; k++) times.get(v)!.push(await runOne(v, round * perRound + k))
      }
    }
  } finally {
    for (const s of sandboxes.values()) await s.close()
    await rm(dir, { recursive: true, force: true })
  }

  async function runOne(v: Variant, i: number): Promise<number> {
    if (v !== 'plain') return sandboxRun(sandboxes.get(v)!, cas, i)
    await writeFile(join(plainDir, 'a.c'), source(i))
    return plainSpawn(plainDir)
  }

  const base = percentile(times.get('plain')!, 0.5)!
  const base90 = percentile(times.get('plain')!, 0.9)!
  const rows = variants.map((v) => {
    const t = times.get(v)!
    const p50 = percentile(t, 0.5)!
    const p90 = percentile(t, 0.9)!
    return { variant: v, actions: t.length, p50Ms: p50, p90Ms: p90, overheadP50Ms: p50 - base, overheadP90Ms: p90 - base90 }
  })
  const fmt = (n: number): string => n.toFixed(2).padStart(8)
  console.log(`\nsandbox overhead: ${actions} trivial compiles per variant, one at a time, ${rounds} rounds interleaved`)
  console.log(`${'variant'.padEnd(12)} ${'p50 ms'.padStart(8)} ${'p90 ms'.padStart(8)} ${'+p50 ms'.padStart(8)} ${'+p90 ms'.padStart(8)}`)
  for (const r of rows) console.log(`${r.variant.padEnd(12)} ${fmt(r.p50Ms)} ${fmt(r.p90Ms)} ${fmt(r.overheadP50Ms)} ${fmt(r.overheadP90Ms)}`)
  const target = (v: Variant, ms: number): string | undefined => {
    const r = rows.find((x) => x.variant === v)
    return r ? `${v} overhead p50 ${r.overheadP50Ms.toFixed(2)} ms (target <= ${ms}): ${r.overheadP50Ms <= ms ? 'met' : 'NOT met'}` : undefined
  }
  for (const line of [target('docker-warm', 5), target('bwrap', 8)]) if (line) console.log(line)
  await mkdir(dirname(values.out!), { recursive: true })
  await writeFile(values.out!, `${JSON.stringify({ actions, rounds, machine: { cores: (await import('node:os')).availableParallelism(), node: process.version }, rows }, null, 2)}\n`)
  console.log(`\nwrote ${values.out}`)
}

await main()
