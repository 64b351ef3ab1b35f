/**
 * The process runner: a small long-lived child of bldr that starts action
 * commands on its behalf (see process-runner.ts for why). It takes requests
 * over the IPC channel and answers each with the command's result. When bldr
 * goes away (the channel closes), it kills every command it started and exits.
 */
import { startProcess, type ProcessRequest } from './run-process.js'

export type RunnerRequest = { type: 'run'; id: number; req: ProcessRequest } | { type: 'kill'; id: number }
export type RunnerReply = { type: 'done'; id: number; result: import('./run-process.js').ProcessResult } | { type: 'error'; id: number; message: string }

const running = new Map<number, () => void>()

if (process.send) {
  process.on('message', (msg: RunnerRequest) => {
    if (msg.type === 'kill') {
      running.get(msg.id)?.()
      return
    }
    try {
      const { done, kill } = startProcess(msg.req)
      running.set(msg.id, kill)
      void done.then((result) => {
        running.delete(msg.id)
        process.send?.({ type: 'done', id: msg.id, result } satisfies RunnerReply)
      })
    } catch (err) {
      process.send?.({ type: 'error', id: msg.id, message: (err as Error).message } satisfies RunnerReply)
    }
  })
  process.on('disconnect', () => {
    for (const kill of running.values()) kill()
    process.exit(0)
  })
}
