/** A sandbox backend by name: the one place the CLI, builds and workers pick one. */
import { BWRAP_ISOLATION_NOTE, checkBwrap, createBwrapSandbox } from './bwrap.js'
import { checkDockerDaemon, createDockerSandbox, DOCKER_ISOLATION_NOTE, dockerReachable } from './docker.js'
import { createLocalSandbox, LOCAL_ISOLATION_NOTE, LOCAL_ROOT_CAPABLE_NOTE, LOCAL_ROOT_NOTE } from './local.js'
import { canDropCapabilities } from './process-runner.js'
import type { ScratchBackendInit } from './scratch-backend.js'
import type { Sandbox } from './types.js'

/** The backends, most isolated first. */
export const SANDBOX_NAMES = ['docker', 'bwrap', 'local'] as const
export type AvailableSandbox = (typeof SANDBOX_NAMES)[number]

export function createSandbox(name: AvailableSandbox, init: ScratchBackendInit): Sandbox {
  if (name === 'docker') return createDockerSandbox(init)
  return name === 'bwrap' ? createBwrapSandbox(init) : createLocalSandbox(init)
}

/**
 * One line for the user about what a backend isolates, or does not. `here`:
 * its actions run on this machine as this user (a build without a standing
 * mesh), so the local backend's note says what root's actions can do: without
 * capabilities (setpriv, process-runner.ts) they cannot override file
 * permissions; where setpriv cannot drop them, they can change any file.
 */
export function isolationNote(name: AvailableSandbox, opts: { here?: boolean } = {}): string {
  if (name !== 'local') return name === 'docker' ? DOCKER_ISOLATION_NOTE : BWRAP_ISOLATION_NOTE
  if (!opts.here || process.getuid?.() !== 0) return LOCAL_ISOLATION_NOTE
  return `${LOCAL_ISOLATION_NOTE}; ${canDropCapabilities() ? LOCAL_ROOT_NOTE : LOCAL_ROOT_CAPABLE_NOTE}`
}

/**
 * The backends that work on this machine, most isolated first: docker when a
 * daemon answers, bwrap when it can make namespaces, and local always.
 */
export async function availableSandboxes(): Promise<AvailableSandbox[]> {
  const found: AvailableSandbox[] = []
  if (await dockerReachable()) found.push('docker')
  try {
    await checkBwrap()
    found.push('bwrap')
  } catch {
    // not installed, or no user namespaces here
  }
  found.push('local')
  return found
}

/** Fail now, with a SandboxError saying what to do, if backend `name` cannot work here. */
export async function checkSandbox(name: AvailableSandbox): Promise<void> {
  if (name === 'docker') await checkDockerDaemon()
  else if (name === 'bwrap') await checkBwrap()
}
