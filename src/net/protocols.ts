/**
 * The mesh's direct protocols: versioned ids, size caps, and the schema every
 * frame is checked against on decode.
 *
 * Work items travel as `{ id, payload }`: the id is the action id the ledger
 * knows; the payload is what the worker's runner needs (opaque here).
 */
import { z } from 'zod'
import { resultReportSchema } from '../worker/action-payload.js'
import type { ProtocolSpec } from './request-response.js'
import { SEED_POLICIES, type SeedPolicy } from './seed-policy.js'

export { SEED_POLICIES, type SeedPolicy }

const actionId = z.string().min(1).max(1024)
const peerId = z.string().min(1).max(128)
const ids = z.array(actionId).max(4096)

const sandboxName = z.enum(['local', 'bwrap', 'docker'])
export type WireSandbox = z.infer<typeof sandboxName>
/** A platform, `<os>-<arch>` as node names them (`linux-x64`). */
const platformName = z.string().regex(/^[a-z0-9_]+-[a-z0-9_]+$/).max(64)
/** A build's id: its actions' ids start with `<buildId>/`, so it holds no `/` (the ledger groups a build's actions by that prefix). */
const buildIdSchema = z.string().min(1).max(128).regex(/^[^/]+$/, 'a build id holds no "/"')
/**
 * `sandbox` and `platform`: what the action needs (the payload implies them;
 * here the mesh can read them without decoding the payload).
 */
/** `avoid`: workers that could not run an earlier attempt of the action; it goes to another if any can take it. */
export const wireItemSchema = z.object({ id: actionId, payload: z.unknown(), sandbox: sandboxName.optional(), platform: platformName.optional(), avoid: z.array(peerId).max(16).optional() }).strict()
export type WireItem = z.infer<typeof wireItemSchema> & { payload: unknown }

const coordinatorRequest = z.discriminatedUnion('type', [
  /** `room`: most actions the worker can hold (its queue plus its slots); `slots`: actions it runs at once (a build's seed window counts from them). */
  z.object({ type: z.literal('register'), addrs: z.array(z.string().max(256)).max(16), room: z.number().int().min(1).max(1_000_000), slots: z.number().int().min(1).max(100_000), sandboxes: z.array(sandboxName).min(1).max(3), platform: platformName }).strict(),
  z.object({ type: z.literal('start'), ids }).strict(),
  z.object({ type: z.literal('transfer'), stealId: z.string().min(1).max(256), ids, victim: peerId }).strict(),
  /** A victim settles one of its offers: which of the offered actions moved. */
  z.object({ type: z.literal('settle'), stealId: z.string().min(1).max(256) }).strict(),
  /** A leaving worker gives back what it still has queued. */
  z.object({ type: z.literal('release'), ids }).strict(),
  z.object({ type: z.literal('results'), results: z.array(z.object({ id: actionId, report: resultReportSchema }).strict()).min(1).max(4096) }).strict(),
])
const coordinatorResponse = z.discriminatedUnion('type', [
  z.object({ type: z.literal('registered'), peers: z.array(z.object({ id: peerId, addrs: z.array(z.string().max(256)).max(16) })).max(10_000) }),
  z.object({ type: z.literal('allowed'), ids }),
  z.object({ type: z.literal('accepted'), ids }),
  z.object({ type: z.literal('settled'), moved: ids }),
  z.object({ type: z.literal('released'), ids }),
  z.object({ type: z.literal('recorded'), outcomes: z.array(z.enum(['recorded', 'duplicate', 'conflict', 'stale', 'unknown'])) }),
])
export type CoordinatorRequest = z.infer<typeof coordinatorRequest>
export type CoordinatorResponse = z.infer<typeof coordinatorResponse>

/** Worker → coordinator: registration, the start gate, steal transfers and settlements, results, leaving. */
export const COORDINATOR_PROTOCOL: ProtocolSpec<CoordinatorRequest, CoordinatorResponse> = {
  id: '/bldr/coordinator/1.0.0',
  maxFrameBytes: 4 * 1024 * 1024,
  request: coordinatorRequest,
  response: coordinatorResponse,
}

const stealRequest = z
  .object({ stealId: z.string().min(1).max(256), max: z.number().int().min(1).max(1024), sandboxes: z.array(sandboxName).max(3).optional(), platform: platformName.optional() })
  .strict()
