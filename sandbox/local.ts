/**
 * The local backend, for development: each action runs in a scratch folder that
 * holds only its declared inputs, with a fixed environment and its own TMPDIR
 * and HOME, so an action that reads an undeclared project file by relative path
 * fails here the same way it would on a remote worker.
 *
 * It does not isolate the process: the action can still read the rest of the
 * machine by absolute path and reach the network (the CLI says so once per
 * build). It cannot enforce resource limits, so an action that asks for one is
 * refused rather than run without it. Run by root, actions have no
 * capabilities (process-runner.ts): they cannot override file permissions, so
 * they cannot change the sources staged for them, nor any file neither theirs
 * nor writable.
 *
 * It cannot show the action's folder at another path, so an action that
 * expects its project at an absolute path (`execRoot`: ninja commands) gets
 * its command rewritten to name the scratch folder instead, and its depfile
 * rewritten back. Outputs that record source paths (assert's __FILE__, debug
 * information) then name the scratch folder: use bwrap or docker for those to
 * match a build in place.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createScratchSandbox, type ScratchBackendInit } from './scratch-backend.js'
import type { Sandbox } from './types.js'

export const LOCAL_ISOLATION_NOTE =
  'sandbox local: actions see only their declared inputs, but are not isolated from the machine or the network (bwrap and docker isolate)'

/** Root's actions in the local sandbox, with setpriv. */
export const LOCAL_ROOT_NOTE = 'run by root, without capabilities (setpriv), so they cannot override file permissions'
/** Root's actions in the local sandbox, where setpriv cannot drop capabilities. */
export const LOCAL_ROOT_CAPABLE_NOTE = 'run by root WITH every capability (setpriv could not drop them here), so they can change any file, the sources staged for them too; use bwrap or docker, or build as another user'

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
      const cwd = spec.cwd ? join(scratch.execRoot, spec.cwd) : scratch.execRoot
      const move = spec.execRoot !== undefined ? pathRewriter(spec.execRoot, scratch.execRoot) : (s: string) => s
      const env: Record<string, string> = {}
      for (const [k, v] of Object.entries(spec.env)) env[k] = move(v)
      Object.assign(env, { HOME: scratch.home, PWD: cwd })
      if (spec.capabilities.writeTmp) env['TMPDIR'] = scratch.tmp
      return { argv: spec.argv.map(move), env, cwd }
    },
    beforeStore: (spec, scratch, output, abs) => {
      if (spec.execRoot === undefined || output !== spec.depfile) return
      const text = readFileSync(abs, 'utf8')
      const back = pathRewriter(scratch.execRoot, spec.execRoot)(text)
      if (back !== text) writeFileSync(abs, back)
    },
  })
}

/** Replaces the folder `from` with `to` wherever it appears as a whole path (`/a/b` in `/a/b/c` and `-I/a/b`, not in `/a/bc`). */
export function pathRewriter(from: string, to: string): (s: string) => string {
  const re = new RegExp(`${from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9_.+-])`, 'g')
  return (s) => (s.includes(from) ? s.replace(re, () => to) : s)
}
