/**
 * `bldr mesh serve`: the background process that keeps a folder's local mesh
 * (a coordinator in this process, worker processes beside it: local-mesh.ts)
 * between builds. Builds reach it through mesh-daemon.ts, which also says
 * when it stops. Its output (and its workers') goes to `.bldr/mesh/daemon.log`.
 *
 * It also runs builds in its own process for thin clients (hosted-build.ts),
 * one at a time: the build's output goes to the client, the client's Ctrl-C
 * (or its connection closing) interrupts it, and it runs in the client's
 * folder (this process's working folder meanwhile) with the client's
 * environment.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { createInterface } from 'node:readline'
import { Writable } from 'node:stream'
import type { Logger } from 'pino'
import type { StrategyName } from '../../strategies/index.js'
import type { BuildIo } from '../cli/build-io.js'
import { connectDaemon, daemonFiles, folderId, settingsDiff, type FromDaemon, type HostedBuildRequest, type LocalMeshLease, type MeshDaemonInfo, type MeshHost, type MeshSettings, type ToDaemon } from './mesh-daemon.js'
import { isStopped, startLocalMesh, type LocalMesh } from './local-mesh.js'
import { keepBuildNode, type KeptBuildNode } from './build-client.js'
import { createMeshNode } from './node.js'

/** How often the daemon looks at its folder and its workers. */
const WATCH_MS = 1_000

export interface ServeOptions {
  meshDir: string
  /** The folder's id (mesh-daemon.ts folderId) when the build that started this daemon made it: a folder removed since (the project deleted) is not served, nor made again. */
  folderId?: string
  settings: MeshSettings
  idleS: number
  /** Run a build in this process for a thin client (build-command.ts): its exit status, or why it does not run here. */
  hostBuild?: (argv: string[], io: BuildIo, host: MeshHost) => Promise<number | { declined: string }>
  /**
   * A first build run here once the mesh is ready, if no build came first
   * (src/build/warm-up.ts); hosted builds wait for it. It is not one of the
   * builds `status` counts (gc and other settings do not wait for it): the
   * mesh stopping interrupts it (`signal`). `buildCame` is aborted when a
   * build comes meanwhile and waits for it: what the warm-up does beyond its
   * build (priming the project, src/build/prime-project.ts) stops then.
   */
  warmUp?: (host: MeshHost, idleS: number, signal: AbortSignal, buildCame: AbortSignal) => Promise<void>
  log?: Logger
}

/** What is wrong with a build request's fields, if anything. */
function malformedRequest(req: HostedBuildRequest): string | undefined {
  const r = req as unknown as Record<string, unknown>
  if (!Array.isArray(r['argv']) || !r['argv'].every((a) => typeof a === 'string')) return 'argv must be a list of strings'
  if (typeof r['cwd'] !== 'string' || !r['cwd'].startsWith('/')) return 'cwd must be an absolute path'
  const env = r['env']
  if (typeof env !== 'object' || env === null || !Object.values(env).every((v) => typeof v === 'string')) return 'env must map names to strings'
  if (typeof r['version'] !== 'string') return 'version must be a string'
  if (typeof r['columns'] !== 'number' || typeof r['stdoutTty'] !== 'boolean') return 'columns must be a number and stdoutTty a boolean'
  return undefined
}

