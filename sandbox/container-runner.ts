/**
 * The runner inside a warm container (see docker.ts): a small Node program that
 * stays up for the life of its container and runs one action at a time, so an
 * action costs one spawn inside the container instead of a container start.
 *
 * Protocol, over the container's attached stdin and stdout, one JSON object a
 * line. In: `{type:'run', id, req}` (a ProcessRequest) and `{type:'kill', id}`.
 * Out: `{type:'ready'}` once, then per run `{type:'started', id}` when the
 * command is running and `{type:'done', id, result}` when it ended, with
 * stdout and stderr base64-encoded and `oomKilled` from the container's memory
 * cgroup (its OOM-kill counter rose during the run).
 *
 * Between actions nothing may carry over, so after each one the runner kills
 * every process left in the container (an action may have detached some) and
 * empties /tmp. When stdin closes (bldr went away), it exits, and so does the
 * container.
 *
 * This file runs under the host's `node` binary with nothing but itself and
 * run-process.js next to it: it must import only node built-ins and that file.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { startProcess, type ProcessRequest } from './run-process.js'

export type ContainerRequest = { type: 'run'; id: number; req: ProcessRequest } | { type: 'kill'; id: number }
export type ContainerReply =
  | { type: 'ready' }
  | { type: 'started'; id: number }
  | {
      type: 'done'
      id: number
      result: { exitCode: number | null; signal: NodeJS.Signals | null; timedOut: boolean; oomKilled: boolean; stdout: string; stderr: string; durationMs: number; cpuMs?: number }
    }
  | { type: 'error'; id: number; message: string }

/** Where the cgroup's OOM-kill counter is: cgroup v1 first, then v2. */
const OOM_COUNTERS = ['/sys/fs/cgroup/memory/memory.oom_control', '/sys/fs/cgroup/memory.events']

function oomKills(): number {
  for (const f of OOM_COUNTERS) {
    try {
      const m = /^oom_kill (\d+)$/m.exec(readFileSync(f, 'utf8'))
      if (m) return Number(m[1])
    } catch {
      // not this cgroup version
    }
  }
  return 0
}

/**
 * CPU time (user + system, ms) of this runner's children that have ended and
 * been waited for: fields 16 and 17 of /proc/self/stat, in USER_HZ (100 a
 * second on Linux). One action runs at a time, so a difference is that action's.
 */
function childCpuMs(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[13]) + Number(fields[14])) * 10
  } catch {
    return undefined
  }
}

function send(reply: ContainerReply): void {
  process.stdout.write(`${JSON.stringify(reply)}\n`)
}

/** Kill every process in the container but this one (and the init that reaps them). */
function killLeftovers(): void {
  for (const name of readdirSync('/proc')) {
    const pid = Number(name)
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

/** Empty `dir` (/tmp), except the folder `keep` and the folders on the way to it. */
function emptyTmp(keep?: string, dir = '/tmp'): void {
  let entries: string[]
  try {
    entries = readdirSync(dir)
  } catch {
    return // no /tmp (writeTmp is off)
  }
  for (const e of entries) {
    const path = `${dir}/${e}`
    if (keep === path) continue
    if (keep?.startsWith(`${path}/`)) emptyTmp(keep, path)
    else rmSync(path, { recursive: true, force: true })
  }
}

let running: { id: number; kill: () => void } | undefined

function run(id: number, req: ProcessRequest): void {
  const before = oomKills()
  const cpuBefore = childCpuMs()
  let started
  try {
    started = startProcess(req)
  } catch (err) {
    send({ type: 'error', id, message: (err as Error).message })
    return
  }
  running = { id, kill: started.kill }
  send({ type: 'started', id })
  // When the container's memory limit is reached, the kernel should kill the
  // action, not this runner: raising a process's OOM score needs no privilege.
  if (started.pid !== undefined) {
    try {
      writeFileSync(`/proc/${started.pid}/oom_score_adj`, '1000')
    } catch {
      // it already ended
    }
  }
  void started.done.then((r) => {
    running = undefined
    const oomKilled = r.signal === 'SIGKILL' && !r.timedOut && oomKills() > before
    const cpuAfter = childCpuMs()
    const cpu = cpuBefore !== undefined && cpuAfter !== undefined ? { cpuMs: cpuAfter - cpuBefore } : {}
    killLeftovers()
    emptyTmp(req.keep)
    send({ type: 'done', id, result: { ...r, ...cpu, oomKilled, stdout: r.stdout.toString('base64'), stderr: r.stderr.toString('base64') } })
  })
}

const lines = createInterface({ input: process.stdin })
lines.on('line', (line) => {
  let msg: ContainerRequest
  try {
    msg = JSON.parse(line) as ContainerRequest
  } catch {
    process.stderr.write(`bldr container runner: not a request: ${line.slice(0, 200)}\n`)
    return
  }
  if (msg.type === 'run') {
    if (running) send({ type: 'error', id: msg.id, message: `busy with request ${running.id}` })
    else run(msg.id, msg.req)
  } else if (msg.type === 'kill' && running?.id === msg.id) {
    running.kill()
  }
})
lines.on('close', () => {
  running?.kill()
  process.exit(0)
})
send({ type: 'ready' })
