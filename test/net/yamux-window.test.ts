import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'
import { installHalfWindowUpdates, windowUpdateDue } from '../../src/net/yamux-window.js'

const KiB = 1024

describe('yamux window updates at half the window', () => {
  it('an established stream sends an update only once half its receive window is used; opening and paused streams go to the library', () => {
    const window = 256 * KiB
    const used = (bytes: number, state = StreamState.Established) => ({ state, recvWindow: window, recvWindowCapacity: window - bytes })
    assert.equal(windowUpdateDue(used(0)), false)
    assert.equal(windowUpdateDue(used(200)), false, 'a small frame leaves most of the window: no update')
    assert.equal(windowUpdateDue(used(128 * KiB - 1)), false)
    assert.equal(windowUpdateDue(used(128 * KiB)), true, 'half used: the update goes out')
    assert.equal(windowUpdateDue(used(window)), true)
    for (const state of [StreamState.Init, StreamState.SYNSent, StreamState.SYNReceived, StreamState.Paused, StreamState.Finished]) {
      assert.equal(windowUpdateDue(used(200, state)), true, `state ${StreamState[state]}: the library decides (flags, pausing)`)
    }
  })

  it('wraps the library method once, however many nodes start', () => {
    installHalfWindowUpdates()
    const wrapped = (YamuxStream.prototype as unknown as { sendWindowUpdate: unknown }).sendWindowUpdate
    installHalfWindowUpdates()
    assert.equal((YamuxStream.prototype as unknown as { sendWindowUpdate: unknown }).sendWindowUpdate, wrapped)
  })
})