/** A stream whose writes go to a thin client as `out` messages. */
function toClient(send: (m: FromDaemon) => void, fd: 1 | 2, tty?: { columns: number }): BuildIo['stdout'] {
  const out = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      send({ op: 'out', fd, text: chunk.toString() })
      done()
    },
  })
  return Object.assign(out, tty ? { isTTY: true, columns: tty.columns } : { isTTY: false })
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
  /** Builds using the mesh (a connection that said hello and not bye, or a hosted build), each with how it hears of a worker that exits. */
  const builds = new Map<object, (text: string, remaining: number) => void>()
  /** The hosted build's connection, how to interrupt it, and its end (sent its exit status). */
  let hosted: { socket: Socket; interrupt: () => void; done: Promise<void> } | undefined
  /** The node of the builds this process runs, kept between them (connected to the coordinator and, after a first build, to the workers). */
  let clientNode: Promise<KeptBuildNode> | undefined
  /** The warm-up build while it runs, and how the mesh stopping interrupts it. */
  let warming: Promise<void> | undefined
  const warmAbort = new AbortController()
  /** A build came while the warm-up ran (it waits for the warm-up). */
  const buildCame = new AbortController()
  /** Resolved once the mesh's workers and coordinator have stopped. */
  let resolveMeshStopped!: () => void
  const meshStopped = new Promise<void>((resolve) => (resolveMeshStopped = resolve))
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
      warmAbort.abort(new Error(`the local mesh is stopping: ${why}`))
      clearTimeout(idleTimer)
      clearInterval(watch)
      for (const s of sockets) if (!builds.has(s) && s !== hosted?.socket) send(s, { op: 'stopping', why })
      // Gone at once, not after the workers: a build may start the next daemon meanwhile, whose files these become.
      server.close()
      rmSync(files.socket, { force: true })
      if (ownsInfo()) rmSync(files.info, { force: true })
      // Stopped while starting: once its workers have registered, they are stopped too.
      await (mesh ?? (await starting.catch(() => undefined)))?.stop()
      // What the workers ran in their grace time has come back; anything a build still waits for never will.
      for (const tell of builds.values()) tell(`the local mesh stopped (${why})`, 0)
      await (await clientNode?.catch(() => undefined))?.node.stop()
      resolveMeshStopped()
      await warming
      // A hosted build ends with its mesh (its next action fails); its client gets its output and exit status first.
      await hosted?.done
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
      for (const tell of builds.values()) tell(err.message, remaining)
      whenUnused()
    },
    ...(log ? { log } : {}),
  })
  starting.catch(() => {})

  /** Why a build that asks for `settings` cannot use this mesh now, if it cannot. */
  const refuses = (settings: MeshSettings): string | undefined => {
    const diff = settingsDiff(opts.settings, settings)
    if (diff) return `it runs other settings (${diff})`
    if (stopping) return 'it is stopping'
    return mesh && builds.size === 0 ? unwell() : undefined
  }

  /** The mesh for a build in this process: kept `idle` seconds after it, stopped after it when it must be (as `bye`/`interrupted` do). */
  const lease = async (idle: number, onWorkerExited: (text: string, remaining: number) => void): Promise<LocalMeshLease & { clientNode: KeptBuildNode }> => {
    if (stopping) throw new Error('the local mesh is stopping')
    const token = {}
    idleS = idle
    clearTimeout(idleTimer)
    builds.set(token, onWorkerExited)
    try {
      return await leaseOf(await starting, async (how) => {
        if (!builds.delete(token)) return { stopping: null }
        const why = builds.size > 0 ? undefined : (unwell() ?? (how === 'interrupted' ? 'a build was interrupted (its actions end with the workers)' : undefined))
        if (!why) {
          whenUnused()
          return { stopping: null }
        }
        void stop(why)
        await meshStopped
        return { stopping: why }
      })
    } catch (err) {
      builds.delete(token)
      throw err
    }
  }

  /** What a build in this process gets of the mesh `ready`: its address, the builds' node, and how it is done with it. */
  const leaseOf = async (ready: LocalMesh, release: LocalMeshLease['release']): Promise<LocalMeshLease & { clientNode: KeptBuildNode }> => ({
    clientNode: await (clientNode ??= openClientNode(ready)),
    addr: ready.addr,
    daemonPid: process.pid,
    startedAt,
    release,
  })

  /** Run a thin client's build here, or decline it (the client then builds as without this mesh). */
  const hostBuild = async (s: Socket, req: HostedBuildRequest): Promise<void> => {
    const decline = (why: string): void => {
      send(s, { op: 'declined', why })
      s.end()
    }
    const malformed = malformedRequest(req)
    if (malformed) {
      log?.warn({ malformed }, 'malformed build request declined')
      return decline(`malformed build request: ${malformed}`)
    }
    if (!opts.hostBuild) return decline('this mesh runs no builds')
    if (req.version !== opts.settings.version) return decline(`the build is another bldr (${req.version}; this mesh runs ${opts.settings.version})`)
    // The warm-up is short (a few actions): a build that comes meanwhile waits for it rather than build without the mesh.
    if (warming) buildCame.abort()
    await warming
    if (s.destroyed) return
    if (hosted) return decline('it runs another build')
    if (stopping) return decline('it is stopping')
    try {
      process.chdir(req.cwd)
    } catch (err) {
      return decline(`it cannot enter ${req.cwd}: ${(err as Error).message}`)
    }
    const handlers = new Set<() => void>()
    let interrupted = false
    let ended!: () => void
    hosted = {
      socket: s,
      interrupt: () => {
        if (interrupted) return
        interrupted = true
        for (const h of handlers) h()
      },
      done: new Promise<void>((resolve) => (ended = resolve)),
    }
    const toThis = (m: FromDaemon): void => send(s, m)
    const io: BuildIo = {
      stdout: toClient(toThis, 1, req.stdoutTty ? { columns: req.columns } : undefined),
      stderr: toClient(toThis, 2),
      env: req.env,
      onInterrupt: (h) => {
        handlers.add(h)
        if (interrupted) h()
        return () => handlers.delete(h)
      },
    }
    try {
      const result = await opts.hostBuild(req.argv, io, { refuses, lease })
      if (typeof result === 'number') {
        send(s, { op: 'exit', code: result, stopping: stopping ? process.pid : null })
        s.end()
      } else decline(result.declined)
    } finally {
      process.chdir('/')
      hosted = undefined
      ended()
    }
  }

  /**
   * The builds' node; one that fails to start is made again by the next
   * build. It does not dial the coordinator: that is in this process, and the
   * builds call it (coordinator-service.ts, InProcessCoordinator).
   */
  const openClientNode = async (ready: LocalMesh): Promise<KeptBuildNode> => {
    try {
      const node = await createMeshNode({ listen: ['/ip4/127.0.0.1/tcp/0'], ...(opts.settings.liveness ? { liveness: opts.settings.liveness } : {}) })
      return await keepBuildNode(node, log, ready.coordinator.inProcess)
    } catch (err) {
      clientNode = undefined
      throw err
    }
  }

  const onMessage = async (s: Socket, m: ToDaemon): Promise<void> => {
    if (m.op === 'status') return send(s, { op: 'status', ...info() })
    if (m.op === 'build') return hostBuild(s, m)
    if (m.op === 'signal') {
      if (hosted?.socket === s) hosted.interrupt()
      return
    }
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
      builds.set(s, (text, remaining) => send(s, { op: 'worker-exited', text, remaining }))
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
      // A hosted build's client gone (killed): the build is interrupted; it says when it is done whether the mesh stops.
      if (hosted?.socket === s) {
        hosted.interrupt()
        return
      }
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
  // Made now, so the first build that comes need not wait for it.
  if (opts.hostBuild) (clientNode ??= openClientNode(mesh)).catch((err: unknown) => log?.warn({ err }, 'the builds\' node did not start; the next build tries again'))
  // Not beside a build that came while the mesh started (they would share the builds' node).
  if (opts.warmUp && !hosted && builds.size === 0) {
    const ready = mesh
    // Not a lease: the warm-up is no build of a user's, so nothing waits for it and it stops nothing when it ends.
    const warmHost: MeshHost = {
      refuses,
      lease: async () => {
        if (stopping) throw new Error('the local mesh is stopping')
        return leaseOf(ready, async () => ({ stopping: null }))
      },
    }
    warming = opts
      .warmUp(warmHost, idleS, warmAbort.signal, buildCame.signal)
      .catch((err: unknown) => {
        if (warmAbort.signal.aborted) log?.info('the warm-up build stopped with the mesh')
        else log?.warn({ err }, 'the warm-up build failed; the first build pays for what it would have done')
      })
      .finally(() => (warming = undefined))
  }
  whenUnused()
  await done
  process.off('SIGTERM', onSignal)
  process.off('SIGINT', onSignal)
  return 0
}
