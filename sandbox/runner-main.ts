/**
 * The process runner: a small long-lived child of bldr that starts action
 * commands on its behalf (see process-runner.ts for why). Requests arrive over
 * the IPC channel and wait in a queue; at most `maxRunning` (argv[2]) commands
 * run at once, and when one ends the next starts at once, without a round trip
 * to bldr. When bldr goes away (the channel closes), every command is killed
 * and the runner exits.
 */
import { startProcess, type ProcessRequest, type ProcessResult } from './run-process.js'

export type RunnerRequest = { type: 'run'; id: number; req: ProcessRequest } | { type: 'kill'; id: number }
export type RunnerReply =
  | { type: 'started'; id: number }
  | { type: 'done'; id: number; result: ProcessResult }
  | { type: 'cancelled'; id: number }
  | { type: 'error'; id: number; message: string }

const maxRunning = Math.max(1, Number(process.argv[2]) || 1)
const queue: { id: number; req: ProcessRequest }[] = []
const running = new Map<number, () => void>()

function send(reply: RunnerReply): void {
  // bldr may close the channel at any time: a reply it will not read is dropped
  // (with no callback, the failed write would be an uncaught 'error' that ends the
  // runner before its 'disconnect' handler kills what it runs).
  if (process.connected) process.send?.(reply, undefined, undefined, () => {})
}

function pump(): void {
  while (running.size < maxRunning && queue.length > 0) {
    const { id, req } = queue.shift()!
    try {
      const { done, kill } = startProcess(req)
      running.set(id, kill)
      send({ type: 'started', id })
      void done.then((result) => {
        running.delete(id)
        // Report the end first (the send is only queued, so the next start is not
        // delayed), so bldr never counts more than maxRunning running.
        send({ type: 'done', id, result })
        pump()
      })
    } catch (err) {
      send({ type: 'error', id, message: (err as Error).message })
    }
  }
}

if (process.send) {
  process.on('message', (msg: RunnerRequest) => {
    if (msg.type === 'run') {
      queue.push({ id: msg.id, req: msg.req })
      pump()
      return
    }
    const kill = running.get(msg.id)
    if (kill) {
      kill()
      return
    }
    const i = queue.findIndex((q) => q.id === msg.id)
    if (i >= 0) {
      queue.splice(i, 1)
      send({ type: 'cancelled', id: msg.id })
    }
  })
  process.on('disconnect', () => {
    for (const kill of running.values()) kill()
    process.exit(0)
  })
}
