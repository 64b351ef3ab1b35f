/**
 * How mesh nodes find that a peer is gone (no libp2p here, so the command line
 * can name the defaults without loading it).
 *
 * Heartbeats run on every direct connection: libp2p's connection monitor pings
 * each peer every `heartbeatIntervalMs` (the Builder seed's 5 s) and closes a
 * connection whose ping gets no answer within `workerTimeoutMs`. A frozen or
 * cut-off worker is so disconnected within interval + timeout, and the
 * coordinator then declares it lost (coordinator-service.ts); a crashed one's
 * connection closes at once. The timeout is 10 s, not the seed's 30 s: with
 * every core of the machine busy, bench/faults sees no worker declared lost
 * even at a 2 s timeout, so 10 s is still a wide margin against declaring a
 * busy worker dead, and a frozen one costs a build about 15 s, not 35.
 */
export interface Liveness {
  heartbeatIntervalMs: number
  workerTimeoutMs: number
}

export const DEFAULT_LIVENESS: Liveness = { heartbeatIntervalMs: 5_000, workerTimeoutMs: 10_000 }

/**
 * A connection that closes and is dialled again within this is a blip, not a
 * lost peer: the coordinator declares a worker lost, and a client asks after
 * its build, only when it stays closed this long (a shorter worker timeout
 * shortens the coordinator's wait).
 */
export const RECONNECT_GRACE_MS = 2_000
