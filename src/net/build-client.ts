/**
 * The client's end of a distributed build: its mesh node (its own, or one the
 * kept local mesh keeps for the builds it runs, see `node`), which serves the
 * project's store over `/bldr/cas/1.0.0` (workers fetch inputs from it), opens
 * a build at the coordinator, submits ready actions in batches, receives each
 * action's start and result, and fetches outputs from the worker that made them.
 */
import { randomBytes } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Logger } from 'pino'
import type { Digest } from '../cas/hasher.js'
import type { CasStore } from '../cas/store.js'
import type { MeshSession, MeshSessionEvents } from '../build/mesh-executor.js'
import type { InProcessCoordinator } from './coordinator-service.js'
import { Batcher } from './batcher.js'
import { CasClient, MAX_BLOBS_PER_STREAM, serveCasFrom, type CasSource, type ExtraBlobs } from './cas-protocol.js'
import { createMeshNode, learnPeer, parseMultiaddr, peerIdOfAddr, type Liveness, type MeshNode } from './node.js'
import { RECONNECT_GRACE_MS } from './liveness.js'
import { BUILD_EVENTS_PROTOCOL, BUILD_PROTOCOL, type BuildEvent, type BuildRequest, type BuildResponse, type FaultAccount, type SeedPolicy, type WireItem, type WireSandbox, type WorkerStatsWire } from './protocols.js'
import type { SeedWindow } from './seed-policy.js'
import { ProtocolClient, ProtocolError, requestExpecting, serveProtocol } from './request-response.js'

export interface OpenMeshBuildOptions {
  /** The coordinator's multiaddr. */
  coordinator: string
  /** The project's store: served to workers; fetched outputs go here. */
  cas: CasStore
  policy: SeedPolicy
  /** Seed a worker at most this many queued actions per slot beyond what it runs, or 'auto' (default: up to its queue; see seed-policy.ts). */
  seedWindow?: SeedWindow
  /** The sandbox this build's actions need: the coordinator places them only on workers that offer it. */
  sandbox: WireSandbox
  /** The platform its actions are built for (this machine's): only workers on it take them. */
  platform: string
  /** Multiaddrs this client listens on: workers fetch inputs from it and push outputs to it (default: 127.0.0.1, ephemeral port). */
  listen?: string[]
  /** Heartbeats with the coordinator and workers (default DEFAULT_LIVENESS). */
  liveness?: Liveness
  /** Sources served to workers beside the store's blobs (src/build/served-sources.ts). */
  sources?: ExtraBlobs
  /**
   * A running node to build on instead of one of the build's own (`listen` and
   * `liveness` are then its): the kept local mesh's, for the builds it runs,
   * so each does not make a node and connect it to the mesh again. It is not
   * stopped at close; it serves one build at a time.
   */
  node?: KeptBuildNode
  /**
   * The coordinator, when it runs in this process (an embedded one: the
   * local mesh's): the build's calls and events are function calls, not
   * messages to itself over loopback (coordinator-service.ts). A kept node
   * brings its own (keepBuildNode).
   */
  inProcess?: InProcessCoordinator
  log?: Logger
}

export interface MeshBuild extends MeshSession {
  node: MeshNode
  /** Workers registered when the build opened. */
  workersAtOpen: number
  /** Every registered worker's counters. */
  workerStats(): Promise<Record<string, WorkerStatsWire | null>>
  /**
   * Close the build at the coordinator and stop this node; the coordinator's
   * account of the build's faults (undefined if it could not be had). With
   * `meshGone` (the build already ended because the mesh did), a coordinator
   * that cannot be reached is no news, and is logged at debug only.
   */
  close(opts?: { meshGone?: boolean }): Promise<FaultAccount | undefined>
}

const CALL_TIMEOUT_MS = 30_000
const CALL_ATTEMPTS = 3
const CALL_RETRY_MS = 50
/** Most actions in one submit. */
const SUBMIT_BATCH = 2048

/** A build open on a node: what the node serves for it, and where its events go. */
interface OnNode extends CasSource {
  buildId: string
  events(events: readonly BuildEvent[]): Promise<void>
}

