/**
 * The mesh's direct protocols: versioned ids, size caps, and the schema every
 * frame is checked against on decode.
 *
 * Work items travel as `{ id, payload }`: the id is the action id the ledger
 * knows; the payload is what the worker's runner needs (opaque here).
 */
import { z } from 'zod'
import type { ProtocolSpec } from './request-response.js'

const actionId = z.string().min(1).max(1024)
const peerId = z.string().min(1).max(128)
const ids = z.array(actionId).max(4096)

export const wireItemSchema = z.object({ id: actionId, payload: z.unknown() }).strict()
export type WireItem = z.infer<typeof wireItemSchema> & { payload: unknown }

const coordinatorRequest = z.discriminatedUnion('type', [
  z.object({ type: z.literal('register'), addrs: z.array(z.string().max(256)).max(16) }).strict(),
  z.object({ type: z.literal('start'), ids }).strict(),
  z.object({ type: z.literal('transfer'), stealId: z.string().min(1).max(256), ids, victim: peerId }).strict(),
  z.object({ type: z.literal('holders'), ids }).strict(),
  z.object({ type: z.literal('result'), id: actionId, ok: z.boolean() }).strict(),
])
const coordinatorResponse = z.discriminatedUnion('type', [
  z.object({ type: z.literal('registered'), peers: z.array(z.object({ id: peerId, addrs: z.array(z.string().max(256)).max(16) })).max(10_000) }),
  z.object({ type: z.literal('allowed'), ids }),
  z.object({ type: z.literal('accepted'), ids }),
  z.object({ type: z.literal('holders'), holders: z.record(actionId, peerId.nullable()) }),
  z.object({ type: z.literal('recorded'), outcome: z.enum(['recorded', 'duplicate', 'conflict', 'unknown']) }),
])
export type CoordinatorRequest = z.infer<typeof coordinatorRequest>
export type CoordinatorResponse = z.infer<typeof coordinatorResponse>

/** Worker → coordinator: registration, the start gate, steal transfers, holders, results. */
export const COORDINATOR_PROTOCOL: ProtocolSpec<CoordinatorRequest, CoordinatorResponse> = {
  id: '/bldr/coordinator/1.0.0',
  maxFrameBytes: 4 * 1024 * 1024,
  request: coordinatorRequest,
  response: coordinatorResponse,
}

const stealRequest = z.object({ stealId: z.string().min(1).max(256), max: z.number().int().min(1).max(1024) }).strict()
const stealResponse = z.union([z.object({ offered: z.array(wireItemSchema).max(1024) }).strict(), z.object({ refused: z.string().max(1024) }).strict()])

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
