/**
 * bench/ninja: a generated CMake project (bench/gen-c-project.ts: a library of
 * N-1 modules and a binary) configured with `cmake -G Ninja`, then built by
 * `ninja -j2` and by `bldr build -f build.ninja` on a local mesh (2 worker
 * processes, bwrap: the one the cold build starts in the background is kept for
 * the incremental one, as a user gets it), side by side in one run; beside them
 * for reference, bldr on a local mesh of the build's own (`--mesh-idle 0`:
 * started in the client and stopped with each build), bldr on a standing mesh (`bldr coordinator` and 2 `bldr worker` processes started
 * before the round, fresh stores, so a build pays no worker start-up) and bldr
 * without a mesh (bwrap, -j2). Each builds its own copy of the sources, so no
 * cache or output is shared. Whole build processes are timed from spawn to exit.
 *
 *   node dist/bench/ninja.js [--files 200] [--rounds 2] [--quick]
 *
 * Scenarios: cold (no outputs, empty cache), incremental (one source
 * changed after a build: ninja's incremental build against bldr with its
 * cache; for the local mesh, the first build the mesh kept from the cold build
 * runs) and again (another change right after: a user's next edit, the kept
 * mesh warm from a build of this project). Prints medians with ratios to ninja, writes bench/results/ninja.json.
 * Targets (issue 7): cold within 1.2x of ninja; incremental within 1.2x.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { changeOneSource, generateCProject, writeCMakeLists } from './gen-c-project.js'
import { WORKER_NODE_FLAGS } from '../src/net/local-mesh.js'
import { median, run, spawnUntil, stopAll } from './process-timing.js'
import { REPO, BLDR, BLDR_NODE } from './repo.js'

const { values } = parseArgs({
  options: {
    files: { type: 'string' },
    rounds: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: join(REPO, 'bench', 'results', 'ninja.json') },
  },
})
const files = Number(values.files ?? (values.quick ? 60 : 200))
const rounds = Number(values.rounds ?? (values.quick ? 1 : 2))
const JOBS = 2

const SCENARIOS = ['cold', 'incremental', 'again'] as const
type Scenario = (typeof SCENARIOS)[number]
type Tool = 'ninja' | 'mesh' | 'own' | 'standing' | 'local'
const TOOLS: Tool[] = ['ninja', 'mesh', 'own', 'standing', 'local']

function command(tool: Tool, standingAddr: string): [string, string[]] {
  if (tool === 'ninja') return ['ninja', [`-j${JOBS}`]]
  const common = ['build', '-f', 'build.ninja', `-j${JOBS}`, '--sandbox', 'bwrap']
  if (tool === 'mesh') return [BLDR, [...common, '--distributed', '--local-workers', String(JOBS)]]
  if (tool === 'own') return [BLDR, [...common, '--distributed', '--local-workers', String(JOBS), '--mesh-idle', '0']]
  if (tool === 'standing') return [BLDR, [...common, '--coordinator', standingAddr]]
  return [BLDR, common]
}

/** A standing mesh: `bldr coordinator` and JOBS `bldr worker` processes (bwrap, one slot each, the local mesh's node flags) with fresh stores in `dataDir`. */
async function startStandingMesh(dataDir: string): Promise<{ addr: string; stop: () => Promise<void> }> {
  const coordinator = await spawnUntil(process.execPath, [BLDR_NODE, 'coordinator', '--listen', '/ip4/127.0.0.1/tcp/0', '--log-level', 'warn'], /^(\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/\S+)$/)
  const workers: Awaited<ReturnType<typeof spawnUntil>>[] = []
  const stop = async (): Promise<void> => {
    await stopAll(workers.map((w) => w.proc))
    const exited = new Promise((resolve) => coordinator.proc.once('exit', resolve))
    coordinator.proc.kill('SIGTERM')
    await exited
  }
  try {
    for (let w = 1; w <= JOBS; w++) {
      const args = ['worker', '--coordinator', coordinator.value, '--listen', '/ip4/127.0.0.1/tcp/0', '--data-dir', join(dataDir, `worker-${w}`), '--parallelism', '1', '--sandbox', 'bwrap', '--seed', String(w), '--log-level', 'info', '--stop-when-stdin-closes']
      workers.push(await spawnUntil(process.execPath, [...WORKER_NODE_FLAGS, BLDR_NODE, ...args], /"msg":"worker ready"/, { stderr: 'lines' }))
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { addr: coordinator.value, stop }
}

/**
 * A new build folder for round `round` (`cmake -G Ninja`): a cold start, no outputs and no
 * cache. The last round's folder is left in place and removed after the last round: a cold
 * build right after thousands of removals measures this file system (ext4 without a journal,
 * as here, is slow to make new files for a while after many were removed), not the build.
 */
function configure(src: string, round: number): string {
  const build = join(src, `build-${round + 1}`)
  execFileSync('cmake', ['-G', 'Ninja', '-S', src, '-B', build], { stdio: 'ignore' })
  return build
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'bldr-bench-ninja-'))
  const sources = {} as Record<Tool, string>
  for (const tool of TOOLS) {
    const src = join(root, tool)
    await generateCProject(src, files)
    await writeCMakeLists(src)
    sources[tool] = src
  }
  console.log(`bench/ninja: a CMake project of ${files} C files, -j${JOBS}, ${rounds} round(s); ninja, bldr on a local mesh (2 workers, bwrap, kept between builds), bldr on a local mesh of each build's own, bldr on a standing mesh (2 workers, bwrap) and bldr alone (bwrap) alternate within each round`)
  const t = Object.fromEntries(SCENARIOS.map((k) => [k, Object.fromEntries(TOOLS.map((tool) => [tool, [] as number[]]))])) as Record<Scenario, Record<Tool, number[]>>
  let identical = true
  try {
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? TOOLS : [...TOOLS].reverse()
      const builds = Object.fromEntries(TOOLS.map((tool) => [tool, configure(sources[tool], r)])) as Record<Tool, string>
      const standing = await startStandingMesh(join(root, `standing-mesh-${r + 1}`))
      try {
        for (const tool of order) t.cold[tool].push(await run(...command(tool, standing.addr), builds[tool]))
        for (const tool of order) await changeOneSource(sources[tool], r)
        for (const tool of order) t.incremental[tool].push(await run(...command(tool, standing.addr), builds[tool]))
        for (const tool of order) await changeOneSource(sources[tool], rounds + r)
        for (const tool of order) t.again[tool].push(await run(...command(tool, standing.addr), builds[tool]))
      } finally {
        await standing.stop()
        // The kept local mesh, untimed (a user does not wait for it): it would idle beside the next round.
        execFileSync(BLDR, ['mesh', 'stop', '-C', builds.mesh], { stdio: 'ignore' })
      }
      const app = await Promise.all(TOOLS.map((tool) => readFile(join(builds[tool], 'app'))))
      identical &&= app.every((b) => b.equals(app[0] as Buffer))
      const last = (tool: Tool): string => `${(t.cold[tool].at(-1)! / 1000).toFixed(2)} s`
      process.stderr.write(`  round ${r + 1}/${rounds}: cold ninja ${last('ninja')}, mesh ${last('mesh')}, own mesh ${last('own')}, standing mesh ${last('standing')}, local ${last('local')}\n`)
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }

  const rows = SCENARIOS.map((scenario) => {
    const [ninja, mesh, own, standing, local] = TOOLS.map((tool) => median(t[scenario][tool])) as [number, number, number, number, number]
    return { scenario, ninja, mesh, own, standing, local, meshRatio: mesh / ninja, ownRatio: own / ninja, standingRatio: standing / ninja, localRatio: local / ninja, target: 'mesh/ninja <= 1.2', pass: mesh / ninja <= 1.2 }
  })
  const s = (ms: number): string => `${(ms / 1000).toFixed(3).padStart(8)} s`
  const x = (ratio: number, width: number): string => `${ratio.toFixed(2).padStart(width - 1)}x`
  console.log('')
  console.log('| scenario    |   ninja -j2 | local mesh | /ninja |   own mesh | /ninja | standing mesh | /ninja | bldr alone | /ninja | target (local mesh) | met |')
  console.log('|-------------|------------:|-----------:|-------:|-----------:|-------:|--------------:|-------:|-----------:|-------:|---------------------|-----|')
  for (const row of rows) {
    console.log(
      `| ${row.scenario.padEnd(11)} | ${s(row.ninja)}  | ${s(row.mesh)} | ${x(row.meshRatio, 6)} | ${s(row.own)} | ${x(row.ownRatio, 6)} | ${s(row.standing).padStart(13)} | ${x(row.standingRatio, 6)} | ${s(row.local)} | ${x(row.localRatio, 6)} | ${row.target.padEnd(19)} | ${row.pass ? 'yes' : 'NO '} |`,
    )
  }
  console.log('(all bldr columns use bwrap; local mesh = `--distributed --local-workers 2` (kept from the cold build for the incremental one), own mesh = the same with `--mesh-idle 0`, standing mesh = `--coordinator` to 2 running `bldr worker`s)')
  console.log(`\nthe five builds' binaries are ${identical ? 'byte-identical' : 'NOT identical'} in every round`)
  await mkdir(dirname(values.out), { recursive: true })
  await writeFile(values.out, `${JSON.stringify({ bench: 'ninja', files, jobs: JOBS, rounds, node: process.version, identical, samplesMs: t, rows }, null, 2)}\n`)
  console.log(`wrote ${values.out}`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