/**
 * A node kept between builds (the kept local mesh's, for the builds it runs),
 * made by keepBuildNode and given to openMeshBuild as `node`. It serves the CAS
 * and build events once, for the build open on it when a request comes: the
 * coordinator keeps its stream of events to the node from one build to the
 * next, and events of a build already closed are dropped.
 */
export interface KeptBuildNode {
  node: MeshNode
  /** The build open on it (one at a time). */
  open?: OnNode
  /** Its coordinator, when in this process (OpenMeshBuildOptions.inProcess). */
  inProcess?: InProcessCoordinator
}

/** Keep `node` for builds; `log` hears of what it serves whichever build is open. */
export async function keepBuildNode(node: MeshNode, log?: Logger, inProcess?: InProcessCoordinator): Promise<KeptBuildNode> {
  const kept: KeptBuildNode = { node, ...(inProcess ? { inProcess } : {}) }
  await serveBuilds(node, () => kept.open, log?.child({ component: 'client' }), inProcess)
  return kept
}

/**
 * Serve the CAS and build events on `node` for the build `current()` gives
 * when each request comes; from a coordinator in this process, the events
 * come as calls.
 */
async function serveBuilds(node: MeshNode, current: () => OnNode | undefined, log: Logger | undefined, inProcess?: InProcessCoordinator): Promise<void> {
  await serveCasFrom(node, current, log ? { log } : {})
  const deliver = async (events: readonly BuildEvent[]): Promise<void> => {
    const open = current()
    if (!open) return
    const prefix = `${open.buildId}/`
    const mine = events.filter((e) => e.type === 'stalled' || (e.type === 'started' ? e.ids : [e.id]).some((id) => id.startsWith(prefix)))
    if (mine.length > 0) await open.events(mine)
  }
  inProcess?.attach(node.peerId.toString(), deliver)
  await serveProtocol(
    node,
    BUILD_EVENTS_PROTOCOL,
    async (req) => {
      await deliver(req.events)
      return { ok: true as const }
    },
    log,
  )
}

