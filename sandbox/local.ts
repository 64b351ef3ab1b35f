/**
 * The local backend, for development: each action runs in a scratch folder that
 * holds only its declared inputs, with a fixed environment and its own TMPDIR
 * and HOME, so an action that reads an undeclared project file by relative path
 * fails here the same way it would on a remote worker.
 *
 * It does not isolate the process: the action can still read the rest of the
 * machine by absolute path and reach the network (the CLI says so once per
 * build). It cannot enforce resource limits, so an action that asks for one is
 * refused rather than run without it.
 */
import { createScratchSandbox, type ScratchBackendInit } from './scratch-backend.js'
import type { Sandbox } from './types.js'

export const LOCAL_ISOLATION_NOTE =
  'sandbox local: actions see only their declared inputs, but are not isolated from the machine or the network (bwrap and docker isolate)'

export type LocalSandboxInit = ScratchBackendInit

export function createLocalSandbox(init: LocalSandboxInit): Sandbox {
  return createScratchSandbox(init, {
    name: 'local',
    isolationNote: LOCAL_ISOLATION_NOTE,
    refuse: (spec) => {
      const limits = [spec.capabilities.maxCpu !== undefined ? 'maxCpu' : '', spec.capabilities.maxMemoryBytes !== undefined ? 'maxMemory' : ''].filter(Boolean)
      return limits.length > 0 ? `sandbox local cannot enforce ${limits.join(' or ')}; use --sandbox docker` : undefined
    },
    launch: (spec, scratch) => {
      const env: Record<string, string> = { ...spec.env, HOME: scratch.home, PWD: scratch.execRoot }
      if (spec.capabilities.writeTmp) env['TMPDIR'] = scratch.tmp
      return { argv: spec.argv, env, cwd: scratch.execRoot }
    },
  })
}
