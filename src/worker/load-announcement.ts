/**
 * The load announcement a worker gossips on `bldr/load/1`: how busy it is and
 * what it can run. A hint (DESIGN.md, invariant 4): any one may be lost, late or
 * duplicated, and nothing correct may depend on one arriving.
 *
 * Encoded as UTF-8 JSON, capped at MAX_ANNOUNCEMENT_BYTES (the Builder seed's
 * announce budget, < 2 KB), checked on decode; a bad one is dropped by the caller.
 */
import { z } from 'zod'

export const LOAD_TOPIC = 'bldr/load/1'
export const MAX_ANNOUNCEMENT_BYTES = 2048

export const loadAnnouncementSchema = z
  .object({
    v: z.literal(1),
    /** A random id per worker start: a restarted worker's sequence starts again. */
    incarnation: z.string().min(1).max(64),
    /** Increases by one per announcement of one incarnation. */
    seq: z.number().int().nonnegative(),
    /** The sender's clock, for logs only: staleness is judged by the receiver's clock. */
    sentAtMs: z.number().nonnegative(),
    queueDepth: z.number().int().nonnegative(),
    executing: z.number().int().nonnegative(),
    capacity: z.number().int().positive(),
    loadFactor: z.number().nonnegative(),
    sandboxes: z.array(z.enum(['local', 'bwrap', 'docker'])).max(3),
    platform: z.string().min(1).max(64),
  })
  .strict()

export type LoadAnnouncement = z.infer<typeof loadAnnouncementSchema>

export function encodeAnnouncement(a: LoadAnnouncement): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify(a))
  if (bytes.byteLength > MAX_ANNOUNCEMENT_BYTES) throw new RangeError(`load announcement of ${bytes.byteLength} bytes is over the ${MAX_ANNOUNCEMENT_BYTES}-byte cap`)
  return bytes
}

export type Decoded = { ok: true; value: LoadAnnouncement } | { ok: false; error: string }

export function decodeAnnouncement(bytes: Uint8Array): Decoded {
  if (bytes.byteLength > MAX_ANNOUNCEMENT_BYTES) return { ok: false, error: `over the ${MAX_ANNOUNCEMENT_BYTES}-byte cap (${bytes.byteLength} bytes)` }
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    return { ok: false, error: 'not UTF-8 JSON' }
  }
  const parsed = loadAnnouncementSchema.safeParse(json)
  if (!parsed.success) {
    const i = parsed.error.issues[0]
    return { ok: false, error: `fails its schema: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'}` }
  }
  return { ok: true, value: parsed.data }
}
