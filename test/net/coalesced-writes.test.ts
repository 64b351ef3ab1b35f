import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import { describe, it } from 'node:test'
import type { MultiaddrConnection } from '@libp2p/interface'
import { coalesceWrites } from '../../src/net/coalesced-writes.js'

/** The write calls a socket's handle makes (one per syscall): writeBuffer/writeUtf8String for one buffer, writev for several. */
function countHandleWrites(socket: Socket): { calls: number } {
  const counter = { calls: 0 }
  const handle = (socket as unknown as { _handle: Record<string, (...args: unknown[]) => unknown> })._handle
  for (const name of ['writeBuffer', 'writev', 'writeUtf8String', 'writeLatin1String']) {
    const original = handle[name]
    if (typeof original !== 'function') continue
    handle[name] = function (this: unknown, ...args: unknown[]) {
      counter.calls++
      return original.apply(this, args)
    }
  }
  return counter
}

/** A connection shaped as @libp2p/tcp's: a socket, and sendData writing each buffer with its own write. */
function tcpLikeConnection(socket: Socket): MultiaddrConnection & { sendData(data: Uint8Array[]): { canSendMore: boolean } } {
  return {
    socket,
    sendData(data: Uint8Array[]) {
      let canSendMore = true
      for (const buf of data) canSendMore = socket.write(buf)
      return { canSendMore }
    },
  } as unknown as MultiaddrConnection & { sendData(data: Uint8Array[]): { canSendMore: boolean } }
}

async function withSocketPair(fn: (client: Socket, received: () => Promise<Buffer>) => Promise<void>): Promise<void> {
  const chunks: Buffer[] = []
  let serverSide: Socket | undefined
  const server = createServer((s) => {
    serverSide = s
    s.on('data', (b: Buffer) => chunks.push(b))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
  await once(client, 'connect')
  try {
    await fn(client, async () => {
      client.end()
      if (serverSide && !serverSide.readableEnded) await once(serverSide, 'end')
      return Buffer.concat(chunks)
    })
  } finally {
    client.destroy()
    server.close()
  }
}

describe('coalesced socket writes', () => {
  it('sends what one tick hands a connection in one write, in order, and the next tick in another', async () => {
    await withSocketPair(async (socket, received) => {
      const conn = tcpLikeConnection(socket)
      coalesceWrites(conn)
      const writes = countHandleWrites(socket)
      const frames = Array.from({ length: 20 }, (_, i) => Buffer.from(`frame ${i};`))
      for (let i = 0; i < 10; i++) conn.sendData([frames[2 * i]!, frames[2 * i + 1]!])
      assert.equal(writes.calls, 0, 'nothing written within the tick')
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(writes.calls, 1, '20 buffers in one write')
      await Promise.resolve().then(() => conn.sendData([Buffer.from('later;')]))
      await new Promise((resolve) => setImmediate(resolve))
      assert.equal(writes.calls, 2)
      assert.equal((await received()).toString(), `${frames.join('')}later;`)
    })
  })

  it('leaves a connection without a TCP socket alone', () => {
    const sendData = (): { canSendMore: boolean } => ({ canSendMore: true })
    const conn = { sendData } as unknown as MultiaddrConnection & { sendData: typeof sendData }
    coalesceWrites(conn)
    assert.equal(conn.sendData, sendData)
  })
})
