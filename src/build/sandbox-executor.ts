/** The executor of a build on this machine: each action runs in a sandbox, `slots` at a time. */
import type { Sandbox } from '../../sandbox/types.js'
import type { Executor } from './engine.js'

export function createSandboxExecutor(sandbox: Sandbox, slots: number): Executor {
  return {
    sandboxName: sandbox.name,
    slots,
    execute: (action, inputs, { signal }) =>
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
        { signal },
      ),
  }
}
