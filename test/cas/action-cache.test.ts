import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ActionCache, computeActionKey, encodeActionKey, type ActionKeyParts, type ActionResult } from '../../src/cas/action-cache.js'
import { createBlake3Hasher, type Hasher } from '../../src/cas/hasher.js'

const D1 = 'a'.repeat(64)
const D2 = 'b'.repeat(64)

const base: ActionKeyParts = {
  argv: ['cc', '-c', 'a.c', '-o', 'a.o'],
  env: { PATH: '/usr/bin', LANG: 'C' },
  inputs: [
    { path: 'a.c', digest: D1, executable: false },
    { path: 'a.h', digest: D2, executable: false },
  ],
  outputs: ['a.o'],
  sandbox: 'local',
  platform: 'linux-x64',
}

describe('action key', () => {
  let hasher: Hasher
  before(async () => {
    hasher = await createBlake3Hasher()
  })

  it('does not depend on the order of env entries or inputs', () => {
    const reordered: ActionKeyParts = { ...base, env: { LANG: 'C', PATH: '/usr/bin' }, inputs: [...base.inputs].reverse() }
    assert.equal(encodeActionKey(reordered), encodeActionKey(base))
    assert.equal(computeActionKey(hasher, reordered), computeActionKey(hasher, base))
  })

  const changes: [string, Partial<ActionKeyParts>][] = [
    ['an argument', { argv: ['cc', '-O2', '-c', 'a.c', '-o', 'a.o'] }],
    ['an env value', { env: { PATH: '/usr/bin', LANG: 'en_US' } }],
    ['an input digest', { inputs: [{ path: 'a.c', digest: D2, executable: false }, base.inputs[1]!] }],
    ['an input path', { inputs: [{ path: 'b.c', digest: D1, executable: false }, base.inputs[1]!] }],
    ['an input mode', { inputs: [{ path: 'a.c', digest: D1, executable: true }, base.inputs[1]!] }],
    ['an output path', { outputs: ['b.o'] }],
    ['the sandbox', { sandbox: 'docker' }],
    ['the platform', { platform: 'linux-arm64' }],
  ]
  for (const [what, change] of changes) {
    it(`changes with ${what}`, () => {
      assert.notEqual(computeActionKey(hasher, { ...base, ...change }), computeActionKey(hasher, base))
    })
  }

  it('is exactly the JSON of the canonical array', () => {
    const expected = JSON.stringify([
      'bldr-action-key-v2',
      base.argv,
      [['LANG', 'C'], ['PATH', '/usr/bin']],
      [['a.c', D1, 0], ['a.h', D2, 0]],
      ['a.o'],
      'local',
      'linux-x64',
      [],
    ])
    assert.equal(encodeActionKey(base), expected)
    assert.equal(encodeActionKey({ ...base, inputs: [...base.inputs].reverse() }), expected)
  })

  it('changes with a program the command starts: its resolved file and its digest', () => {
    const cc = { name: 'cc', path: '/usr/bin/gcc-12', digest: D1 }
    const withCc = computeActionKey(hasher, { ...base, tools: [cc] })
    assert.notEqual(withCc, computeActionKey(hasher, base))
    assert.notEqual(computeActionKey(hasher, { ...base, tools: [{ ...cc, digest: D2 }] }), withCc, 'another compiler binary')
    assert.notEqual(computeActionKey(hasher, { ...base, tools: [{ ...cc, path: '/usr/bin/clang-16' }] }), withCc, 'cc resolving elsewhere')
    assert.equal(computeActionKey(hasher, { ...base, tools: [{ ...cc }] }), withCc)
  })

  it('keeps argv order significant', () => {
    assert.notEqual(computeActionKey(hasher, { ...base, argv: [...base.argv].reverse() }), computeActionKey(hasher, base))
  })
})

