/** Shared test helpers: temporary projects on disk, an in-memory source tree, running the CLI. */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { mkdtemp, mkdir, rm, writeFile, readFile, readdir, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { glob } from 'tinyglobby'
import type { SourceTree } from '../src/graph/source-tree.js'
import { stopLocalMesh } from '../src/net/mesh-daemon.js'
import type { ServedSources } from '../src/build/served-sources.js'

/** The repository root (tests run from dist/test/…). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The `bldr` command as a user runs it (bin/bldr: the native thin client for `build`, else the Node CLI). */
export const BLDR_BIN = join(REPO_ROOT, 'bin', 'bldr')
/** The Node CLI itself, for a process started with node flags. */
export const BLDR_NODE_ENTRY = join(REPO_ROOT, 'bin', 'bldr.mjs')
export const EXAMPLE_DIR = join(REPO_ROOT, 'examples', 'calc')

/**
 * Remove a project folder. A local mesh kept for it (in `.bldr`, or in a build
 * folder's `.bldr` one level down) is stopped first, as it would stop by itself
 * once its folder is gone; one still starting may write into its workers'
 * folders meanwhile, so the removal is retried.
 */
export async function removeProject(dir: string): Promise<void> {
  const meshes = [join(dir, '.bldr', 'mesh'), ...(await readdir(dir).catch(() => [] as string[])).map((d) => join(dir, d, '.bldr', 'mesh'))]
  await Promise.all(meshes.map((m) => stopLocalMesh(m)))
  await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 })
}

/** A fresh temporary folder holding `files`; removed by the returned cleanup. */
export async function makeProject(files: Record<string, string>): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'bldr-test-'))
  await writeFiles(dir, files)
  return { dir, cleanup: () => removeProject(dir) }
}

export async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), text)
  }
}

/** Run `fn` in a temporary project (from makeProject or copyExample), removed afterwards whatever happens. */
export async function withProject<T>(project: Promise<{ dir: string; cleanup: () => Promise<void> }>, fn: (dir: string) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await project
  try {
    return await fn(dir)
  } finally {
    await cleanup()
  }
}

/** A copy of the example project (sources only) in a temporary folder. */
export async function copyExample(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const files: Record<string, string> = {}
  for (const path of await glob('**/*', { cwd: EXAMPLE_DIR, ignore: ['.bldr/**', 'bldr-out/**'] })) {
    files[path] = await readFile(join(EXAMPLE_DIR, path), 'utf8')
  }
  return makeProject(files)
}

/** A source tree over a fixed list of files, for graph unit tests. */
export function memoryTree(paths: string[]): SourceTree {
  const set = new Set(paths)
  return {
    isFile: async (p) => set.has(p),
    glob: async (pattern) => {
      const { default: picomatch } = await import('picomatch')
      const m = picomatch(pattern)
      return paths.filter((p) => m(p)).sort()
    },
  }
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Run `bldr` as a separate process, as a user would. */
export function runCli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(BLDR_BIN, args, {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Every file under `dir` (excluding bldr's state) → its bytes, for byte-for-byte comparisons. */
export async function snapshotFiles(dir: string, under = '.'): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>()
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const abs = join(d, entry.name)
      const rel = relative(dir, abs)
      if (rel === '.bldr' || rel.startsWith('.bldr/')) continue
      if (entry.isDirectory()) await walk(abs)
      else out.set(rel, await readFile(abs))
    }
  }
  await walk(join(dir, under))
  return out
}

/**
 * The contents of `path` once it exists, waiting for it to appear (checked on
 * each change in its folder, and every 50 ms in case a change is missed) up to
 * `deadlineMs`. Writers should create it by rename, so it appears whole.
 */
export async function waitForFile(path: string, deadlineMs: number): Promise<string> {
  const { watch } = await import('node:fs')
  const read = (): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined)
  const first = await read()
  if (first !== undefined) return first
  return new Promise((resolve, reject) => {
    let done = false
    const finish = (err: Error | undefined, text?: string): void => {
      if (done) return
      done = true
      watcher.close()
      clearInterval(poll)
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(text as string)
    }
    const check = (): void => {
      void read().then((text) => {
        if (text !== undefined) finish(undefined, text)
      })
    }
    const watcher = watch(dirname(path), check)
    const poll = setInterval(check, 50)
    const timer = setTimeout(() => finish(new Error(`${path} did not appear within ${deadlineMs} ms`)), deadlineMs)
  })
}

/**
 * Start a compiled fixture script (path under dist/) in its own process and
 * wait for the line `READY <value>` on its stdout; its stdin stays open (fixtures
 * exit when it closes, see `stopProcess`).
 */
