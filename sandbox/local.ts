/**
 * The local backend: each action runs in a scratch folder that holds only its
 * declared inputs (verified blobs from the CAS, see scratch.ts), with a fixed
 * environment and its own TMPDIR and HOME. An action that reads an undeclared
 * project file fails here the same way it would on a remote worker.
 *
 * It does not isolate the process: the action can still read the rest of the
 * machine by absolute path and reach the network. Use bwrap or docker for that.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { lstatSync } from 'node:fs'
import type { Logger } from 'pino'
import type { OutputRecord } from '../src/cas/action-cache.js'
import type { CasStore } from '../src/cas/store.js'
import { ScratchPool, type Scratch } from './scratch.js'
import { SandboxError, type RunOptions, type Sandbox, type SandboxResult, type SandboxSpec } from './types.js'

/** Most bytes of stdout (and of stderr) kept per action; the rest is dropped with a note. */
const MAX_CAPTURE_BYTES = 4 * 1024 * 1024

export const LOCAL_ISOLATION_NOTE =
  'sandbox local: actions see only their declared inputs, but are not isolated from the machine or the network (bwrap and docker isolate)'

export interface LocalSandboxInit {
  cas: CasStore
  /** Folder for scratch folders, e.g. `<project>/.bldr/scratch`. */
  scratchRoot: string
  /** Keep scratch folders of failed actions for inspection. Default false. */
  keepFailed?: boolean
  log?: Logger
}

export function createLocalSandbox(init: LocalSandboxInit): Sandbox {
  const pool = new ScratchPool(init.cas, init.scratchRoot, init.log)
  return {
    name: 'local',
    isolationNote: LOCAL_ISOLATION_NOTE,
    run: (spec, opts) => runLocal(init, pool, spec, opts ?? {}),
    close: async () => pool.close(),
  }
}

async function runLocal(init: LocalSandboxInit, pool: ScratchPool, spec: SandboxSpec, opts: RunOptions): Promise<SandboxResult> {
  let scratch: Scratch
  try {
    scratch = await pool.acquire(spec)
  } catch (err) {
    throw new SandboxError('local', spec.actionId, `staging inputs failed: ${(err as Error).message}`, { cause: err })
  }
  let keep = false
  try {
    const env: Record<string, string> = { ...spec.env, HOME: scratch.home, PWD: scratch.execRoot }
    if (spec.capabilities.writeTmp) env['TMPDIR'] = scratch.tmp
    const slot = opts.slot ?? (<T>(run: () => Promise<T>) => run())
    const proc = await slot(() => {
      opts.onStart?.()
      return runProcess(spec, scratch.execRoot, env, opts.signal)
    })
    const written = pool.inputsWrittenTo(scratch)
    if (written.length > 0) {
      throw new SandboxError('local', spec.actionId, `the action wrote to its input${written.length > 1 ? 's' : ''} ${written.join(', ')} (inputs are read-only)`)
    }
    if (proc.exitCode !== 0) {
      keep = init.keepFailed ?? false
      return { ...proc, outputs: [], missingOutputs: [] }
    }
    const outputs: OutputRecord[] = []
    const missingOutputs: string[] = []
    for (const path of spec.outputs) {
      const abs = join(scratch.execRoot, path)
      const st = lstatSync(abs, { throwIfNoEntry: false })
      if (!st) {
        missingOutputs.push(path)
        continue
      }
      if (!st.isFile()) {
        missingOutputs.push(path)
        proc.stderr = Buffer.concat([proc.stderr, Buffer.from(`\nbldr: output ${path} is not a regular file (outputs must be files)\n`)])
        continue
      }
      const ref = await init.cas.putFile(abs, { move: true })
      outputs.push({ path, digest: ref.digest, size: ref.size, executable: (st.mode & 0o111) !== 0 })
    }
    keep = missingOutputs.length > 0 && (init.keepFailed ?? false)
    return { ...proc, outputs, missingOutputs }
  } finally {
    pool.release(scratch, { keep })
  }
}

type ProcessResult = Omit<SandboxResult, 'outputs' | 'missingOutputs'>

function runProcess(spec: SandboxSpec, cwd: string, env: Record<string, string>, signal?: AbortSignal): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const started = performance.now()
    const out = new Capture()
    const err = new Capture()
    let timedOut = false
    const [cmd, ...args] = spec.argv as [string, ...string[]]
    // detached: the action gets its own process group, so a timeout or abort ends everything it started.
    const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    const killGroup = (): void => {
      if (child.pid === undefined) return
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // Already gone.
      }
    }
    const timer = setTimeout(() => {
      timedOut = true
      killGroup()
    }, spec.timeoutMs)
    const onAbort = (): void => killGroup()
    signal?.addEventListener('abort', onAbort, { once: true })
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    let spawnError: NodeJS.ErrnoException | undefined
    child.on('error', (e: NodeJS.ErrnoException) => {
      spawnError = e
    })
    child.on('close', (code, sig) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      killGroup() // anything the action left running in its group
      const durationMs = performance.now() - started
      if (spawnError) {
        const why = spawnError.code === 'ENOENT' ? `not found (PATH=${env['PATH'] ?? ''})` : spawnError.message
        resolve({ exitCode: 127, signal: null, timedOut: false, stdout: out.bytes(), stderr: Buffer.from(`bldr: cannot run ${JSON.stringify(cmd)}: ${why}\n`), durationMs })
        return
      }
      resolve({ exitCode: code, signal: sig, timedOut, stdout: out.bytes(), stderr: err.bytes(), durationMs })
    })
  })
}

/** Collects a stream's bytes up to MAX_CAPTURE_BYTES. */
class Capture {
  private chunks: Buffer[] = []
  private size = 0
  private dropped = 0
  push(b: Buffer): void {
    const room = Math.max(0, MAX_CAPTURE_BYTES - this.size)
    if (b.length > room) {
      if (room > 0) this.chunks.push(b.subarray(0, room))
      this.size += room
      this.dropped += b.length - room
      return
    }
    this.chunks.push(b)
    this.size += b.length
  }
  bytes(): Buffer {
    const all = Buffer.concat(this.chunks)
    return this.dropped > 0 ? Buffer.concat([all, Buffer.from(`\n[bldr: ${this.dropped} more bytes not kept]\n`)]) : all
  }
}
