/**
 * What a build shows while it runs. On a terminal: one live status line
 * (done/total, running, cached, the latest action) redrawn in place, with
 * failures and action output printed above it. Otherwise: one plain line per
 * executed action, like ninja, so logs stay readable.
 */
import type { Writable } from 'node:stream'
import type { BuildEvent, BuildSummary } from '../build/engine.js'

/** Lines of a failed action's output shown. */
const TAIL_LINES = 20
/** Least time between redraws of the live line. */
const REDRAW_INTERVAL_MS = 80

export class ProgressReporter {
  private total = 0
  private done = 0
  private cached = 0
  private readonly running = new Set<string>()
  private latest = ''
  private lineShown = false
  private lastDraw = 0
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly out: Writable & { columns?: number },
    private readonly live: boolean,
  ) {}

  onEvent = (e: BuildEvent): void => {
    switch (e.type) {
      case 'build-start':
        this.total = e.total
        break
      case 'action-start':
        this.running.add(e.action.id)
        this.latest = e.action.description
        break
      case 'action-done': {
        this.done++
        if (e.status === 'cached') {
          this.cached++
          break
        }
        this.running.delete(e.action.id)
        const output = Buffer.concat([e.result?.stdout ?? Buffer.alloc(0), e.result?.stderr ?? Buffer.alloc(0)]).toString('utf8').trimEnd()
        if (!this.live) this.print(`[${this.done}/${this.total}] ${e.action.description} (${formatSeconds(e.durationMs)})`)
        if (output) this.print(output)
        break
      }
      case 'action-failed': {
        this.done++
        this.running.delete(e.action.id)
        const lines = [`FAILED: ${e.action.id}: ${e.failure.reason}`, `  $ ${e.failure.argv.map(shellQuote).join(' ')}`]
        const text = Buffer.concat([e.failure.stdout ?? Buffer.alloc(0), e.failure.stderr ?? Buffer.alloc(0)]).toString('utf8').trimEnd()
        if (text) {
          const all = text.split('\n')
          if (all.length > TAIL_LINES) lines.push(`  … (${all.length - TAIL_LINES} earlier lines)`)
          for (const l of all.slice(-TAIL_LINES)) lines.push(`  ${l}`)
        }
        if (e.failure.keptAt) lines.push(`  its folder is kept at ${e.failure.keptAt}`)
        this.print(lines.join('\n'))
        break
      }
      case 'action-skipped':
        this.done++
        break
      case 'action-interrupted':
        this.running.delete(e.action.id)
        break
      case 'action-rerun':
        this.print(`${e.action.id}: ${e.reason}; it is marked flaky, so it runs again (run ${e.run} of ${e.of})`)
        break
    }
    if (this.live) this.scheduleDraw()
  }

  /** Print the closing summary (and clear the live line). */
  finish(summary: BuildSummary): void {
    if (this.timer) clearTimeout(this.timer)
    this.clearLine()
    this.out.write(`${formatSummary(summary)}\n`)
  }

  private print(text: string): void {
    this.clearLine()
    this.out.write(`${text}\n`)
    if (this.live) this.draw()
  }

  private scheduleDraw(): void {
    const now = performance.now()
    if (now - this.lastDraw >= REDRAW_INTERVAL_MS) {
      this.draw()
      return
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined
      this.draw()
    }, REDRAW_INTERVAL_MS)
  }

  private draw(): void {
    this.lastDraw = performance.now()
    // A terminal may report 0 columns (no size set): fall back to $COLUMNS, then 80.
    const columns = this.out.columns || Number(process.env['COLUMNS']) || 80
    const width = Math.max(20, columns - 1)
    let line = `[${this.done}/${this.total}] ${this.running.size} running, ${this.cached} cached · ${this.latest}`
    if (line.length > width) line = `${line.slice(0, width - 1)}…`
    this.out.write(`\r\x1b[K${line}`)
    this.lineShown = true
  }

  private clearLine(): void {
    if (this.lineShown) this.out.write('\r\x1b[K')
    this.lineShown = false
  }
}

export function formatSummary(s: BuildSummary): string {
  const counts = `${s.executed} executed, ${s.cached} cached, ${s.failed.length} failed`
  const extra = [
    s.skipped ? `${s.skipped} skipped` : '',
    s.interrupted ? `${s.interrupted} interrupted` : '',
    s.notStarted ? `${s.notStarted} not started` : '',
  ]
    .filter(Boolean)
    .join(', ')
  const cp = s.criticalPath.totalMs > 0 ? s.criticalPath : { totalMs: 0, actions: [] }
  const path = cp.actions.length === 0 ? '' : cp.actions.length <= 4 ? cp.actions.join(' → ') : `${cp.actions[0]} → … → ${cp.actions[cp.actions.length - 1]}`
  const head = s.ok
    ? `bldr: built ${s.total} actions in ${formatSeconds(s.wallTimeMs)}`
    : s.aborted
      ? `bldr: interrupted after ${formatSeconds(s.wallTimeMs)}`
      : `bldr: build FAILED after ${formatSeconds(s.wallTimeMs)}`
  return `${head}: ${counts}${extra ? `, ${extra}` : ''}; critical path ${formatSeconds(cp.totalMs)}${cp.actions.length ? ` over ${cp.actions.length} action${cp.actions.length > 1 ? 's' : ''} (${path})` : ''}`
}

export function formatSeconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`
}

export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`
}
