/**
 * Processes for the benchmarks: timing whole processes from spawn to exit
 * (after letting the file system settle), and starting long-lived ones
 * (coordinators, workers) that say when they are ready.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

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

/**
 * Start a long-lived process and resolve once a line of its stdout matches
 * `ready` (with `stderr: 'lines'`, of its stderr too); `value` is the first
 * group. Rejects if it exits first or is not ready within a minute.
 */
export function spawnUntil(cmd: string, args: string[], ready: RegExp, opts: { stderr?: 'inherit' | 'lines' } = {}): Promise<{ proc: ChildProcess; value: string }> {
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', opts.stderr === 'lines' ? 'pipe' : 'inherit'] })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')}: not ready within 60 s`)), 60_000)
    proc.once('exit', (code) => reject(new Error(`${args.join(' ')} exited early (${code})`)))
    for (const stream of [proc.stdout, proc.stderr]) {
      if (!stream) continue
      createInterface({ input: stream }).on('line', (line) => {
        const m = ready.exec(line)
        if (!m) return
        clearTimeout(timer)
        resolve({ proc, value: m[1] ?? '' })
      })
    }
  })
}

/** Stop processes started by `spawnUntil`: close their stdin (they exit on that), SIGKILL after 10 s. */
export async function stopAll(procs: ChildProcess[]): Promise<void> {
  await Promise.all(
    procs.map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return
      const exited = new Promise((resolve) => p.once('exit', resolve))
      p.stdin?.end()
      const timer = setTimeout(() => p.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }),
  )
}
