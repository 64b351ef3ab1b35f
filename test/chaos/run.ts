/**
 * `npm run test:chaos -- --rounds N [--json FILE]`: the chaos suite with N rounds
 * of every fault (CI runs one), then the figures per fault kind: rounds run,
 * builds completed, actions lost, duplicate results recorded, and the time to
 * detect a dead worker and to finish after it.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { REPO_ROOT } from '../helpers.js'

interface Line {
  kind: string
  round: number
  ok: boolean
  lost: number
  duplicatesRecorded: number
  duplicatesIgnored: number | null
  lateResults: number | null
  retries: number
  detectMs?: number
  finishAfterMs?: number
}

const { values } = parseArgs({ options: { rounds: { type: 'string' }, json: { type: 'string' } } })
const rounds = Number(values.rounds ?? 3)
if (!Number.isInteger(rounds) || rounds < 1) {
  process.stderr.write(`test:chaos: --rounds must be an integer >= 1 (got ${JSON.stringify(values.rounds)})\n`)
  process.exit(2)
}
const dir = mkdtempSync(join(tmpdir(), 'bldr-chaos-'))
const reportFile = join(dir, 'report.jsonl')
writeFileSync(reportFile, '')
const run = spawnSync(process.execPath, ['--test', join(REPO_ROOT, 'dist', 'test', 'chaos', 'chaos.test.js')], {
  stdio: 'inherit',
  env: { ...process.env, BLDR_CHAOS_ROUNDS: String(rounds), BLDR_CHAOS_REPORT: reportFile },
})
const lines = readFileSync(reportFile, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as Line)
rmSync(dir, { recursive: true, force: true })

const spread = (xs: number[]): string => {
  if (xs.length === 0) return '-'
  const s = [...xs].sort((a, b) => a - b)
  return `${s[0]}/${s[Math.floor((s.length - 1) / 2)]}/${s[s.length - 1]}`
}
// A round that failed wrote no line: `rounds` is what ran, `built` what passed.
const kinds = [...new Set(lines.map((l) => l.kind))]
const rows = kinds.map((kind) => {
  const ls = lines.filter((l) => l.kind === kind)
  return {
    kind,
    rounds,
    completed: ls.filter((l) => l.ok).length,
    actionsLost: ls.reduce((n, l) => n + l.lost, 0),
    duplicatesRecorded: ls.reduce((n, l) => n + l.duplicatesRecorded, 0),
    duplicatesIgnored: ls.reduce((n, l) => n + (l.duplicatesIgnored ?? 0), 0),
    lateResults: ls.reduce((n, l) => n + (l.lateResults ?? 0), 0),
    retries: ls.reduce((n, l) => n + l.retries, 0),
    detectMs: spread(ls.flatMap((l) => (l.detectMs === undefined ? [] : [l.detectMs]))),
    finishAfterMs: spread(ls.flatMap((l) => (l.finishAfterMs === undefined ? [] : [l.finishAfterMs]))),
  }
})
const header = ['fault', 'rounds', 'built', 'lost', 'dup rec', 'dup ign', 'late', 'retries', 'detect ms min/med/max', 'finish after ms min/med/max']
const table = [header, ...rows.map((r) => [r.kind, r.rounds, r.completed, r.actionsLost, r.duplicatesRecorded, r.duplicatesIgnored, r.lateResults, r.retries, r.detectMs, r.finishAfterMs].map(String))]
const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)))
process.stdout.write(`\nchaos: ${rounds} round${rounds === 1 ? '' : 's'} per fault (heartbeat 500 ms, worker timeout 2000 ms)\n`)
for (const row of table) process.stdout.write(`${row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}\n`)
if (values.json) writeFileSync(values.json, `${JSON.stringify({ rounds, rows, lines }, null, 2)}\n`)
process.exit(run.status ?? 1)
