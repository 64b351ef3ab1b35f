import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { BUILD_PROTOCOL, STEAL_PROTOCOL } from '../../src/net/protocols.js'

describe('the steal protocol\'s answers', () => {
  const check = (value: unknown): { ok: true; data: unknown } | { ok: false; path: string; message: string } => {
    const r = STEAL_PROTOCOL.response.safeParse(value)
    if (r.success) return { ok: true, data: r.data }
    const first = r.error.issues[0]!
    return { ok: false, path: first.path.join('.'), message: first.message }
  }

  it('accepts an offer and a refusal', () => {
    const offer = { offered: [{ id: 'a1', payload: { x: 1 }, sandbox: 'bwrap' }] }
    assert.deepEqual(check(offer), { ok: true, data: offer })
    assert.deepEqual(check({ refused: 'nothing to spare' }), { ok: true, data: { refused: 'nothing to spare' } })
  })

  it('checks each answer against its own shape and names what is wrong', () => {
    assert.deepEqual(check({ refused: 5 }), { ok: false, path: 'refused', message: 'Expected string, received number' })
    assert.deepEqual(check({ offered: [{ id: '' }] }), { ok: false, path: 'offered.0.id', message: 'String must contain at least 1 character(s)' })
    assert.equal((check({ refused: 'no', offered: [] }) as { ok: boolean }).ok, false, 'both keys: not a refusal')
    assert.equal((check({ offered: [], extra: 1 }) as { ok: boolean }).ok, false)
    assert.equal((check(null) as { ok: boolean }).ok, false)
    assert.equal((check('refused') as { ok: boolean }).ok, false)
  })
})

describe('the build protocol\'s requests', () => {
  it('take a build id without "/" (its actions\' ids start with "<buildId>/")', () => {
    const open = (buildId: string) => BUILD_PROTOCOL.request.safeParse({ type: 'open', buildId, policy: 'least-loaded', addrs: [], sandbox: 'local', platform: 'linux-x64' })
    assert.equal(open('3fa2b9c01d2e').success, true)
    const bad = open('a/b')
    assert.equal(bad.success, false)
    assert.match(JSON.stringify(bad.error?.issues), /a build id holds no/)
    assert.equal(BUILD_PROTOCOL.request.safeParse({ type: 'close', buildId: 'x/' }).success, false)
  })
})
