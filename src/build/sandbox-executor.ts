/**
 * The executor of a build on this machine: each action runs in a sandbox.
 * At most `slots` commands run at once; up to `slots + STAGING_AHEAD` actions
 * are in hand, so the next actions' inputs are staged (and finished ones'
 * outputs stored) while `slots` commands keep the cores busy.
 */
import pLimit from 'p-limit'
import type { Sandbox } from '../../sandbox/types.js'
import type { Executor } from './engine.js'

/** Actions staged ahead of the running ones. */
const STAGING_AHEAD = 2

export function createSandboxExecutor(sandbox: Sandbox, slots: number): Executor {
  const running = pLimit(slots)
  return {
    sandboxName: sandbox.name,
    slots,
    maxInFlight: slots + STAGING_AHEAD,
    execute: (action, inputs, { signal, onStart }) =>
      sandbox.run(
        {
          actionId: action.id,
          argv: action.argv,
          env: action.env,
          inputs,
          outputs: action.outputs,
          timeoutMs: action.timeoutMs,
          capabilities: action.capabilities,
        },
        { signal, slot: running, onStart },
      ),
  }
}