describe('action cache', () => {
  let dir: string
  const result: ActionResult = {
    v: 1,
    exitCode: 0,
    outputs: [{ path: 'a.o', digest: D1, size: 10, executable: false }],
    stdout: { digest: D2, size: 0 },
    stderr: { digest: D2, size: 0 },
    durationMs: 12.5,
    sandbox: 'local',
  }
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bldr-ac-'))
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('misses, then hits after put, also after reopening the log', async () => {
    const file = join(dir, 'hit', 'ac.log')
    const ac = ActionCache.open(file)
    const key = 'c'.repeat(64)
    assert.equal(await ac.get(key), null)
    await ac.put(key, result)
    assert.deepEqual(await ac.get(key), result)
    ac.close()
    const again = ActionCache.open(file)
    assert.deepEqual(await again.get(key), result)
    assert.equal(await again.get('e'.repeat(64)), null)
  })

  it('parses an entry once per process: the log opened again gives the same frozen result, and a new result for the key its own', async () => {
    const file = join(dir, 'memo', 'ac.log')
    const key = 'c'.repeat(64)
    const discovered = 'b'.repeat(64)
    const ac = ActionCache.open(file)
    await ac.put(key, { ...result, durationMs: 7 })
    ac.putDiscovered(discovered, ['a.h', 'b.h'])
    ac.close()
    const first = await ActionCache.open(file).get(key)
    const again = await ActionCache.open(file).get(key)
    assert.equal(again, first, 'the same object, not parsed again')
    assert.ok(Object.isFrozen(first) && Object.isFrozen(first?.outputs) && Object.isFrozen(first?.outputs[0]), 'shared by every build that finds it, so no one can change it')
    assert.throws(() => (first!.outputs as unknown[]).push({}), TypeError)
    assert.deepEqual(ActionCache.open(file).getDiscovered(discovered), ['a.h', 'b.h'])
    assert.equal(ActionCache.open(file).getDiscovered(discovered), ActionCache.open(file).getDiscovered(discovered))
    const later = ActionCache.open(file)
    await later.put(key, { ...result, durationMs: 8 })
    assert.equal((await later.get(key))?.durationMs, 8)
    later.close()
    assert.equal((await ActionCache.open(file).get(key))?.durationMs, 8)
  })

  it('the last line for a key wins', async () => {
    const file = join(dir, 'last', 'ac.log')
    const ac = ActionCache.open(file)
    const key = 'c'.repeat(64)
    await ac.put(key, result)
    await ac.put(key, { ...result, durationMs: 99 })
    ac.close()
    assert.equal((await ActionCache.open(file).get(key))?.durationMs, 99)
  })

  it('treats a torn or malformed line as a miss and keeps the rest', async () => {
    const file = join(dir, 'torn.log')
    const good = 'a'.repeat(64)
    const bad = 'd'.repeat(64)
    const wrong = 'f'.repeat(64)
    await writeFile(
      file,
      `${good} ${JSON.stringify(result)}\n${wrong} ${JSON.stringify({ ...result, outputs: [{ path: 'x', digest: 'nothex' }] })}\ngarbage line\n${bad} {"v":1,"exitCo`,
    )
    const ac = ActionCache.open(file)
    assert.deepEqual(await ac.get(good), result)
    assert.equal(await ac.get(bad), null)
    assert.equal(await ac.get(wrong), null)
  })

  it('compacts a log that holds mostly superseded lines', async () => {
    const file = join(dir, 'compact.log')
    const ac = ActionCache.open(file)
    for (let i = 0; i < 1200; i++) await ac.put(String(i % 10).repeat(64), { ...result, durationMs: i })
    ac.close()
    assert.equal((await readFile(file, 'utf8')).trim().split('\n').length, 1200)
    const reopened = ActionCache.open(file)
    assert.equal(reopened.size, 10)
    assert.equal((await readFile(file, 'utf8')).trim().split('\n').length, 10)
    assert.equal((await reopened.get('9'.repeat(64)))?.durationMs, 1199)
  })
})
