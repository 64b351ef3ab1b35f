/**
 * `bldr mesh serve`: the background process that keeps a folder's local mesh
 * (a coordinator in this process, worker processes beside it: local-mesh.ts)
 * between builds. Builds reach it through mesh-daemon.ts, which also says
 * when it stops. Its output (and its workers') goes to `.bldr/mesh/daemon.log`.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { createInterface } from 'node:readline'
import type { Logger } from 'pino'
import type { StrategyName } from '../../strategies/index.js'
import { connectDaemon, daemonFiles, folderId, settingsDiff, type FromDaemon, type MeshDaemonInfo, type MeshSettings, type ToDaemon } from './mesh-daemon.js'
import { isStopped, startLocalMesh, type LocalMesh } from './local-mesh.js'

/** How often the daemon looks at its folder and its workers. */
const WATCH_MS = 1_000

export interface ServeOptions {
  meshDir: string
  /** The folder's id (mesh-daemon.ts folderId) when the build that started this daemon made it: a folder removed since (the project deleted) is not served, nor made again. */
  folderId?: string
  settings: MeshSettings
  idleS: number
  log?: Logger
}

/** Listen on `path`; false when another daemon answers there (a socket file nobody answers is stale and replaced). */
async function listenFirst(server: Server, path: string): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(path, () => {
          server.off('error', reject)
          resolve()
        })
      })
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt > 0) throw err
      const other = await connectDaemon(path)
      if (other) {
        other.close()
        return false
      }
      rmSync(path, { force: true })
    }
  }
}

