/**
 * One socket write per burst of frames, not one per frame.
 *
 * @libp2p/tcp 11 writes every buffer libp2p hands it with its own
 * `socket.write`: a yamux frame is a header and a body, noise makes each a
 * length prefix and a ciphertext, and a CAS answer is an answer frame, chunk
 * frames and an end frame, so one reply is several write syscalls. Syscalls
 * are dear on this kind of machine (a loopback write cost ~74 µs on the 2-core
 * VM): a cold 62-action CMake build on a standing mesh made 8,064 writes in
 * the client, ~600 ms of its CPU (bench/ninja, strace -c and a CPU profile).
 *
 * So every TCP connection's socket is corked when libp2p first sends on it in
 * a tick, and uncorked on the next `process.nextTick`: what the current
 * macrotask and its microtasks send leaves in one `writev`. No event-loop turn
 * is added (a tick queued from a microtask runs when the microtasks are done),
 * and backpressure is unchanged: `write` still reports a full buffer.
 *
 * The socket is reached through the upgrader the transport hands each new
 * connection to, which sees the transport's `MultiaddrConnection` (with its
 * `socket`) before anything is sent on it.
 */
import type { CreateListenerOptions, DialTransportOptions, MultiaddrConnection, Transport, Upgrader } from '@libp2p/interface'
import type { tcp } from '@libp2p/tcp'
import type { Socket } from 'node:net'

type TcpFactory = ReturnType<typeof tcp>
type SendData = (this: unknown, data: unknown) => unknown

/** The fields of @libp2p/tcp's connection used here (not in its public types). */
interface TcpConnectionFields {
  socket?: Socket
  sendData?: SendData
}

/** Make `maConn` send each tick's frames in one write. A connection that is not a TCP socket's is left alone. */
export function coalesceWrites(maConn: MultiaddrConnection): void {
  const conn = maConn as unknown as TcpConnectionFields
  const socket = conn.socket
  const send = conn.sendData
  if (!socket || typeof socket.cork !== 'function' || typeof send !== 'function') return
  let corked = false
  const uncork = (): void => {
    corked = false
    socket.uncork()
  }
  conn.sendData = function (this: unknown, data: unknown) {
    if (!corked && !socket.destroyed) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    return send.call(this, data)
  }
}

/** An upgrader that coalesces each connection's writes before upgrading it. */
function coalescingUpgrader(upgrader: Upgrader): Upgrader {
  return new Proxy(upgrader, {
    get(target, prop) {
      if (prop === 'upgradeInbound' || prop === 'upgradeOutbound') {
        const upgrade = target[prop] as (maConn: MultiaddrConnection, opts: unknown) => Promise<unknown>
        return (maConn: MultiaddrConnection, opts: unknown) => {
          coalesceWrites(maConn)
          return upgrade.call(target, maConn, opts)
        }
      }
      const value: unknown = Reflect.get(target, prop)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}

/** A TCP transport whose connections send each tick's frames in one write. */
export function withCoalescedWrites(factory: TcpFactory): TcpFactory {
  return (components) => {
    const transport: Transport = factory(components)
    const dial = transport.dial.bind(transport)
    const createListener = transport.createListener.bind(transport)
    transport.dial = (ma, options: DialTransportOptions) => dial(ma, { ...options, upgrader: coalescingUpgrader(options.upgrader) })
    transport.createListener = (options: CreateListenerOptions) => createListener({ ...options, upgrader: coalescingUpgrader(options.upgrader) })
    return transport
  }
}
