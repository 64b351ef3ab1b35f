/**
 * A control group for a sandbox that bldr starts itself (bwrap) and whose
 * actions have limits: its memory limit (no swap beyond it) and CPU quota, and
 * whether the kernel killed something in it for memory.
 *
 * cgroup v1 (a hierarchy per controller): the group is made under bldr's own
 * group in the memory and cpu hierarchies, so it stays within whatever limits
 * bldr itself runs under. cgroup v2 (one unified hierarchy): under
 * /sys/fs/cgroup/bldr, with the memory and cpu controllers enabled on the way.
 * Both need write access to the cgroup file system (root, or a delegated
 * subtree); without it the action is refused, never run without its limit.
 *
 * The sandbox enters its group before it starts: its launch is wrapped in
 * `sh -c 'echo $$ > <group>/cgroup.procs && exec "$@"'`, so every process it
 * makes is born inside.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'

const ROOT = '/sys/fs/cgroup'
const CPU_PERIOD_US = 100_000

export interface CgroupLimits {
  memoryBytes?: number
  /** Cores, e.g. 0.5 or 2. */
  cpu?: number
}

export interface SandboxCgroup {
  /** Wrap `argv` so it starts inside the group. */
  wrap(argv: readonly string[]): string[]
  /** Whether the kernel killed a process of the group for going past its memory limit. */
  oomKilled(): boolean
  /** The group's memory files, and where a runner inside a sandbox looks for them (as in a container). */
  counterMount(): { source: string; target: string } | undefined
  /** Remove the group (its processes are gone by then, or going). */
  remove(): Promise<void>
}

let counter = 0

/** A new group with `limits`; throws an Error saying why when groups cannot be made here. */
export function createSandboxCgroup(limits: CgroupLimits): SandboxCgroup {
  const name = `bldr-${process.pid}-${++counter}`
  return existsSync(join(ROOT, 'cgroup.controllers')) ? createV2(name, limits) : createV1(name, limits)
}

function createV1(name: string, limits: CgroupLimits): SandboxCgroup {
  const own = ownV1Paths()
  const dirs: string[] = []
  const make = (controller: string): string => {
    const parent = join(ROOT, controller, own.get(controller) ?? '/')
    if (!existsSync(parent)) throw new Error(`no cgroup ${controller} hierarchy at ${parent}`)
    const dir = join(parent, name)
    mkdirSync(dir)
    dirs.push(dir)
    return dir
  }
  try {
    let memory: string | undefined
    if (limits.memoryBytes !== undefined) {
      memory = make('memory')
      writeFileSync(join(memory, 'memory.limit_in_bytes'), String(limits.memoryBytes))
      // Without swap accounting the limit already covers only RAM; with it, swap must not extend it.
      if (existsSync(join(memory, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(memory, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes))
    }
    if (limits.cpu !== undefined) {
      const cpu = make(own.has('cpu') ? 'cpu' : 'cpu,cpuacct')
      writeFileSync(join(cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_US))
      writeFileSync(join(cpu, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(limits.cpu * CPU_PERIOD_US))))
    }
    return {
      wrap: (argv) => wrapInto(dirs, argv),
      oomKilled: () => memory !== undefined && counterOf(join(memory, 'memory.oom_control'), 'oom_kill') > 0,
      counterMount: () => (memory !== undefined ? { source: memory, target: '/sys/fs/cgroup/memory' } : undefined),
      remove: () => removeAll(dirs),
    }
  } catch (err) {
    void removeAll(dirs).catch(() => undefined)
    throw err
  }
}

function createV2(name: string, limits: CgroupLimits): SandboxCgroup {
  const base = join(ROOT, 'bldr')
  mkdirSync(base, { recursive: true })
  const wanted = [limits.memoryBytes !== undefined ? 'memory' : '', limits.cpu !== undefined ? 'cpu' : ''].filter(Boolean)
  for (const dir of [ROOT, base]) {
    const enabled = readFileSync(join(dir, 'cgroup.subtree_control'), 'utf8').split(/\s+/)
    const missing = wanted.filter((c) => !enabled.includes(c))
    if (missing.length > 0) writeFileSync(join(dir, 'cgroup.subtree_control'), missing.map((c) => `+${c}`).join(' '))
  }
  const dir = join(base, name)
  mkdirSync(dir)
  try {
    if (limits.memoryBytes !== undefined) {
      writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes))
      if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0')
    }
    if (limits.cpu !== undefined) writeFileSync(join(dir, 'cpu.max'), `${Math.max(1000, Math.round(limits.cpu * CPU_PERIOD_US))} ${CPU_PERIOD_US}`)
  } catch (err) {
    void removeAll([dir]).catch(() => undefined)
    throw err
  }
  return {
    wrap: (argv) => wrapInto([dir], argv),
    oomKilled: () => counterOf(join(dir, 'memory.events'), 'oom_kill') > 0,
    counterMount: () => ({ source: dir, target: '/sys/fs/cgroup' }),
    remove: () => removeAll([dir]),
  }
}

/** bldr's own group per v1 controller, from /proc/self/cgroup (`4:memory:/some/path`). */
function ownV1Paths(): Map<string, string> {
  const paths = new Map<string, string>()
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [, controllers, path] = line.split(':')
    if (!controllers || path === undefined) continue
    for (const c of controllers.split(',')) paths.set(c, path)
    paths.set(controllers, path)
  }
  return paths
}

function wrapInto(dirs: readonly string[], argv: readonly string[]): string[] {
  const enter = dirs.map((d) => `echo $$ > '${d}/cgroup.procs'`).join(' && ')
  return ['/bin/sh', '-c', `${enter} && exec "$@"`, 'bldr-cgroup', ...argv]
}

function counterOf(file: string, key: string): number {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(readFileSync(file, 'utf8'))
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

/** Remove groups; a group whose last process is still exiting is busy for a moment, so try for a while. */
async function removeAll(dirs: readonly string[]): Promise<void> {
  for (const d of dirs) {
    for (let attempt = 1; ; attempt++) {
      try {
        rmdirSync(d)
        break
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT') break
        if (code !== 'EBUSY' || attempt >= 100) throw err
        await delay(10)
      }
    }
  }
}