/** Serve until the mesh stops; the exit code. */
export async function serveLocalMesh(opts: ServeOptions): Promise<number> {
  const { log } = opts
  const files = daemonFiles(opts.meshDir)
  const id = opts.folderId || folderId(opts.meshDir)
  const sameFolder = (): boolean => id !== undefined && folderId(opts.meshDir) === id
  if (!sameFolder()) {
    log?.info({ meshDir: opts.meshDir }, 'the folder of this local mesh was removed before it started')
    return 0
  }
  const server = createServer()
  const listening = await listenFirst(server, files.socket)
  // Found by its socket from now on (or another daemon serves): no longer by the file its starter wrote.
  try {
    if (Number(readFileSync(files.starting, 'utf8').trim()) === process.pid) rmSync(files.starting, { force: true })
  } catch {
    // none
  }
  if (!listening) {
    log?.info({ socket: files.socket }, 'another local mesh serves this folder')
    return 0
  }
  let idleS = opts.idleS
  /** Connections that said hello and have not said bye. */
  const builds = new Set<Socket>()
  const sockets = new Set<Socket>()
  let mesh: LocalMesh | undefined
  let startedAt = 0
  /** Why the mesh must stop once no build uses it (a worker exited or was lost). */
  let degraded: string | undefined
  let stopping: Promise<void> | undefined
  let idleTimer: NodeJS.Timeout | undefined
  let watch: NodeJS.Timeout | undefined
  let resolveDone!: () => void
  const done = new Promise<void>((resolve) => (resolveDone = resolve))
  const send = (s: Socket, m: FromDaemon): void => {
    if (!s.destroyed) s.write(`${JSON.stringify(m)}\n`)
  }
  const info = (): MeshDaemonInfo => ({ pid: process.pid, addr: mesh?.addr ?? '', workers: mesh?.pids ?? [], startedAt, settings: opts.settings, idleS, builds: builds.size })

  const stop = (why: string): Promise<void> =>
    (stopping ??= (async () => {
      log?.info({ why }, 'local mesh stopping')
      clearTimeout(idleTimer)
      clearInterval(watch)
      for (const s of sockets) if (!builds.has(s)) send(s, { op: 'stopping', why })
      // Gone at once, not after the workers: a build may start the next daemon meanwhile, whose files these become.
      server.close()
      rmSync(files.socket, { force: true })
      if (ownsInfo()) rmSync(files.info, { force: true })
      // Stopped while starting: once its workers have registered, they are stopped too.
      await (mesh ?? (await starting.catch(() => undefined)))?.stop()
      for (const s of sockets) s.end()
      resolveDone()
    })())
  const ownsInfo = (): boolean => {
    try {
      return (JSON.parse(readFileSync(files.info, 'utf8')) as { pid?: number }).pid === process.pid
    } catch {
      return false
    }
  }
  /** No build uses it now: stop if it must, else wait its idle time. */
  const whenUnused = (): void => {
    if (builds.size > 0 || stopping) return
    if (degraded) {
      void stop(degraded)
      return
    }
    clearTimeout(idleTimer)
    idleTimer = setTimeout(() => void stop(`no build for ${idleS} s`), idleS * 1000)
  }

  const starting = startLocalMesh({
    slots: opts.settings.slots,
    strategy: opts.settings.strategy as StrategyName,
    sandbox: opts.settings.sandbox,
    workersDir: opts.meshDir,
    logLevel: opts.settings.logLevel,
    ...(opts.settings.liveness ? { liveness: opts.settings.liveness } : {}),
    onWorkerLost: (err, remaining) => {
      degraded ??= err.message
      for (const s of builds) send(s, { op: 'worker-exited', text: err.message, remaining })
      whenUnused()
    },
    ...(log ? { log } : {}),
  })
  starting.catch(() => {})

  const onMessage = async (s: Socket, m: ToDaemon): Promise<void> => {
    if (m.op === 'status') return send(s, { op: 'status', ...info() })
    if (m.op === 'stop') {
      send(s, { op: 'stopping', why: 'bldr mesh stop' })
      return stop('asked to stop')
    }
    if (m.op === 'hello') {
      const diff = settingsDiff(opts.settings, m.settings)
      const why = diff ? `a build asked for other settings (${diff})` : mesh && builds.size === 0 ? unwell() : undefined
      if (why) {
        if (builds.size > 0) return send(s, { op: 'busy', settings: opts.settings })
        send(s, { op: 'restarting', why, pid: process.pid })
        return stop(why)
      }
      if (stopping) {
        s.end()
        return
      }
      idleS = m.idleS
      clearTimeout(idleTimer)
      builds.add(s)
      try {
        await starting
      } catch (err) {
        send(s, { op: 'failed', error: (err as Error).message })
        return
      }
      return send(s, { op: 'ready', ...info() })
    }
    // bye or interrupted: this build is done with the mesh.
    if (!builds.delete(s)) return
    // Not whole, or what an interrupted build left running on the workers: it ends with them, unless another build uses them.
    const why = builds.size > 0 ? undefined : (unwell() ?? (m.op === 'interrupted' ? 'a build was interrupted (its actions end with the workers)' : undefined))
    send(s, { op: 'bye', stopping: why ?? null })
    if (why) return stop(why)
    s.end()
    whenUnused()
  }

  server.on('connection', (s) => {
    sockets.add(s)
    createInterface({ input: s, crlfDelay: Infinity }).on('line', (line) => {
      let m: ToDaemon
      try {
        m = JSON.parse(line) as ToDaemon
      } catch {
        log?.warn({ line: line.slice(0, 200) }, 'malformed message to the local mesh ignored')
        return
      }
      onMessage(s, m).catch((err: unknown) => log?.error({ err }, 'local mesh message failed'))
    })
    s.on('error', () => {}) // a close follows
    s.once('close', () => {
      sockets.delete(s)
      // A build gone without a bye (killed): as if interrupted.
      if (builds.delete(s) && builds.size === 0 && !stopping) void stop(degraded ?? 'a build ended without saying so (killed?): its actions end with the workers')
      else whenUnused()
    })
  })

  /** Why this mesh is no longer whole (a worker exited, is stopped, or was declared lost), if it is not. */
  const unwell = (): string | undefined => {
    if (!degraded && mesh?.pids.some(isStopped)) degraded = 'a worker process is stopped (SIGSTOP)'
    if (!degraded && (mesh?.coordinator.losses() ?? 0) > 0) degraded = 'a worker was declared lost'
    return degraded
  }
  // Its folder removed (the project deleted) or taken by another daemon: stop. Not whole: stop once unused.
  watch = setInterval(() => {
    if (!mesh) return
    if (!sameFolder() || !ownsInfo()) {
      void stop('its folder was removed or another local mesh took it over')
      return
    }
    if (unwell()) whenUnused()
  }, WATCH_MS)
  const onSignal = (): void => void stop('signalled')
  process.once('SIGTERM', onSignal)
  process.once('SIGINT', onSignal)

  try {
    mesh = await starting
  } catch (err) {
    log?.error({ err }, 'the local mesh did not start')
    // Builds waiting for it were told (`failed`); close their connections.
    await stop(`it did not start: ${(err as Error).message}`)
    await done
    return 1
  }
  if (stopping) {
    await done
    return 0
  }
  startedAt = Date.now()
  // Written in place, never making the folder again: one removed while the mesh started (the project deleted) stops it.
  try {
    if (!sameFolder()) throw new Error('its folder was removed')
    const tmp = `${files.info}.${process.pid}.tmp`
    writeFileSync(tmp, `${JSON.stringify(info())}\n`)
    renameSync(tmp, files.info)
  } catch (err) {
    await stop(`it could not record itself in ${opts.meshDir}: ${(err as Error).message}`)
    await done
    return 0
  }
  log?.info({ addr: mesh.addr, workers: mesh.pids, idleS }, 'local mesh ready')
  whenUnused()
  await done
  process.off('SIGTERM', onSignal)
  process.off('SIGINT', onSignal)
  return 0
}