const stealOffer = z.object({ offered: z.array(wireItemSchema).max(1024) }).strict()
const stealRefusal = z.object({ refused: z.string().max(1024) }).strict()
/**
 * An offer or a refusal, told apart by its key and checked against that shape
 * only. `z.union` tries its members in turn, and the failed try of an offer
 * builds an error: a refusal took ~13 µs to check that way, against ~3 µs here
 * (a micro-benchmark; a steal round trip is ~500 µs on the 2-core VM). The
 * errors are the member's own.
 */
const stealResponse = z.unknown().transform((value, ctx): z.infer<typeof stealOffer> | z.infer<typeof stealRefusal> => {
  const shape = typeof value === 'object' && value !== null && 'refused' in value ? stealRefusal : stealOffer
  const parsed = shape.safeParse(value)
  if (parsed.success) return parsed.data
  for (const issue of parsed.error.issues) ctx.addIssue(issue)
  return z.NEVER
})

/** Thief → victim. */
export const STEAL_PROTOCOL: ProtocolSpec<z.infer<typeof stealRequest>, z.infer<typeof stealResponse>> = {
  id: '/bldr/steal/1.0.0',
  maxFrameBytes: 4 * 1024 * 1024,
  request: stealRequest,
  response: stealResponse,
}

const seedRequest = z.object({ items: z.array(wireItemSchema).max(4096) }).strict()
const seedResponse = z.object({ rest: ids }).strict()

/** Coordinator → worker: ready actions for its queue; `rest` did not fit. */
export const SEED_PROTOCOL: ProtocolSpec<z.infer<typeof seedRequest>, z.infer<typeof seedResponse>> = {
  id: '/bldr/seed/1.0.0',
  maxFrameBytes: 16 * 1024 * 1024,
  request: seedRequest,
  response: seedResponse,
}

/** A worker's counters, as `--stats` reports them. */
export const workerStatsSchema = z
  .object({
    executed: z.number().int().nonnegative(),
    notStarted: z.number().int().nonnegative(),
    stealsAttempted: z.number().int().nonnegative(),
    stealsGranted: z.number().int().nonnegative(),
    stealsRefused: z.number().int().nonnegative(),
    stealsFailed: z.number().int().nonnegative(),
    /** Steal requests answered after the thief stopped waiting (absent from workers before it was counted). */
    stealsLate: z.number().int().nonnegative().optional(),
    actionsStolen: z.number().int().nonnegative(),
    offers: z.number().int().nonnegative(),
    actionsOffered: z.number().int().nonnegative(),
    actionsTakenBack: z.number().int().nonnegative(),
    stealRoundTripsMs: z.array(z.number().nonnegative()).max(100_000),
    /** Round trips of start requests to the coordinator (absent from workers before it was counted). */
    startRoundTripsMs: z.array(z.number().nonnegative()).max(100_000).optional(),
    announcements: z.number().int().nonnegative(),
    reportFailures: z.number().int().nonnegative(),
    queueDepthSamples: z.array(z.number().int().nonnegative()).max(100_000),
    /** Blobs in the worker's store found corrupt (removed; fetched again or rebuilt). */
    corruptBlobsRemoved: z.number().int().nonnegative().optional(),
    /** Blobs received whose bytes did not match their digest (not kept; fetched from another holder). */
    blobsRejected: z.number().int().nonnegative().optional(),
    /** Blobs this worker fetched from peers (inputs it did not have), and their bytes. */
    blobsFetched: z.number().int().nonnegative().optional(),
    bytesFetched: z.number().int().nonnegative().optional(),
  })
  .strict()
export type WorkerStatsWire = z.infer<typeof workerStatsSchema>

/** Anyone → worker: its counters since it started. */
export const STATS_PROTOCOL: ProtocolSpec<Record<string, never>, WorkerStatsWire> = {
  id: '/bldr/stats/1.0.0',
  maxFrameBytes: 4 * 1024 * 1024,
  request: z.object({}).strict() as z.ZodType<Record<string, never>>,
  response: workerStatsSchema,
}


/**
 * What went wrong in one build, as the coordinator saw it, and what it did:
 * workers lost (with when, epoch ms, and how many of the build's actions went
 * elsewhere), lost workers that came back, workers that left, results from a
 * lost worker that came first (late results, accepted once), repeats ignored,
 * conflicting repeats, failures to run from a worker that no longer held the
 * action (stale, ignored), workers quarantined for failing to run action after
 * action (not seeded, not given stolen work, for `forMs`), and the ledger's count of the build's actions:
 * submitted, recorded, and still open when it closed.
 */
