/**
 * The local backend: each action runs in a scratch folder that holds only its
 * declared inputs (verified blobs from the CAS, see scratch.ts), with a fixed
 * environment and its own TMPDIR and HOME. An action that reads an undeclared
 * project file fails here the same way it would on a remote worker.
 *
 * It does not isolate the process: the action can still read the rest of the
 * machine by absolute path and reach the network. Use bwrap or docker for that.
 */
import { join } from 'node:path'
import { lstatSync } from 'node:fs'
import type { Logger } from 'pino'
import type { OutputRecord } from '../src/cas/action-cache.js'
import type { CasStore } from '../src/cas/store.js'
import { ProcessRunner } from './process-runner.js'
import { ScratchPool, type Scratch } from './scratch.js'
import { SandboxError, type RunOptions, type Sandbox, type SandboxResult, type SandboxSpec } from './types.js'

export const LOCAL_ISOLATION_NOTE =
  'sandbox local: actions see only their declared inputs, but are not isolated from the machine or the network (bwrap and docker isolate)'

export interface LocalSandboxInit {
  cas: CasStore
  /** Folder for scratch folders, e.g. `<project>/.bldr/scratch`. */
  scratchRoot: string
  /** Most commands running at once (`-j`). */
  slots: number
  /** Keep scratch folders of failed actions for inspection. Default false. */
  keepFailed?: boolean
  log?: Logger
}

export function createLocalSandbox(init: LocalSandboxInit): Sandbox {
  const pool = new ScratchPool(init.cas, init.scratchRoot, init.log)
  const runner = new ProcessRunner(init.slots)
  return {
    name: 'local',
    slots: init.slots,
    isolationNote: LOCAL_ISOLATION_NOTE,
    run: (spec, opts) => runLocal(init, pool, runner, spec, opts ?? {}),
    close: async () => {
      runner.close()
      pool.close()
    },
  }
}

async function runLocal(init: LocalSandboxInit, pool: ScratchPool, runner: ProcessRunner, spec: SandboxSpec, opts: RunOptions): Promise<SandboxResult> {
  runner.warmUp() // its start-up overlaps the staging below
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
    let proc
    try {
      proc = await runner.run({ argv: spec.argv, env, cwd: scratch.execRoot, timeoutMs: spec.timeoutMs }, { signal: opts.signal, onStart: opts.onStart })
    } catch (err) {
      throw new SandboxError('local', spec.actionId, (err as Error).message, { cause: err })
    }
    const written = pool.inputsWrittenTo(scratch)
    if (written.length > 0) {
      throw new SandboxError('local', spec.actionId, `the action wrote to its input${written.length > 1 ? 's' : ''} ${written.join(', ')} (inputs are read-only)`)
    }
    if (proc.exitCode !== 0) {
      keep = init.keepFailed ?? false
      return { ...proc, outputs: [], missingOutputs: [], ...(keep ? { keptAt: scratch.execRoot } : {}) }
    }
    const outputs: OutputRecord[] = []
    const missingOutputs: string[] = []
    for (const path of spec.outputs) {
      const abs = join(scratch.execRoot, path)
      const st = lstatSync(abs, { bigint: true, throwIfNoEntry: false })
      if (!st) {
        missingOutputs.push(path)
        continue
      }
      if (!st.isFile()) {
        missingOutputs.push(path)
        proc.stderr = Buffer.concat([proc.stderr, Buffer.from(`\nbldr: output ${path} is not a regular file (outputs must be files)\n`)])
        continue
      }
      const executable = (st.mode & 0o111n) !== 0n
      const ref = await init.cas.putFile(abs, { move: true, executable })
      outputs.push({ path, digest: ref.digest, size: ref.size, executable })
    }
    keep = missingOutputs.length > 0 && (init.keepFailed ?? false)
    return { ...proc, outputs, missingOutputs, ...(keep ? { keptAt: scratch.execRoot } : {}) }
  } finally {
    pool.release(scratch, { keep })
  }
}
