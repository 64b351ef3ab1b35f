/** A sandbox backend by name: the one place the CLI, builds and workers pick one. */
import { BWRAP_ISOLATION_NOTE, createBwrapSandbox } from './bwrap.js'
import { createLocalSandbox, LOCAL_ISOLATION_NOTE } from './local.js'
import type { ScratchBackendInit } from './scratch-backend.js'
import type { Sandbox } from './types.js'

/** The backends that exist today (docker comes with its issue). */
export const SANDBOX_NAMES = ['local', 'bwrap'] as const
export type AvailableSandbox = (typeof SANDBOX_NAMES)[number]

export function createSandbox(name: AvailableSandbox, init: ScratchBackendInit): Sandbox {
  return name === 'bwrap' ? createBwrapSandbox(init) : createLocalSandbox(init)
}

/** One line for the user about what a backend isolates, or does not. */
export function isolationNote(name: AvailableSandbox): string {
  return name === 'bwrap' ? BWRAP_ISOLATION_NOTE : LOCAL_ISOLATION_NOTE
}
