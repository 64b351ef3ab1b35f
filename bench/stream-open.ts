/**
 * bench/stream-open: what opening one libp2p stream costs between two mesh
 * nodes over loopback TCP, with bldr's rule for the peer store
 * (src/net/known-protocols.ts: no write for a protocol the peer's record
 * lists) and with libp2p's own way (the record written for every stream, on
 * each end).
 *
 *   node dist/bench/stream-open.js [--streams 2000] [--rounds 4]
 *
 * Each round makes a fresh pair of nodes per variant (the variants take turns,
 * so machine drift hits both), connects them, opens `--streams` streams one
 * after another from one to the other (each answered and closed by the other
 * end, as a CAS push or fetch opens one), and times each open until the
 * stream is there; the CPU of the whole round (both nodes run in this process)
 * is divided by the streams. Every output push, input fetch, seed and result
 * of a mesh build opens such a stream.
 *
 * Prints a table and writes JSON to bench/results/stream-open.json.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import { createMeshNode } from '../src/net/node.js'
import { percentile } from '../src/percentile.js'
import { median } from './process-timing.js'
import { REPO } from './repo.js'

const VARIANTS = ['known-protocols', 'every-stream'] as const
type Variant = (typeof VARIANTS)[number]
const PROTOCOL = '/bldr-bench/stream-open/1.0.0'

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '4' },
  },
})
const STREAMS = Number(values.streams)
const ROUNDS = Number(values.rounds)
if (!Number.isInteger(STREAMS) || STREAMS < 1) throw new Error(`--streams must be a whole number >= 1 (got ${values.streams})`)
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error(`--rounds must be a whole number >= 1 (got ${values.rounds})`)

interface Round {
  opensMs: number[]
  cpuUsPerStream: number
}

async function round(variant: Variant): Promise<Round> {
  const writeEveryStream = variant === 'every-stream'
  const [a, b] = await Promise.all([createMeshNode({ writeEveryStream }), createMeshNode({ writeEveryStream })])
  try {
    await b.handle(PROTOCOL, (stream) => void stream.close(), {})
    await a.dial(b.getMultiaddrs()[0]!)
    // Warm up the code paths (V8), then time.
    for (let i = 0; i < 100; i++) await (await a.dialProtocol(b.peerId, PROTOCOL, { negotiateFully: false })).close()
    const opensMs: number[] = []
    const cpu = process.cpuUsage()
    for (let i = 0; i < STREAMS; i++) {
      const t = performance.now()
      const stream = await a.dialProtocol(b.peerId, PROTOCOL, { negotiateFully: false })
      opensMs.push(performance.now() - t)
      await stream.close()
    }
    const used = process.cpuUsage(cpu)
    return { opensMs, cpuUsPerStream: (used.user + used.system) / STREAMS }
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
}

async function main(): Promise<void> {
  console.log(`bench/stream-open: ${STREAMS} streams per round, ${ROUNDS} rounds; variants ${VARIANTS.join(', ')} take turns`)
  const runs = Object.fromEntries(VARIANTS.map((v) => [v, [] as Round[]])) as Record<Variant, Round[]>
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()
    for (const v of order) runs[v].push(await round(v))
    process.stderr.write(`  round ${r + 1}/${ROUNDS} done\n`)
  }
  const rows = VARIANTS.map((v) => {
    const opens = runs[v].flatMap((r) => r.opensMs).sort((x, y) => x - y)
    return { variant: v, openP50Ms: percentile(opens, 0.5) ?? 0, openP90Ms: percentile(opens, 0.9) ?? 0, cpuUsPerStreamMedian: median(runs[v].map((r) => r.cpuUsPerStream)) }
  })
  console.log('\n| variant | open p50 | open p90 | CPU per stream (both ends, median of rounds) |')
  console.log('|---|---:|---:|---:|')
  for (const r of rows) console.log(`| ${r.variant} | ${r.openP50Ms.toFixed(3)} ms | ${r.openP90Ms.toFixed(3)} ms | ${r.cpuUsPerStreamMedian.toFixed(0)} µs |`)
  const out = join(REPO, 'bench', 'results', 'stream-open.json')
  await mkdir(dirname(out), { recursive: true })
  await writeFile(out, JSON.stringify({ streams: STREAMS, rounds: ROUNDS, rows }, null, 2) + '\n')
  console.log(`\nwrote ${out}`)
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
