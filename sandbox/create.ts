/** A sandbox backend by name: the one place the CLI, builds and workers pick one. */
import { BWRAP_ISOLATION_NOTE, checkBwrap, createBwrapSandbox } from './bwrap.js'
import { checkDockerDaemon, createDockerSandbox, DOCKER_ISOLATION_NOTE, dockerReachable } from './docker.js'
import { createLocalSandbox, LOCAL_ISOLATION_NOTE } from './local.js'
import type { ScratchBackendInit } from './scratch-backend.js'
import type { Sandbox } from './types.js'

/** The backends, most isolated first. */
export const SANDBOX_NAMES = ['docker', 'bwrap', 'local'] as const
export type AvailableSandbox = (typeof SANDBOX_NAMES)[number]

export function createSandbox(name: AvailableSandbox, init: ScratchBackendInit): Sandbox {
  if (name === 'docker') return createDockerSandbox(init)
  return name === 'bwrap' ? createBwrapSandbox(init) : createLocalSandbox(init)
}

/** One line for the user about what a backend isolates, or does not. */
export function isolationNote(name: AvailableSandbox): string {
  return name === 'docker' ? DOCKER_ISOLATION_NOTE : name === 'bwrap' ? BWRAP_ISOLATION_NOTE : LOCAL_ISOLATION_NOTE
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