export async function openMeshBuild(opts: OpenMeshBuildOptions): Promise<MeshBuild> {
  const log = opts.log?.child({ component: 'client' })
  const node = opts.node?.node ?? (await createMeshNode({ ...(opts.listen ? { listen: opts.listen } : {}), ...(opts.liveness ? { liveness: opts.liveness } : {}) }))
  const coordinatorAddr = parseMultiaddr(opts.coordinator)
  const client = new ProtocolClient(node, BUILD_PROTOCOL)
  const cas = new CasClient(node, opts.cas)
  const buildId = randomBytes(6).toString('hex')
  let handlers: MeshSessionEvents | undefined

  const inProcess = opts.node ? opts.node.inProcess : opts.inProcess
  const call = async <K extends BuildResponse['type']>(req: BuildRequest, expect: K): Promise<Extract<BuildResponse, { type: K }>> => {
    if (inProcess) {
      const res = await inProcess.request(req, node.peerId.toString())
      if (res.type !== expect) throw new ProtocolError(`${BUILD_PROTOCOL.id}: expected a ${expect} answer, got ${res.type}`)
      return res as Extract<BuildResponse, { type: K }>
    }
    return requestExpecting(client, coordinatorAddr, req, expect, {
      timeoutMs: CALL_TIMEOUT_MS,
      attempts: CALL_ATTEMPTS,
      backoffMs: CALL_RETRY_MS,
      // Debug: the final failure is reported to the user; the attempts before it are detail.
      onRetry: (err, attempt) => log?.debug({ err, request: req.type, attempt }, 'coordinator call failed; retrying'),
    })
  }

  const onNode: OnNode = {
    buildId,
    cas: opts.cas,
    ...(opts.sources ? { extra: opts.sources } : {}),
    events: async (events) => {
      for (const e of events) {
        if (e.type === 'started') handlers?.started(e.ids, e.worker)
        else if (e.type === 'stalled') handlers?.stalled?.(e.reason)
        else {
          await learnPeer(node, e.worker, e.addrs)
          handlers?.result(e.id, e.worker, e.report)
        }
      }
    },
  }
  const kept = opts.node
  if (kept?.open) throw new Error(`build ${kept.open.buildId} is still open on this node; one build at a time`)
  if (kept) kept.open = onNode
  else await serveBuilds(node, () => onNode, log, inProcess)
  /** Done with the node: stopped if it is the build's, else left for the next build. */
  const leave = async (): Promise<void> => {
    if (!kept) {
      inProcess?.attach(node.peerId.toString(), undefined)
      return node.stop()
    }
    if (kept.open === onNode) delete kept.open
  }

  /**
   * A coordinator that stops (killed, restarted, cut off) would leave the build
   * waiting for ever: when the connection to it closes and does not come back,
   * ask whether the build is still open there; if it cannot say, or says no,
   * the build cannot go on.
   */
  const coordinatorId = peerIdOfAddr(coordinatorAddr)
  let probe: NodeJS.Timeout | undefined
  let closing = false
  const onDisconnect = (evt: CustomEvent<{ toString(): string }>): void => {
    if (closing || probe || evt.detail.toString() !== coordinatorId) return
    probe = setTimeout(() => {
      void call({ type: 'status', buildId }, 'status').then(
        (s) => {
          probe = undefined
          if (!s.open && !closing) handlers?.stalled?.(`the coordinator at ${opts.coordinator} no longer knows this build (it was restarted)`)
        },
        (err: unknown) => {
          probe = undefined
          if (!closing) handlers?.stalled?.(`lost the coordinator at ${opts.coordinator}: ${(err as Error).message}`)
        },
      )
    }, RECONNECT_GRACE_MS)
  }
  node.addEventListener('peer:disconnect', onDisconnect)

  const clientAddrs = node.getMultiaddrs().map((a) => a.toString())
  let opened: number
  try {
    opened = (await call({ type: 'open', buildId, policy: opts.policy, ...(opts.seedWindow !== undefined ? { seedWindow: opts.seedWindow } : {}), addrs: clientAddrs, sandbox: opts.sandbox, platform: opts.platform }, 'opened')).workers
  } catch (err) {
    await leave()
    const refusal = err instanceof ProtocolError ? /answered: (?:handler failed: )?(.*)$/s.exec(err.message)?.[1] : undefined
    if (refusal) throw new Error(`the coordinator at ${opts.coordinator} refused the build: ${refusal}`, { cause: err })
    throw new Error(`cannot reach the coordinator at ${opts.coordinator}: ${(err as Error).message}`, { cause: err })
  }
  const submits = new Batcher<WireItem, void>(async (items) => {
    await call({ type: 'submit', buildId, items }, 'submitted')
    return items.map(() => undefined)
  }, SUBMIT_BATCH)

  return {
    node,
    buildId,
    clientId: node.peerId.toString(),
    clientAddrs,
    workersAtOpen: opened,
    setHandlers: (h) => {
      handlers = h
    },
    submit: (item) => submits.add({ ...item, sandbox: item.payload.sandbox, platform: opts.platform }),
    fetchBlobs: async (digests: readonly Digest[], holder: string) => {
      const peer = peerIdFromString(holder)
      for (let at = 0; at < digests.length; at += MAX_BLOBS_PER_STREAM) {
        const got = await cas.fetchMany(peer, digests.slice(at, at + MAX_BLOBS_PER_STREAM))
        for (const r of got.values()) if (r instanceof Error) throw r
      }
    },
    workerStats: async () => (await call({ type: 'stats' }, 'stats')).workers,
    close: async (opts = {}) => {
      closing = true
      clearTimeout(probe)
      node.removeEventListener('peer:disconnect', onDisconnect)
      const closed = await call({ type: 'close', buildId }, 'closed').catch((err: unknown) => (opts.meshGone ? log?.debug : log?.warn)?.call(log, { err }, 'could not close the build at the coordinator'))
      client.close()
      await leave()
      return closed ? closed.account : undefined
    },
  }
}
