/**
 * A kept local mesh's first build, run by the mesh itself as soon as it is
 * ready (src/net/mesh-daemon-serve.ts): a small build.ninja in a temporary
 * folder, one action per worker slot and one that joins their outputs, in the
 * mesh's sandbox. The first real build on a new mesh paid for everything done
 * there for the first time: the build code compiled by V8 in this process and
 * in each worker, the workers' connections to the builds' node, the sandbox's
 * first start (bench/ninja, one source changed: 0.60 s for the first build on
 * a new mesh, 0.38 s for the next). It now finds all of that done.
 *
 * It does not start once the mesh stops, and never makes the mesh's folder
 * again (one removed meanwhile fails it).
 *
 * Its inputs carry a fresh nonce, so its actions run rather than come from the
 * workers' caches. Its folder (`.bldr/mesh/warm-up`, its client store inside)
 * is removed after it, and before it in case a mesh killed during one left it;
 * what the workers stored is collected by `bldr gc` like any build's.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { checkSandbox, type AvailableSandbox } from '../../sandbox/create.js'
import type { StrategyName } from '../../strategies/index.js'
import type { MeshHost, MeshSettings } from '../net/mesh-daemon.js'
import { DEFAULT_SEED_POLICY, DEFAULT_SEED_WINDOW } from '../net/seed-policy.js'
import { buildDistributed } from './distributed.js'
import { openProject } from './project.js'

/** The warm-up's build file: `slots` actions that each copy the seed, and one that joins their copies. */
export function warmUpNinja(slots: number): string {
  const copies = Array.from({ length: slots }, (_, i) => `copy/${i + 1}.txt`)
  return [
    // A depfile as a compiler writes one (deps = gcc), so what reads it runs too.
    'rule copy',
    "  command = cat $in > $out && printf '%s: %s\\n' $out '$in' > $out.d",
    '  depfile = $out.d',
    '  deps = gcc',
    ...copies.map((c) => `build ${c}: copy seed.txt`),
    `build all.txt: copy ${copies.join(' ')}`,
    'default all.txt',
    '',
  ].join('\n')
}

export interface WarmUpOptions {
  /** The mesh, as the builds it runs get it. */
  host: MeshHost
  settings: MeshSettings
  idleS: number
  /** The warm-up's folder (made, then removed). */
  dir: string
  /** Interrupts it (the mesh stops). */
  signal: AbortSignal
  log?: Logger
}

/** Run the warm-up build; the actions it ran. */
export async function warmUpMesh({ host, settings, idleS, dir, signal, log }: WarmUpOptions): Promise<number> {
  const sandbox = settings.sandbox as AvailableSandbox
  // As a build does first (bwrap's probe, docker's ping): its answer is kept for the builds after.
  await checkSandbox(sandbox)
  signal.throwIfAborted()
  await rm(dir, { recursive: true, force: true })
  // Not made with its parents: a mesh folder removed meanwhile (the project deleted) is not made again.
  await mkdir(dir)
  try {
    const slots = settings.slots.reduce((a, b) => a + b, 0)
    await writeFile(join(dir, 'build.ninja'), warmUpNinja(slots))
    await writeFile(join(dir, 'seed.txt'), `${randomBytes(16).toString('hex')}\n`)
    const project = await openProject({ dir, file: 'build.ninja', ...(log ? { log } : {}) })
    const { summary } = await buildDistributed(project, {
      localSlots: settings.slots,
      strategy: settings.strategy as StrategyName,
      seedPolicy: DEFAULT_SEED_POLICY,
      seedWindow: DEFAULT_SEED_WINDOW,
      sandbox,
      workerLogLevel: settings.logLevel,
      ...(settings.liveness ? { liveness: settings.liveness } : {}),
      meshIdleS: idleS,
      host,
      env: { ...settings.env },
      signal,
      ...(log ? { log } : {}),
    })
    if (!summary.ok) throw new Error(`its build failed (${summary.failed.join(', ') || 'no action ran'})`)
    return summary.executed
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
