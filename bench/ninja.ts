/**
 * bench/ninja: a generated CMake project (bench/gen-c-project.ts: a library of
 * N-1 modules and a binary) configured with `cmake -G Ninja`, then built by
 * `ninja -j2` and by `bldr build -f build.ninja` on a local mesh (2 worker
 * processes, bwrap), side by side in one run; `bldr` without the mesh (bwrap,
 * -j2) beside them for reference. Each builds its own copy of the sources, so
 * no cache or output is shared. Whole processes are timed from spawn to exit.
 *
 *   node dist/bench/ninja.js [--files 200] [--rounds 2] [--quick]
 *
 * Scenarios: cold (no outputs, empty cache) and incremental (one source
 * changed after a build: ninja's incremental build against bldr with its
 * cache). Prints medians with ratios to ninja, writes bench/results/ninja.json.
 * Targets (issue 7): cold within 1.2x of ninja; incremental within 1.2x.
 */
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { generateCProject, writeCMakeLists } from './gen-c-project.js'
import { median, run } from './process-timing.js'

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const BLDR = join(REPO, 'bin', 'bldr')

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

type Tool = 'ninja' | 'mesh' | 'local'
const TOOLS: Tool[] = ['ninja', 'mesh', 'local']

function command(tool: Tool): [string, string[]] {
  if (tool === 'ninja') return ['ninja', [`-j${JOBS}`]]
  const common = ['build', '-f', 'build.ninja', `-j${JOBS}`, '--sandbox', 'bwrap']
  return [BLDR, tool === 'mesh' ? [...common, '--distributed', '--local-workers', String(JOBS)] : common]
}

async function changeOneSource(src: string, round: number): Promise<void> {
  const path = join(src, 'src', 'lib', 'mod_0007.c')
  const text = await readFile(path, 'utf8')
  await writeFile(path, text.replace(/double total = \d+;/, `double total = ${round + 1};`))
}

/** Remove a build folder's outputs (and bldr's cache): a cold start. */
async function clean(build: string): Promise<void> {
  execFileSync('ninja', ['-t', 'clean'], { cwd: build, stdio: 'ignore' })
  for (const f of ['.ninja_log', '.ninja_deps', '.bldr']) await rm(join(build, f), { recursive: true, force: true })
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'bldr-bench-ninja-'))
  const builds = {} as Record<Tool, string>
  for (const tool of TOOLS) {
    const src = join(root, tool)
    await generateCProject(src, files)
    await writeCMakeLists(src)
    execFileSync('cmake', ['-G', 'Ninja', '-S', src, '-B', join(src, 'build')], { stdio: 'ignore' })
    builds[tool] = join(src, 'build')
  }
  console.log(`bench/ninja: a CMake project of ${files} C files, -j${JOBS}, ${rounds} round(s); ninja, bldr on a local mesh (2 workers, bwrap) and bldr alone (bwrap) alternate within each round`)
  const t = { cold: { ninja: [], mesh: [], local: [] }, incremental: { ninja: [], mesh: [], local: [] } } as Record<'cold' | 'incremental', Record<Tool, number[]>>
  let identical = true
  try {
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? TOOLS : [...TOOLS].reverse()
      for (const tool of order) await clean(builds[tool])
      for (const tool of order) t.cold[tool].push(await run(...command(tool), builds[tool]))
      for (const tool of order) await changeOneSource(dirname(builds[tool]), r)
      for (const tool of order) t.incremental[tool].push(await run(...command(tool), builds[tool]))
      const app = await Promise.all(TOOLS.map((tool) => readFile(join(builds[tool], 'app'))))
      identical &&= app.every((b) => b.equals(app[0] as Buffer))
      process.stderr.write(`  round ${r + 1}/${rounds}: cold ninja ${(t.cold.ninja.at(-1)! / 1000).toFixed(2)} s, mesh ${(t.cold.mesh.at(-1)! / 1000).toFixed(2)} s, local ${(t.cold.local.at(-1)! / 1000).toFixed(2)} s\n`)
    }
  } finally {
    await rm(root, { recursive: true, force: true })
  }

  const rows = (['cold', 'incremental'] as const).map((scenario) => {
    const [ninja, mesh, local] = TOOLS.map((tool) => median(t[scenario][tool])) as [number, number, number]
    return { scenario, ninja, mesh, local, meshRatio: mesh / ninja, localRatio: local / ninja, target: 'mesh/ninja <= 1.2', pass: mesh / ninja <= 1.2 }
  })
  const s = (ms: number): string => `${(ms / 1000).toFixed(3).padStart(8)} s`
  console.log('')
  console.log('| scenario    |   ninja -j2 | bldr mesh (bwrap) | mesh/ninja | bldr local (bwrap) | local/ninja | target            | met |')
  console.log('|-------------|------------:|------------------:|-----------:|-------------------:|------------:|-------------------|-----|')
  for (const row of rows) {
    console.log(
      `| ${row.scenario.padEnd(11)} | ${s(row.ninja)}  | ${s(row.mesh).padStart(17)} | ${row.meshRatio.toFixed(2).padStart(9)}x | ${s(row.local).padStart(18)} | ${row.localRatio.toFixed(2).padStart(10)}x | ${row.target} | ${row.pass ? 'yes' : 'NO '} |`,
    )
  }
  console.log(`\nthe three builds' binaries are ${identical ? 'byte-identical' : 'NOT identical'} in every round`)
  await mkdir(dirname(values.out), { recursive: true })
  await writeFile(values.out, `${JSON.stringify({ bench: 'ninja', files, jobs: JOBS, rounds, node: process.version, identical, samplesMs: t, rows }, null, 2)}\n`)
  console.log(`wrote ${values.out}`)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exitCode = 1
})
