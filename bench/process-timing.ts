/** Timing whole processes for the build benchmarks: from spawn to exit, after letting the file system settle. */
import { spawn } from 'node:child_process'

/**
 * Let the file system settle before a timed run: flush dirty pages (and, on a
 * file system mounted with `discard`, the trims of what the last round deleted),
 * so one tool does not pay for the other's writes.
 */
function settle(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sync', [], { stdio: 'ignore' })
    child.on('error', reject)
    child.on('close', () => resolve())
  })
}

export async function run(cmd: string, args: string[], cwd: string): Promise<number> {
  await settle()
  return timed(cmd, args, cwd)
}

export function timed(cmd: string, args: string[], cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now()
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
    child.on('error', reject)
    child.on('close', (code) => {
      const ms = performance.now() - t0
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${stderr}`))
      else resolve(ms)
    })
  })
}

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}
