/**
 * Backends that start each command on this machine themselves (local): each
 * action runs in a scratch folder that holds only its declared inputs
 * (verified blobs from the CAS, see scratch.ts), with a fixed environment and
 * its own TMPDIR and HOME, started by the process runner that owns the slots;
 * afterwards the inputs are checked and the declared outputs stored (also by
 * the warm backends, see `collectResult`). A backend supplies `launch`: how the
 * command is started around the scratch folder, and `refuse`: a capability it
 * cannot enforce, checked before anything is staged.
 */
import { join, posix } from 'node:path'
import { lstatSync, readlinkSync } from 'node:fs'
import type { Logger } from 'pino'
import type { OutputRecord } from '../src/cas/action-cache.js'
import type { CasStore } from '../src/cas/store.js'
import { readAtMost } from '../src/cas/fs-util.js'
import { defaultRunnerKind, ProcessRunner } from './process-runner.js'
import { ScratchPool, type Scratch } from './scratch.js'
import { DEPFILE_TEXT_MAX_BYTES, SandboxError, type RunOptions, type Sandbox, type SandboxName, type SandboxResult, type SandboxSpec } from './types.js'

export interface ScratchBackendInit {
  cas: CasStore
  /** Folder for scratch folders, e.g. `<project>/.bldr/scratch`. */
  scratchRoot: string
  /** Most commands running at once (`-j`). */
  slots: number
  /** Keep scratch folders of failed actions for inspection. Default false. */
  keepFailed?: boolean
  log?: Logger
}

/** How a backend starts one command around its scratch folder. */
export interface Launch {
  argv: readonly string[]
  env: Record<string, string>
  cwd: string
}

export interface ScratchBackend {
  name: SandboxName
  isolationNote: string
  /** Why this backend cannot run `spec` as asked (a capability it cannot enforce), or undefined. */
  refuse(spec: SandboxSpec): string | undefined
  launch(spec: SandboxSpec, scratch: Scratch): Launch
  /** Called on each output file before it is stored (after a zero exit). */
  beforeStore?(spec: SandboxSpec, scratch: Scratch, output: string, abs: string): void
}

export function createScratchSandbox(init: ScratchBackendInit, backend: ScratchBackend): Sandbox {
  const runner = new ProcessRunner(init.slots, defaultRunnerKind(), init.log ? { log: init.log } : {})
  // Made for the first action: without capabilities, root's commands cannot change a blob given to another owner (process-runner.ts).
  let pool: ScratchPool | undefined
  const poolOf = (): ScratchPool => (pool ??= new ScratchPool(init.cas, init.scratchRoot, { log: init.log, ...(runner.withoutCapabilities ? { actionUid: 0 } : {}) }))
  return {
    name: backend.name,
    slots: init.slots,
    isolationNote: backend.isolationNote,
    run: (spec, opts) => runInScratch(init, backend, poolOf(), runner, spec, opts ?? {}),
    // An action is about to run: the runner's start-up (~0.1 s) overlaps storing and staging its inputs.
    warm: () => runner.warmUp(),
    close: async () => {
      runner.close()
      pool?.close()
    },
  }
}

async function runInScratch(init: ScratchBackendInit, backend: ScratchBackend, pool: ScratchPool, runner: ProcessRunner, spec: SandboxSpec, opts: RunOptions): Promise<SandboxResult> {
  const refusal = backend.refuse(spec)
  if (refusal) throw new SandboxError(backend.name, spec.actionId, refusal)
  runner.warmUp() // its start-up overlaps the staging below
  let scratch: Scratch
  try {
    scratch = await pool.acquire(spec)
  } catch (err) {
    throw new SandboxError(backend.name, spec.actionId, `staging inputs failed: ${(err as Error).message}`, { cause: err })
  }
  let keep = false
  try {
    const launch = backend.launch(spec, scratch)
    let proc
    try {
      proc = await runner.run({ ...launch, timeoutMs: spec.timeoutMs }, { signal: opts.signal, onStart: opts.onStart })
    } catch (err) {
      throw new SandboxError(backend.name, spec.actionId, (err as Error).message, { cause: err })
    }
    const done = await collectResult(init, pool, backend.name, spec, scratch, proc, {
      ...(backend.beforeStore ? { beforeStore: (output: string, abs: string) => backend.beforeStore?.(spec, scratch, output, abs) } : {}),
    })
    keep = done.keptAt !== undefined
    return done
  } finally {
    pool.release(scratch, { keep })
  }
}

