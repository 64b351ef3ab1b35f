/**
 * The bubblewrap backend: the scratch folder of the local backend, with the
 * command started inside fresh namespaces (user, mount, pid, network, ipc,
 * uts, cgroup) by `bwrap`. Inside, the action sees:
 *
 * - its scratch folder at a fixed path, `/bldr/root` (so paths in its outputs
 *   do not depend on where the folder is), holding only its declared inputs;
 *   the inputs are read-only to it (it runs as an unprivileged user);
 * - the toolchain read-only: /usr (with /bin, /lib, /lib64, /sbin as on the
 *   host) and the few files of /etc that compilers need;
 * - its own /tmp (if `writeTmp`) and HOME at /bldr/home (read-only unless
 *   `writeHome`), both emptied between actions;
 * - no network (unless `network`), a read-only root, its own /proc and /dev.
 *
 * Nothing of the project, the store or the rest of the machine is visible.
 * Resource limits (maxCpu, maxMemory) are enforced by a control group per
 * limited action (cgroup.ts); where none can be made, the action is refused,
 * not run without its limit. A memory kill is reported as such.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { isAbsolute } from 'node:path'
import { createActionCgroup, type ActionCgroup, type CgroupLimits } from './cgroup.js'
import { createScratchSandbox, type ScratchBackendInit } from './scratch-backend.js'
import { NETWORK_ETC_FILES, toolchainPaths } from './toolchain.js'
import { SandboxError, type Sandbox } from './types.js'

export const BWRAP_ISOLATION_NOTE = 'sandbox bwrap: each action in its own namespaces with only its declared inputs, the toolchain read-only, no network'

/** Where the action's folders appear inside the sandbox. */
export const BWRAP_EXEC_ROOT = '/bldr/root'
const BWRAP_HOME = '/bldr/home'
/** The unprivileged user actions run as inside (so the read-only inputs really are read-only to them). */
const SANDBOX_UID = '1000'


export interface BwrapSandboxInit extends ScratchBackendInit {
  /** The bwrap program (default: found on PATH). */
  bwrapPath?: string
}

/** The bwrap program, checked to work here; a SandboxError saying how to get it otherwise. */
export function findBwrap(path?: string): string {
  const candidates = path ? [path] : (process.env['PATH'] ?? '/usr/bin:/bin').split(':').map((d) => `${d}/bwrap`)
  const found = candidates.find((c) => existsSync(c))
  if (!found) throw new SandboxError('bwrap', '-', 'bubblewrap is not installed (on Debian: apt-get install bubblewrap)')
  const probe = spawnSync(found, ['--unshare-all', '--die-with-parent', ...toolchainMounts(), '--', '/usr/bin/true'], { encoding: 'utf8', timeout: 10_000 })
  if (probe.status !== 0) {
    throw new SandboxError('bwrap', '-', `bubblewrap cannot create namespaces here: ${(probe.stderr || probe.error?.message || `exit ${probe.status}`).trim()}`)
  }
  return found
}

export function createBwrapSandbox(init: BwrapSandboxInit): Sandbox {
  const bwrap = findBwrap(init.bwrapPath)
  const toolchain = toolchainMounts()
  return createScratchSandbox(init, {
    name: 'bwrap',
    isolationNote: BWRAP_ISOLATION_NOTE,
    refuse: (spec) => {
      const c = spec.capabilities
      if (c.maxCpu !== undefined && !(c.maxCpu >= 0.01)) return `maxCpu must be at least 0.01 (got ${c.maxCpu})`
      const relative = [...c.readPaths, ...c.writePaths].find((p) => !isAbsolute(p))
      if (relative !== undefined) return `capability path ${JSON.stringify(relative)} must be absolute`
      const missing = [...c.readPaths, ...c.writePaths].find((p) => !existsSync(p))
      if (missing !== undefined) return `capability path ${missing} does not exist on this machine`
      return undefined
    },
    launch: (spec, scratch) => {
      const c = spec.capabilities
      const args = ['--unshare-all', '--die-with-parent', '--new-session', '--uid', SANDBOX_UID, '--gid', SANDBOX_UID]
      if (c.network) {
        args.push('--share-net')
        for (const f of NETWORK_ETC_FILES) args.push('--ro-bind-try', f, f)
      }
      args.push(...toolchain, '--proc', '/proc', '--dev', '/dev')
      args.push('--bind', scratch.execRoot, BWRAP_EXEC_ROOT)
      args.push(c.writeHome ? '--bind' : '--ro-bind', scratch.home, BWRAP_HOME)
      if (c.writeTmp) args.push('--bind', scratch.tmp, '/tmp')
      for (const p of c.readPaths) args.push('--ro-bind', p, p)
      for (const p of c.writePaths) args.push('--bind', p, p)
      args.push('--remount-ro', '/', '--chdir', BWRAP_EXEC_ROOT, '--')
      const env: Record<string, string> = { ...spec.env, HOME: BWRAP_HOME, PWD: BWRAP_EXEC_ROOT }
      if (c.writeTmp) env['TMPDIR'] = '/tmp'
      const argv = [bwrap, ...args, ...spec.argv]
      if (c.maxCpu === undefined && c.maxMemoryBytes === undefined) return { argv, env, cwd: scratch.execRoot }
      const cgroup = limitsGroup(spec.actionId, { ...(c.maxMemoryBytes !== undefined ? { memoryBytes: c.maxMemoryBytes } : {}), ...(c.maxCpu !== undefined ? { cpu: c.maxCpu } : {}) })
      return { argv: cgroup.wrap(argv), env, cwd: scratch.execRoot, cgroup }
    },
  })
}

/** A control group for an action's limits, or a SandboxError saying why none can be made here. */
function limitsGroup(actionId: string, limits: CgroupLimits): ActionCgroup {
  try {
    return createActionCgroup(limits)
  } catch (err) {
    const which = [limits.memoryBytes !== undefined ? 'maxMemory' : '', limits.cpu !== undefined ? 'maxCpu' : ''].filter(Boolean).join(' and ')
    throw new SandboxError('bwrap', actionId, `cannot enforce ${which}: no control group can be made here (${(err as Error).message}); run bldr as root or in a delegated cgroup, or use --sandbox docker`, { cause: err })
  }
}

/** Read-only mounts of the host's toolchain (see toolchain.ts), symlinks kept as symlinks. */
function toolchainMounts(): string[] {
  return toolchainPaths().flatMap((t) => (t.symlinkTo !== undefined ? ['--symlink', t.symlinkTo, t.path] : ['--ro-bind', t.path, t.path]))
}