export const faultAccountSchema = z
  .object({
    workersLost: z.array(z.object({ worker: peerId, why: z.string().max(1024), at: z.number(), handedBack: z.number().int().nonnegative() }).strict()).max(10_000),
    workersBack: z.array(peerId).max(10_000),
    workersLeft: z.array(z.object({ worker: peerId, handedBack: z.number().int().nonnegative() }).strict()).max(10_000),
    workersQuarantined: z.array(z.object({ worker: peerId, failures: z.number().int().positive(), why: z.string().max(1024), forMs: z.number().int().positive(), handedBack: z.number().int().nonnegative() }).strict()).max(10_000),
    lateResults: z.number().int().nonnegative(),
    duplicatesIgnored: z.number().int().nonnegative(),
    conflicts: z.number().int().nonnegative(),
    staleFailures: z.number().int().nonnegative(),
    submitted: z.number().int().nonnegative(),
    recorded: z.number().int().nonnegative(),
    open: z.number().int().nonnegative(),
  })
  .strict()
export type FaultAccount = z.infer<typeof faultAccountSchema>

const buildRequest = z.discriminatedUnion('type', [
  /** A client opens a build; events for its actions are pushed to it on BUILD_EVENTS_PROTOCOL. */
  /** `seedWindow`: seed a worker at most this many queued actions per slot beyond what it runs (absent: up to its room; 'auto': 0 or 1 as the coordinator measures, see seed-policy.ts). */
  z.object({ type: z.literal('open'), buildId: buildIdSchema, policy: z.enum(SEED_POLICIES), seedWindow: z.union([z.number().int().min(0).max(1_000_000), z.literal('auto')]).optional(), addrs: z.array(z.string().max(256)).max(16), sandbox: sandboxName, platform: platformName }).strict(),
  /** Ready actions; ids must start with `<buildId>/`. */
  z.object({ type: z.literal('submit'), buildId: buildIdSchema, items: z.array(wireItemSchema).min(1).max(4096) }).strict(),
  z.object({ type: z.literal('close'), buildId: buildIdSchema }).strict(),
  /** Is this build still open here? (A client that lost its connection to the coordinator asks.) */
  z.object({ type: z.literal('status'), buildId: buildIdSchema }).strict(),
  /** Every registered worker's counters. */
  z.object({ type: z.literal('stats') }).strict(),
])
const buildResponse = z.discriminatedUnion('type', [
  z.object({ type: z.literal('opened'), workers: z.number().int().nonnegative() }),
  z.object({ type: z.literal('submitted'), n: z.number().int().nonnegative() }),
  z.object({ type: z.literal('closed'), account: faultAccountSchema.optional() }),
  z.object({ type: z.literal('status'), open: z.boolean() }),
  z.object({ type: z.literal('stats'), workers: z.record(peerId, workerStatsSchema.nullable()) }),
])
export type BuildRequest = z.infer<typeof buildRequest>
export type BuildResponse = z.infer<typeof buildResponse>

/** Client → coordinator: open a build, submit ready actions, close it. */
export const BUILD_PROTOCOL: ProtocolSpec<BuildRequest, BuildResponse> = {
  id: '/bldr/build/1.0.0',
  maxFrameBytes: 64 * 1024 * 1024,
  request: buildRequest,
  response: buildResponse,
}

const buildEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('started'), ids, worker: peerId }).strict(),
  z.object({ type: z.literal('result'), id: actionId, worker: peerId, addrs: z.array(z.string().max(256)).max(16), report: resultReportSchema }).strict(),
  // No worker left in the mesh can run the build's actions (the last able one was lost): the client stops, rather than wait for ever.
  z.object({ type: z.literal('stalled'), reason: z.string().max(1024) }).strict(),
])
export type BuildEvent = z.infer<typeof buildEvent>

/** Coordinator → client: its actions started or finished. */
export const BUILD_EVENTS_PROTOCOL: ProtocolSpec<{ events: BuildEvent[] }, { ok: true }> = {
  id: '/bldr/build-events/1.0.0',
  maxFrameBytes: 64 * 1024 * 1024,
  request: z.object({ events: z.array(buildEvent).min(1).max(16_384) }).strict(),
  response: z.object({ ok: z.literal(true) }).strict(),
}
