/**
 * The bubblewrap backend: each action runs inside fresh namespaces (user,
 * mount, pid, network, ipc, uts, cgroup) made by `bwrap`. Inside, the action
 * sees:
 *
 * - its scratch folder at a fixed path, `/bldr/root` (so paths in its outputs
 *   do not depend on where the folder is), or at the client's project path
 *   when the action expects it there (`execRoot`: ninja commands), holding
 *   only its declared inputs;
 *   the inputs are read-only (mode 0444; it runs as an unprivileged user
 *   inside, but a blob owned by bldr's own user it could chmod, which the
 *   check after each run catches; a sealed store's blobs, a worker's run as
 *   root, it cannot change at all, see store.ts);
 * - the toolchain read-only: /usr (with /bin, /lib, /lib64, /sbin as on the
 *   host) and the few files of /etc that compilers need (toolchain.ts);
 * - its own /tmp (if `writeTmp`) and HOME at /bldr/home (read-only unless
 *   `writeHome`), both emptied between actions;
 * - no network (unless `network`), a read-only root, its own /proc and /dev.
 *
 * Nothing of the project, the store or the rest of the machine is visible.
 *
 * Warm, like the docker backend (warm-pool.ts): making the namespaces and
 * mounts costs ~6 ms, three times a small compile's own spawn, so one bwrap
 * sandbox per slot stays up with the runner in it (the host's node binary and
 * container-runner.js bound read-only at /bldr/node and /bldr/runner), and
 * takes actions over its stdin. bwrap's own init reaps what an action leaves;
 * the runner kills it and empties /tmp between actions. `--die-with-parent`
 * ends the sandbox with bldr.
 *
 * Limits (maxMemory, maxCpu) come from a control group made for the sandbox
 * (cgroup.ts) that bwrap is started in; its memory counters are bound where
 * the runner looks for them (as in a container), so a memory kill is reported
 * as such. Where no group can be made the action is refused, not run without
 * its limit.
 */