/**
 * After the command: refuse a run that wrote to its inputs, and store the
 * declared outputs after a zero exit. `keptAt` is set when the folder must be
 * kept for inspection (a failure, with `keepFailed`); the caller releases it.
 */
export async function collectResult(
  init: Pick<ScratchBackendInit, 'cas' | 'keepFailed'>,
  pool: ScratchPool,
  name: SandboxName,
  spec: SandboxSpec,
  scratch: Scratch,
  proc: Omit<SandboxResult, 'outputs' | 'missingOutputs' | 'keptAt'>,
  opts: { beforeStore?: (output: string, abs: string) => void } = {},
): Promise<SandboxResult> {
  const written = pool.inputsWrittenTo(scratch)
  if (written.length > 0) {
    throw new SandboxError(name, spec.actionId, `the action wrote to its input${written.length > 1 ? 's' : ''} ${written.join(', ')} (inputs are read-only)`)
  }
  const kept = init.keepFailed ? { keptAt: scratch.execRoot } : {}
  if (proc.exitCode !== 0) return { ...proc, outputs: [], missingOutputs: [], ...kept }
  const outputs: OutputRecord[] = []
  const missingOutputs: string[] = []
  let depfileText: string | undefined
  let stderr = proc.stderr
  /** Outputs that are symbolic links, placed once the files they lead to are stored. */
  const links: { path: string; target: string }[] = []
  for (const path of spec.outputs) {
    const abs = join(scratch.execRoot, path)
    const st = lstatSync(abs, { bigint: true, throwIfNoEntry: false })
    if (!st) {
      missingOutputs.push(path)
      continue
    }
    if (st.isSymbolicLink()) {
      links.push({ path, target: readlinkSync(abs) })
      continue
    }
    if (!st.isFile()) {
      missingOutputs.push(path)
      stderr = Buffer.concat([stderr, Buffer.from(`\nbldr: output ${path} is not a regular file (outputs must be files)\n`)])
      continue
    }
    const executable = (st.mode & 0o111n) !== 0n
    opts.beforeStore?.(path, abs)
    if (spec.readDepfile && path === spec.depfile && depfileText === undefined) {
      // Read and dropped (ninja's deps = gcc): its text goes back, no blob is stored. The scratch folder's cleaning removes the file.
      const bytes = readAtMost(abs, DEPFILE_TEXT_MAX_BYTES)
      if (bytes !== undefined) {
        depfileText = bytes.toString('utf8')
        continue
      }
    }
    const ref = await init.cas.putFile(abs, { move: true, executable })
    outputs.push({ path, digest: ref.digest, size: ref.size, executable })
  }
  // A link to another output or to an input, through other links (CMake's libfoo.so -> libfoo.so.1 -> libfoo.so.1.2.3,
  // made by a statement of their own from the library) is that file, placed as the link.
  const byPath = new Map<string, { digest: string; size: number; executable: boolean }>(outputs.map((o) => [o.path, o]))
  const inputOf = links.length > 0 ? new Map(spec.inputs.map((i) => [i.path, i])) : undefined
  const leadsTo = (path: string): { digest: string; size: number; executable: boolean } | undefined => {
    const known = byPath.get(path)
    if (known) return known
    const input = inputOf?.get(path)
    const st = input && lstatSync(join(scratch.execRoot, path), { throwIfNoEntry: false })
    return input && st?.isFile() ? { digest: input.digest, size: st.size, executable: input.executable } : undefined
  }
  for (let progress = true; progress && links.length > 0; ) {
    progress = false
    for (const link of [...links]) {
      const to = link.target.startsWith('/') ? undefined : leadsTo(posix.normalize(posix.join(posix.dirname(link.path), link.target)))
      if (!to) continue
      const record: OutputRecord = { path: link.path, digest: to.digest, size: to.size, executable: to.executable, symlink: link.target }
      outputs.push(record)
      byPath.set(link.path, record)
      links.splice(links.indexOf(link), 1)
      progress = true
    }
  }
  for (const link of links) {
    missingOutputs.push(link.path)
    stderr = Buffer.concat([stderr, Buffer.from(`\nbldr: output ${link.path} is a symbolic link to ${link.target}, which is neither an output nor an input of the action (a link must lead to one, by a relative path)\n`)])
  }
  return { ...proc, stderr, outputs, ...(depfileText !== undefined ? { depfileText } : {}), missingOutputs, ...(missingOutputs.length > 0 ? kept : {}) }
}
