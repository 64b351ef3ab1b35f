/**
 * The executor of a build on this machine: each action runs in a sandbox,
 * which runs at most `sandbox.slots` commands at once. The engine may hand it
 * STAGING_AHEAD actions more, so the next actions' inputs are staged (and
 * finished ones' outputs stored) while the slots stay busy.
 */
import type { Action } from '../graph/action.js'
import { actionPlacement, type Sandbox, type SandboxInput, type SandboxSpec } from '../../sandbox/types.js'
import type { Executor } from './engine.js'

/** Actions staged ahead of the running ones. */
const STAGING_AHEAD = 2

export function createSandboxExecutor(sandbox: Sandbox): Executor {
  return {
    sandboxName: sandbox.name,
    slots: sandbox.slots,
    maxInFlight: sandbox.slots + STAGING_AHEAD,
    warm: (action) => sandbox.warm?.(specOf(action, [])),
    execute: (action, inputs, { signal, onStart }) => sandbox.run(specOf(action, inputs), { signal, onStart }),
  }
}

function specOf(action: Action, inputs: readonly SandboxInput[]): SandboxSpec {
  return {
    actionId: action.id,
    argv: action.argv,
    env: action.env,
    inputs,
    outputs: action.outputs,
    timeoutMs: action.timeoutMs,
    capabilities: action.capabilities,
    ...actionPlacement(action),
  }
}