import { execFile, spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import type { Logger } from 'pino'
import { createSandboxCgroup, type SandboxCgroup, type CgroupLimits } from './cgroup.js'
import type { Scratch } from './scratch.js'
import { NETWORK_ETC_FILES, toolchainPaths } from './toolchain.js'
import { SandboxError, type Sandbox } from './types.js'
import { createWarmPool, RUNNER_DIR, RUNNER_MEMORY_BYTES, RUNNER_NODE, WARM_EXEC_ROOT, WARM_HOME, type Profile, type WarmChannel, type WarmPoolInit } from './warm-pool.js'

export const BWRAP_ISOLATION_NOTE = 'sandbox bwrap: each action in its own namespaces with only its declared inputs, the toolchain read-only, no network'

/** Where the action's folders appear inside the sandbox. */
export const BWRAP_EXEC_ROOT = WARM_EXEC_ROOT
/** The unprivileged user actions run as inside (so the read-only inputs really are read-only to them). */
const SANDBOX_UID = '1000'

export interface BwrapSandboxInit extends WarmPoolInit {
  /** The bwrap program (default: found on PATH). */
  bwrapPath?: string
}

/** bwrap programs that passed the probe in this process (a check before a build and the build's sandbox need one probe). */
const probed = new Set<string>()
/** Probes running, by program: callers at once share one. */
const probing = new Map<string, Promise<void>>()

const probeArgs = (): string[] => ['--unshare-all', '--die-with-parent', ...toolchainMounts(), '--', '/usr/bin/true']
const probeFailed = (detail: string): SandboxError => new SandboxError('bwrap', '-', `bubblewrap cannot create namespaces here: ${detail.trim()}`)

function locateBwrap(path?: string): string {
  const candidates = path ? [path] : (process.env['PATH'] ?? '/usr/bin:/bin').split(':').map((d) => `${d}/bwrap`)
  const found = candidates.find((c) => existsSync(c))
  if (!found) throw new SandboxError('bwrap', '-', 'bubblewrap is not installed (on Debian: apt-get install bubblewrap)')
  return found
}

/** The bwrap program, checked to work here; a SandboxError saying how to get it otherwise. Blocks while it probes (~20 ms): see checkBwrap. */
export function findBwrap(path?: string): string {
  const found = locateBwrap(path)
  if (probed.has(found)) return found
  const probe = spawnSync(found, probeArgs(), { encoding: 'utf8', timeout: 10_000 })
  if (probe.status !== 0) throw probeFailed(probe.stderr || probe.error?.message || `exit ${probe.status}`)
  probed.add(found)
  return found
}

/**
 * As findBwrap, without blocking: the probe (a namespace made and a program
 * run in it, ~20 ms) runs while the caller reads its build file or opens its
 * store; a sandbox made afterwards finds the program probed.
 */
export async function checkBwrap(path?: string): Promise<string> {
  const found = locateBwrap(path)
  if (probed.has(found)) return found
  let p = probing.get(found)
  if (!p) {
    p = new Promise<void>((resolve, reject) => {
      execFile(found, probeArgs(), { encoding: 'utf8', timeout: 10_000 }, (err, _stdout, stderr) => {
        if (!err) return resolve()
        reject(probeFailed(stderr || (err.killed ? 'the probe timed out after 10 s' : err.message)))
      })
    })
    probing.set(found, p)
    // Settled before any caller's await resumes: a passed probe is remembered, a failed one tried again next time.
    p.then(
      () => {
        probed.add(found)
        probing.delete(found)
      },
      () => probing.delete(found),
    )
  }
  await p
  return found
}

export function createBwrapSandbox(init: BwrapSandboxInit): Sandbox {
  const bwrap = findBwrap(init.bwrapPath)
  const log = init.log?.child({ component: 'sandbox-bwrap' })
  return createWarmPool(init, {
    name: 'bwrap',
    isolationNote: BWRAP_ISOLATION_NOTE,
    // Its user namespace maps bldr's uid to the action's user, with no capabilities over anything outside.
    ...(process.getuid ? { actionUid: process.getuid() } : {}),
    prepare: async () => undefined,
    refuse: (spec) => {
      const c = spec.capabilities
      const missing = [...c.readPaths, ...c.writePaths].find((p) => !existsSync(p))
      return missing !== undefined ? `capability path ${missing} does not exist on this machine` : undefined
    },
    start: async (profile, scratch, runnerDir, runnerArgv) => startBwrap(bwrap, profile, scratch, runnerDir, runnerArgv, log),
  })
}

function startBwrap(bwrap: string, p: Profile, scratch: Scratch, runnerDir: string, runnerArgv: readonly string[], log: Logger | undefined): WarmChannel {
  const cgroup = p.memoryBytes !== undefined || p.cpu !== undefined ? limitsGroup({ ...(p.memoryBytes !== undefined ? { memoryBytes: p.memoryBytes + RUNNER_MEMORY_BYTES } : {}), ...(p.cpu !== undefined ? { cpu: p.cpu } : {}) }) : undefined
  const args = ['--unshare-all', '--die-with-parent', '--new-session', '--uid', SANDBOX_UID, '--gid', SANDBOX_UID]
  if (p.network) {
    args.push('--share-net')
    for (const f of NETWORK_ETC_FILES) args.push('--ro-bind-try', f, f)
  }
  args.push(...toolchainMounts(), '--proc', '/proc', '--dev', '/dev')
  // The action's folder under /tmp (a project there, shown at its own path) needs its mount point
  // inside /tmp: then /tmp is a private tmpfs, so that point is never made in the host's folder.
  const rootUnderTmp = p.execRootPath.startsWith('/tmp/')
  if (p.writeTmp) args.push(...(rootUnderTmp ? ['--tmpfs', '/tmp'] : ['--bind', scratch.tmp, '/tmp']))
  args.push('--bind', scratch.execRoot, p.execRootPath)
  args.push(p.writeHome ? '--bind' : '--ro-bind', scratch.home, WARM_HOME)
  for (const r of p.readPaths) args.push('--ro-bind', r, r)
  for (const w of p.writePaths) args.push('--bind', w, w)
  args.push('--ro-bind', runnerDir, RUNNER_DIR, '--ro-bind', process.execPath, RUNNER_NODE)
  const counters = cgroup?.counterMount()
  if (counters) args.push('--ro-bind', counters.source, counters.target)
  args.push('--remount-ro', '/', '--chdir', p.execRootPath, '--', ...runnerArgv)
  const argv = cgroup ? cgroup.wrap([bwrap, ...args]) : [bwrap, ...args]
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin' } })
  const id = `bwrap-${child.pid ?? '?'}`
  child.stderr.on('data', (b: Buffer) => log?.warn({ sandbox: id, output: b.toString().slice(0, 2000) }, 'bwrap sandbox said'))
  child.stdin.on('error', () => undefined) // a write after it ended; its end is reported by 'close'
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  let removed: Promise<void> | undefined
  const removeGroup = (): Promise<void> => (removed ??= exited.then(() => cgroup?.remove()))
  return {
    id,
    input: child.stdin,
    output: child.stdout,
    onEnd: (cb) => void exited.then(cb),
    destroy: async () => {
      child.kill('SIGKILL')
      await removeGroup()
    },
    deathCause: async () => {
      await exited
      const oomKilled = cgroup?.oomKilled() ?? false
      return { oomKilled, detail: `bwrap ${child.signalCode ? `killed by ${child.signalCode}` : `exited with code ${child.exitCode}`}${oomKilled ? ', killed for memory' : ''}` }
    },
  }
}

/** A control group for a sandbox's limits, or a SandboxError saying why none can be made here. */
function limitsGroup(limits: CgroupLimits): SandboxCgroup {
  try {
    return createSandboxCgroup(limits)
  } catch (err) {
    const which = [limits.memoryBytes !== undefined ? 'maxMemory' : '', limits.cpu !== undefined ? 'maxCpu' : ''].filter(Boolean).join(' and ')
    throw new SandboxError('bwrap', '-', `cannot enforce ${which}: no control group can be made here (${(err as Error).message}); run bldr as root or in a delegated cgroup, or use --sandbox docker`, { cause: err })
  }
}

/** Read-only mounts of the host's toolchain (see toolchain.ts), symlinks kept as symlinks. */
function toolchainMounts(): string[] {
  return toolchainPaths().flatMap((t) => (t.symlinkTo !== undefined ? ['--symlink', t.symlinkTo, t.path] : ['--ro-bind', t.path, t.path]))
}
