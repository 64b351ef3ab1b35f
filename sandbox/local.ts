/**
 * The local backend: each action runs in a fresh scratch folder that holds only
 * its declared inputs (copied from the CAS and verified), with a fixed
 * environment and its own TMPDIR and HOME. An action that reads an undeclared
 * project file fails here the same way it would on a remote worker.
 *
 * It does not isolate the process: the action can still read the rest of the
 * machine by absolute path and reach the network. Use bwrap or docker for that.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, rmSync, statSync } from 'node:fs'
import { lstat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { blobIdentity, type CasStore } from '../src/cas/store.js'
import type { OutputRecord } from '../src/cas/action-cache.js'
import { isErrnoException } from '../src/cas/fs-util.js'
import { SandboxError, type Sandbox, type SandboxInput, type SandboxResult, type SandboxSpec } from './types.js'

/** Most bytes of stdout (and of stderr) kept per action; the rest is dropped with a note. */
const MAX_CAPTURE_BYTES = 4 * 1024 * 1024

export interface LocalSandboxInit {
  cas: CasStore
  /** Folder for scratch folders; each action gets its own below it, removed afterwards. */
  scratchRoot: string
  /** Keep scratch folders of failed actions for inspection. Default false. */
  keepFailed?: boolean
}

let scratchCounter = 0

export function createLocalSandbox(init: LocalSandboxInit): Sandbox {
  return {
    name: 'local',
    isolationNote:
      'sandbox local: actions see only their declared inputs in a scratch folder, but are not isolated from the rest of the machine or the network (use --sandbox bwrap or docker for that)',
    run: (spec, opts) => runLocal(init, spec, opts?.signal),
    close: async () => {},
  }
}

async function runLocal(init: LocalSandboxInit, spec: SandboxSpec, signal?: AbortSignal): Promise<SandboxResult> {
  const dir = join(init.scratchRoot, `${process.pid}-${++scratchCounter}-${spec.actionId.replace(/[^A-Za-z0-9_.-]+/g, '_').slice(-80)}`)
  const execRoot = join(dir, 'root')
  const tmp = join(dir, 'tmp')
  const home = join(dir, 'home')
  let failed = true
  /** Inputs staged as hard links to stored blobs: checked after the run for writes. */
  const linked: SandboxInput[] = []
  try {
    try {
      // Each folder once, parents first; then every input (see stageInputs).
      const dirs = new Set<string>([execRoot, tmp, home])
      for (const p of [...spec.inputs.map((i) => i.path), ...spec.outputs]) dirs.add(dirname(join(execRoot, p)))
      for (const d of [...dirs].sort()) mkdirSync(d, { recursive: true })
      for (const i of spec.inputs) {
        if ((await init.cas.stage(i.digest, join(execRoot, i.path), { executable: i.executable })) === 'link') linked.push(i)
      }
    } catch (err) {
      throw new SandboxError('local', spec.actionId, `staging inputs failed: ${(err as Error).message}`, { cause: err })
    }

    const env: Record<string, string> = { ...spec.env, HOME: home, PWD: execRoot }
    if (spec.capabilities.writeTmp) env['TMPDIR'] = tmp
    const proc = await runProcess(spec, execRoot, env, signal)
    const written = inputsWrittenTo(init.cas, linked)
    if (written.length > 0) {
      throw new SandboxError('local', spec.actionId, `the action wrote to its input${written.length > 1 ? 's' : ''} ${written.join(', ')} (inputs are read-only)`)
    }
    if (proc.exitCode !== 0) return { ...proc, outputs: [], missingOutputs: [] }

    const outputs: OutputRecord[] = []
    const missingOutputs: string[] = []
    for (const path of spec.outputs) {
      const abs = join(execRoot, path)
      let st
      try {
        st = await lstat(abs)
      } catch (err) {
        if (isErrnoException(err, 'ENOENT') || isErrnoException(err, 'ENOTDIR')) {
          missingOutputs.push(path)
          continue
        }
        throw err
      }
      if (!st.isFile()) {
        missingOutputs.push(path)
        proc.stderr = Buffer.concat([proc.stderr, Buffer.from(`\nbldr: output ${path} is not a regular file (outputs must be files)\n`)])
        continue
      }
      const ref = await init.cas.putFile(abs, { move: true })
      outputs.push({ path, digest: ref.digest, size: ref.size, executable: (st.mode & 0o111) !== 0 })
    }
    failed = missingOutputs.length > 0
    return { ...proc, outputs, missingOutputs }
  } finally {
    // Synchronous for the same reason as staging: many tiny metadata calls.
    if (!(failed && init.keepFailed)) rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Inputs the action changed in place. A hard-linked input is the stored blob
 * itself, so a write to it would change the store: the blob is marked for a
 * fresh check (which will fail, so it is repaired or rebuilt) and the action fails.
 */
function inputsWrittenTo(cas: CasStore, linked: SandboxInput[]): string[] {
  const written: string[] = []
  for (const i of linked) {
    const st = statSync(cas.pathOf(i.digest), { bigint: true, throwIfNoEntry: false })
    if (!st || blobIdentity(st) !== cas.verifiedIdentity(i.digest)) {
      cas.forget(i.digest)
      written.push(i.path)
    }
  }
  return written
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
    if (this.size + b.length > MAX_CAPTURE_BYTES) {
      const room = MAX_CAPTURE_BYTES - this.size
      if (room > 0) this.chunks.push(b.subarray(0, room))
      this.size += Math.max(0, room)
      this.dropped += b.length - Math.max(0, room)
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