export function spawnReady(script: string, args: string[], deadlineMs = 20_000): Promise<{ proc: ChildProcess; value: string }> {
  const proc = spawn(process.execPath, [join(REPO_ROOT, script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not say READY within ${deadlineMs} ms`)), deadlineMs)
    proc.on('exit', (code) => reject(new Error(`${script} exited early (${code})`)))
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /^READY (\S+)$/.exec(line)
      if (!m) return
      clearTimeout(timer)
      resolve({ proc, value: m[1] as string })
    })
  })
}

/** Close a fixture's stdin and wait for it to exit. */
export async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const exited = new Promise((resolve) => proc.on('exit', resolve))
  proc.stdin?.end()
  await exited
}

export async function mtimeMs(path: string): Promise<number> {
  return (await stat(path)).mtimeMs
}

/** Processes whose parent is `pid` (from /proc). */
export async function childPids(pid: number): Promise<number[]> {
  const out: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    // pid (comm) state ppid …: comm may contain spaces, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (ppid === pid) out.push(Number(entry))
  }
  return out.sort((a, b) => a - b)
}

/**
 * The local mesh kept for a folder (`<dir>/.bldr/mesh/daemon.json`, written once its
 * workers have registered): its process and its worker processes. A build starts it
 * as it ends, without waiting: this waits up to `deadlineMs` for it to be ready.
 */
export async function keptMeshOf(dir: string, deadlineMs = 30_000): Promise<{ pid: number; workers: number[] }> {
  const end = performance.now() + deadlineMs
  for (;;) {
    const text = await readFile(join(dir, '.bldr', 'mesh', 'daemon.json'), 'utf8').catch(() => undefined)
    if (text) {
      const { pid, workers } = JSON.parse(text) as { pid: number; workers: number[] }
      return { pid, workers }
    }
    if (performance.now() > end) throw new Error(`no local mesh was ready for ${dir} within ${deadlineMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

export interface Started {
  proc: ChildProcess
  match: RegExpExecArray
  /** Everything it printed so far, stdout and stderr lines interleaved. */
  output: () => string
  /** Its exit code, once it exits. */
  exited: Promise<number | null>
}

/**
 * Start `bldr <args>` and resolve once `ready` matches a line of its stdout or
 * stderr. Rejects if it exits first, or at the deadline, when it is stopped
 * (SIGTERM) first: a build or worker left running would outlive its test.
 */
export function startBldr(args: string[], ready: RegExp, deadlineMs = 30_000, opts: { prefix?: string[]; env?: Record<string, string> } = {}): Promise<Started> {
  // With a prefix (`ip netns exec NS`), that command runs bldr (it execs it, so the pid stays bldr's).
  const [cmd, ...pre] = [...(opts.prefix ?? []), BLDR_BIN]
  const proc = spawn(cmd!, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  let out = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGTERM')
      reject(new Error(`bldr ${args[0]} was not ready within ${deadlineMs} ms (stopped):\n${out}`))
    }, deadlineMs)
    void exited.then((code) => reject(new Error(`bldr ${args[0]} exited early (${code}):\n${out}`)))
    for (const stream of [proc.stdout!, proc.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        out += `${line}\n`
        const m = ready.exec(line)
        if (!m) return
        clearTimeout(timer)
        resolve({ proc, match: m, output: () => out, exited })
      })
    }
  })
}

/** Resolve once a line of `s`'s output matches `re` (already printed, or when it is); reject at the deadline or when it exits without one. */
export function waitForLine(s: Started, re: RegExp, deadlineMs: number): Promise<void> {
  const seen = (): boolean => s.output().split('\n').some((l) => re.test(l))
  if (seen()) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer)
      s.proc.stdout!.off('data', check)
      s.proc.stderr!.off('data', check)
    }
    const check = (): void => {
      if (!seen()) return
      cleanup()
      resolve()
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`no line matching ${re} within ${deadlineMs} ms:\n${s.output()}`))
    }, deadlineMs)
    s.proc.stdout!.on('data', check)
    s.proc.stderr!.on('data', check)
    void s.exited.then(() =>
      setImmediate(() => {
        if (seen()) return check()
        cleanup()
        reject(new Error(`exited without a line matching ${re}:\n${s.output()}`))
      }),
    )
  })
}

export async function terminate(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  proc.kill('SIGTERM')
  return exited
}

/** The ids of the actions a build's `--stats` file says were executed (not restored from the cache), sorted. */
export async function executedIn(statsFile: string): Promise<string[]> {
  const stats = JSON.parse(await readFile(statsFile, 'utf8')) as { actions: { id: string; status: string }[] }
  return stats.actions.filter((a) => a.status === 'executed').map((a) => a.id).sort()
}

/** From now on, the project paths of the sources `served` is handed (each build hands over those it does not hold yet), in order. */
export function handedOver(served: ServedSources, root: string): string[] {
  const handed: string[] = []
  const add = served.add.bind(served)
  served.add = (digest, abs, bytes) => {
    handed.push(relative(root, abs))
    add(digest, abs, bytes)
  }
  return handed
}
