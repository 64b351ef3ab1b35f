/** Sizes as people write them (`512MiB`, `2G`, `64k`) and read them; a leaf module (the worker reads --max-store without the BUILD schemas). */

export const SIZE_RE = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?$/i

/** Parse a size as written in a BUILD file into bytes (`k` = 1000, `Ki` = 1024). */
export function sizeToBytes(value: number | string): number {
  if (typeof value === 'number') return value
  const m = SIZE_RE.exec(value)
  if (!m) throw new Error(`not a size: ${value}`)
  const n = Number(m[1])
  const power = ' kmgt'.indexOf((m[2] || ' ').toLowerCase())
  const base = m[3] ? 1024 : 1000
  return Math.round(n * base ** power)
}

/** A size for people: `512 MiB`, `2 GiB`, `64 KiB`, or bytes when under 1 KiB. */
export function formatBytes(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let n = bytes
  let unit = 'bytes'
  for (const u of units) {
    if (n < 1024) break
    n /= 1024
    unit = u
  }
  return unit === 'bytes' ? `${bytes} bytes` : `${Number.isInteger(n) ? n : n.toFixed(1)} ${unit}`
}
