/**
 * Yamux receive-window updates at half the window, as go-yamux and rust-yamux
 * send them, instead of after every data frame.
 *
 * @chainsafe/libp2p-yamux 8.0.1 (the latest) answers every data frame it
 * receives with a window-update frame, even a 200-byte one with 256 KiB of
 * window left. On the mesh's small request/response calls (steal, start,
 * result) that is a second frame each way per message: one more noise
 * encryption, socket write and, at the peer, read, decryption and dispatch.
 * bench/live-mesh --only roundtrip, 2 runs each: a bare libp2p request p50
 * 948 → 777 µs, a steal 1,090 → 835 µs.
 *
 * The rule (go-yamux's sendWindowUpdate): an established stream sends an update
 * only once at least half its receive window is used; the library's own
 * method then does the rest (window growth, flags). Frames that carry flags
 * (opening a stream: SYN / ACK) and a paused stream go to it unchanged. A
 * sender still always has credit: half the window is left when the update
 * is sent.
 */
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

/** The fields the rule reads, private in the library's types. */
interface WindowFields {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

type SendWindowUpdate = (this: YamuxStream) => void

let installed = false

/** Whether an update would be sent now by the half-window rule (the library decides the rest). */
export function windowUpdateDue(s: WindowFields): boolean {
  if (s.state !== StreamState.Established) return true
  return s.recvWindow - s.recvWindowCapacity >= s.recvWindow / 2
}

/** Install the rule on YamuxStream (once per process; every mesh node does it before it starts). */
export function installHalfWindowUpdates(): void {
  if (installed) return
  const proto = YamuxStream.prototype as unknown as { sendWindowUpdate: SendWindowUpdate }
  const original = proto.sendWindowUpdate
  if (typeof original !== 'function') throw new Error('@chainsafe/libp2p-yamux: YamuxStream has no sendWindowUpdate (a changed version?); see src/net/yamux-window.ts')
  proto.sendWindowUpdate = function (this: YamuxStream) {
    if (!windowUpdateDue(this as unknown as WindowFields)) return
    original.call(this)
  }
  installed = true
}
