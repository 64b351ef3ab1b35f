/**
 * bench/wide-noop: a wide build.ninja (N independent copies, every one ready at
 * once) built once by ninja and by bldr, then rebuilt with nothing changed,
 * side by side: the no-op build is the cost of checking N cached actions.
 *
 *   node dist/bench/wide-noop.js [--actions 3000] [--rounds 3]
 *
 * It measures what a large tree costs a build that has nothing to do, where the
 * 200-file benchmarks cannot see it: the engine waited for its in-flight checks
 * with a race over all of them after each one ended, quadratic in the actions
 * ready at once (3,000: ~5 s of no-op). Writes bench/results/wide-noop.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { median, run } from './process-timing.js'
import { REPO, BLDR } from './repo.js'

const { values } = parseArgs({
  options: {
    actions: { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '3' },
    out: { type: 'string', default: join(REPO, 'bench', 'results', 'wide-noop.json') },
  },
})
const actions = Number(values.actions)
const rounds = Number(values.rounds)

async function project(dir: string): Promise<void> {
  await mkdir(join(dir, 'i'), { recursive: true })
  const lines = ['rule copy', '  command = cp $in $out']
  for (let k = 0; k < actions; k++) {
    await writeFile(join(dir, 'i', `${k}.txt`), `${k}\n`)
    lines.push(`build o/${k}.txt: copy i/${k}.txt`)
  }
  await writeFile(join(dir, 'build.ninja'), `${lines.join('\n')}\n`)
}

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'bldr-bench-wide-'))
  try {
    const [ninjaDir, bldrDir] = [join(root, 'ninja'), join(root, 'bldr')]
    await project(ninjaDir)
    await project(bldrDir)
    console.log(`bench/wide-noop: ${actions} independent copies, -j2; ninja and bldr (local sandbox) alternate within each round`)
    const cold = { ninja: await run('ninja', ['-j2'], ninjaDir), bldr: await run(BLDR, ['build', '-f', 'build.ninja', '-j2'], bldrDir) }
    // Sources settled (bldr hashes again a file written within 2 s of a build's start), then the no-op rounds.
    await new Promise((resolve) => setTimeout(resolve, 2_100))
    await run(BLDR, ['build', '-f', 'build.ninja', '-j2'], bldrDir)
    const noop = { ninja: [] as number[], bldr: [] as number[] }
    for (let r = 0; r < rounds; r++) {
      noop.ninja.push(await run('ninja', ['-j2'], ninjaDir))
      noop.bldr.push(await run(BLDR, ['build', '-f', 'build.ninja', '-j2'], bldrDir))
      process.stderr.write(`  round ${r + 1}/${rounds}: no-op ninja ${(noop.ninja.at(-1)! / 1000).toFixed(3)} s, bldr ${(noop.bldr.at(-1)! / 1000).toFixed(3)} s\n`)
    }
    const s = (ms: number): string => `${(ms / 1000).toFixed(3)} s`
    console.log('')
    console.log('| build | ninja -j2 | bldr -j2 | bldr/ninja |')
    console.log('|-------|----------:|---------:|-----------:|')
    console.log(`| cold (once) | ${s(cold.ninja)} | ${s(cold.bldr)} | ${(cold.bldr / cold.ninja).toFixed(2)}x |`)
    console.log(`| no-op (median of ${rounds}) | ${s(median(noop.ninja))} | ${s(median(noop.bldr))} | ${(median(noop.bldr) / median(noop.ninja)).toFixed(2)}x |`)
    await mkdir(dirname(values.out), { recursive: true })
    await writeFile(values.out, `${JSON.stringify({ actions, rounds, coldMs: cold, noopMs: noop }, null, 2)}\n`)
    console.log(`\nwrote ${values.out}`)
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

await main()
