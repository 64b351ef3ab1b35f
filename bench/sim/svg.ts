/**
 * Small SVG charts for the benchmark report: a line chart (x may be
 * logarithmic) and a grouped bar chart. Plain SVG 1.1 text, no dependencies,
 * readable in any browser or image viewer.
 */

export interface Series {
  name: string
  points: readonly (readonly [number, number])[]
}

const W = 720
const H = 420
const M = { left: 70, right: 170, top: 40, bottom: 56 }
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#7f7f7f', '#17becf', '#bcbd22']

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function fmtTick(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1000) return `${+(v / 1000).toFixed(1)}k`
  if (a >= 10) return String(Math.round(v))
  return String(+v.toFixed(2))
}

/** About `n` round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  if (hi <= lo) return [lo]
  const raw = (hi - lo) / n
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw
  const out: number[] = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12))
  return out
}

function frame(title: string, xLabel: string, yLabel: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="${M.left + (W - M.left - M.right) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>`,
    `<text transform="translate(16 ${M.top + (H - M.top - M.bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n')
}

function legend(names: readonly string[]): string[] {
  return names.map((name, i) => {
    const y = M.top + 10 + i * 20
    const x = W - M.right + 16
    return `<rect x="${x}" y="${y - 9}" width="14" height="10" fill="${COLOURS[i % COLOURS.length]}"/><text x="${x + 20}" y="${y}">${esc(name)}</text>`
  })
}

export function lineChart(opts: { title: string; xLabel: string; yLabel: string; series: readonly Series[]; xLog?: boolean; yMin?: number; yMax?: number; guide?: { y: number; label: string } }): string {
  const pts = opts.series.flatMap((s) => s.points)
  const tx = (x: number): number => (opts.xLog ? Math.log10(x) : x)
  const xs = pts.map(([x]) => tx(x))
  const ys = pts.map(([, y]) => y).filter(Number.isFinite)
  const x0 = Math.min(...xs)
  const x1 = Math.max(...xs, x0 + 1e-9)
  const y0 = opts.yMin ?? Math.min(0, ...ys)
  const y1 = opts.yMax ?? Math.max(...ys, opts.guide?.y ?? -Infinity, y0 + 1e-9) * 1.05
  const px = (x: number): number => M.left + ((tx(x) - x0) / (x1 - x0 || 1)) * (W - M.left - M.right)
  const py = (y: number): number => H - M.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - M.top - M.bottom)
  const body: string[] = []
  for (const t of ticks(y0, y1)) {
    body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(t)}" y2="${py(t)}" stroke="#e5e5e5"/>`)
    body.push(`<text x="${M.left - 6}" y="${py(t) + 4}" text-anchor="end">${fmtTick(t)}</text>`)
  }
  const xTicks = opts.xLog ? [...new Set(pts.map(([x]) => x))].sort((a, b) => a - b) : ticks(x0, x1)
  for (const t of xTicks) body.push(`<text x="${px(t)}" y="${H - M.bottom + 16}" text-anchor="middle">${fmtTick(t)}</text>`)
  body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="black"/>`)
  body.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${H - M.bottom}" stroke="black"/>`)
  if (opts.guide) {
    const y = py(opts.guide.y)
    body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#999" stroke-dasharray="5 4"/><text x="${W - M.right - 4}" y="${y - 4}" text-anchor="end" fill="#666">${esc(opts.guide.label)}</text>`)
  }
  opts.series.forEach((s, i) => {
    const c = COLOURS[i % COLOURS.length]
    const ok = s.points.filter(([, y]) => Number.isFinite(y))
    body.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${ok.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`)
    for (const [x, y] of ok) body.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${c}"><title>${esc(`${s.name}: ${fmtTick(x)} → ${fmtTick(y)}`)}</title></circle>`)
  })
  return frame(opts.title, opts.xLabel, opts.yLabel, [...body, ...legend(opts.series.map((s) => s.name))])
}

/** Bars grouped by category, one bar per series in each group. */
export function barChart(opts: { title: string; yLabel: string; categories: readonly string[]; series: readonly { name: string; values: readonly number[] }[]; yMax?: number; guide?: { y: number; label: string } }): string {
  const all = opts.series.flatMap((s) => s.values).filter(Number.isFinite)
  const y1 = opts.yMax ?? Math.max(...all, opts.guide?.y ?? 0, 1e-9) * 1.08
  const plotW = W - M.left - M.right
  const groupW = plotW / Math.max(1, opts.categories.length)
  const barW = (groupW * 0.8) / Math.max(1, opts.series.length)
  const py = (y: number): number => H - M.bottom - (y / y1) * (H - M.top - M.bottom)
  const body: string[] = []
  for (const t of ticks(0, y1)) {
    body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(t)}" y2="${py(t)}" stroke="#e5e5e5"/>`)
    body.push(`<text x="${M.left - 6}" y="${py(t) + 4}" text-anchor="end">${fmtTick(t)}</text>`)
  }
  opts.categories.forEach((c, g) => body.push(`<text x="${M.left + groupW * (g + 0.5)}" y="${H - M.bottom + 16}" text-anchor="middle">${esc(c)}</text>`))
  opts.series.forEach((s, i) => {
    s.values.forEach((v, g) => {
      if (!Number.isFinite(v)) return
      const x = M.left + groupW * g + groupW * 0.1 + barW * i
      body.push(`<rect x="${x.toFixed(1)}" y="${py(v).toFixed(1)}" width="${barW.toFixed(1)}" height="${(py(0) - py(v)).toFixed(1)}" fill="${COLOURS[i % COLOURS.length]}"><title>${esc(`${s.name}, ${opts.categories[g]}: ${fmtTick(v)}`)}</title></rect>`)
    })
  })
  body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(0)}" y2="${py(0)}" stroke="black"/>`)
  if (opts.guide) {
    const y = py(opts.guide.y)
    body.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#999" stroke-dasharray="5 4"/><text x="${W - M.right - 4}" y="${y - 4}" text-anchor="end" fill="#666">${esc(opts.guide.label)}</text>`)
  }
  return frame(opts.title, '', opts.yLabel, [...body, ...legend(opts.series.map((s) => s.name))])
}
